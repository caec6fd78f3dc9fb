package fhir

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

// benchInputs are the resources the codec benchmarks measure: the demo
// referral's ServiceRequest, Consent and Task, and a 50-entry transaction
// Bundle: twelve copies of the referral with distinct ids, plus a Patient and
// a Consent.
func benchInputs(b *testing.B) []struct {
	name string
	data []byte
} {
	b.Helper()
	raw, err := os.ReadFile("../testdata/demo/ngo-referral-bundle.json")
	if err != nil {
		b.Fatal(err)
	}
	var bundle struct {
		Entry []json.RawMessage `json:"entry"`
	}
	if err := json.Unmarshal(raw, &bundle); err != nil {
		b.Fatal(err)
	}
	resource := func(i int) []byte {
		var e struct {
			Resource json.RawMessage `json:"resource"`
		}
		if err := json.Unmarshal(bundle.Entry[i], &e); err != nil {
			b.Fatal(err)
		}
		return e.Resource
	}
	var entries []string
	add := func(group, entry int) {
		entries = append(entries, strings.ReplaceAll(string(bundle.Entry[entry]), "9a0", fmt.Sprintf("%03d", group)))
	}
	for g := range 12 {
		for e := range 4 {
			add(g, e)
		}
	}
	add(12, 0) // a 13th Patient and Consent make fifty entries
	add(12, 2)
	big := `{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(entries, ",") + `]}`
	if r := Parse([]byte(big)); !r.Valid() {
		b.Fatalf("bench bundle invalid: %v", r.Issues)
	}
	return []struct {
		name string
		data []byte
	}{
		{"ServiceRequest", resource(1)},
		{"Consent", resource(2)},
		{"Task", resource(3)},
		{"Bundle50", []byte(big)},
	}
}

// BenchmarkParse measures Parse (google/fhir strict parse and validation
// plus Pathway's checks) beside encoding/json decoding the same bytes into
// a generic map, the floor any Go JSON parser starts from.
func BenchmarkParse(b *testing.B) {
	for _, in := range benchInputs(b) {
		b.Run(in.name+"/pathway", func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for b.Loop() {
				if r := Parse(in.data); !r.Valid() {
					b.Fatal(r.Issues)
				}
			}
		})
		b.Run(in.name+"/encoding_json", func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for b.Loop() {
				var v map[string]any
				if err := json.Unmarshal(in.data, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkValidate measures Validate on an already parsed resource (the
// cost of checking a resource built in Go), beside encoding/json's
// json.Valid over the same bytes (syntax only).
func BenchmarkValidate(b *testing.B) {
	for _, in := range benchInputs(b) {
		res := Parse(in.data).Resource
		b.Run(in.name+"/pathway", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if is := Validate(res); is.HasErrors() {
					b.Fatal(is)
				}
			}
		})
		b.Run(in.name+"/encoding_json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !json.Valid(in.data) {
					b.Fatal("invalid")
				}
			}
		})
	}
}

// BenchmarkMarshal measures Marshal (FHIR JSON, resourceType first) beside
// encoding/json encoding the same content from a generic map.
func BenchmarkMarshal(b *testing.B) {
	for _, in := range benchInputs(b) {
		res := Parse(in.data).Resource
		var generic map[string]any
		if err := json.Unmarshal(in.data, &generic); err != nil {
			b.Fatal(err)
		}
		b.Run(in.name+"/pathway", func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Marshal(res); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(in.name+"/encoding_json", func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := json.Marshal(generic); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
