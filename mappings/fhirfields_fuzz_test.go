package mappings

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzFHIRFields feeds arbitrary JSON documents and paths to FHIRRecords
// and FHIRFields.Lookup. They must never panic; a record has either fields
// or an error whose reason quotes nothing from the document; Lookup
// returns values only when it says the path reached something.
func FuzzFHIRFields(f *testing.F) {
	f.Add([]byte(fhirTestBundle), "ServiceRequest.requester.resolve().practitioner.resolve().name.family")
	f.Add([]byte(fhirTestBundle), "Patient.telecom.where(system='phone').first().value")
	f.Add([]byte(fhirTestBundle), "ServiceRequest.identifier[1].value")
	f.Add([]byte(`{"resourceType":"ServiceRequest","subject":{"reference":"#p"},"contained":[{"resourceType":"Patient","id":"p","name":[{"family":"x"}]}]}`), "Patient.name[0].family")
	f.Add([]byte(`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"ServiceRequest","subject":{"reference":"Patient/1/_history/2"}}},{"fullUrl":"http://a/Patient/1","resource":{"resourceType":"Patient","id":"1"}}]}`), "Entry.x[0]")
	f.Add([]byte(`{"resourceType":"ServiceRequest","subject":{"reference":"#"}}`), "ServiceRequest.where(=).first()")
	f.Fuzz(func(t *testing.T, data []byte, ref string) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var doc map[string]any
		if dec.Decode(&doc) != nil || doc == nil {
			return
		}
		for _, rec := range FHIRRecords(doc) {
			if (rec.Err == nil) == (rec.Fields == nil) {
				t.Fatalf("a record must have fields or an error: %+v", rec)
			}
			if rec.Err != nil {
				if msg := rec.Err.Error(); msg == "" || strings.Contains(string(data), `"`+msg+`"`) {
					t.Fatalf("reason %q", msg)
				}
				continue
			}
			vals, ok := rec.Fields.Lookup(ref)
			if !ok && len(vals) > 0 {
				t.Fatalf("Lookup(%q) gave values without finding the path", ref)
			}
		}
	})
}
