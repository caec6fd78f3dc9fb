package mappings

import (
	"log/slog"
	"time"

	"github.com/pathway-fhir/pathway/fhir"
)

// Referral is what a mapping extracts from one source record: the facts a
// referral needs, independent of how the source spelled them. Build turns
// it into one FHIR transaction Bundle (Patient, ServiceRequest, Consent,
// Task, and screening, risk and outcome resources where present).
//
// Every field is addressed from a mapping file by its target name, written
// beside it ("patient.languages"). Codes are already translated: a Code
// holds a system, a code and a display, or only text when the source value
// had no translation and the table said to pass it as text.
type Referral struct {
	// SourceSystem names the system the record came from (a URI such as
	// "https://ngo-a.example/cases"); with RecordID it seeds every id.
	SourceSystem string // source.system
	// RecordID is the record's id in the source system. Required.
	RecordID string // source.record_id

	Patient      Person       // patient.*
	Service      Service      // service.*
	Practitioner Practitioner // practitioner.*: who made the referral
	Consent      ConsentTerms // consent.*
	Task         TaskTerms    // task.*
	Screenings   []Screening  // screening[] (see Screening)
	Risks        []Risk       // risk[]
	Outcomes     []Outcome    // outcome[]
}

// BundleID is the id of the Bundle that Build makes of the referral (and
// the seed of every resource id in it), derived from SourceSystem and
// RecordID.
func (r Referral) BundleID() string { return fhir.NewID(r.SourceSystem, r.RecordID, "Bundle") }

// LogValue logs a referral as its Bundle only ("Bundle/<id>"), never the
// record id: that is the source's business identifier, personal data in
// a log.
func (r Referral) LogValue() slog.Value {
	return slog.GroupValue(slog.String("bundle", "Bundle/"+r.BundleID()))
}

// Code is a coded value after translation, or free text when untranslated.
type Code struct {
	System, Code, Display string
	// Text is the value as the source wrote it, kept when it could not be
	// translated (unmapped: text) and as CodeableConcept.text otherwise.
	Text string
}

// IsZero reports whether the code carries nothing.
func (c Code) IsZero() bool { return c.System == "" && c.Code == "" && c.Text == "" }

// Person is the Patient: only what the referral needs. A pseudonymous
// record stays pseudonymous: with no name, only the pseudonym is sent.
type Person struct {
	IdentifierSystem string // patient.identifier_system (default: SourceSystem + "/client")
	Identifier       string // patient.identifier: the client's id in the source
	Pseudonym        string // patient.pseudonym: a name the person chose to be called by, or a case alias
	GivenName        string // patient.given_name
	FamilyName       string // patient.family_name
	Gender           string // patient.gender: male | female | other | unknown
	BirthDate        string // patient.birth_date: YYYY, YYYY-MM or YYYY-MM-DD
	// Languages are BCP-47 tags; the first is preferred unless PreferredLanguage says otherwise.
	Languages         []string // patient.languages
	PreferredLanguage string   // patient.preferred_language
	InterpreterNeeded *bool    // patient.interpreter_needed
	Phone             string   // patient.phone
	Email             string   // patient.email
	ContactPreference string   // patient.contact_preference: phone | sms | email | in-person | via-caseworker

	// Sensitive: labelled so that consent and agreements decide who sees them.
	CountryOfBirth   Code   // patient.country_of_birth: ISO 3166 (urn:iso:std:iso:3166)
	Ethnicity        Code   // patient.ethnicity: as the person described it
	MigrantType      Code   // patient.migrant_type: Pathway CodeSystem
	LegalStatus      Code   // patient.legal_status: Pathway CodeSystem (immigration/asylum/legal status)
	YearOfArrival    string // patient.year_of_arrival: YYYY
	MigrationHistory string // patient.migration_history: free text, sensitive

	// Identifiers are more of the person's identifiers, each in its own
	// namespace (a clinic's record numbers), written after Identifier.
	Identifiers []Identifier // patient.identifiers (default namespace: SourceSystem + "/client")
}

// Service is the ServiceRequest: what is asked for, how urgent, and the
// person's preferences.
type Service struct {
	ReferralIdentifier string    // service.referral_id: the source's referral number, if any
	Categories         []Code    // service.categories: mental health, social prescribing
	Needs              []Code    // service.needs: housing, legal/immigration advice, language support...
	Priority           string    // service.priority: routine | urgent | asap | stat (from triage)
	TriageLevel        Code      // service.triage: stepped-care step, as coded by the source
	ReasonText         string    // service.reason: why, in the referrer's words
	ReasonCodes        []Code    // service.reason_codes
	Requester          string    // service.requester: referring Organization id (in the partner directory)
	RequesterName      string    // service.requester_name: its display name
	AuthoredOn         time.Time // service.authored_on
	Notes              []string  // service.notes: free text (may be in any language; kept byte-exact)

	// Preferences, sent as patientInstruction and as coded notes.
	LinkWorkerSex string // service.link_worker_sex: female | male | no-preference
	Format        string // service.format: individual | group | either
	Approach      string // service.approach: signposting | conversation
	Instruction   string // service.patient_instruction: anything else the person asked for

	// Identifiers are the referral's identifiers as the source system keeps
	// them, each in its namespace (a clinic's placer and filler numbers),
	// written after ReferralIdentifier.
	Identifiers []Identifier // service.identifiers (default namespace: SourceSystem + "/referral")
	// OccurrenceStart and OccurrenceEnd are when the service should happen
	// (an HL7 v2 referral's effective and expiration dates).
	OccurrenceStart time.Time // service.occurrence_start
	OccurrenceEnd   time.Time // service.occurrence_end
}

// Identifier is a business identifier as the source wrote it: a value in a
// namespace. System is an absolute URI; or a bare OID (2.16.840.1.113883.4.1),
// written as urn:oid:OID; or a name local to the source (an HL7 v2 assigning
// authority such as "ADT1"), written as SourceSystem + "/id/" + name; or
// empty, for the target's default namespace.
type Identifier struct {
	System string
	Value  string
}

// Practitioner is the practitioner who made the referral. When the record names
// one, Build writes a Practitioner and makes it the ServiceRequest's
// requester; the referring Organization stays the Task's requester.
type Practitioner struct {
	Identifiers []Identifier // practitioner.identifiers (default namespace: SourceSystem + "/practitioner")
	GivenName   string       // practitioner.given_name
	FamilyName  string       // practitioner.family_name
	Phone       string       // practitioner.phone
	Email       string       // practitioner.email
}

// ConsentTerms is the Consent the record states.
type ConsentTerms struct {
	Given    *bool     // consent.given: false (or absent) means no permit provisions are written
	Date     time.Time // consent.date: when it was given
	Start    time.Time // consent.start
	End      time.Time // consent.end
	Partners []string  // consent.partners: Organization ids the person agreed to share with
	// PartnerKinds are kinds of partner (clinic, ngo, community) agreed to.
	PartnerKinds []string // consent.partner_kinds
	// Purposes are v3 PurposeOfUse codes (TREAT, COC, ...). Default: COC.
	Purposes []string // consent.purposes
	// ShareImmigrationData is true only when the person explicitly agreed that
	// immigration and legal-status data may go to the named partners.
	ShareImmigrationData bool   // consent.share_immigration_data
	Method               string // consent.method: verbal | written | digital
}

// TaskTerms is the referral Task.
type TaskTerms struct {
	Owner     string // task.owner: target Organization id when the source names one
	OwnerName string // task.owner_name
}

// Screening is one screening score (PHQ-9, GAD-7, RHS-15).
type Screening struct {
	Instrument string    // screening[].instrument: phq-9 | gad-7 | rhs-15
	Score      *int      // screening[].score
	Date       time.Time // screening[].date
}

// Risk is a safety risk to flag (self-harm and others).
type Risk struct {
	Code Code      // risk[].code
	Date time.Time // risk[].date
}

// Outcome is an outcome measured for the referral.
type Outcome struct {
	Code  Code      // outcome[].code
	Value string    // outcome[].value
	Date  time.Time // outcome[].date
}
