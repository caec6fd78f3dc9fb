package mappings

import (
	"net/url"
	"strings"

	"github.com/pathway-fhir/pathway/fhir"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	prpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/practitioner_go_proto"
	srpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/service_request_go_proto"
	tpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/task_go_proto"
)

// serviceRequest builds the referral itself.
//
// category holds every service category, then every need, each once: routing
// and labelling read them there. code is always SNOMED CT 3457005 "Patient
// referral": the record names what the person needs, not the intervention a
// partner will choose, and one fixed code keeps "the first need" from
// meaning more than the others. The stepped-care step (service.triage) goes
// in orderDetail, which qualifies how the service is to be delivered.
// supportingInfo points at the Consent, the screening Observations and the
// risk Flags, never at the sensitive social-history Observations.
func (b *bundler) serviceRequest(supporting []*fhir.Reference) (*srpb.ServiceRequest, error) {
	s := &b.r.Service
	var category []*fhir.CodeableConcept
	seen := map[string]bool{}
	for _, c := range append(append([]Code(nil), s.Categories...), s.Needs...) {
		key := c.System + "|" + c.Code + "|" + c.Text
		if seen[key] {
			continue
		}
		seen[key] = true
		category = append(category, bundleConcept(c))
	}
	var reasons []*fhir.CodeableConcept
	for _, c := range s.ReasonCodes {
		reasons = append(reasons, bundleConcept(c))
	}
	if !bundleBlank(s.ReasonText) {
		reasons = append(reasons, fhir.Concept(s.ReasonText))
	}
	var identifiers []*dpb.Identifier
	if !bundleBlank(s.ReferralIdentifier) {
		identifiers = append(identifiers, fhir.Identifier(b.system("referral"), s.ReferralIdentifier))
	}
	identifiers = b.identifiers(identifiers, s.Identifiers, "referral")
	var notes []string
	for _, n := range s.Notes {
		if !bundleBlank(n) {
			notes = append(notes, n)
		}
	}
	sr, err := fhir.ServiceRequestSpec{
		ID:                 b.id("ServiceRequest"),
		Identifiers:        identifiers,
		Status:             fhir.ServiceRequestStatusActive,
		Intent:             fhir.ServiceRequestIntentOrder,
		Priority:           fhir.Priority(s.Priority),
		Category:           category,
		Code:               fhir.Concept("", fhir.Coding(fhir.SystemSNOMED, "3457005", "Patient referral")),
		Subject:            bundleURN(b.id("Patient")),
		Occurrence:         bundlePeriod(s.OccurrenceStart, s.OccurrenceEnd),
		Requester:          b.serviceRequester(),
		ReasonCode:         reasons,
		SupportingInfo:     supporting,
		Note:               notes,
		PatientInstruction: b.patientInstruction(),
	}.Build()
	if err != nil {
		return nil, err
	}
	sr.AuthoredOn = bundleDateTime(s.AuthoredOn)
	if bundleHasCode(s.TriageLevel) {
		sr.OrderDetail = append(sr.OrderDetail, bundleConcept(s.TriageLevel))
	}
	if ext := b.preferences(); ext != nil {
		sr.Extension = append(sr.Extension, ext)
	}
	return sr, nil
}

// serviceRequester returns the ServiceRequest's requester: the referring
// Practitioner when the record names one (who asks for the service), else
// the referring Organization.
func (b *bundler) serviceRequester() *fhir.Reference {
	if b.hasPractitioner() {
		return b.practitionerRef()
	}
	return b.requester()
}

// requester returns a new reference to the referring Organization, with
// its name as display; a name without an id gives a display-only
// reference; nil when the record names neither.
func (b *bundler) requester() *fhir.Reference {
	s := &b.r.Service
	name := s.RequesterName
	if bundleBlank(name) {
		name = ""
	}
	switch {
	case s.Requester != "":
		return fhir.WithDisplay(fhir.Ref("Organization", s.Requester), name)
	case name != "":
		return &fhir.Reference{Type: fhir.URI("Organization"), Display: fhir.String(name)}
	}
	return nil
}

// patientInstruction writes the person's preferences in plain English, then
// what else they asked for (service.patient_instruction), byte for byte.
func (b *bundler) patientInstruction() string {
	s := &b.r.Service
	var parts []string
	switch s.LinkWorkerSex {
	case "female":
		parts = append(parts, "Would prefer a female link worker.")
	case "male":
		parts = append(parts, "Would prefer a male link worker.")
	case "no-preference":
		parts = append(parts, "Has no preference about the link worker's sex.")
	}
	switch s.Format {
	case "individual":
		parts = append(parts, "Would prefer one-to-one support.")
	case "group":
		parts = append(parts, "Would prefer group sessions.")
	case "either":
		parts = append(parts, "Is happy with one-to-one or group support.")
	}
	switch s.Approach {
	case "signposting":
		parts = append(parts, "Would like quick signposting to services.")
	case "conversation":
		parts = append(parts, "Would like a personalised conversation about what matters to them.")
	}
	switch b.r.Patient.ContactPreference {
	case "phone":
		parts = append(parts, "Prefers to be contacted by phone call.")
	case "sms":
		parts = append(parts, "Prefers to be contacted by text message (SMS).")
	case "email":
		parts = append(parts, "Prefers to be contacted by email.")
	case "in-person":
		parts = append(parts, "Prefers to be contacted in person.")
	case "via-caseworker":
		parts = append(parts, "Prefers to be contacted through their caseworker.")
	}
	if !bundleBlank(s.Instruction) {
		parts = append(parts, s.Instruction)
	}
	return strings.Join(parts, " ")
}

// preferences returns the ExtReferralPreferences extension, nil when the
// record states no preference.
func (b *bundler) preferences() *dpb.Extension {
	s := &b.r.Service
	ext := &dpb.Extension{Url: fhir.URI(ExtReferralPreferences)}
	for _, p := range []struct{ url, value string }{
		{"linkWorkerSex", s.LinkWorkerSex},
		{"format", s.Format},
		{"approach", s.Approach},
		{"contactPreference", b.r.Patient.ContactPreference},
	} {
		if p.value == "" {
			continue
		}
		ext.Extension = append(ext.Extension, &dpb.Extension{
			Url:   fhir.URI(p.url),
			Value: &dpb.Extension_ValueX{Choice: &dpb.Extension_ValueX_Code{Code: fhir.Code(p.value)}},
		})
	}
	if len(ext.Extension) == 0 {
		return nil
	}
	return ext
}

// task builds the referral Task: fulfil the ServiceRequest for the Patient,
// requested by the referring Organization (the Practitioner when the record
// names no organisation), owned by the target partner when the record names
// one by id (a name alone does not route, so it is not written).
func (b *bundler) task() (*tpb.Task, error) {
	spec := fhir.TaskSpec{
		ID:        b.id("Task"),
		Status:    fhir.TaskStatusRequested,
		Intent:    fhir.TaskIntentOrder,
		Priority:  fhir.Priority(b.r.Service.Priority),
		Focus:     bundleURN(b.id("ServiceRequest")),
		For:       bundleURN(b.id("Patient")),
		Requester: b.requester(),
	}
	if spec.Requester == nil && b.hasPractitioner() {
		spec.Requester = b.practitionerRef()
	}
	if t := &b.r.Task; t.Owner != "" {
		name := t.OwnerName
		if bundleBlank(name) {
			name = ""
		}
		spec.Owner = fhir.WithDisplay(fhir.Ref("Organization", t.Owner), name)
	}
	task, err := spec.Build()
	if err != nil {
		return nil, err
	}
	task.AuthoredOn = bundleDateTime(b.r.Service.AuthoredOn)
	return task, nil
}

// hasPractitioner reports whether the record names a referring practitioner.
func (b *bundler) hasPractitioner() bool {
	p := &b.r.Practitioner
	return len(p.Identifiers) > 0 || !bundleBlank(p.GivenName) || !bundleBlank(p.FamilyName) ||
		!bundleBlank(p.Phone) || !bundleBlank(p.Email)
}

// practitionerName returns the practitioner's name as written ("Robert
// Powell"), "" when the record has none.
func (b *bundler) practitionerName() string {
	var parts []string
	for _, s := range []string{b.r.Practitioner.GivenName, b.r.Practitioner.FamilyName} {
		if !bundleBlank(s) {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, " ")
}

// practitionerRef returns a reference to the Practitioner entry, with the
// practitioner's name as display.
func (b *bundler) practitionerRef() *fhir.Reference {
	return fhir.WithDisplay(bundleURN(b.id("Practitioner")), b.practitionerName())
}

// practitioner builds the referring Practitioner: identifiers, name and
// the phone and email a partner can call back on.
func (b *bundler) practitioner() (*prpb.Practitioner, error) {
	p := &b.r.Practitioner
	spec := fhir.PractitionerSpec{
		ID:          b.id("Practitioner"),
		Identifiers: b.identifiers(nil, p.Identifiers, "practitioner"),
	}
	if !bundleBlank(p.GivenName) || !bundleBlank(p.FamilyName) {
		family, given := p.FamilyName, p.GivenName
		if bundleBlank(family) {
			family = ""
		}
		if bundleBlank(given) {
			given = ""
		}
		spec.Name = append(spec.Name, fhir.HumanName(family, given))
	}
	if !bundleBlank(p.Phone) {
		spec.Telecom = append(spec.Telecom, fhir.Phone(p.Phone))
	}
	if !bundleBlank(p.Email) {
		spec.Telecom = append(spec.Telecom, fhir.Email(p.Email))
	}
	return spec.Build()
}

// identifiers appends ids to out, each once (by system and value), each in
// its namespace (see bundleSystem) or, without one, in SourceSystem + "/" +
// def.
func (b *bundler) identifiers(out []*dpb.Identifier, ids []Identifier, def string) []*dpb.Identifier {
	seen := map[string]bool{}
	for _, id := range out {
		seen[id.GetSystem().GetValue()+"|"+id.GetValue().GetValue()] = true
	}
	for _, id := range ids {
		if bundleBlank(id.Value) {
			continue
		}
		system := b.system(def)
		if !bundleBlank(id.System) {
			system = b.namespace(id.System)
		}
		if key := system + "|" + id.Value; !seen[key] {
			seen[key] = true
			out = append(out, fhir.Identifier(system, id.Value))
		}
	}
	return out
}

// namespace returns the URI of an identifier's system: an absolute URI as
// it is, a bare OID as urn:oid:OID, and any other name as a namespace local
// to the source, SourceSystem + "/id/" + the name (escaped as a URL path
// segment).
func (b *bundler) namespace(system string) string {
	switch {
	case bundleOID(system):
		return "urn:oid:" + system
	case bundleAbsURI(system):
		return system
	}
	return b.system("id/" + url.PathEscape(system))
}
