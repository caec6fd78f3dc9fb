package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestParseConfigExample(t *testing.T) {
	cfg := testConfig(t)
	if cfg.Network.BasePolicy != OptIn || cfg.Network.ID != "pathway-demo" {
		t.Errorf("network = %+v", cfg.Network)
	}
	if len(cfg.Partners) != 4 {
		t.Fatalf("%d partners, want 4", len(cfg.Partners))
	}
	c := cfg.Partner("community-c")
	if c == nil || c.Kind != KindCommunity || c.Agreement.ID != "dsa-2026-community-c" {
		t.Fatalf("community-c = %+v", c)
	}
	if got := c.Agreement.Elements[0]; got.ResourceType != "Patient" || strings.Join(got.Mask, ",") != "birthDate" {
		t.Errorf("community-c element rule = %+v", got)
	}
	if cb := cfg.Partner("clinic-b"); len(cb.Identifiers) != 1 || cb.Identifiers[0].Value != "CLB01" {
		t.Errorf("clinic-b identifiers = %+v", cb.Identifiers)
	}
	if cfg.Partner("nobody") != nil {
		t.Error("an unknown partner was found")
	}
	if len(cfg.Labels) != 3 || !cfg.Labels[1].Inline || len(cfg.ValueSets) != 1 {
		t.Errorf("labels = %+v, value sets = %+v", cfg.Labels, cfg.ValueSets)
	}
}

func TestParseConfigDefaultsAndIgnoredKeys(t *testing.T) {
	cfg, err := ParseConfig("p.yaml", []byte(`
routes: [{to: clinic-b}]
routing: {triage_levels: {}}
retry: {max: 5}
store: sqlite://x.db
signing_key: env:KEY
partners:
  - id: clinic-b
    kind: clinic
    endpoint: https://clinic-b.example/fhir
    auth: {type: smart}
    tls: {ca: ca.pem}
    services: [therapy]
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Network.BasePolicy != OptIn {
		t.Errorf("base policy %q, want the opt-in default", cfg.Network.BasePolicy)
	}
	if _, err := ParseConfig("empty.yaml", nil); err != nil {
		t.Errorf("an empty file: %v", err)
	}
}

// TestParseConfigProblems checks that every problem is reported with its
// file:line:col, and that what issue 5 owns is ignored only where it belongs.
func TestParseConfigProblems(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // "line:col: path: message" fragments, in order
	}{
		{"unknown top-level key", "netwrk: {}\n", []string{"p.yaml:1:1: netwrk: unknown key"}},
		{"partner key of the full config at top level is unknown", "endpoint: x\n", []string{"p.yaml:1:1: endpoint: unknown key"}},
		{"top-level key of the full config inside a partner is unknown",
			"partners:\n  - id: a\n    kind: ngo\n    routes: []\n", []string{"p.yaml:4:5: partners[0].routes: unknown key"}},
		{"bad base policy", "network:\n  base_policy: opt-maybe\n", []string{"p.yaml:2:16: network.base_policy: must be opt-in or opt-out"}},
		{"partner problems", `partners:
  - id: "bad id!"
    kind: hospital
    identifiers: [{system: x}]
  - kind: ngo
`, []string{
			"p.yaml:2:9: partners[0].id: not a FHIR id",
			"p.yaml:3:11: partners[0].kind: must be clinic, ngo, community or auditor",
			"p.yaml:4:19: partners[0].identifiers[0]: an identifier needs a system and a value",
			"p.yaml:5:5: partners[1].id: required",
		}},
		{"duplicate partner", "partners:\n  - {id: a, kind: ngo}\n  - {id: a, kind: ngo}\n", []string{"p.yaml:3:10: partners[1].id: duplicate partner id"}},
		{"agreement problems", `partners:
  - id: a
    kind: ngo
    agreement:
      purposes: [COC, SHOPPING]
      resource_types: [Patient, Pateint]
      labels: [PSY, R, NOPE]
      refrain: [NORDSCLCD, PLEASE]
      retention: one year
      elements:
        - resource_type: Patient
          keep: [name.family]
          mask: [birthdate]
`, []string{
			"p.yaml:5:23: partners[0].agreement.purposes[1]: not a v3-ActReason purpose of use",
			"p.yaml:6:33: partners[0].agreement.resource_types[1]: not an R4 resource type",
			"p.yaml:7:21: partners[0].agreement.labels[1]: not a sensitivity label",
			"p.yaml:7:24: partners[0].agreement.labels[2]: not a label Pathway knows",
			"p.yaml:12:18: partners[0].agreement.elements[0].keep[0]: keep lists top-level elements only",
			"p.yaml:13:18: partners[0].agreement.elements[0].mask[0]: no element \"birthdate\" in Patient",
			"p.yaml:8:28: partners[0].agreement.refrain[1]: not a v3-ActCode refrain code",
			"p.yaml:9:18: partners[0].agreement.retention: an ISO 8601 duration",
		}},
		{"label rule problems", `labels:
  - resource_types: [Observation]
    path: valu
    codes: [nosystem]
    value_sets: [missing]
    inline: true
    labels: []
`, []string{
			"p.yaml:2:5: labels[0].name: required",
			"p.yaml:7:13: labels[0].labels: a rule needs at least one label",
			"p.yaml:3:11: labels[0].path: no element \"valu\" in Observation (in Observation)",
			"p.yaml:4:13: labels[0].codes[0]: write system|code",
			"p.yaml:5:18: labels[0].value_sets[0]: no value set of this name",
		}},
		{"wrong shapes", "partners: {id: a}\nnetwork: [1]\n", []string{
			"p.yaml:1:11: partners: expected a list",
			"p.yaml:2:10: network: expected a mapping",
		}},
		{"duplicate key", "network:\n  id: a\n  id: b\n", []string{"p.yaml:3:3: network.id: duplicate key"}},
		{"syntax error", "network: [\n", []string{"p.yaml:"}},
		{"value set problems", `value_sets:
  - name: pathway-immigration
    include: [{system: "", is_a: legal-status}]
`, []string{
			"p.yaml:2:11: value_sets[0].name: a built-in value set has this name",
			"value_sets[0].include[0].system: required",
			"value_sets[0].include[0].is_a: is_a works only for Pathway's CodeSystem",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("p.yaml", []byte(tt.yaml))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v, want a *ConfigError", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) < len(tt.want) {
				t.Fatalf("%d problems, want at least %d:\n%s", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q\nall:\n%s", i, lines[i], w, err)
				}
			}
			for _, p := range ce.Problems {
				if p.File != "p.yaml" || p.Line == 0 {
					t.Errorf("problem without a position: %+v", p)
				}
			}
		})
	}
}

func TestParseLabel(t *testing.T) {
	for in, want := range map[string]Label{
		"PSY":       {"http://terminology.hl7.org/CodeSystem/v3-ActCode", "PSY"},
		"IMMIG":     {"https://pathway-fhir.org/fhir/CodeSystem/pathway", "IMMIG"},
		"R":         {"http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "R"},
		"NORDSCLCD": {"http://terminology.hl7.org/CodeSystem/v3-ActCode", "NORDSCLCD"},
		"urn:x|y":   {"urn:x", "y"},
	} {
		got, ok := ParseLabel(in)
		if !ok || got != want {
			t.Errorf("ParseLabel(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "PSYCH", "|x", "x|"} {
		if _, ok := ParseLabel(bad); ok {
			t.Errorf("ParseLabel(%q) accepted", bad)
		}
	}
	gating := map[string]bool{"PSY": true, "IMMIG": true, "urn:x|y": true, "R": false, "NORDSCLCD": false, "PROCESSINLINELABEL": false}
	for s, want := range gating {
		l, _ := ParseLabel(s)
		if l.gates() != want {
			t.Errorf("%s gates = %v, want %v", s, l.gates(), want)
		}
	}
}
