package mappings

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// kind is the type of value a target takes.
type kind string

const (
	kindString      kind = "string"       // text, trimmed
	kindStrings     kind = "string list"  // several texts (split, or repeated source values)
	kindBool        kind = "boolean"      // yes/no, true/false, y/n, 1/0
	kindInt         kind = "integer"      // a whole number
	kindDate        kind = "date"         // a date or date-time, parsed with explicit formats
	kindPartialDate kind = "partial date" // YYYY, YYYY-MM or YYYY-MM-DD, as precise as the source
	kindCode        kind = "code"         // translated through a table, or written system|code|display
	kindCodes       kind = "code list"
	// kindIdentifiers are identifiers, each a value in a namespace given by
	// the expression's system option (or the target's default namespace).
	kindIdentifiers kind = "identifier list"
)

// target describes one field of Referral a mapping can fill.
type target struct {
	name string
	kind kind
	doc  string
	// set stores a converted value into the referral; index is the list
	// position for screening[], risk[] and outcome[] targets.
	set func(r *Referral, index int, v value)
}

// value is a converted value of the target's kind.
type value struct {
	s     string
	ss    []string
	b     bool
	i     int
	t     time.Time
	code  Code
	codes []Code
	ids   []Identifier
}

func ptrBool(b bool) *bool { return &b }
func ptrInt(i int) *int    { return &i }

func screeningAt(r *Referral, i int) *Screening {
	for len(r.Screenings) <= i {
		r.Screenings = append(r.Screenings, Screening{})
	}
	return &r.Screenings[i]
}

func riskAt(r *Referral, i int) *Risk {
	for len(r.Risks) <= i {
		r.Risks = append(r.Risks, Risk{})
	}
	return &r.Risks[i]
}

func outcomeAt(r *Referral, i int) *Outcome {
	for len(r.Outcomes) <= i {
		r.Outcomes = append(r.Outcomes, Outcome{})
	}
	return &r.Outcomes[i]
}

// targets is the one list of what a mapping can fill: loading, linting and
// docs/mappings.md's target table all come from it.
var targets = func() map[string]target {
	list := []target{
		{"source.system", kindString, "URI of the source system; seeds every id", func(r *Referral, _ int, v value) { r.SourceSystem = v.s }},
		{"source.record_id", kindString, "the record's id in the source system (required)", func(r *Referral, _ int, v value) { r.RecordID = v.s }},

		{"patient.identifier_system", kindString, "URI of the client id system (default: source.system + \"/client\")", func(r *Referral, _ int, v value) { r.Patient.IdentifierSystem = v.s }},
		{"patient.identifier", kindString, "the client's id in the source", func(r *Referral, _ int, v value) { r.Patient.Identifier = v.s }},
		{"patient.identifiers", kindIdentifiers, "more identifiers of the person, each with its namespace (system:)", func(r *Referral, _ int, v value) { r.Patient.Identifiers = v.ids }},
		{"patient.pseudonym", kindString, "a name the person chose, or a case alias", func(r *Referral, _ int, v value) { r.Patient.Pseudonym = v.s }},
		{"patient.given_name", kindString, "given name", func(r *Referral, _ int, v value) { r.Patient.GivenName = v.s }},
		{"patient.family_name", kindString, "family name", func(r *Referral, _ int, v value) { r.Patient.FamilyName = v.s }},
		{"patient.gender", kindString, "male, female, other or unknown (use a table to translate)", func(r *Referral, _ int, v value) { r.Patient.Gender = v.s }},
		{"patient.birth_date", kindPartialDate, "birth date, as precise as known", func(r *Referral, _ int, v value) { r.Patient.BirthDate = v.s }},
		{"patient.languages", kindStrings, "BCP-47 language tags, preferred first", func(r *Referral, _ int, v value) { r.Patient.Languages = v.ss }},
		{"patient.preferred_language", kindString, "BCP-47 tag of the preferred language", func(r *Referral, _ int, v value) { r.Patient.PreferredLanguage = v.s }},
		{"patient.interpreter_needed", kindBool, "whether an interpreter is needed", func(r *Referral, _ int, v value) { r.Patient.InterpreterNeeded = ptrBool(v.b) }},
		{"patient.phone", kindString, "phone number", func(r *Referral, _ int, v value) { r.Patient.Phone = v.s }},
		{"patient.email", kindString, "email address", func(r *Referral, _ int, v value) { r.Patient.Email = v.s }},
		{"patient.contact_preference", kindString, "phone, sms, email, in-person or via-caseworker", func(r *Referral, _ int, v value) { r.Patient.ContactPreference = v.s }},
		{"patient.country_of_birth", kindCode, "country of birth (sensitive)", func(r *Referral, _ int, v value) { r.Patient.CountryOfBirth = v.code }},
		{"patient.ethnicity", kindCode, "ethnicity as the person described it (sensitive)", func(r *Referral, _ int, v value) { r.Patient.Ethnicity = v.code }},
		{"patient.migrant_type", kindCode, "migrant type, Pathway CodeSystem (sensitive)", func(r *Referral, _ int, v value) { r.Patient.MigrantType = v.code }},
		{"patient.legal_status", kindCode, "immigration, asylum or legal status, Pathway CodeSystem (sensitive)", func(r *Referral, _ int, v value) { r.Patient.LegalStatus = v.code }},
		{"patient.year_of_arrival", kindString, "year of arrival, YYYY (sensitive)", func(r *Referral, _ int, v value) { r.Patient.YearOfArrival = v.s }},
		{"patient.migration_history", kindString, "migration history in free text (sensitive)", func(r *Referral, _ int, v value) { r.Patient.MigrationHistory = v.s }},

		{"service.referral_id", kindString, "the source's referral number", func(r *Referral, _ int, v value) { r.Service.ReferralIdentifier = v.s }},
		{"service.identifiers", kindIdentifiers, "the referral's identifiers in the source, each with its namespace (system:)", func(r *Referral, _ int, v value) { r.Service.Identifiers = v.ids }},
		{"service.categories", kindCodes, "service categories: mental health, social prescribing", func(r *Referral, _ int, v value) { r.Service.Categories = v.codes }},
		{"service.needs", kindCodes, "needs: housing, legal or immigration advice, language support...", func(r *Referral, _ int, v value) { r.Service.Needs = v.codes }},
		{"service.priority", kindString, "routine, urgent, asap or stat", func(r *Referral, _ int, v value) { r.Service.Priority = v.s }},
		{"service.triage", kindCode, "stepped-care step as the source codes it", func(r *Referral, _ int, v value) { r.Service.TriageLevel = v.code }},
		{"service.reason", kindString, "why, in the referrer's words", func(r *Referral, _ int, v value) { r.Service.ReasonText = v.s }},
		{"service.reason_codes", kindCodes, "coded reasons", func(r *Referral, _ int, v value) { r.Service.ReasonCodes = v.codes }},
		{"service.requester", kindString, "referring Organization id", func(r *Referral, _ int, v value) { r.Service.Requester = v.s }},
		{"service.requester_name", kindString, "referring Organization's name", func(r *Referral, _ int, v value) { r.Service.RequesterName = v.s }},
		{"service.authored_on", kindDate, "when the referral was made", func(r *Referral, _ int, v value) { r.Service.AuthoredOn = v.t }},
		{"service.occurrence_start", kindDate, "when the service should start (a referral's effective date)", func(r *Referral, _ int, v value) { r.Service.OccurrenceStart = v.t }},
		{"service.occurrence_end", kindDate, "when it should be done by (a referral's expiration date)", func(r *Referral, _ int, v value) { r.Service.OccurrenceEnd = v.t }},
		{"service.notes", kindStrings, "free-text notes, any language", func(r *Referral, _ int, v value) { r.Service.Notes = v.ss }},
		{"service.link_worker_sex", kindString, "female, male or no-preference", func(r *Referral, _ int, v value) { r.Service.LinkWorkerSex = v.s }},
		{"service.format", kindString, "individual, group or either", func(r *Referral, _ int, v value) { r.Service.Format = v.s }},
		{"service.approach", kindString, "signposting or conversation", func(r *Referral, _ int, v value) { r.Service.Approach = v.s }},
		{"service.patient_instruction", kindString, "anything else the person asked for", func(r *Referral, _ int, v value) { r.Service.Instruction = v.s }},

		{"practitioner.identifiers", kindIdentifiers, "the referring practitioner's identifiers, each with its namespace (system:)", func(r *Referral, _ int, v value) { r.Practitioner.Identifiers = v.ids }},
		{"practitioner.given_name", kindString, "the referring practitioner's given name", func(r *Referral, _ int, v value) { r.Practitioner.GivenName = v.s }},
		{"practitioner.family_name", kindString, "the referring practitioner's family name", func(r *Referral, _ int, v value) { r.Practitioner.FamilyName = v.s }},
		{"practitioner.phone", kindString, "the referring practitioner's phone number", func(r *Referral, _ int, v value) { r.Practitioner.Phone = v.s }},
		{"practitioner.email", kindString, "the referring practitioner's email address", func(r *Referral, _ int, v value) { r.Practitioner.Email = v.s }},

		{"consent.given", kindBool, "whether the person consented to sharing", func(r *Referral, _ int, v value) { r.Consent.Given = ptrBool(v.b) }},
		{"consent.date", kindDate, "when consent was given", func(r *Referral, _ int, v value) { r.Consent.Date = v.t }},
		{"consent.start", kindDate, "start of the consent period", func(r *Referral, _ int, v value) { r.Consent.Start = v.t }},
		{"consent.end", kindDate, "end of the consent period", func(r *Referral, _ int, v value) { r.Consent.End = v.t }},
		{"consent.partners", kindStrings, "Organization ids the person agreed to share with", func(r *Referral, _ int, v value) { r.Consent.Partners = v.ss }},
		{"consent.partner_kinds", kindStrings, "kinds of partner agreed to: clinic, ngo, community", func(r *Referral, _ int, v value) { r.Consent.PartnerKinds = v.ss }},
		{"consent.purposes", kindStrings, "v3 PurposeOfUse codes (default COC)", func(r *Referral, _ int, v value) { r.Consent.Purposes = v.ss }},
		{"consent.share_immigration_data", kindBool, "explicit agreement to share immigration and legal-status data", func(r *Referral, _ int, v value) { r.Consent.ShareImmigrationData = v.b }},
		{"consent.method", kindString, "verbal, written or digital", func(r *Referral, _ int, v value) { r.Consent.Method = v.s }},

		{"task.owner", kindString, "target Organization id, when the source names one", func(r *Referral, _ int, v value) { r.Task.Owner = v.s }},
		{"task.owner_name", kindString, "target Organization's name", func(r *Referral, _ int, v value) { r.Task.OwnerName = v.s }},

		{"screening[].instrument", kindString, "phq-9, gad-7 or rhs-15", func(r *Referral, i int, v value) { screeningAt(r, i).Instrument = v.s }},
		{"screening[].score", kindInt, "total score", func(r *Referral, i int, v value) { screeningAt(r, i).Score = ptrInt(v.i) }},
		{"screening[].date", kindDate, "when it was taken", func(r *Referral, i int, v value) { screeningAt(r, i).Date = v.t }},
		{"risk[].code", kindCode, "the risk (self-harm, violence...)", func(r *Referral, i int, v value) { riskAt(r, i).Code = v.code }},
		{"risk[].date", kindDate, "when it was noted", func(r *Referral, i int, v value) { riskAt(r, i).Date = v.t }},
		{"outcome[].code", kindCode, "what was measured", func(r *Referral, i int, v value) { outcomeAt(r, i).Code = v.code }},
		{"outcome[].value", kindString, "the result", func(r *Referral, i int, v value) { outcomeAt(r, i).Value = v.s }},
		{"outcome[].date", kindDate, "when", func(r *Referral, i int, v value) { outcomeAt(r, i).Date = v.t }},
	}
	m := make(map[string]target, len(list))
	for i, t := range list {
		m[t.name] = t
		targetOrder[t.name] = i
	}
	return m
}()

// targetOrder keeps the documented order of targets (source, patient,
// service, practitioner, consent, task, lists).
var targetOrder = map[string]int{}

// maxListIndex bounds screening[N], risk[N] and outcome[N].
const maxListIndex = 19

// lookupTarget resolves "screening[2].score" to its target and index.
func lookupTarget(name string) (target, int, error) {
	if t, ok := targets[name]; ok && !strings.Contains(name, "[]") {
		return t, 0, nil
	}
	open := strings.IndexByte(name, '[')
	close := strings.IndexByte(name, ']')
	if open > 0 && close > open {
		generic := name[:open] + "[]" + name[close+1:]
		if t, ok := targets[generic]; ok {
			n, err := strconv.Atoi(name[open+1 : close])
			if err != nil || n < 0 || n > maxListIndex {
				return target{}, 0, fmt.Errorf("list index in %q must be a number from 0 to %d", name, maxListIndex)
			}
			return t, n, nil
		}
	}
	return target{}, 0, fmt.Errorf("unknown target %q%s", name, suggest(name))
}

// suggest names the closest known target, for lint messages.
func suggest(name string) string {
	best, bestScore := "", 0
	for t := range targets {
		if s := commonPrefix(t, name); s > bestScore {
			best, bestScore = t, s
		}
	}
	if bestScore < 4 {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// TargetNames lists every target a mapping can fill, sorted.
func TargetNames() []string {
	out := make([]string, 0, len(targets))
	for n := range targets {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// TargetsMarkdown renders the target reference table of docs/mappings.md,
// so the documentation is generated from the same list the loader uses.
func TargetsMarkdown() string {
	var b strings.Builder
	b.WriteString("| target | kind | meaning |\n| --- | --- | --- |\n")
	names := TargetNames()
	sort.SliceStable(names, func(i, j int) bool { return targetOrder[names[i]] < targetOrder[names[j]] })
	for _, n := range names {
		t := targets[n]
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", n, t.kind, t.doc)
	}
	return b.String()
}
