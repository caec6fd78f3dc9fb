package fhir

import (
	"net/url"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	endpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/endpoint_go_proto"
	orgpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/organization_go_proto"
	ppb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/patient_go_proto"
)

// PatientSpec describes the minimal Patient Pathway exchanges: who the
// referral is for, how to reach them, which language they speak. Data
// minimisation is the point: add nothing a partner does not need.
type PatientSpec struct {
	// ID is the logical id, usually NewID(source, clientID, "Patient").
	ID string
	// Profile lists meta.profile canonicals.
	Profile []string
	// Security lists meta.security labels.
	Security []*dpb.Coding
	// Identifiers are business identifiers (the NGO's client id), each with
	// system and value; a conditional create matches on them.
	Identifiers []*dpb.Identifier
	// Active, when true, writes active: true; false leaves the element out.
	Active bool
	// Name lists names (HumanName).
	Name []*dpb.HumanName
	// Telecom lists contact points (Phone, Email).
	Telecom []*dpb.ContactPoint
	// Gender is optional.
	Gender Gender
	// BirthDate is optional; Date allows a year or year-month only.
	BirthDate *dpb.Date
	// Languages lists the languages the person speaks; routing matches them.
	Languages []Language
	// InterpreterRequired, when true, adds the core extension
	// patient-interpreterRequired: true.
	InterpreterRequired bool
	// ManagingOrganization is the custodian of the record (the NGO).
	ManagingOrganization *Reference
}

// Language is one language a person speaks.
type Language struct {
	// Tag is the BCP-47 tag ("ar", "prs", "uk", "ti"). Required.
	Tag string
	// Display is the language's name, optional.
	Display string
	// Preferred marks the preferred language.
	Preferred bool
}

// ExtInterpreterRequired is the core extension saying a person needs an interpreter.
const ExtInterpreterRequired = "http://hl7.org/fhir/StructureDefinition/patient-interpreterRequired"

// Build checks the spec and returns the Patient.
func (s PatientSpec) Build() (*ppb.Patient, error) {
	c := &specCheck{typ: "Patient"}
	c.common(s.ID, s.Profile, s.Security)
	c.identifiers("identifier", s.Identifiers)
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
	c.ref("managingOrganization", s.ManagingOrganization, false)
	p := &ppb.Patient{
		Id:                   optID(s.ID),
		Meta:                 buildMeta(s.Profile, s.Security),
		Identifier:           s.Identifiers,
		Name:                 s.Name,
		Telecom:              s.Telecom,
		BirthDate:            s.BirthDate,
		ManagingOrganization: s.ManagingOrganization,
	}
	if s.Active {
		p.Active = Boolean(true)
	}
	if s.Gender != "" {
		p.Gender = &ppb.Patient_GenderCode{Value: gv}
	}
	for i, l := range s.Languages {
		c.text(specIndex("communication", i)+".language", l.Tag)
		pc := &ppb.Patient_Communication{Language: Concept("", Coding(SystemLanguage, l.Tag, l.Display))}
		if l.Preferred {
			pc.Preferred = Boolean(true)
		}
		p.Communication = append(p.Communication, pc)
	}
	if s.InterpreterRequired {
		p.Extension = append(p.Extension, &dpb.Extension{
			Url:   URI(ExtInterpreterRequired),
			Value: &dpb.Extension_ValueX{Choice: &dpb.Extension_ValueX_Boolean{Boolean: Boolean(true)}},
		})
	}
	return specFinish(c, p)
}

// OrganizationSpec describes a partner Organization: an NGO, a clinic, a
// community support, or the network itself.
type OrganizationSpec struct {
	// ID is the logical id (the partner id from pathway.yaml, or NewID).
	ID string
	// Profile lists meta.profile canonicals.
	Profile []string
	// Security lists meta.security labels.
	Security []*dpb.Coding
	// Identifiers are business identifiers, each with system and value.
	// Name or an identifier is required (org-1).
	Identifiers []*dpb.Identifier
	// Active, when true, writes active: true; false leaves the element out.
	Active bool
	// Type lists kinds of organisation (SystemOrganizationType prov, cg...).
	Type []*CodeableConcept
	// Name is the organisation's name.
	Name string
	// Alias lists other names.
	Alias []string
	// Telecom lists contact points of the organisation.
	Telecom []*dpb.ContactPoint
	// PartOf is the parent organisation.
	PartOf *Reference
	// Endpoint lists the organisation's technical endpoints.
	Endpoint []*Reference
}

// Build checks the spec and returns the Organization.
func (s OrganizationSpec) Build() (*orgpb.Organization, error) {
	c := &specCheck{typ: "Organization"}
	c.common(s.ID, s.Profile, s.Security)
	c.identifiers("identifier", s.Identifiers)
	if s.Name == "" && len(s.Identifiers) == 0 {
		c.fail("name", "a name or an identifier is required (org-1)")
	}
	c.concepts("type", s.Type)
	c.nonEmpty("alias", s.Alias)
	for i, t := range s.Telecom {
		if t.GetValue().GetValue() == "" {
			c.fail(specIndex("telecom", i), "a contact point needs a value")
		}
	}
	c.ref("partOf", s.PartOf, false)
	c.refs("endpoint", s.Endpoint)
	o := &orgpb.Organization{
		Id:         optID(s.ID),
		Meta:       buildMeta(s.Profile, s.Security),
		Identifier: s.Identifiers,
		Type:       s.Type,
		Name:       optString(s.Name),
		Telecom:    s.Telecom,
		PartOf:     s.PartOf,
		Endpoint:   s.Endpoint,
	}
	if s.Active {
		o.Active = Boolean(true)
	}
	for _, a := range s.Alias {
		o.Alias = append(o.Alias, String(a))
	}
	return specFinish(c, o)
}

// EndpointSpec describes a partner's technical endpoint, normally its FHIR
// REST base URL. Credentials never go in an Endpoint.
type EndpointSpec struct {
	// ID is the logical id.
	ID string
	// Profile lists meta.profile canonicals.
	Profile []string
	// Security lists meta.security labels.
	Security []*dpb.Coding
	// Identifiers are business identifiers, each with system and value.
	Identifiers []*dpb.Identifier
	// Status is required.
	Status EndpointStatus
	// ConnectionType defaults to hl7-fhir-rest (SystemEndpointConnectionType).
	ConnectionType *dpb.Coding
	// Name is a friendly name.
	Name string
	// ManagingOrganization is the partner the endpoint belongs to.
	ManagingOrganization *Reference
	// Contact lists technical contacts.
	Contact []*dpb.ContactPoint
	// Period is when the endpoint is in service.
	Period *dpb.Period
	// PayloadType defaults to "any" (SystemEndpointPayloadType).
	PayloadType []*CodeableConcept
	// PayloadMimeType lists accepted media types ("application/fhir+json").
	PayloadMimeType []string
	// Address is the absolute URL of the endpoint. Required.
	Address string
}

// Build checks the spec and returns the Endpoint.
func (s EndpointSpec) Build() (*endpb.Endpoint, error) {
	c := &specCheck{typ: "Endpoint"}
	c.common(s.ID, s.Profile, s.Security)
	c.identifiers("identifier", s.Identifiers)
	status, ok := s.Status.proto()
	c.status("status", s.Status == "", ok)
	ct := s.ConnectionType
	if ct == nil {
		ct = Coding(SystemEndpointConnectionType, "hl7-fhir-rest", "HL7 FHIR")
	}
	c.coding("connectionType", ct, true)
	c.ref("managingOrganization", s.ManagingOrganization, false)
	for i, t := range s.Contact {
		if t.GetValue().GetValue() == "" {
			c.fail(specIndex("contact", i), "a contact point needs a value")
		}
	}
	c.period("period", s.Period)
	pt := s.PayloadType
	if len(pt) == 0 {
		pt = []*CodeableConcept{Concept("", Coding(SystemEndpointPayloadType, "any", "Any"))}
	}
	c.concepts("payloadType", pt)
	c.nonEmpty("payloadMimeType", s.PayloadMimeType)
	if s.Address == "" {
		c.fail("address", "required")
	} else if u, err := url.Parse(s.Address); err != nil || !u.IsAbs() {
		c.fail("address", "not an absolute URL")
	}
	e := &endpb.Endpoint{
		Id:                   optID(s.ID),
		Meta:                 buildMeta(s.Profile, s.Security),
		Identifier:           s.Identifiers,
		Status:               &endpb.Endpoint_StatusCode{Value: status},
		ConnectionType:       ct,
		Name:                 optString(s.Name),
		ManagingOrganization: s.ManagingOrganization,
		Contact:              s.Contact,
		Period:               s.Period,
		PayloadType:          pt,
		Address:              &dpb.Url{Value: s.Address},
	}
	for _, m := range s.PayloadMimeType {
		e.PayloadMimeType = append(e.PayloadMimeType, &endpb.Endpoint_PayloadMimeTypeCode{Value: m})
	}
	return specFinish(c, e)
}
