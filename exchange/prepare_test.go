package exchange

import (
	"os"
	"strings"
	"testing"

	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/store"
)

// TestPrepareTaskUpdateWithoutPatient: a Task update that does not carry
// the Patient (the recipient may not see it) is still decided under the
// patient's stored consents, found through Task.for; a message that names
// no patient at all is withheld.
func TestPrepareTaskUpdateWithoutPatient(t *testing.T) {
	h := newSyncHarness(t, sqliteURL(t))
	ctx := t.Context()
	raw, err := os.ReadFile("../testdata/policy/consents/deny-all.json")
	if err != nil {
		t.Fatal(err)
	}
	c := strings.ReplaceAll(string(raw), "Patient/p1", "Patient/"+ptID)
	if _, err := h.store.Put(ctx, store.Resource{Type: "Consent", ID: "deny-all", Source: "clinic-riverside", Format: FormatJSON, Data: []byte(c), Patient: "Patient/" + ptID, Status: "active"}); err != nil {
		t.Fatal(err)
	}
	tid := fhir.NewID("test", "t1")
	bundle := func(taskJSON string, withPatient bool) []byte {
		entries := []fhir.BundleEntry{fhir.UpdateEntry(fhir.Unwrap(fhir.Parse([]byte(taskJSON)).Resource))}
		if withPatient {
			pt := fhir.Parse([]byte(`{"resourceType":"Patient","id":"` + ptID + `"}`)).Resource
			entries = append([]fhir.BundleEntry{fhir.UpdateEntry(fhir.Unwrap(pt))}, entries...)
		}
		b, err := fhir.BundleSpec{ID: fhir.NewID("x", "y"), Type: fhir.BundleTypeTransaction, Entry: entries}.Build()
		if err != nil {
			t.Fatal(err)
		}
		p, _ := fhir.Marshal(b)
		return p
	}
	for _, withPatient := range []bool{true, false} {
		prep, err := h.pipe.Prepare(ctx, store.Message{Key: strings.Repeat("a", 64), Partner: "clinic-riverside", Purpose: "TREAT", Kind: KindReferrerUpdate, Payload: bundle(taskJSON(tid, "accepted", ""), withPatient)})
		if err != nil {
			t.Fatal(err)
		}
		if prep.Withhold == "" || prep.Bundle != nil || !strings.Contains(prep.Withhold, "Consent/deny-all") {
			t.Errorf("with the Patient %v: withhold %q, %d bytes sent; want the deny-all consent to withhold it", withPatient, prep.Withhold, len(prep.Bundle))
		}
	}
	// No patient anywhere: withheld.
	noFor := strings.Replace(taskJSON(tid, "accepted", ""), `"for":{"reference":"Patient/`+ptID+`"},`, "", 1)
	if noFor == taskJSON(tid, "accepted", "") {
		t.Fatalf("the test Task has no for to remove: %s", noFor)
	}
	prep, err := h.pipe.Prepare(ctx, store.Message{Key: strings.Repeat("b", 64), Partner: "clinic-riverside", Purpose: "TREAT", Kind: KindReferrerUpdate, Payload: bundle(noFor, false)})
	if err != nil || prep.Withhold == "" {
		t.Errorf("a message naming no patient: %+v %v", prep, err)
	}
}
