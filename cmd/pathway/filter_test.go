package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/policy"
)

func TestFilterParse(t *testing.T) {
	cfg := filepath.Join(policyData, "pathway.yaml")
	dir := t.TempDir()
	badCfg := writeFile(t, dir, "bad.yaml", "network:\n  base_policy: sometimes\npartners: []\n")
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		o    filterOptions
		err  string
	}{
		{"ok", filterOptions{config: cfg, partner: "clinic-b", purpose: "COC"}, ""},
		{"unknown partner", filterOptions{config: cfg, partner: "clinic-z", purpose: "COC"}, `no partner "clinic-z" in`},
		{"bad purpose", filterOptions{config: cfg, partner: "clinic-b", purpose: "FUN"}, "not a v3-ActReason purpose"},
		{"bad time", filterOptions{config: cfg, partner: "clinic-b", purpose: "COC", at: "now"}, "not an RFC 3339 time"},
		{"missing config", filterOptions{config: filepath.Join(dir, "none.yaml"), partner: "clinic-b", purpose: "COC"}, "reading --config"},
		{"config problems with positions", filterOptions{config: badCfg, partner: "clinic-b", purpose: "COC"}, "bad.yaml:2:16: network.base_policy: must be opt-in or opt-out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := tt.o.parse(now)
			if tt.err == "" {
				if err != nil || r.partner == nil || r.partner.ID != tt.o.partner || !r.at.Equal(now) {
					t.Fatalf("parse = %+v, %v", r, err)
				}
				return
			}
			ee, ok := err.(*exitError)
			if !ok || ee.code != exitUsage || !strings.Contains(ee.msg, tt.err) {
				t.Fatalf("error %v, want a usage error containing %q", err, tt.err)
			}
		})
	}
}

func TestFilterCommand(t *testing.T) {
	cfg := filepath.Join(policyData, "pathway.yaml")
	full := filepath.Join(policyData, "bundles", "full.json")
	at := "2026-06-01T09:00:00Z"
	t.Run("permit writes a valid bundle and the decision on stderr", func(t *testing.T) {
		code, out, errOut := runCmd(t, "", "filter", "--config", cfg, "--partner", "community-c", "--purpose", "COC", "--at", at, full)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		r := fhir.Parse([]byte(out))
		if !r.Valid() || r.ResourceType != "Bundle" {
			t.Fatalf("stdout is not a valid Bundle: %v", r.Issues.Errors())
		}
		var types []string
		for _, e := range r.Resource.GetBundle().GetEntry() {
			types = append(types, fhir.TypeOf(e.GetResource()))
		}
		if strings.Join(types, ",") != "Patient,ServiceRequest,Task" {
			t.Errorf("sent %v, want Patient, ServiceRequest, Task", types)
		}
		var d policy.Decision
		if err := json.Unmarshal([]byte(errOut), &d); err != nil || d.Effect != policy.Permit {
			t.Fatalf("stderr is not the permit decision: %v\n%s", err, errOut)
		}
		for _, leak := range []string{"Haddad", "asylum", "35489007", "PHQ-9"} {
			if strings.Contains(out, leak) {
				t.Errorf("the community partner's bundle contains %q", leak)
			}
		}
	})
	t.Run("deny prints no bundle and exits 3", func(t *testing.T) {
		code, out, errOut := runCmd(t, "", "filter", "--config", cfg, "--partner", "community-c", "--purpose", "TREAT", "--at", at, full)
		if code != exitDenied || out != "" {
			t.Fatalf("exit %d, stdout %q; want 3 and nothing", code, out)
		}
		if !strings.Contains(errOut, `"decision": "deny"`) || !strings.Contains(errOut, "covers only COC") {
			t.Errorf("stderr:\n%s", errOut)
		}
	})
	t.Run("no-consent exits 3, decision to a file", func(t *testing.T) {
		dec := filepath.Join(t.TempDir(), "decision.json")
		code, out, errOut := runCmd(t, "", "filter", "--config", cfg, "--partner", "legal-aid-d", "--purpose", "COC", "--at", at, "--decision", dec, full)
		if code != exitDenied || out != "" || errOut != "" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		data, err := os.ReadFile(dec)
		if err != nil || !strings.Contains(string(data), `"decision": "no-consent"`) {
			t.Fatalf("decision file: %v\n%s", err, data)
		}
	})
	t.Run("standard input", func(t *testing.T) {
		data, err := os.ReadFile(full)
		if err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runCmd(t, string(data), "filter", "--config", cfg, "--partner", "clinic-b", "--purpose", "COC", "--at", at, "-")
		if code != 0 || !strings.HasPrefix(out, `{"resourceType":"Bundle"`) {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
	t.Run("usage errors exit 2", func(t *testing.T) {
		task := filepath.Join(policyData, "resources", "task.json")
		for _, args := range [][]string{
			{"filter", "--config", cfg, "--partner", "clinic-b", "--purpose", "COC", task},
			{"filter", "--config", cfg, "--partner", "clinic-b", full},
			{"filter", "--config", cfg, "--partner", "nobody", "--purpose", "COC", full},
			{"filter", "--config", cfg, "--partner", "clinic-b", "--purpose", "COC"},
		} {
			if code, _, errOut := runCmd(t, "", args...); code != exitUsage || errOut == "" {
				t.Errorf("%v: exit %d, want 2 with a message", args, code)
			}
		}
	})
	t.Run("help", func(t *testing.T) {
		_, out, _ := runCmd(t, "", "filter", "--help")
		for _, w := range []string{"--config", "--partner", "--purpose", "--at", "--decision", "Examples:", "Exit status"} {
			if !strings.Contains(out, w) {
				t.Errorf("help lacks %q", w)
			}
		}
	})
}
