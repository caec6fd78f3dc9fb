package audit_test

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/fhir"
)

// eventJSON builds the entry's AuditEvent, checks it is valid R4 through
// the codec, and returns it as generic JSON.
func eventJSON(t *testing.T, e audit.Entry) map[string]any {
	t.Helper()
	ev, err := e.Normalized().AuditEvent()
	if err != nil {
		t.Fatalf("AuditEvent: %v", err)
	}
	b, err := fhir.Marshal(ev)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	if r := fhir.Parse(b); !r.Valid() {
		t.Fatalf("AuditEvent is not valid R4: %v\n%s", r.Err(), b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// at walks generic JSON: keys for objects, ints for arrays.
func at(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

// entityDetails returns, for the entity whose what.reference (or
// identifier value) is what, its details as type -> values.
func entityDetails(m map[string]any, what string) map[string][]string {
	for _, e := range at(m, "entity").([]any) {
		if at(e, "what", "reference") == what || at(e, "what", "identifier", "value") == what {
			out := map[string][]string{}
			for _, d := range at(e, "detail").([]any) {
				out[at(d, "type").(string)] = append(out[at(d, "type").(string)], at(d, "valueString").(string))
			}
			return out
		}
	}
	return nil
}

func TestAuditEventDecision(t *testing.T) {
	e := sampleEntries(t)[0]
	m := eventJSON(t, e)
	for _, c := range []struct {
		path []any
		want any
	}{
		{[]any{"id"}, e.ID},
		{[]any{"meta", "profile", 0}, audit.ProfileAuthZConsent},
		{[]any{"type", "code"}, "110113"},
		{[]any{"subtype", 0, "code"}, "AuthZ-Consent"},
		{[]any{"action"}, "E"},
		{[]any{"outcome"}, "0"},
		{[]any{"outcomeDesc"}, "permit with obligations NORDSCLCD REDACT"},
		{[]any{"purposeOfEvent", 0, "coding", 0, "code"}, "COC"},
		{[]any{"recorded"}, "2025-05-01T09:30:07.123456Z"},
		{[]any{"agent", 0, "type", "coding", 0, "code"}, "110150"},
		{[]any{"agent", 0, "network", "address"}, "pathway.test"},
		{[]any{"agent", 1, "type", "coding", 0, "code"}, "IRCP"},
		{[]any{"agent", 1, "who", "reference"}, "Organization/clinic-a"},
		{[]any{"agent", 1, "requestor"}, true},
		{[]any{"agent", 2, "type", "coding", 0, "code"}, "PROV"},
		{[]any{"agent", 3, "type", "coding", 0, "code"}, "authserver"},
		{[]any{"source", "observer", "reference"}, "Device/pathway"},
		{[]any{"entity", 0, "what", "reference"}, "Patient/p1"},
		{[]any{"entity", 0, "role", "code"}, "1"},
		{[]any{"entity", 1, "what", "reference"}, "Consent/c1/_history/3"},
		{[]any{"entity", 1, "type", "code"}, "Consent"},
	} {
		if got := at(m, c.path...); got != c.want {
			t.Errorf("%v = %v, want %v", c.path, got, c.want)
		}
	}
	n := e.Normalized()
	if got := entityDetails(m, "Consent/c1/_history/3")[audit.DetailSHA256]; len(got) != 1 || got[0] != hex.EncodeToString(n.Inputs[0].Hash[:]) {
		t.Errorf("consent entity sha256 = %v", got)
	}
	if got := entityDetails(m, n.Bundle.Ref)[audit.DetailSHA256]; len(got) != 1 || got[0] != hex.EncodeToString(n.Bundle.Hash[:]) {
		t.Errorf("bundle entity sha256 = %v", got)
	}
	d := entityDetails(m, e.Exchange)
	if strings.Join(d["effect"], ",") != "permit" || strings.Join(d["obligation"], ",") != "NORDSCLCD,REDACT" || strings.Join(d["trail"], ",") != "Consent/c1/_history/3" {
		t.Errorf("exchange entity details = %v", d)
	}

	// A deny is a failed authorization; without a site the BALP profile's
	// required network is missing, so it is not claimed.
	e.Effect, e.Obligations, e.Trail, e.Site = audit.EffectDeny, nil, nil, ""
	m = eventJSON(t, e)
	if at(m, "outcome") != "4" || at(m, "outcomeDesc") != "deny" || at(m, "meta") != nil {
		t.Errorf("deny: outcome %v %v, meta %v", at(m, "outcome"), at(m, "outcomeDesc"), at(m, "meta"))
	}
}

func TestAuditEventDisclosure(t *testing.T) {
	e := sampleEntries(t)[1]
	m := eventJSON(t, e)
	for _, c := range []struct {
		path []any
		want any
	}{
		{[]any{"meta", "profile", 0}, audit.ProfileDisclosureSource},
		{[]any{"type", "code"}, "110106"},
		{[]any{"subtype", 0, "code"}, "disclose"},
		{[]any{"subtype", 1, "code"}, "transaction"},
		{[]any{"action"}, "R"},
		{[]any{"outcome"}, "0"},
		{[]any{"agent", 0, "type", "coding", 0, "code"}, "110153"},
		{[]any{"agent", 0, "who", "reference"}, "Device/pathway"},
		{[]any{"agent", 1, "type", "coding", 0, "code"}, "110152"},
		{[]any{"agent", 1, "who", "reference"}, "Organization/clinic-a"},
		{[]any{"agent", 1, "network", "address"}, "https://clinic-a.example.org/fhir"},
		{[]any{"agent", 1, "network", "type"}, "5"},
	} {
		if got := at(m, c.path...); got != c.want {
			t.Errorf("%v = %v, want %v", c.path, got, c.want)
		}
	}
	for _, in := range e.Inputs {
		if got := entityDetails(m, in.Ref)[audit.DetailSHA256]; len(got) != 1 || got[0] != hex.EncodeToString(in.Hash[:]) {
			t.Errorf("entity %s sha256 = %v", in.Ref, got)
		}
	}
}

func TestAuditEventAccess(t *testing.T) {
	read, deny := sampleEntries(t)[2], sampleEntries(t)[3]
	m := eventJSON(t, read)
	if at(m, "type", "code") != "rest" || at(m, "subtype", 0, "code") != "read" || at(m, "action") != "R" || at(m, "outcome") != "0" ||
		at(m, "agent", 0, "who", "reference") != "Organization/clinic-a" || at(m, "agent", 0, "requestor") != true {
		t.Errorf("read access event: %v", m)
	}
	m = eventJSON(t, deny)
	if at(m, "subtype", 0, "code") != "search-type" || at(m, "outcome") != "4" || at(m, "entity", 0, "what", "reference") != "Patient/p1" {
		t.Errorf("denied search event: %v", m)
	}
	for code, action := range map[string]string{"create": "C", "update": "U", "patch": "U", "delete": "D", "vread": "R", "transaction": "E", "operation": "E"} {
		read.Interaction = code
		if got := at(eventJSON(t, read), "action"); got != action {
			t.Errorf("interaction %s: action %v, want %s", code, got, action)
		}
	}
}

func TestProvenanceOfDisclosure(t *testing.T) {
	e := sampleEntries(t)[1].Normalized()
	p, err := e.Provenance()
	if err != nil {
		t.Fatal(err)
	}
	b, err := fhir.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if r := fhir.Parse(b); !r.Valid() {
		t.Fatalf("Provenance is not valid R4: %v\n%s", r.Err(), b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, tg := range at(m, "target").([]any) {
		targets = append(targets, at(tg, "reference").(string))
	}
	if strings.Join(targets, ",") != "ServiceRequest/sr1/_history/1,Task/t1/_history/2" {
		t.Errorf("targets = %v", targets)
	}
	if at(m, "agent", 1, "who", "reference") != "Organization/clinic-a" || at(m, "entity", 0, "what", "reference") != e.Bundle.Ref ||
		at(m, "reason", 0, "coding", 0, "code") != "COC" || at(m, "recorded") != "2025-05-01T09:30:07.124456Z" {
		t.Errorf("provenance %s", b)
	}
	again, _ := e.Provenance()
	if fhir.IDOf(again) != fhir.IDOf(p) {
		t.Error("the Provenance id is not deterministic")
	}
	if _, err := sampleEntries(t)[0].Normalized().Provenance(); err == nil {
		t.Error("Provenance of a decision succeeded")
	}
	e.Inputs = nil
	if _, err := e.Provenance(); err == nil {
		t.Error("Provenance without disclosed resources succeeded")
	}
}
