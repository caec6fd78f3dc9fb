package fhir

import (
	"time"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	conpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/consent_go_proto"
)

// ConsentSpec describes a privacy Consent: the patient's rules for who may
// receive what, for which purpose (DESIGN.md, "Consent evaluation").
type ConsentSpec struct {
	// ID is the logical id, usually NewID(source, recordID, "Consent").
	ID string
	// Profile lists meta.profile canonicals.
	Profile []string
	// Security lists meta.security labels.
	Security []*dpb.Coding
	// Identifiers are business identifiers, each with system and value.
	Identifiers []*dpb.Identifier
	// Status is required; only active consents are evaluated.
	Status ConsentStatus
	// Scope defaults to PatientPrivacyScope().
	Scope *CodeableConcept
	// Category defaults to ConsentCategories(): LOINC 59284-0 and v3-ActCode IDSCL.
	Category []*CodeableConcept
	// Patient is who the consent is about. Required (ppc-2).
	Patient *Reference
	// DateTime is when the consent was given.
	DateTime time.Time
	// Performer lists who agreed: the patient, a guardian.
	Performer []*Reference
	// Organization lists the custodians the consent is given to (the network, the NGO).
	Organization []*Reference
	// Source points at where the consent was recorded (a signed form as a
	// DocumentReference, a QuestionnaireResponse).
	Source *Reference
	// Policy lists the policies the consent is made under (a data-sharing
	// agreement, a law). Policy or PolicyRule is required (ppc-1).
	Policy []ConsentPolicy
	// PolicyRule is the regulation the consent follows, coded (v3-ActCode OPTIN, say).
	PolicyRule *CodeableConcept
	// Provision holds the rules: a base permit or deny with nested exceptions.
	Provision *Provision
}

// ConsentPolicy is one policy a Consent is made under: Authority, URI or both.
type ConsentPolicy struct {
	// Authority is the enterprise or body that wrote the policy.
	Authority string
	// URI names the policy itself.
	URI string
}

// Provision is one rule of a Consent. It applies to a request when each of
// its present criteria matches; nested provisions are exceptions to it.
type Provision struct {
	// Type says whether what matches is permitted or denied. Required.
	Type ProvisionType
	// Period is when the provision is in force.
	Period *dpb.Period
	// Actor lists who the provision is about (the partner Organization, a role).
	Actor []ProvisionActor
	// Action lists what may or may not be done (ConsentAction("disclose")).
	Action []*CodeableConcept
	// SecurityLabel lists labels of data the provision covers (PSY, IMMIG...).
	SecurityLabel []*dpb.Coding
	// Purpose lists purposes of use (PurposeOfUse("COC")).
	Purpose []*dpb.Coding
	// Class lists resource types covered (ResourceClass("Observation")).
	Class []*dpb.Coding
	// Code lists codes of data covered.
	Code []*CodeableConcept
	// DataPeriod is the time span of the data covered.
	DataPeriod *dpb.Period
	// Data lists specific resources covered.
	Data []ProvisionData
	// Provision lists nested exceptions.
	Provision []Provision
}

// ProvisionActor is one actor of a provision: both fields are required.
type ProvisionActor struct {
	// Role is how the actor takes part (v3-ParticipationType IRCP, information recipient).
	Role *CodeableConcept
	// Reference is the actor (an Organization, a Practitioner, a CareTeam...).
	Reference *Reference
}

// ProvisionData is one resource a provision covers: both fields are required.
type ProvisionData struct {
	// Meaning says what of the resource is covered.
	Meaning ConsentDataMeaning
	// Reference is the resource.
	Reference *Reference
}

// PatientPrivacyScope returns Consent.scope patient-privacy (SystemConsentScope).
func PatientPrivacyScope() *CodeableConcept {
	return Concept("", Coding(SystemConsentScope, "patient-privacy", "Privacy Consent"))
}

// ConsentCategories returns the default Consent.category: LOINC 59284-0
// (Patient Consent) and v3-ActCode IDSCL (information disclosure).
func ConsentCategories() []*CodeableConcept {
	return []*CodeableConcept{
		Concept("", Coding(SystemLOINC, "59284-0", "Patient Consent")),
		Concept("", Coding(SystemActCode, "IDSCL", "information disclosure")),
	}
}

// purposeDisplays are the v3-ActReason displays of the purposes Pathway routes under.
var purposeDisplays = map[string]string{
	"TREAT":   "treatment",
	"COC":     "coordination of care",
	"ETREAT":  "Emergency Treatment",
	"BTG":     "break the glass",
	"CAREMGT": "care management",
	"HOPERAT": "healthcare operations",
	"PUBHLTH": "public health",
	"HRESCH":  "healthcare research",
}

// PurposeOfUse returns a v3-ActReason purpose-of-use coding (TREAT, COC,
// ETREAT, BTG, CAREMGT, HOPERAT, PUBHLTH, HRESCH carry their display).
func PurposeOfUse(code string) *dpb.Coding {
	return Coding(SystemActReason, code, purposeDisplays[code])
}

// actionDisplays are the displays of the consentaction codes.
var actionDisplays = map[string]string{
	"collect":  "Collect",
	"access":   "Access",
	"use":      "Use",
	"disclose": "Disclose",
	"correct":  "Access and Correct",
}

// ConsentAction returns a consent action (collect, access, use, disclose, correct).
func ConsentAction(code string) *CodeableConcept {
	return Concept("", Coding(SystemConsentAction, code, actionDisplays[code]))
}

// ResourceClass returns a provision class coding for a resource type ("Observation").
func ResourceClass(resourceType string) *dpb.Coding {
	return Coding(SystemResourceTypes, resourceType, "")
}

// Build checks the spec and returns the Consent.
func (s ConsentSpec) Build() (*conpb.Consent, error) {
	c := &specCheck{typ: "Consent"}
	c.common(s.ID, s.Profile, s.Security)
	c.identifiers("identifier", s.Identifiers)
	status, ok := s.Status.proto()
	c.status("status", s.Status == "", ok)
	scope := s.Scope
	if scope == nil {
		scope = PatientPrivacyScope()
	}
	c.concept("scope", scope, true)
	category := s.Category
	if len(category) == 0 {
		category = ConsentCategories()
	}
	c.concepts("category", category)
	c.ref("patient", s.Patient, true)
	c.refs("performer", s.Performer)
	c.refs("organization", s.Organization)
	c.ref("sourceReference", s.Source, false)
	if len(s.Policy) == 0 && s.PolicyRule == nil {
		c.fail("policyRule", "policy or policyRule is required (ppc-1)")
	}
	c.concept("policyRule", s.PolicyRule, false)

	con := &conpb.Consent{
		Id:           optID(s.ID),
		Meta:         buildMeta(s.Profile, s.Security),
		Identifier:   s.Identifiers,
		Status:       &conpb.Consent_StatusCode{Value: status},
		Scope:        scope,
		Category:     category,
		Patient:      s.Patient,
		DateTime:     DateTime(s.DateTime, PrecisionAuto),
		Performer:    s.Performer,
		Organization: s.Organization,
		PolicyRule:   s.PolicyRule,
	}
	if s.Source != nil {
		con.Source = &conpb.Consent_SourceX{Choice: &conpb.Consent_SourceX_Reference{Reference: s.Source}}
	}
	for i, p := range s.Policy {
		if p.Authority == "" && p.URI == "" {
			c.fail(specIndex("policy", i), "a policy needs an authority or a uri")
		}
		cp := &conpb.Consent_Policy{}
		if p.Authority != "" {
			cp.Authority = URI(p.Authority)
		}
		if p.URI != "" {
			cp.Uri = URI(p.URI)
		}
		con.Policy = append(con.Policy, cp)
	}
	if s.Provision != nil {
		con.Provision = s.Provision.build(c, "provision")
	}
	return specFinish(c, con)
}

// build checks and converts one provision and its nested ones.
func (p *Provision) build(c *specCheck, field string) *conpb.Consent_Provision {
	out := &conpb.Consent_Provision{
		Period:        p.Period,
		Action:        p.Action,
		SecurityLabel: p.SecurityLabel,
		Purpose:       p.Purpose,
		ClassValue:    p.Class,
		Code:          p.Code,
		DataPeriod:    p.DataPeriod,
	}
	tv, ok := p.Type.proto()
	c.status(field+".type", p.Type == "", ok)
	if ok {
		out.Type = &conpb.Consent_Provision_TypeCode{Value: tv}
	}
	c.period(field+".period", p.Period)
	for i, a := range p.Actor {
		f := specIndex(field+".actor", i)
		c.concept(f+".role", a.Role, true)
		c.ref(f+".reference", a.Reference, true)
		out.Actor = append(out.Actor, &conpb.Consent_Provision_ProvisionActor{Role: a.Role, Reference: a.Reference})
	}
	c.concepts(field+".action", p.Action)
	c.codings(field+".securityLabel", p.SecurityLabel)
	c.codings(field+".purpose", p.Purpose)
	c.codings(field+".class", p.Class)
	c.concepts(field+".code", p.Code)
	c.period(field+".dataPeriod", p.DataPeriod)
	for i, d := range p.Data {
		f := specIndex(field+".data", i)
		mv, ok := d.Meaning.proto()
		c.status(f+".meaning", d.Meaning == "", ok)
		c.ref(f+".reference", d.Reference, true)
		out.Data = append(out.Data, &conpb.Consent_Provision_ProvisionData{
			Meaning:   &conpb.Consent_Provision_ProvisionData_MeaningCode{Value: mv},
			Reference: d.Reference,
		})
	}
	for i := range p.Provision {
		out.Provision = append(out.Provision, p.Provision[i].build(c, specIndex(field+".provision", i)))
	}
	return out
}
