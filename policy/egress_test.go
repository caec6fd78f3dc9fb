package policy

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/pathway-fhir/pathway/fhir"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	condpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/condition_go_proto"
	obspb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/observation_go_proto"
	ppb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/patient_go_proto"
	qrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/questionnaire_response_go_proto"
)

// TestFilterBundleCarriesOnlyRefrainCodes labels the input Bundle itself
// (sensitivity, immigration, confidentiality, a tag, a source, a
// signature): what leaves carries the agreement's refrain codes and nothing
// else that could say what the Bundle held.
func TestFilterBundleCarriesOnlyRefrainCodes(t *testing.T) {
	cfg := testConfig(t)
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, partner := range []string{"community-c", "clinic-b"} {
		t.Run(partner, func(t *testing.T) {
			in := proto.Clone(testBundle(t, "full.json")).(*rpb.Bundle)
			in.Meta = &dpb.Meta{
				VersionId: &dpb.Id{Value: "3"},
				Source:    fhir.URI("https://asylum-unit.example/fhir"),
				Security: []*dpb.Coding{
					Label{fhir.SystemActCode, "PSY"}.Coding(),
					Label{fhir.SystemPathway, fhir.PathwaySensitivityImmigration}.Coding(),
					Label{fhir.SystemConfidentiality, "R"}.Coding(),
				},
				Tag: []*dpb.Coding{fhir.Coding("https://ngo-a.example/tags", "asylum-case", "")},
			}
			in.Signature = &dpb.Signature{Data: &dpb.Base64Binary{Value: []byte("sig")}}
			req := filterRequest(cfg, partner, "COC")
			out, d := e.Filter(req, in)
			if out == nil {
				t.Fatalf("decision %s: %s", d.Effect, d.Explain())
			}
			allowed := map[Label]bool{}
			for _, c := range req.Agreement.Refrain {
				lb, _ := ParseLabel(c)
				allowed[lb] = true
			}
			got := map[Label]bool{}
			for _, c := range out.GetMeta().GetSecurity() {
				got[labelOf(c)] = true
				if !allowed[labelOf(c)] {
					t.Errorf("the Bundle leaves labelled %s", labelOf(c))
				}
			}
			for lb := range allowed {
				if !got[lb] {
					t.Errorf("the Bundle leaves without the refrain code %s", lb)
				}
			}
			if n := len(out.GetMeta().GetTag()); n > 0 {
				t.Errorf("the Bundle leaves with %d tags", n)
			}
			if out.GetMeta().GetSource() != nil || out.GetSignature() != nil {
				t.Error("the Bundle leaves with the input's meta.source or signature")
			}
			if out.GetMeta().GetVersionId().GetValue() != "3" {
				t.Error("meta.versionId was lost")
			}
			if is := fhir.Validate(out); is.HasErrors() {
				t.Fatalf("filtered Bundle is not valid: %v", is.Errors())
			}
		})
	}
}

// TestFilterImmigrationCodesAnywhere puts immigration and legal-status
// codes where no labelling rule names a path: an Observation component, a
// QuestionnaireResponse answer in a nested item, Condition evidence, a
// contained resource. None of them leaves without an explicit provision,
// and what holds no such code still goes.
func TestFilterImmigrationCodesAnywhere(t *testing.T) {
	cfg := permissiveConfig(t)
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	asylum := func() *dpb.CodeableConcept {
		return fhir.Concept("", fhir.Coding(fhir.SystemPathway, fhir.PathwayLegalStatusAsylumSeeker, ""))
	}
	obs := &obspb.Observation{Id: &dpb.Id{Value: "comp"},
		Status:  &obspb.Observation_StatusCode{Value: cpb.ObservationStatusCode_FINAL},
		Code:    fhir.Concept("", fhir.Coding(fhir.SystemLOINC, "11341-5", "")),
		Subject: fhir.Ref("Patient", "p1"),
		Component: []*obspb.Observation_Component{
			{Code: fhir.Concept("", fhir.Coding(fhir.SystemLOINC, "8480-6", ""))},
			{Code: fhir.Concept("", fhir.Coding(fhir.SystemPathway, fhir.PathwayGroupLegalStatus, "")),
				Value: &obspb.Observation_Component_ValueX{Choice: &obspb.Observation_Component_ValueX_CodeableConcept{CodeableConcept: asylum()}}},
		}}
	qr := &qrpb.QuestionnaireResponse{Id: &dpb.Id{Value: "qr"},
		Status:  &qrpb.QuestionnaireResponse_StatusCode{Value: cpb.QuestionnaireResponseStatusCode_COMPLETED},
		Subject: fhir.Ref("Patient", "p1"),
		Item: []*qrpb.QuestionnaireResponse_Item{
			{LinkId: fhir.String("1"), Answer: []*qrpb.QuestionnaireResponse_Item_Answer{{Value: &qrpb.QuestionnaireResponse_Item_Answer_ValueX{
				Choice: &qrpb.QuestionnaireResponse_Item_Answer_ValueX_Boolean{Boolean: &dpb.Boolean{Value: true}}}}}},
			{LinkId: fhir.String("g"), Item: []*qrpb.QuestionnaireResponse_Item{{LinkId: fhir.String("2"),
				Answer: []*qrpb.QuestionnaireResponse_Item_Answer{{Value: &qrpb.QuestionnaireResponse_Item_Answer_ValueX{
					Choice: &qrpb.QuestionnaireResponse_Item_Answer_ValueX_Coding{Coding: fhir.Coding(fhir.SystemPathway, fhir.PathwayLegalStatusRefugee, "")}}}}}}},
		}}
	cond := &condpb.Condition{Id: &dpb.Id{Value: "cond"},
		Code:     fhir.Concept("", fhir.Coding(fhir.SystemSNOMED, "35489007", "")),
		Subject:  fhir.Ref("Patient", "p1"),
		Evidence: []*condpb.Condition_Evidence{{Code: []*dpb.CodeableConcept{asylum()}}}}
	inner, err := fhir.Wrap(&obspb.Observation{Id: &dpb.Id{Value: "ls"},
		Status: &obspb.Observation_StatusCode{Value: cpb.ObservationStatusCode_FINAL},
		Code:   fhir.Concept("", fhir.Coding(fhir.SystemLOINC, "11341-5", "")),
		Value:  &obspb.Observation_ValueX{Choice: &obspb.Observation_ValueX_CodeableConcept{CodeableConcept: asylum()}}})
	if err != nil {
		t.Fatal(err)
	}
	packed, err := anypb.New(inner)
	if err != nil {
		t.Fatal(err)
	}
	withContained := &obspb.Observation{Id: &dpb.Id{Value: "outer"},
		Status:    &obspb.Observation_StatusCode{Value: cpb.ObservationStatusCode_FINAL},
		Code:      fhir.Concept("", fhir.Coding(fhir.SystemLOINC, "11341-5", "")),
		Subject:   fhir.Ref("Patient", "p1"),
		Contained: []*anypb.Any{packed}}
	b := &rpb.Bundle{Id: &dpb.Id{Value: "b1"}, Type: &rpb.Bundle_TypeCode{Value: cpb.BundleTypeCode_COLLECTION}}
	for _, res := range []proto.Message{
		&ppb.Patient{Id: &dpb.Id{Value: "p1"}}, obs, qr, cond, withContained,
	} {
		cr, err := fhir.Wrap(res)
		if err != nil {
			t.Fatal(err)
		}
		b.Entry = append(b.Entry, &rpb.Bundle_Entry{Resource: cr})
	}
	p := cfg.Partner("clinic-b")
	out, d := e.Filter(Request{Partner: p, Agreement: &p.Agreement, Purpose: "TREAT", At: testTime, Base: OptOut}, b)
	if out == nil {
		t.Fatalf("decision %s: %s", d.Effect, d.Explain())
	}
	kept := map[string]bool{}
	for _, en := range out.GetEntry() {
		res := fhir.Unwrap(en.GetResource())
		kept[fhir.Key(res)] = true
		if found := immigrationData(res.ProtoReflect()); len(found) > 0 {
			t.Errorf("%s leaves with immigration data %v", fhir.Key(res), found)
		}
	}
	// Only the elements holding the codes go; the rest of the resources stays.
	for _, k := range []string{"Patient/p1", "Observation/comp", "QuestionnaireResponse/qr", "Condition/cond"} {
		if !kept[k] {
			t.Errorf("%s was withheld whole; only its immigration elements should be", k)
		}
	}
	if kept["Observation/outer"] {
		t.Error("Observation/outer left with a contained legal-status Observation")
	}
	if is := fhir.Validate(out); is.HasErrors() {
		t.Fatalf("filtered Bundle is not valid: %v", is.Errors())
	}
}

// twoPatientBundle is full.json (patient client-881 and their consent) with
// a second patient and an Observation about them, and no consent of theirs.
func twoPatientBundle(t *testing.T) *rpb.Bundle {
	t.Helper()
	b := proto.Clone(testBundle(t, "full.json")).(*rpb.Bundle)
	other := &ppb.Patient{Id: &dpb.Id{Value: "other"}, Name: []*dpb.HumanName{{Text: fhir.String("Other")}}}
	obs := &obspb.Observation{Id: &dpb.Id{Value: "other-obs"},
		Status:  &obspb.Observation_StatusCode{Value: cpb.ObservationStatusCode_FINAL},
		Code:    fhir.Concept("", fhir.Coding("https://ngo-a.example/fhir/CodeSystem/outcome", "wemwbs", "")),
		Subject: fhir.RefURN("urn:uuid:44444444-4444-4444-8444-444444444444")}
	for _, x := range []struct {
		url string
		res proto.Message
	}{{"urn:uuid:44444444-4444-4444-8444-444444444444", other}, {"urn:uuid:55555555-5555-4555-8555-555555555555", obs}} {
		cr, err := fhir.Wrap(x.res)
		if err != nil {
			t.Fatal(err)
		}
		b.Entry = append(b.Entry, &rpb.Bundle_Entry{FullUrl: fhir.URI(x.url), Resource: cr})
	}
	return b
}

// TestFilterConsentOnlyForItsPatient: in a Bundle about two patients, the
// first patient's consent decides only their resources; the second
// patient's fall to the base policy, whatever the first consent says.
func TestFilterConsentOnlyForItsPatient(t *testing.T) {
	cfg := testConfig(t)
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, base := range []BasePolicy{OptIn, OptOut} {
		t.Run(string(base), func(t *testing.T) {
			req := filterRequest(cfg, "clinic-b", "COC")
			req.Base = base
			out, d := e.Filter(req, twoPatientBundle(t))
			if out == nil {
				t.Fatalf("decision %s: %s", d.Effect, d.Explain())
			}
			kept := map[string]bool{}
			for _, en := range out.GetEntry() {
				kept[fhir.Key(fhir.Unwrap(en.GetResource()))] = true
			}
			if !kept["Patient/1bfee8e5-2749-5711-8d33-c939f87f8084"] {
				t.Error("the consenting patient's own Patient was withheld")
			}
			for _, k := range []string{"Patient/other", "Observation/other-obs"} {
				if kept[k] != (base == OptOut) {
					t.Errorf("%s sent %v under base policy %s", k, kept[k], base)
				}
				var decidedBy []Source
				for _, s := range d.Trail {
					if s.Target == k {
						decidedBy = append(decidedBy, s.Source)
					}
				}
				if base == OptIn && (len(decidedBy) != 1 || decidedBy[0] != SourceBasePolicy) {
					t.Errorf("%s decided by %v, want the base policy alone", k, decidedBy)
				}
			}
		})
	}
}

// TestFilterNoPatientIgnoresOthersConsent: a Bundle with no Patient,
// about Patient/x, with a consent about Patient/y that permits
// everything: the consent is not used.
func TestFilterNoPatientIgnoresOthersConsent(t *testing.T) {
	cfg := testConfig(t)
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := readResource(t, policyTestdata+"/consents/treat.json").GetConsent()
	if c == nil {
		t.Fatal("treat.json is not a Consent")
	}
	for _, subject := range []string{"x", "p1"} {
		obs := &obspb.Observation{Id: &dpb.Id{Value: "o1"},
			Status:  &obspb.Observation_StatusCode{Value: cpb.ObservationStatusCode_FINAL},
			Code:    fhir.Concept("", fhir.Coding("https://ngo-a.example/fhir/CodeSystem/outcome", "wemwbs", "")),
			Subject: fhir.Ref("Patient", subject)}
		b := &rpb.Bundle{Type: &rpb.Bundle_TypeCode{Value: cpb.BundleTypeCode_COLLECTION}}
		for _, res := range []proto.Message{obs, c} {
			cr, err := fhir.Wrap(res)
			if err != nil {
				t.Fatal(err)
			}
			b.Entry = append(b.Entry, &rpb.Bundle_Entry{Resource: cr})
		}
		out, d := e.Filter(filterRequest(cfg, "clinic-b", "TREAT"), b)
		sent := false
		for _, en := range out.GetEntry() {
			sent = sent || fhir.Key(fhir.Unwrap(en.GetResource())) == "Observation/o1"
		}
		if subject == "x" && sent {
			t.Errorf("Observation about Patient/x sent on a consent about %s: %s", fhir.RefString(c.GetPatient()), d.Explain())
		}
		if subject == "p1" && !sent {
			t.Errorf("Observation about %s not sent on their own consent: %s", fhir.RefString(c.GetPatient()), d.Explain())
		}
	}
}

// TestFilterEntryRequests: a kept Patient created conditionally on the
// identifier the agreement removes must not carry that identifier in
// request.ifNoneExist or a conditional url; an entry without a resource (a
// DELETE whose search names a legal-status code and the identifier) does
// not leave. Where the identifier is kept, so is the search.
func TestFilterEntryRequests(t *testing.T) {
	cfg := testConfig(t)
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const ident = "https://ngo-a.example/cases/client|client-881"
	in := proto.Clone(testBundle(t, "full.json")).(*rpb.Bundle)
	in.Entry[0].Request = &rpb.Bundle_Entry_Request{
		Method:      &rpb.Bundle_Entry_Request_MethodCode{Value: cpb.HTTPVerbCode_POST},
		Url:         fhir.URI("Patient"),
		IfNoneExist: fhir.String("identifier=" + ident)}
	in.Entry[1].Request = &rpb.Bundle_Entry_Request{
		Method: &rpb.Bundle_Entry_Request_MethodCode{Value: cpb.HTTPVerbCode_PUT},
		Url:    fhir.URI("ServiceRequest?subject:Patient.identifier=client-881")}
	in.Entry = append(in.Entry, &rpb.Bundle_Entry{Request: &rpb.Bundle_Entry_Request{
		Method: &rpb.Bundle_Entry_Request_MethodCode{Value: cpb.HTTPVerbCode_DELETE},
		Url:    fhir.URI("Observation?code=https://pathway-fhir.org/fhir/CodeSystem/pathway|asylum-seeker&subject.identifier=client-881")}})
	patientID := fhir.IDOf(fhir.Unwrap(in.Entry[0].GetResource()))
	srID := fhir.IDOf(fhir.Unwrap(in.Entry[1].GetResource()))
	for _, tt := range []struct {
		partner       string
		keepsIdentity bool
	}{{"community-c", false}, {"clinic-b", true}} {
		t.Run(tt.partner, func(t *testing.T) {
			out, d := e.Filter(filterRequest(cfg, tt.partner, "COC"), in)
			if out == nil {
				t.Fatalf("decision %s: %s", d.Effect, d.Explain())
			}
			for i, en := range out.GetEntry() {
				if en.GetResource() == nil {
					t.Errorf("entry %d leaves without a resource", i)
				}
				rq := en.GetRequest()
				for _, s := range []string{rq.GetUrl().GetValue(), rq.GetIfNoneExist().GetValue()} {
					if !tt.keepsIdentity && (strings.Contains(s, "client-881") || strings.Contains(s, "asylum")) {
						t.Errorf("entry %d request carries removed data: %q", i, s)
					}
				}
			}
			pr := out.GetEntry()[0].GetRequest()
			sr := out.GetEntry()[1].GetRequest()
			if tt.keepsIdentity {
				if pr.GetIfNoneExist().GetValue() != "identifier="+ident || pr.GetMethod().GetValue() != cpb.HTTPVerbCode_POST {
					t.Errorf("Patient request changed although its identifier is kept: %v", pr)
				}
				return
			}
			if pr.GetMethod().GetValue() != cpb.HTTPVerbCode_PUT || pr.GetUrl().GetValue() != "Patient/"+patientID || pr.GetIfNoneExist() != nil {
				t.Errorf("Patient request = %v, want PUT Patient/%s", pr, patientID)
			}
			if sr.GetMethod().GetValue() != cpb.HTTPVerbCode_PUT || sr.GetUrl().GetValue() != "ServiceRequest/"+srID {
				t.Errorf("ServiceRequest request = %v, want PUT ServiceRequest/%s", sr, srID)
			}
			if in.Entry[0].GetRequest().GetIfNoneExist() == nil {
				t.Fatal("Filter changed its input's request")
			}
		})
	}
}

// TestFilterSearchsetTotalAndLinks: a search result's total counts only
// what is sent, and its links keep only search parameters whose values
// are in what is sent.
func TestFilterSearchsetTotalAndLinks(t *testing.T) {
	cfg := testConfig(t)
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	in := proto.Clone(testBundle(t, "full.json")).(*rpb.Bundle)
	in.Type = &rpb.Bundle_TypeCode{Value: cpb.BundleTypeCode_SEARCHSET}
	in.Total = &dpb.UnsignedInt{Value: uint32(len(in.Entry))}
	in.Link = []*rpb.Bundle_Link{{Relation: fhir.String("self"),
		Url: fhir.URI("https://pathway.example/fhir/Observation?code=https://pathway-fhir.org/fhir/CodeSystem/pathway|asylum-seeker&_count=50")}}
	for _, en := range in.Entry {
		en.Request = nil
		en.Search = &rpb.Bundle_Entry_Search{Mode: &rpb.Bundle_Entry_Search_ModeCode{Value: cpb.SearchEntryModeCode_MATCH}}
	}
	out, d := e.Filter(filterRequest(cfg, "community-c", "COC"), in)
	if out == nil {
		t.Fatalf("decision %s: %s", d.Effect, d.Explain())
	}
	if len(out.Entry) >= len(in.Entry) {
		t.Fatalf("nothing was withheld (%d entries): the test proves nothing", len(out.Entry))
	}
	if got := out.GetTotal().GetValue(); got != uint32(len(out.Entry)) {
		t.Errorf("total %d, but %d entries are sent (of %d)", got, len(out.Entry), len(in.Entry))
	}
	if u := out.GetLink()[0].GetUrl().GetValue(); strings.Contains(u, "asylum") {
		t.Errorf("self link leaves as %q", u)
	}
	if in.GetLink()[0].GetUrl().GetValue() == out.GetLink()[0].GetUrl().GetValue() {
		t.Error("the link was not rewritten")
	}
	if is := fhir.Validate(out); is.HasErrors() {
		t.Fatalf("filtered Bundle is not valid: %v", is.Errors())
	}
}
