package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pathway-fhir/pathway/policy"
)

const policyData = "../../testdata/policy"

func TestConsentCheckParse(t *testing.T) {
	now := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	base := consentCheckOptions{consents: []string{"c.json"}, actor: "Organization/clinic-b", purpose: "COC", base: "opt-in"}
	tests := []struct {
		name  string
		edit  func(*consentCheckOptions)
		check func(t *testing.T, r consentCheckRequest)
		err   string
	}{
		{"defaults", func(*consentCheckOptions) {}, func(t *testing.T, r consentCheckRequest) {
			if r.partner.ID != "clinic-b" || r.action != "disclose" || !r.at.Equal(now) || r.base != policy.OptIn || r.patient != nil {
				t.Errorf("request %+v", r)
			}
		}, ""},
		{"identifier actor and patient", func(o *consentCheckOptions) {
			o.actor, o.patient, o.at, o.action, o.base = "https://example.org/ods|CLB01", "https://ngo.example/client|c1", "2026-01-02T03:04:05+01:00", "access", "opt-out"
		}, func(t *testing.T, r consentCheckRequest) {
			if r.partner.ID != "" || len(r.partner.Identifiers) != 1 || r.partner.Identifiers[0].Value != "CLB01" ||
				r.patient == nil || r.patient.Identifiers[0].Value != "c1" || r.action != "access" || r.base != policy.OptOut ||
				r.at.UTC().Hour() != 2 {
				t.Errorf("request %+v", r)
			}
		}, ""},
		{"patient reference", func(o *consentCheckOptions) { o.patient = "Patient/p1" }, func(t *testing.T, r consentCheckRequest) {
			if r.patient == nil || !slices.Equal(r.patient.Refs, []string{"Patient/p1"}) {
				t.Errorf("patient %+v", r.patient)
			}
		}, ""},
		{"no consent", func(o *consentCheckOptions) { o.consents = nil }, nil, "--consent is required"},
		{"more files", func(o *consentCheckOptions) { o.files = []string{"d.json", "e.json"} }, func(t *testing.T, r consentCheckRequest) {
			if strings.Join(r.consents, " ") != "c.json d.json e.json" {
				t.Errorf("consents %v, want c.json d.json e.json in order", r.consents)
			}
		}, ""},
		{"no actor", func(o *consentCheckOptions) { o.actor = "" }, nil, "--actor is required"},
		{"bad actor", func(o *consentCheckOptions) { o.actor = "clinic-b" }, nil, "write Organization/ID or SYSTEM|VALUE"},
		{"empty organization", func(o *consentCheckOptions) { o.actor = "Organization/" }, nil, "write Organization/ID"},
		{"no purpose", func(o *consentCheckOptions) { o.purpose = "" }, nil, "--purpose is required"},
		{"unknown purpose", func(o *consentCheckOptions) { o.purpose = "SHOPPING" }, nil, "not a v3-ActReason purpose of use"},
		{"unknown action", func(o *consentCheckOptions) { o.action = "sell" }, nil, "--action \"sell\""},
		{"bad time", func(o *consentCheckOptions) { o.at = "yesterday" }, nil, "not an RFC 3339 time"},
		{"bad base", func(o *consentCheckOptions) { o.base = "maybe" }, nil, "use opt-in or opt-out"},
		{"bad patient", func(o *consentCheckOptions) { o.patient = "client-1" }, nil, "write SYSTEM|VALUE or Patient/ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			tt.edit(&o)
			r, err := o.parse(now)
			if tt.err != "" {
				ee, ok := err.(*exitError)
				if !ok || ee.code != exitUsage || !strings.Contains(ee.msg, tt.err) {
					t.Fatalf("error %v, want a usage error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, r)
		})
	}
}

func TestConsentCheckJSON(t *testing.T) {
	consent := filepath.Join(policyData, "consents", "referral.json")
	code, out, errOut := runCmd(t, "", "consent", "check", "--consent", consent, "--actor", "Organization/clinic-b",
		"--purpose", "COC", "--at", "2026-06-01T09:00:00Z", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	var keys []string
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"decision", "explanation", "obligations", "trail"}) {
		t.Errorf("keys %v, want exactly decision, explanation, obligations, trail", keys)
	}
	var d policy.Decision
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatal(err)
	}
	if d.Effect != policy.Permit || len(d.Obligations) != 1 || d.Obligations[0].Target != "data labelled IMMIG" ||
		len(d.Trail) != 2 || d.Trail[0].Ref != "Consent/referral" {
		t.Errorf("decision %+v", d)
	}
}

func TestConsentCheckDecisionsAndExitCodes(t *testing.T) {
	c := func(name string) string { return filepath.Join(policyData, "consents", name) }
	r := func(name string) string { return filepath.Join(policyData, "resources", name) }
	dir := t.TempDir()
	notJSON := writeFile(t, dir, "bad.json", "{not json")
	task := r("task.json")
	tests := []struct {
		name string
		args []string
		code int
		want []string // in stdout, or stderr for errors
	}{
		{"permit, text", []string{"--consent", c("referral.json"), "--actor", "Organization/clinic-b", "--purpose", "COC"},
			0, []string{"decision: permit", "remove data labelled IMMIG", "trail:\n  Consent/referral provision: permit"}},
		{"the nested deny for a resource", []string{"--consent", c("referral.json"), "--actor", "Organization/clinic-b", "--purpose", "COC",
			"--resource", r("obs-legal-status.json")}, 0, []string{"decision: deny", "Consent/referral provision.provision[0]: deny Observation/legal-status"}},
		{"the explicit release", []string{"--consent", c("referral.json"), "--actor", "Organization/legal-aid-d", "--purpose", "COC",
			"--resource", r("obs-legal-status.json")}, 0, []string{"decision: permit", "provision.provision[0].provision[0]: permit Observation/legal-status"}},
		{"two consents disagree", []string{"--consent", c("referral.json"), "--consent", c("deny-all.json"), "--actor", "Organization/clinic-b",
			"--purpose", "COC"}, 0, []string{"decision: deny", "Consent/deny-all provision: deny"}},
		{"several files after one --consent", []string{"--consent", c("referral.json"), c("deny-all.json"), "--actor", "Organization/clinic-b",
			"--purpose", "COC"}, 0, []string{"decision: deny", "Consent/deny-all provision: deny"}},
		{"files after the flags", []string{"--consent", c("access-only.json"), "--actor", "Organization/clinic-b", "--purpose", "COC", c("referral.json")},
			0, []string{"decision: permit", "Consent/referral provision: permit"}},
		{"files without --consent", []string{c("referral.json"), "--actor", "Organization/clinic-b", "--purpose", "COC"},
			2, []string{"--consent is required before the consent files"}},
		{"no consent, opt-in", []string{"--consent", c("referral.json"), "--actor", "Organization/nobody", "--purpose", "COC"},
			0, []string{"decision: no-consent", "does not name this recipient"}},
		{"opt-out base", []string{"--consent", c("referral.json"), "--actor", "Organization/nobody", "--purpose", "COC", "--base", "opt-out"},
			0, []string{"decision: permit", "Immigration and legal-status information (data labelled IMMIG) must be left out"}},
		{"by identifier", []string{"--consent", c("by-identifier.json"), "--actor", "https://example.org/fhir/sid/ods|CLB01", "--purpose", "COC"},
			0, []string{"decision: permit"}},
		{"patient filter keeps the patient's consents", []string{"--consent", c("referral.json"), "--consent", c("other-patient.json"),
			"--patient", "Patient/p1", "--actor", "Organization/legal-aid-d", "--purpose", "COC"}, 0, []string{"decision: permit", "Consent/referral"}},
		{"patient filter drops other patients' consents", []string{"--consent", c("other-patient.json"), "--patient", "Patient/p1",
			"--actor", "Organization/clinic-b", "--purpose", "COC"}, 0, []string{"decision: no-consent"}},
		{"action", []string{"--consent", c("access-only.json"), "--actor", "Organization/clinic-b", "--purpose", "COC", "--action", "access"},
			0, []string{"decision: permit"}},
		{"a Bundle's consents and entries, patient by identifier", []string{"--consent", filepath.Join(policyData, "bundles", "full.json"),
			"--patient", "https://ngo-a.example/cases/client|client-881", "--resource", filepath.Join(policyData, "bundles", "full.json"),
			"--actor", "Organization/clinic-b", "--purpose", "COC"},
			0, []string{"decision: permit", "Withheld: 5 Observations (refused by the patient's consent Consent/dab8ccb6-9bc5-57cb-ae08-11f9c8d67126 provision.provision[0])"}},
		{"another patient's identifier", []string{"--consent", filepath.Join(policyData, "bundles", "full.json"),
			"--patient", "https://ngo-a.example/cases/client|client-999", "--actor", "Organization/clinic-b", "--purpose", "COC"},
			0, []string{"decision: no-consent"}},
		{"a file without a Consent", []string{"--consent", task, "--actor", "Organization/clinic-b", "--purpose", "COC"},
			2, []string{"holds no Consent (a Task)"}},
		{"unreadable input", []string{"--consent", notJSON, "--actor", "Organization/clinic-b", "--purpose", "COC"},
			2, []string{"not valid FHIR R4"}},
		{"missing file", []string{"--consent", filepath.Join(dir, "none.json"), "--actor", "Organization/clinic-b", "--purpose", "COC"},
			2, []string{"no such file"}},
		{"unknown flag", []string{"--consnt", c("referral.json")}, 2, []string{"unknown flag"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"consent", "check", "--at", "2026-06-01T09:00:00Z"}, tt.args...)
			code, out, errOut := runCmd(t, "", args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			where := out
			if tt.code != 0 {
				where = errOut
			}
			for _, w := range tt.want {
				if !strings.Contains(where, w) {
					t.Errorf("output lacks %q:\n%s", w, where)
				}
			}
		})
	}
}

func TestConsentCheckHelp(t *testing.T) {
	code, out, _ := runCmd(t, "", "consent", "check", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, w := range []string{"--consent", "--patient", "--actor", "--purpose", "--action", "--resource", "--at", "--base", "--json", "Examples:", "Exit status"} {
		if !strings.Contains(out, w) {
			t.Errorf("help lacks %q", w)
		}
	}
}
