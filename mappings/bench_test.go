package mappings

import (
	"encoding/json"
	"testing"

	"github.com/pathway-fhir/pathway/fhir"
)

// convertRows are the valid rows of the ngo-referral-csv sample.
func convertRows(b *testing.B) (*Mapping, []MapFields) {
	b.Helper()
	m, err := Builtin("ngo-referral-csv")
	if err != nil {
		b.Fatal(err)
	}
	var rows []MapFields
	for _, r := range readCSV(b, "../testdata/mappings/ngo-referral.csv") {
		if _, err := m.Apply(r); err == nil {
			rows = append(rows, r)
		}
	}
	if len(rows) != 4 {
		b.Fatalf("%d valid sample rows", len(rows))
	}
	return m, rows
}

// BenchmarkConvert is one ngo-referral-csv record to validated bundle
// bytes: Apply, Build, fhir.Validate, fhir.Marshal, as convert does it.
func BenchmarkConvert(b *testing.B) {
	m, rows := convertRows(b)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		r, err := m.Apply(rows[n%len(rows)])
		if err != nil {
			b.Fatal(err)
		}
		bundle, err := Build(r)
		if err != nil {
			b.Fatal(err)
		}
		if is := fhir.Validate(bundle); is.HasErrors() {
			b.Fatal(is)
		}
		if _, err := fhir.Marshal(bundle); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkConvertBaseline builds the same output as plain Go maps (a deep
// copy of each record's decoded bundle, standing in for code that fills
// maps field by field) and encodes it with encoding/json: no FHIR model, no
// validation.
func BenchmarkConvertBaseline(b *testing.B) {
	m, rows := convertRows(b)
	var trees []any
	for _, row := range rows {
		r, err := m.Apply(row)
		if err != nil {
			b.Fatal(err)
		}
		data, err := Encode(r)
		if err != nil {
			b.Fatal(err)
		}
		var tree any
		if err := json.Unmarshal(data, &tree); err != nil {
			b.Fatal(err)
		}
		trees = append(trees, tree)
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if _, err := json.Marshal(deepCopy(trees[n%len(trees)])); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = deepCopy(e)
		}
		return s
	}
	return v
}
