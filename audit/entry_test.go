package audit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/store"
)

func sampleEntries(t *testing.T) []audit.Entry {
	c := store.Resource{Type: "Consent", ID: "c1", Version: 3, Data: consentData("c1", 3, "permit COC Organization/clinic-a", "obligation REDACT", "obligation NORDSCLCD")}
	c.Hash = audit.HashBytes(c.Data)
	dec := decide(t, 7, []store.Resource{c}, "COC", "Organization/clinic-a")
	dec.Inputs = append(dec.Inputs, audit.Input{Ref: "Contract/agreement-clinic-a/_history/4", Hash: audit.HashBytes([]byte("agreement v4"))})
	full := disclose(7, "Organization/clinic-a")
	full.Inputs = []audit.Input{{Ref: "Task/t1/_history/2", Hash: audit.HashBytes([]byte("t"))}, {Ref: "ServiceRequest/sr1/_history/1", Hash: audit.HashBytes([]byte("sr"))}}
	deny := access(9)
	deny.Effect = audit.EffectDeny
	deny.Patient = "Patient/p1"
	deny.Interaction = "search-type"
	return []audit.Entry{dec, full, access(8), deny}
}

func TestCanonicalRoundTrip(t *testing.T) {
	for _, e := range sampleEntries(t) {
		t.Run(e.ID, func(t *testing.T) {
			n := e.Normalized()
			b, err := n.Canonical()
			if err != nil {
				t.Fatalf("Canonical: %v", err)
			}
			got, err := audit.ParseEntry(b)
			if err != nil {
				t.Fatalf("ParseEntry(%s): %v", b, err)
			}
			again, err := got.Canonical()
			if err != nil || !bytes.Equal(again, b) {
				t.Errorf("canonical bytes changed on a round trip:\n%s\n%s", b, again)
			}
			if got.ID != n.ID || got.Kind != n.Kind || !got.Time.Equal(n.Time) || got.Actor != n.Actor ||
				got.Effect != n.Effect || !slices.Equal(got.Obligations, n.Obligations) || !slices.Equal(got.Trail, n.Trail) ||
				!slices.Equal(got.Inputs, n.Inputs) || (got.Bundle == nil) != (n.Bundle == nil) {
				t.Errorf("parsed %+v, want %+v", got, n)
			}
		})
	}
}

// TestCanonicalIsSortedCompactJSON checks the format's promise with an
// independent encoder: the canonical bytes are what encoding/json writes
// for the same object with sorted keys, no whitespace and no HTML escaping
// (and what Python's json.dumps(sort_keys=True, separators=(",", ":"))
// writes).
func TestCanonicalIsSortedCompactJSON(t *testing.T) {
	for _, e := range sampleEntries(t) {
		b, err := e.Normalized().Canonical()
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("canonical bytes are not JSON: %v", err)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(m); err != nil {
			t.Fatal(err)
		}
		if want := bytes.TrimSuffix(buf.Bytes(), []byte("\n")); !bytes.Equal(b, want) {
			t.Errorf("canonical\n%s\nsorted compact JSON\n%s", b, want)
		}
		if m["v"] != float64(audit.FormatVersion) {
			t.Errorf("v = %v", m["v"])
		}
	}
}

func TestNormalized(t *testing.T) {
	e := sampleEntries(t)[0]
	e.Time = time.Date(2025, 5, 1, 11, 30, 0, 123456789, time.FixedZone("CEST", 2*3600))
	e.Obligations = []string{"REDACT", "NORDSCLCD", "REDACT"}
	e.Inputs = []audit.Input{{Ref: "Consent/c2/_history/1"}, {Ref: "Consent/c1/_history/1"}}
	n := e.Normalized()
	if want := time.Date(2025, 5, 1, 9, 30, 0, 123456000, time.UTC); !n.Time.Equal(want) || n.Time.Location() != time.UTC {
		t.Errorf("Time = %v, want %v", n.Time, want)
	}
	if !slices.Equal(n.Obligations, []string{"NORDSCLCD", "REDACT"}) {
		t.Errorf("Obligations = %v", n.Obligations)
	}
	if n.Inputs[0].Ref != "Consent/c1/_history/1" || e.Inputs[0].Ref != "Consent/c2/_history/1" {
		t.Errorf("Inputs not sorted in a copy: %v, original %v", n.Inputs, e.Inputs)
	}
	b, err := n.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"time":"2025-05-01T09:30:00.123456Z"`)) {
		t.Errorf("time not in UTC with microseconds: %s", b)
	}
}

func TestValidateRefusesFreeText(t *testing.T) {
	secret := "Maria Example"
	for _, tc := range []struct {
		name   string
		mutate func(*audit.Entry)
	}{
		{"purpose with a space", func(e *audit.Entry) { e.Purpose = secret }},
		{"trail with free text", func(e *audit.Entry) { e.Trail = []string{"consent says " + secret} }},
		{"obligation with a quote", func(e *audit.Entry) { e.Obligations = []string{`RE"DACT`} }},
		{"exchange with a newline", func(e *audit.Entry) { e.Exchange = "x\n" + secret }},
		{"non-ASCII site", func(e *audit.Entry) { e.Site = "pathwäy" }},
		{"actor not a reference", func(e *audit.Entry) { e.Actor = secret }},
		{"patient of another type", func(e *audit.Entry) { e.Patient = "Practitioner/p1" }},
		{"id not a FHIR id", func(e *audit.Entry) { e.ID = "d_1" }},
		{"no kind", func(e *audit.Entry) { e.Kind = "" }},
		{"unknown kind", func(e *audit.Entry) { e.Kind = "export" }},
		{"no time", func(e *audit.Entry) { e.Time = time.Time{} }},
		{"decision without effect", func(e *audit.Entry) { e.Effect = "" }},
		{"unknown effect", func(e *audit.Entry) { e.Effect = "maybe" }},
		{"decision without exchange", func(e *audit.Entry) { e.Exchange = "" }},
		{"decision without purpose", func(e *audit.Entry) { e.Purpose = "" }},
		{"decision with interaction", func(e *audit.Entry) { e.Interaction = "read" }},
		{"bundle ref not a Bundle", func(e *audit.Entry) { e.Bundle.Ref = "Task/t1" }},
		{"no observer", func(e *audit.Entry) { e.Observer = "" }},
		{"input ref too long", func(e *audit.Entry) { e.Inputs[0].Ref = strings.Repeat("a", 513) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := sampleEntries(t)[0].Normalized()
			e.Bundle = &audit.Input{Ref: e.Bundle.Ref, Hash: e.Bundle.Hash}
			tc.mutate(&e)
			e = e.Normalized()
			_, err := e.Canonical()
			if err == nil {
				t.Fatal("Canonical succeeded, want an error")
			}
			if strings.Contains(err.Error(), "Maria") || strings.Contains(err.Error(), "pathwäy") {
				t.Errorf("error %q echoes the value", err)
			}
		})
	}
	for _, tc := range []struct {
		name   string
		mutate func(*audit.Entry)
	}{
		{"disclosure with effect", func(e *audit.Entry) { e.Effect = audit.EffectPermit }},
		{"disclosure without bundle", func(e *audit.Entry) { e.Bundle = nil }},
		{"disclosure with obligations", func(e *audit.Entry) { e.Obligations = []string{"REDACT"} }},
		{"unknown interaction", func(e *audit.Entry) { e.Interaction = "download" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := sampleEntries(t)[1]
			tc.mutate(&e)
			if _, err := e.Normalized().Canonical(); err == nil {
				t.Fatal("Canonical succeeded, want an error")
			}
		})
	}
	a := sampleEntries(t)[2]
	a.Interaction = ""
	if _, err := a.Normalized().Canonical(); err == nil {
		t.Error("access without interaction: Canonical succeeded")
	}
}

func TestParseEntryIsStrict(t *testing.T) {
	good, err := sampleEntries(t)[0].Normalized().Canonical()
	if err != nil {
		t.Fatal(err)
	}
	s := string(good)
	for _, tc := range []struct{ name, data string }{
		{"leading space", " " + s},
		{"trailing newline", s + "\n"},
		{"trailing bytes", s + "{}"},
		{"space after colon", strings.Replace(s, `"actor":`, `"actor": `, 1)},
		{"members out of order", strings.Replace(strings.Replace(s, `{"actor":"Organization/clinic-a",`, `{`, 1), `"v":1}`, `"v":1,"actor":"Organization/clinic-a"}`, 1)},
		{"member repeated", strings.Replace(s, `"kind":"decision",`, `"kind":"decision","kind":"decision",`, 1)},
		{"unknown member", strings.Replace(s, `"v":1}`, `"note":"x","v":1}`, 1)},
		{"escape in a string", strings.Replace(s, `"purpose":"COC"`, `"purpose":"C\u004fC"`, 1)},
		{"format version 2", strings.Replace(s, `"v":1}`, `"v":2}`, 1)},
		{"version 10", strings.Replace(s, `"v":1}`, `"v":10}`, 1)},
		{"no version", strings.Replace(s, `,"v":1}`, `}`, 1)},
		{"upper-case hex", strings.Replace(s, `"hash":"`, `"hash":"A`, 1)},
		{"empty array", strings.Replace(s, `"trail":["Consent/c1/_history/3"]`, `"trail":[]`, 1)},
		{"time without microseconds", strings.Replace(s, `.123456Z"`, `Z"`, 1)},
		{"time in another zone", strings.Replace(s, `.123456Z"`, `.123456+00:00"`, 1)},
		{"unsorted obligations", strings.Replace(s, `"obligations":["NORDSCLCD","REDACT"]`, `"obligations":["REDACT","NORDSCLCD"]`, 1)},
		{"empty", ""},
		{"not an object", `[]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.data == s {
				t.Fatalf("the mutation left the bytes unchanged")
			}
			if _, err := audit.ParseEntry([]byte(tc.data)); !errors.Is(err, audit.ErrNotCanonical) {
				t.Errorf("ParseEntry: err = %v, want ErrNotCanonical", err)
			}
		})
	}
}

func TestLogValueHidesEntryContents(t *testing.T) {
	e := sampleEntries(t)[0]
	v := e.LogValue().String()
	for _, leak := range []string{"Patient/p1", "clinic-a", "Consent/c1"} {
		if strings.Contains(v, leak) {
			t.Errorf("LogValue %s shows %s", v, leak)
		}
	}
	if !strings.Contains(v, e.ID) {
		t.Errorf("LogValue %s lacks the entry id", v)
	}
}

func TestTimeFormat(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC),
		time.Date(2025, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(9999, 2, 28, 1, 2, 3, 4000, time.UTC),
		t0,
	} {
		e := access(1)
		e.Time = tm
		b, err := e.Normalized().Canonical()
		if err != nil {
			t.Fatal(err)
		}
		want := `"time":"` + e.Normalized().Time.Format("2006-01-02T15:04:05.000000Z") + `"`
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("%v: canonical %s lacks %s", tm, b, want)
		}
		got, err := audit.ParseEntry(b)
		if err != nil || !got.Time.Equal(e.Normalized().Time) {
			t.Errorf("%v: parsed %v, %v", tm, got.Time, err)
		}
	}
	bad := access(1)
	bad.Time = t0
	b, _ := bad.Normalized().Canonical()
	for _, wrong := range []string{"2025-02-30T09:30:00.000000Z", "2025-13-01T09:30:00.000000Z", "2025-05-01T24:00:00.000000Z", "2025-05-01T09:30:60.000000Z", "2025-05-01 09:30:00.000000Z", "+025-05-01T09:30:00.000000Z"} {
		mutated := bytes.Replace(b, []byte(bad.Normalized().Time.Format("2006-01-02T15:04:05.000000Z")), []byte(wrong), 1)
		if _, err := audit.ParseEntry(mutated); err == nil {
			t.Errorf("time %s accepted", wrong)
		}
	}
}

func TestVerifierKeyOfGeneratedKeys(t *testing.T) {
	// Random keys often hold '+' in their base64 part.
	for range 50 {
		skey, vkey, err := audit.GenerateKey("pathway.test/audit")
		if err != nil {
			t.Fatal(err)
		}
		got, err := audit.VerifierKey(skey)
		if err != nil || got != vkey {
			t.Fatalf("VerifierKey = %q, %v; want %q", got, err, vkey)
		}
	}
	for _, bad := range []string{"", "PRIVATE+KEY+x", testVKey, "PRIVATE+KEY+a+00000000+AQ=="} {
		if _, err := audit.VerifierKey(bad); err == nil {
			t.Errorf("VerifierKey(%q) succeeded", bad)
		}
	}
}
