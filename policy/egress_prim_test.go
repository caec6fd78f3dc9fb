package policy

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/pathway-fhir/pathway/fhir"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	obspb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/observation_go_proto"
	ppb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/patient_go_proto"
)

// TestFilterImmigrationCodesInPrimitiveExtensions: an immigration or
// legal-status code in an extension of a primitive value (a name's
// family, a gender, a code's text, in a contained resource too) is
// immigration data like any other; it used to be missed, because the
// labeller's walk did not look at primitive values at all.
func TestFilterImmigrationCodesInPrimitiveExtensions(t *testing.T) {
	cfg := permissiveConfig(t)
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	legal := func() []*dpb.Extension {
		return []*dpb.Extension{{Url: fhir.URI("https://ngo-a.example/fhir/StructureDefinition/status"),
			Value: &dpb.Extension_ValueX{Choice: &dpb.Extension_ValueX_Coding{Coding: fhir.Coding(fhir.SystemPathway, fhir.PathwayLegalStatusAsylumSeeker, "")}}}}
	}
	patient := &ppb.Patient{Id: &dpb.Id{Value: "p1"},
		Name:   []*dpb.HumanName{{Family: &dpb.String{Value: "Haddad", Extension: legal()}}, {Text: fhir.String("Umm Karim")}},
		Gender: &ppb.Patient_GenderCode{Value: cpb.AdministrativeGenderCode_FEMALE, Extension: legal()}}
	obs := &obspb.Observation{Id: &dpb.Id{Value: "o1"},
		Status:  &obspb.Observation_StatusCode{Value: cpb.ObservationStatusCode_FINAL},
		Code:    &dpb.CodeableConcept{Coding: []*dpb.Coding{fhir.Coding(fhir.SystemLOINC, "11341-5", "")}, Text: &dpb.String{Value: "occupation", Extension: legal()}},
		Subject: fhir.Ref("Patient", "p1")}
	inner, err := fhir.Wrap(&obspb.Observation{Id: &dpb.Id{Value: "in"},
		Status: &obspb.Observation_StatusCode{Value: cpb.ObservationStatusCode_FINAL, Extension: legal()},
		Code:   fhir.Concept("", fhir.Coding(fhir.SystemLOINC, "11341-5", ""))})
	if err != nil {
		t.Fatal(err)
	}
	packed, err := anypb.New(inner)
	if err != nil {
		t.Fatal(err)
	}
	outer := &obspb.Observation{Id: &dpb.Id{Value: "outer"},
		Status:    &obspb.Observation_StatusCode{Value: cpb.ObservationStatusCode_FINAL},
		Code:      fhir.Concept("", fhir.Coding(fhir.SystemLOINC, "11341-5", "")),
		Subject:   fhir.Ref("Patient", "p1"),
		Contained: []*anypb.Any{packed}}
	b := &rpb.Bundle{Id: &dpb.Id{Value: "b1"}, Type: &rpb.Bundle_TypeCode{Value: cpb.BundleTypeCode_COLLECTION}}
	for _, res := range []proto.Message{patient, obs, outer} {
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
	if !kept["Patient/p1"] {
		t.Error("Patient/p1 was withheld whole; only its elements holding the code should be")
	}
	if kept["Observation/outer"] {
		t.Error("Observation/outer left with a contained Observation holding a legal-status code")
	}
}
