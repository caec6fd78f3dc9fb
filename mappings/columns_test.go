package mappings

import (
	"strings"
	"testing"
)

func TestCheckHeader(t *testing.T) {
	m, err := Builtin("ngo-referral-csv")
	if err != nil {
		t.Fatal(err)
	}
	hc := m.CheckHeader([]string{"referral_id", "service", "referrer_org", "Referral-Date", "risk_levle", "extra"})
	missing := map[string]MissingColumn{}
	for _, c := range hc.Missing {
		missing[c.Name] = c
	}
	if len(hc.RequiredMissing()) != 1 || hc.RequiredMissing()[0].Name != "referral_date" || hc.RequiredMissing()[0].Closest != "Referral-Date" {
		t.Errorf("required missing: %+v", hc.RequiredMissing())
	}
	rl := missing["risk_level"]
	if rl.Required || !rl.Important() || rl.Closest != "risk_levle" || strings.Join(rl.Targets, ",") != "service.priority,service.triage" {
		t.Errorf("risk_level: %+v", rl)
	}
	if r := missing["risk"]; !r.Important() || r.Closest != "" {
		t.Errorf("risk: %+v", r)
	}
	if p := missing["phq9"]; p.Important() || p.Required {
		t.Errorf("phq9: %+v", p)
	}
	if _, ok := missing["referral_id"]; ok {
		t.Error("referral_id is in the header")
	}
	if strings.Join(hc.Unknown, ",") != "Referral-Date,risk_levle,extra" {
		t.Errorf("unknown: %v", hc.Unknown)
	}
}

func TestRequiredFieldMissingVersusEmpty(t *testing.T) {
	m, err := Load("m.yaml", []byte("mapping: m\ninput: {format: json}\nfields:\n  source.system: {const: 'urn:x'}\n  source.record_id: {from: grp/id, required: true}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Apply(JSONFields{"grp": map[string]any{"idd": "1"}})
	if err == nil || !strings.Contains(err.Error(), `(from "grp/id"): required, but empty: the record has no such key`) {
		t.Errorf("missing key: %v", err)
	}
	_, err = m.Apply(JSONFields{"grp": map[string]any{"id": ""}})
	if err == nil || !strings.Contains(err.Error(), "required, but empty") {
		t.Errorf("empty key: %v", err)
	}
}

func TestSplitItem(t *testing.T) {
	m, err := Load("m.yaml", []byte(`mapping: m
input: {format: csv}
tables:
  t: {unmapped: text, map: {a: "urn:x|A"}}
fields:
  source.system: {const: 'urn:x'}
  source.record_id: id
  outcome[0].code: {from: code, split: ";", item: 1, table: t}
  outcome[0].value: {from: value, split: ";", item: 1}
  outcome[1].code: {from: code, split: ";", item: 2, table: t}
  outcome[1].value: {from: value, split: ";", item: 2}
  outcome[2].code: {from: code, split: ";", item: 3, table: t}
  outcome[2].value: {from: value, split: ";", item: 3}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := m.Apply(MapFields{"id": "1", "code": "a;;c", "value": "1;2;3"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Outcomes) != 3 || r.Outcomes[0].Code.Code != "A" || !r.Outcomes[1].Code.IsZero() || r.Outcomes[1].Value != "2" || r.Outcomes[2].Code.Text != "c" || r.Outcomes[2].Value != "3" {
		t.Errorf("outcomes: %+v", r.Outcomes)
	}
	if _, err := Load("m.yaml", []byte("mapping: m\ninput: {format: csv}\nfields:\n  source.system: {const: 'urn:x'}\n  source.record_id: {from: id, item: 2}\n"), nil); err == nil || !strings.Contains(err.Error(), "give split too") {
		t.Errorf("item without split: %v", err)
	}
}
