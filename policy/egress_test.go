package policy

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pathway-fhir/pathway/fhir"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
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
				t.Fatalf("decision %s: %s", d.Effect, d.Explanation)
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
