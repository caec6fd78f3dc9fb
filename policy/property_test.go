package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pathway-fhir/pathway/fhir"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	conpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/consent_go_proto"
	obspb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/observation_go_proto"
	ppb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/patient_go_proto"
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
	return b
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
		a.ResourceTypes = []string{"Patient", "ServiceRequest", "Consent", "Observation", "Task", "Flag"}
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

// immigrationData lists what in a resource is immigration or legal-status
// data, whether or not it is labelled: IMMIG labels (resource or inline),
// codes of Pathway's immigration value set, country of birth, and the
// birth place, nationality and citizenship extensions.
func immigrationData(m protoreflect.Message) []string {
	var out []string
	for _, l := range securityLabels(m) {
		if l.isImmigration() {
			out = append(out, "meta.security IMMIG")
		}
	}
	immig := map[Label]bool{{fhir.SystemLOINC, "78746-5"}: true}
	for _, g := range []string{fhir.PathwayGroupLegalStatus, fhir.PathwayGroupMigrantType, fhir.PathwayGroupMigrationHistory} {
		for _, c := range pathwayDescendants(g) {
			immig[Label{fhir.SystemPathway, c}] = true
		}
	}
	walk(m, nil, true, func(e *elem) bool {
		switch v := e.msg.Interface().(type) {
		case *dpb.Meta:
			return false
		case *dpb.Coding:
			if immig[labelOf(v)] {
				out = append(out, e.path()+" code "+v.GetCode().GetValue())
			}
		case *dpb.Extension:
			switch v.GetUrl().GetValue() {
			case extBirthPlace, extNationality, extCitizenship:
				out = append(out, e.path()+" "+v.GetUrl().GetValue())
			case ExtInlineSecurityLabel:
				if labelOf(v.GetValue().GetCoding()).isImmigration() {
					out = append(out, e.path()+" inline IMMIG")
				}
				return false
			}
		}
		return true
	})
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
	for i := range 400 {
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
