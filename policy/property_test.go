package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/pathway-fhir/pathway/fhir"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	condpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/condition_go_proto"
	conpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/consent_go_proto"
	obspb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/observation_go_proto"
	ppb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/patient_go_proto"
	qrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/questionnaire_response_go_proto"
	srpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/service_request_go_proto"
)

// gen builds random referral Bundles and consents.
type gen struct {
	r        *rand.Rand
	partners []Partner
}

var genPurposes = []string{"TREAT", "COC", "ETREAT", "CAREMGT", "HOPERAT", "PUBHLTH"}

func (g *gen) pick(xs []string) string { return xs[g.r.IntN(len(xs))] }

func (g *gen) coding(system, code string) *dpb.Coding { return fhir.Coding(system, code, "") }

// observationCodes are what the generated Observations are about: some are
// immigration and legal-status facts, some mental health, some neither.
var observationCodes = []*dpb.Coding{
	fhir.Coding(fhir.SystemPathway, fhir.PathwayGroupLegalStatus, ""),
	fhir.Coding(fhir.SystemPathway, fhir.PathwayGroupMigrantType, ""),
	fhir.Coding(fhir.SystemPathway, fhir.PathwayHistoryYearOfArrival, ""),
	fhir.Coding(fhir.SystemLOINC, "78746-5", ""),
	fhir.Coding(fhir.SystemLOINC, "44261-6", ""),
	fhir.Coding(fhir.SystemLOINC, "70274-6", ""),
	fhir.Coding("https://ngo-a.example/fhir/CodeSystem/outcome", "wemwbs", ""),
}

func (g *gen) bundle() *rpb.Bundle {
	b := &rpb.Bundle{Id: &dpb.Id{Value: "b1"}, Type: &rpb.Bundle_TypeCode{Value: cpb.BundleTypeCode_COLLECTION}}
	add := func(res proto.Message) {
		cr, err := fhir.Wrap(res)
		if err != nil {
			panic(err)
		}
		b.Entry = append(b.Entry, &rpb.Bundle_Entry{FullUrl: &dpb.Uri{Value: "urn:uuid:" + uuidFor(fhir.Key(res))}, Resource: cr})
	}
	pat := &ppb.Patient{Id: &dpb.Id{Value: "p1"}, Name: []*dpb.HumanName{{Text: fhir.String("Client"), Use: &dpb.HumanName_UseCode{Value: cpb.NameUseCode_ANONYMOUS}}}}
	if g.r.IntN(2) == 0 {
		pat.Extension = append(pat.Extension, &dpb.Extension{Url: fhir.URI(extBirthPlace),
			Value: &dpb.Extension_ValueX{Choice: &dpb.Extension_ValueX_Address{Address: &dpb.Address{Country: fhir.String("SY")}}}})
	}
	add(pat)
	sr := &srpb.ServiceRequest{Id: &dpb.Id{Value: "sr1"},
		Status:  &srpb.ServiceRequest_StatusCode{Value: cpb.RequestStatusCode_ACTIVE},
		Intent:  &srpb.ServiceRequest_IntentCode{Value: cpb.RequestIntentCode_ORDER},
		Subject: fhir.RefURN("urn:uuid:" + uuidFor("Patient/p1"))}
	for _, need := range []string{fhir.PathwayNeedImmigrationAdvice, fhir.PathwayNeedMentalHealth, fhir.PathwayNeedHousing} {
		if g.r.IntN(2) == 0 {
			sr.Category = append(sr.Category, fhir.Concept("", g.coding(fhir.SystemPathway, need)))
		}
	}
	if g.r.IntN(2) == 0 {
		sr.ReasonCode = append(sr.ReasonCode, fhir.Concept("", g.coding(fhir.SystemSNOMED, "35489007")))
	}
	if g.r.IntN(3) == 0 {
		sr.ReasonCode = append(sr.ReasonCode, fhir.Concept("", g.coding(fhir.SystemPathway, fhir.PathwayLegalStatusAsylumSeeker)))
	}
	n := g.r.IntN(5)
	var obs []*obspb.Observation
	for i := range n {
		code := observationCodes[g.r.IntN(len(observationCodes))]
		o := &obspb.Observation{Id: &dpb.Id{Value: fmt.Sprintf("o%d", i)},
			Status:  &obspb.Observation_StatusCode{Value: cpb.ObservationStatusCode_FINAL},
			Code:    fhir.Concept("", proto.Clone(code).(*dpb.Coding)),
			Subject: fhir.Ref("Patient", "p1"),
			Effective: &obspb.Observation_EffectiveX{Choice: &obspb.Observation_EffectiveX_DateTime{
				DateTime: fhir.DateTime(time.Date(2020+g.r.IntN(7), 3, 1, 0, 0, 0, 0, time.UTC), fhir.PrecisionDay)}}}
		if g.r.IntN(4) == 0 { // an unlabelled immigration value under an ordinary code
			o.Value = &obspb.Observation_ValueX{Choice: &obspb.Observation_ValueX_CodeableConcept{
				CodeableConcept: fhir.Concept("", g.coding(fhir.SystemPathway, fhir.PathwayLegalStatusRefugee))}}
		}
		if g.r.IntN(4) == 0 { // a source that labelled it already
			o.Meta = &dpb.Meta{Security: []*dpb.Coding{fhir.ImmigrationLabel()}}
		}
		obs = append(obs, o)
		if g.r.IntN(2) == 0 {
			sr.SupportingInfo = append(sr.SupportingInfo, fhir.Ref("Observation", o.Id.Value))
		}
	}
	add(sr)
	for i := range 1 + g.r.IntN(2) {
		add(g.consent(i))
	}
	for _, o := range obs {
		add(o)
	}
	for _, res := range g.nested() {
		add(res)
	}
	return b
}

// nestedCodes are the codes put where no labelling rule names a path: in
// Observation components, QuestionnaireResponse answers (nested too) and
// Condition evidence. Half are immigration and legal-status codes.
var nestedCodes = []*dpb.Coding{
	fhir.Coding(fhir.SystemPathway, fhir.PathwayLegalStatusAsylumSeeker, ""),
	fhir.Coding(fhir.SystemPathway, fhir.PathwayLegalStatusUndocumented, ""),
	fhir.Coding(fhir.SystemPathway, fhir.PathwayGroupLegalStatus, ""),
	fhir.Coding(fhir.SystemLOINC, "78746-5", ""),
	fhir.Coding(fhir.SystemLOINC, "44261-6", ""),
	fhir.Coding(fhir.SystemSNOMED, "35489007", ""),
	fhir.Coding("https://ngo-a.example/fhir/CodeSystem/outcome", "wemwbs", ""),
	fhir.Coding(fhir.SystemPathway, fhir.PathwayNeedHousing, ""),
}

func (g *gen) nestedCode() *dpb.Coding {
	return proto.Clone(nestedCodes[g.r.IntN(len(nestedCodes))]).(*dpb.Coding)
}

// nested makes resources whose codes sit in nested elements: an
// Observation with components, a QuestionnaireResponse with answers (some
// in nested items), a Condition with evidence.
func (g *gen) nested() []proto.Message {
	var out []proto.Message
	if g.r.IntN(2) == 0 {
		o := &obspb.Observation{Id: &dpb.Id{Value: "comp"},
			Status:  &obspb.Observation_StatusCode{Value: cpb.ObservationStatusCode_FINAL},
			Code:    fhir.Concept("", fhir.Coding(fhir.SystemLOINC, "11341-5", "")),
			Subject: fhir.Ref("Patient", "p1")}
		for range 1 + g.r.IntN(2) {
			c := &obspb.Observation_Component{Code: fhir.Concept("", g.nestedCode())}
			if g.r.IntN(2) == 0 {
				c.Value = &obspb.Observation_Component_ValueX{Choice: &obspb.Observation_Component_ValueX_CodeableConcept{
					CodeableConcept: fhir.Concept("", g.nestedCode())}}
			}
			o.Component = append(o.Component, c)
		}
		out = append(out, o)
	}
	if g.r.IntN(2) == 0 {
		qr := &qrpb.QuestionnaireResponse{Id: &dpb.Id{Value: "qr"},
			Status:  &qrpb.QuestionnaireResponse_StatusCode{Value: cpb.QuestionnaireResponseStatusCode_COMPLETED},
			Subject: fhir.Ref("Patient", "p1")}
		answer := func() *qrpb.QuestionnaireResponse_Item_Answer {
			return &qrpb.QuestionnaireResponse_Item_Answer{Value: &qrpb.QuestionnaireResponse_Item_Answer_ValueX{
				Choice: &qrpb.QuestionnaireResponse_Item_Answer_ValueX_Coding{Coding: g.nestedCode()}}}
		}
		for i := range 1 + g.r.IntN(3) {
			it := &qrpb.QuestionnaireResponse_Item{LinkId: fhir.String(fmt.Sprint(i)), Answer: []*qrpb.QuestionnaireResponse_Item_Answer{answer()}}
			if g.r.IntN(3) == 0 { // a group holding the question
				it = &qrpb.QuestionnaireResponse_Item{LinkId: fhir.String(fmt.Sprint("g", i)), Item: []*qrpb.QuestionnaireResponse_Item{it}}
			}
			qr.Item = append(qr.Item, it)
		}
		out = append(out, qr)
	}
	if g.r.IntN(2) == 0 {
		c := &condpb.Condition{Id: &dpb.Id{Value: "cond"},
			Code:    fhir.Concept("", fhir.Coding(fhir.SystemSNOMED, g.pick([]string{"35489007", "73211009"}), "")),
			Subject: fhir.Ref("Patient", "p1")}
		for range 1 + g.r.IntN(2) {
			c.Evidence = append(c.Evidence, &condpb.Condition_Evidence{Code: []*dpb.CodeableConcept{fhir.Concept("", g.nestedCode())}})
		}
		out = append(out, c)
	}
	return out
}

func uuidFor(key string) string { return fhir.NewID("https://pathway.test", key) }

func (g *gen) actors() []*conpb.Consent_Provision_ProvisionActor {
	var out []*conpb.Consent_Provision_ProvisionActor
	for _, p := range g.partners {
		if g.r.IntN(3) != 0 {
			continue
		}
		ref := fhir.Ref("Organization", p.ID)
		if len(p.Identifiers) > 0 && g.r.IntN(2) == 0 {
			ref = &dpb.Reference{Identifier: fhir.Identifier(p.Identifiers[0].System, p.Identifiers[0].Value)}
		}
		out = append(out, &conpb.Consent_Provision_ProvisionActor{
			Role:      fhir.Concept("", fhir.Coding(fhir.SystemParticipationType, "IRCP", "")),
			Reference: ref})
	}
	return out
}

func (g *gen) purposes() []*dpb.Coding {
	var out []*dpb.Coding
	for _, p := range genPurposes {
		if g.r.IntN(3) == 0 {
			out = append(out, fhir.PurposeOfUse(p))
		}
	}
	return out
}

func (g *gen) provision(depth int) *conpb.Consent_Provision {
	p := &conpb.Consent_Provision{}
	if depth > 0 || g.r.IntN(4) != 0 {
		t := cpb.ConsentProvisionTypeCode_PERMIT
		if g.r.IntN(2) == 0 {
			t = cpb.ConsentProvisionTypeCode_DENY
		}
		p.Type = &conpb.Consent_Provision_TypeCode{Value: t}
	}
	if g.r.IntN(2) == 0 {
		p.Actor = g.actors()
	}
	if g.r.IntN(4) == 0 {
		p.ModifierExtension = append(p.ModifierExtension, &dpb.Extension{Url: fhir.URI(ExtConsentPartnerKind),
			Value: &dpb.Extension_ValueX{Choice: &dpb.Extension_ValueX_Code{Code: fhir.Code(g.pick([]string{"clinic", "ngo", "community"}))}}})
	}
	if g.r.IntN(2) == 0 {
		p.Purpose = g.purposes()
	}
	if depth > 0 && g.r.IntN(2) == 0 {
		p.SecurityLabel = append(p.SecurityLabel, fhir.ImmigrationLabel())
	}
	if depth > 0 && g.r.IntN(5) == 0 {
		p.SecurityLabel = append(p.SecurityLabel, fhir.Coding(fhir.SystemActCode, "MH", ""))
	}
	if g.r.IntN(5) == 0 {
		p.Period = fhir.Period(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1+time.Month(g.r.IntN(12)), 1, 0, 0, 0, 0, time.UTC))
	}
	if depth > 0 && len(p.SecurityLabel) > 0 && g.r.IntN(2) == 0 {
		// an explicit release: one partner, one purpose
		pt := g.partners[g.r.IntN(len(g.partners))]
		p.Type = &conpb.Consent_Provision_TypeCode{Value: cpb.ConsentProvisionTypeCode_PERMIT}
		p.Actor = []*conpb.Consent_Provision_ProvisionActor{{
			Role:      fhir.Concept("", fhir.Coding(fhir.SystemParticipationType, "IRCP", "")),
			Reference: fhir.Ref("Organization", pt.ID)}}
		p.Purpose = []*dpb.Coding{fhir.PurposeOfUse(g.pick([]string{"TREAT", "COC", "ETREAT"}))}
	}
	if depth < 2 {
		for range g.r.IntN(3) {
			p.Provision = append(p.Provision, g.provision(depth+1))
		}
	}
	if p.GetType() == nil && len(p.GetActor()) == 0 && len(p.GetPurpose()) == 0 && len(p.GetProvision()) == 0 &&
		len(p.GetModifierExtension()) == 0 && p.GetPeriod() == nil {
		p.Purpose = []*dpb.Coding{fhir.PurposeOfUse("TREAT")} // an empty provision is not valid FHIR (ele-1)
	}
	return p
}

func (g *gen) consent(i int) *conpb.Consent {
	status := cpb.ConsentStateCode_ACTIVE
	if g.r.IntN(6) == 0 {
		status = cpb.ConsentStateCode_INACTIVE
	}
	rule := "OPTIN"
	if g.r.IntN(4) == 0 {
		rule = "OPTOUT"
	}
	return &conpb.Consent{Id: &dpb.Id{Value: fmt.Sprintf("c%d", i)},
		Status:     &conpb.Consent_StatusCode{Value: status},
		Scope:      PatientScope(),
		Category:   []*dpb.CodeableConcept{fhir.Concept("", fhir.Coding(fhir.SystemLOINC, "59284-0", ""))},
		Patient:    fhir.RefURN("urn:uuid:" + uuidFor("Patient/p1")),
		PolicyRule: fhir.Concept("", fhir.Coding(fhir.SystemActCode, rule, "")),
		Provision:  g.provision(0)}
}

// PatientScope is the patient-privacy scope (a test helper).
func PatientScope() *dpb.CodeableConcept { return fhir.PatientPrivacyScope() }

// permissiveConfig lets the agreements through, so only consents and the
// immigration rule decide what the property tests see.
func permissiveConfig(t testing.TB) *Config {
	cfg := testConfig(t)
	for i := range cfg.Partners {
		a := &cfg.Partners[i].Agreement
		a.Purposes = []string{"TREAT", "HOPERAT", "PUBHLTH"}
		a.ResourceTypes = []string{"Patient", "ServiceRequest", "Consent", "Observation", "Task", "Flag", "QuestionnaireResponse", "Condition"}
		a.Labels = []string{"IMMIG", "PSY", "MH", "BH", "SDV", "SUD"}
		a.Elements = nil
	}
	return cfg
}

// explicitPermitExists is the condition the immigration rule states,
// checked independently of the engine: some active consent about the
// patient has, at some depth, a permit provision carrying the IMMIG label,
// naming the partner (reference or identifier) and listing the purpose
// itself, and the consent's root period holds the time.
func explicitPermitExists(consents []*conpb.Consent, p *Partner, purpose string, at time.Time) bool {
	var visit func(pr *conpb.Consent_Provision) bool
	visit = func(pr *conpb.Consent_Provision) bool {
		if pr.GetType().GetValue() == cpb.ConsentProvisionTypeCode_PERMIT {
			label, names, purp := false, false, false
			for _, l := range pr.GetSecurityLabel() {
				label = label || (l.GetSystem().GetValue() == fhir.SystemPathway && l.GetCode().GetValue() == "IMMIG")
			}
			for _, a := range pr.GetActor() {
				ref := a.GetReference()
				names = names || fhir.RefString(ref) == "Organization/"+p.ID
				for _, id := range p.Identifiers {
					names = names || (ref.GetIdentifier().GetSystem().GetValue() == id.System && ref.GetIdentifier().GetValue().GetValue() == id.Value)
				}
			}
			for _, c := range pr.GetPurpose() {
				purp = purp || c.GetCode().GetValue() == purpose
			}
			if label && names && purp {
				return true
			}
		}
		for _, c := range pr.GetProvision() {
			if visit(c) {
				return true
			}
		}
		return false
	}
	for _, c := range consents {
		if c.GetStatus().GetValue() != cpb.ConsentStateCode_ACTIVE || c.GetProvision() == nil {
			continue
		}
		if pp := c.GetProvision().GetPeriod(); pp != nil && !periodSpan(pp).contains(at) {
			continue
		}
		if visit(c.GetProvision()) {
			return true
		}
	}
	return false
}

// immigrationCodes are the codes the oracle counts as immigration and
// legal-status data, read from Pathway's CodeSystem file itself (not
// through the labeller or its value sets): every concept under
// legal-status, migrant-type and migration-history, and LOINC country of
// birth.
var immigrationCodes = sync.OnceValue(func() map[Label]bool {
	data, err := os.ReadFile("../fhir/codesystem-pathway.json")
	if err != nil {
		panic(err)
	}
	type concept struct {
		Code    string    `json:"code"`
		Concept []concept `json:"concept"`
	}
	var cs struct {
		URL     string    `json:"url"`
		Concept []concept `json:"concept"`
	}
	if err := json.Unmarshal(data, &cs); err != nil {
		panic(err)
	}
	out := map[Label]bool{{"http://loinc.org", "78746-5"}: true}
	var walkc func(ns []concept, in bool)
	walkc = func(ns []concept, in bool) {
		for _, c := range ns {
			here := in || c.Code == "legal-status" || c.Code == "migrant-type" || c.Code == "migration-history"
			if here {
				out[Label{cs.URL, c.Code}] = true
			}
			walkc(c.Concept, here)
		}
	}
	walkc(cs.Concept, false)
	if len(out) < 10 {
		panic(fmt.Sprintf("only %d immigration codes read from the CodeSystem", len(out)))
	}
	return out
})

// immigrationData lists what in a resource is immigration or legal-status
// data, whether or not it is labelled: IMMIG labels (resource or inline),
// any Coding anywhere (contained resources too) whose system|code is an
// immigration code, and the birth place, nationality and citizenship
// extensions. It walks the message with plain protoreflect, not the
// package's walkers.
func immigrationData(m protoreflect.Message) []string {
	var out []string
	for _, l := range securityLabels(m) {
		if l.isImmigration() {
			out = append(out, "meta.security IMMIG")
		}
	}
	codes := immigrationCodes()
	var visit func(m protoreflect.Message, path string)
	visit = func(m protoreflect.Message, path string) {
		switch v := m.Interface().(type) {
		case *dpb.Meta:
			return
		case *dpb.Coding:
			if codes[labelOf(v)] {
				out = append(out, path+" code "+v.GetCode().GetValue())
			}
		case *dpb.Extension:
			switch v.GetUrl().GetValue() {
			case extBirthPlace, extNationality, extCitizenship:
				out = append(out, path+" "+v.GetUrl().GetValue())
			case ExtInlineSecurityLabel:
				if labelOf(v.GetValue().GetCoding()).isImmigration() {
					out = append(out, path+" inline IMMIG")
				}
				return
			}
		case *anypb.Any:
			cr := &fhir.ContainedResource{}
			if err := v.UnmarshalTo(cr); err != nil {
				out = append(out, path+" unreadable contained resource")
				return
			}
			visit(fhir.Unwrap(cr).ProtoReflect(), path)
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Message() == nil {
				return true
			}
			p := path + "." + string(fd.Name())
			if fd.IsList() {
				for i := range v.List().Len() {
					visit(v.List().Get(i).Message(), fmt.Sprintf("%s[%d]", p, i))
				}
				return true
			}
			visit(v.Message(), p)
			return true
		})
	}
	visit(m, "")
	return out
}

func TestPropertyNeverImmigrationWithoutExplicitConsent(t *testing.T) {
	cfg := permissiveConfig(t)
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g := &gen{r: rand.New(rand.NewPCG(4, 2026)), partners: cfg.Partners}
	released, permits := 0, 0
	for i := range 2000 {
		b := g.bundle()
		p := &cfg.Partners[g.r.IntN(len(cfg.Partners))]
		purpose := g.pick([]string{"TREAT", "COC", "ETREAT", "HOPERAT"})
		base := OptIn
		if g.r.IntN(3) == 0 {
			base = OptOut
		}
		req := Request{Partner: p, Agreement: &p.Agreement, Purpose: purpose, At: testTime, Base: base}
		if is := fhir.Validate(b); is.HasErrors() {
			t.Fatalf("case %d: the generator made an invalid Bundle: %v", i, is.Errors())
		}
		before, _ := proto.Marshal(b)
		out, d := e.Filter(req, b)
		if after, _ := proto.Marshal(b); !bytes.Equal(before, after) {
			t.Fatalf("case %d: Filter changed its input", i)
		}
		if out == nil {
			continue
		}
		permits++
		var consents []*conpb.Consent
		for _, en := range b.GetEntry() {
			if c := en.GetResource().GetConsent(); c != nil {
				consents = append(consents, c)
			}
		}
		allowed := explicitPermitExists(consents, p, purpose, testTime)
		for _, en := range out.GetEntry() {
			m := fhir.Unwrap(en.GetResource()).ProtoReflect()
			found := immigrationData(m)
			if len(found) > 0 && !allowed {
				j, _ := json.Marshal(d)
				t.Fatalf("case %d: %s leaves for %s/%s with immigration data %v and no explicit provision\ndecision: %s",
					i, fhir.Key(m.Interface()), p.ID, purpose, found, j)
			}
			if len(found) > 0 {
				released++
			}
		}
	}
	// The generator must reach both sides of the rule, or the test proves nothing.
	if permits < 50 || released == 0 {
		t.Fatalf("generator too weak: %d permits, %d resources with released immigration data", permits, released)
	}
	t.Logf("%d permits, %d resources with immigration data released under an explicit provision", permits, released)
}

// explanationMatches checks that the explanation does not contradict the
// effect: a permit never reads as a refusal of the whole, a deny or
// no-consent never as a permission.
func explanationMatches(d Decision) error {
	x := d.Explain()
	switch d.Effect {
	case Permit:
		if !strings.Contains(x, " may receive this for ") || strings.Contains(x, " refuses it (") || strings.Contains(x, " may not receive ") {
			return fmt.Errorf("a permit explained as a refusal")
		}
	default:
		if strings.Contains(x, " may receive this for ") || strings.Contains(x, " allows it (") {
			return fmt.Errorf("a %s explained as a permission", d.Effect)
		}
	}
	return nil
}

func TestPropertyOutputValidAndDeterministic(t *testing.T) {
	cfg := testConfig(t)
	pcfg := permissiveConfig(t)
	engines := []*Config{cfg, pcfg}
	g := &gen{r: rand.New(rand.NewPCG(7, 11)), partners: cfg.Partners}
	checked := 0
	for i := range 300 {
		c := engines[i%2]
		e, err := NewEngine(c)
		if err != nil {
			t.Fatal(err)
		}
		b := g.bundle()
		p := &c.Partners[g.r.IntN(len(c.Partners))]
		req := Request{Partner: p, Agreement: &p.Agreement, Purpose: g.pick([]string{"TREAT", "COC", "HOPERAT"}), At: testTime}
		out1, d1 := e.Filter(req, b)
		out2, d2 := e.Filter(req, proto.Clone(b).(*rpb.Bundle))
		if err := explanationMatches(d1); err != nil {
			t.Fatalf("case %d: %v\n%s", i, err, d1.Explain())
		}
		j1, _ := json.Marshal(d1)
		j2, _ := json.Marshal(d2)
		if !bytes.Equal(j1, j2) {
			t.Fatalf("case %d: two runs decided differently:\n%s\n%s", i, j1, j2)
		}
		if out1 == nil || out2 == nil {
			if out1 != out2 {
				t.Fatalf("case %d: one run sent a bundle, the other not", i)
			}
			continue
		}
		b1, err := fhir.Marshal(out1)
		if err != nil {
			t.Fatal(err)
		}
		b2, _ := fhir.Marshal(out2)
		if !bytes.Equal(b1, b2) {
			t.Fatalf("case %d: two runs gave different bytes", i)
		}
		if is := fhir.Validate(out1); is.HasErrors() {
			t.Fatalf("case %d: output not valid: %v\n%s", i, is.Errors(), b1)
		}
		if r := fhir.Parse(b1); !r.Valid() {
			t.Fatalf("case %d: output does not parse back: %v\n%s", i, r.Issues.Errors(), b1)
		}
		checked++
	}
	if checked < 30 {
		t.Fatalf("only %d outputs checked", checked)
	}
}
