package fhir

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
)

func TestPractitionerBuild(t *testing.T) {
	pr, err := PractitionerSpec{
		ID:          NewID("https://clinic.example/hl7", "REF-1", "Practitioner"),
		Identifiers: []*dpb.Identifier{Identifier("https://clinic.example/id/SL", "PLN1001")},
		Active:      true,
		Name:        []*dpb.HumanName{HumanName("Powell", "Robert")},
		Telecom:     []*dpb.ContactPoint{Phone("(626)555-1234"), Email("r.powell@clinic.example")},
		Gender:      GenderMale,
	}.Build()
	if err != nil {
		t.Fatal(err)
	}
	if is := Validate(pr); len(is) > 0 {
		t.Errorf("Validate: %v", is)
	}
	b, err := Marshal(proto.Clone(pr))
	if err != nil {
		t.Fatal(err)
	}
	r := Parse(b)
	if !r.Valid() || len(r.Issues) > 0 || !proto.Equal(Unwrap(r.Resource), pr) {
		t.Fatalf("round trip: valid=%v issues=%v\n%s", r.Valid(), r.Issues, b)
	}
	for _, want := range []string{
		`"resourceType":"Practitioner"`, `"active":true`, `"gender":"male"`,
		`"identifier":[{"system":"https://clinic.example/id/SL","value":"PLN1001"}]`,
		`"name":[{"family":"Powell","given":["Robert"]}]`,
		`{"system":"phone","value":"(626)555-1234"}`, `{"system":"email","value":"r.powell@clinic.example"}`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s\n%s", want, b)
		}
	}

	// A name alone, or an identifier alone, is enough.
	if _, err := (PractitionerSpec{Name: []*dpb.HumanName{HumanName("", "Amira")}}).Build(); err != nil {
		t.Errorf("name only: %v", err)
	}
	if _, err := (PractitionerSpec{Identifiers: []*dpb.Identifier{Identifier("urn:oid:2.16.840.1.113883.4.6", "1111111111")}}).Build(); err != nil {
		t.Errorf("identifier only: %v", err)
	}
}

func TestPractitionerBuildProblems(t *testing.T) {
	tests := []struct {
		field string
		spec  PractitionerSpec
	}{
		{"name", PractitionerSpec{ID: "p1"}},
		{"id", PractitionerSpec{ID: "not an id", Name: []*dpb.HumanName{HumanName("X")}}},
		{"identifier[0]", PractitionerSpec{Identifiers: []*dpb.Identifier{Identifier("", "PLN1001")}}},
		{"name[0]", PractitionerSpec{Name: []*dpb.HumanName{{}}}},
		{"telecom[0]", PractitionerSpec{Name: []*dpb.HumanName{HumanName("X")}, Telecom: []*dpb.ContactPoint{{}}}},
		{"gender", PractitionerSpec{Name: []*dpb.HumanName{HumanName("X")}, Gender: "m"}},
		{"meta.security[0]", PractitionerSpec{Name: []*dpb.HumanName{HumanName("X")}, Security: []*dpb.Coding{Coding("", "R", "")}}},
	}
	for _, tc := range tests {
		t.Run(tc.field, func(t *testing.T) {
			_, err := tc.spec.Build()
			var se *SpecError
			if !errors.As(err, &se) || !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("error %T %v is not a *SpecError", err, err)
			}
			if !se.Has(tc.field) {
				t.Errorf("problems %v lack %s", se.Problems, tc.field)
			}
			if strings.Contains(err.Error(), "PLN1001") {
				t.Errorf("the error shows a value: %v", err)
			}
		})
	}
}
