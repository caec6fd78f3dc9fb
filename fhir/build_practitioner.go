package fhir

import (
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	prpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/practitioner_go_proto"
)

// PractitionerSpec describes a Practitioner: the clinician who made a
// referral, so the partner who receives it knows whom to call back. As with
// the Patient, add nothing the partner does not need.
type PractitionerSpec struct {
	// ID is the logical id, usually NewID(source, recordID, "Practitioner").
	ID string
	// Profile lists meta.profile canonicals.
	Profile []string
	// Security lists meta.security labels.
	Security []*dpb.Coding
	// Identifiers are business identifiers (a licence or staff number), each
	// with system and value. A name or an identifier is required: a
	// practitioner nobody can recognise helps no one.
	Identifiers []*dpb.Identifier
	// Active, when true, writes active: true; false leaves the element out.
	Active bool
	// Name lists names (HumanName).
	Name []*dpb.HumanName
	// Telecom lists contact points (Phone, Email).
	Telecom []*dpb.ContactPoint
	// Gender is optional.
	Gender Gender
}

// Build checks the spec and returns the Practitioner.
func (s PractitionerSpec) Build() (*prpb.Practitioner, error) {
	c := &specCheck{typ: "Practitioner"}
	c.common(s.ID, s.Profile, s.Security)
	c.identifiers("identifier", s.Identifiers)
	if len(s.Name) == 0 && len(s.Identifiers) == 0 {
		c.fail("name", "a name or an identifier is required")
	}
	for i, n := range s.Name {
		if n.GetFamily() == nil && len(n.GetGiven()) == 0 && n.GetText() == nil {
			c.fail(specIndex("name", i), "a name needs a family, given or text part")
		}
	}
	for i, t := range s.Telecom {
		if t.GetValue().GetValue() == "" {
			c.fail(specIndex("telecom", i), "a contact point needs a value")
		}
	}
	gv, ok := s.Gender.proto()
	c.optionalCode("gender", s.Gender == "", ok)
	p := &prpb.Practitioner{
		Id:         optID(s.ID),
		Meta:       buildMeta(s.Profile, s.Security),
		Identifier: s.Identifiers,
		Name:       s.Name,
		Telecom:    s.Telecom,
	}
	if s.Active {
		p.Active = Boolean(true)
	}
	if s.Gender != "" {
		p.Gender = &prpb.Practitioner_GenderCode{Value: gv}
	}
	return specFinish(c, p)
}
