package exchange

import (
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestStarterConfigParses(t *testing.T) {
	cfg, err := ParseConfig("pathway.yaml", StarterConfig())
	if err != nil {
		t.Fatalf("the starter configuration has problems:\n%v", err)
	}
	if len(cfg.Order) != 2 || cfg.Partners["clinic-b"].Endpoint == "" || cfg.Partners["community-e"].Endpoint != "" {
		t.Errorf("partners = %v %+v", cfg.Order, cfg.Partners)
	}
	if !cfg.Partners["clinic-b"].Services.Specialist || cfg.Partners["clinic-b"].Services.Kind != "clinic" {
		t.Errorf("clinic-b services = %+v", cfg.Partners["clinic-b"].Services)
	}
	if len(cfg.Routes) != 2 || cfg.Retry.Lease != 2*time.Minute || cfg.SigningKey.File == "" {
		t.Errorf("routes %v retry %+v key %+v", cfg.Routes, cfg.Retry, cfg.SigningKey)
	}
	cands, purposes := cfg.Candidates("ngo-a", []string{pw + "mental-health", pw + "housing"})
	if len(cands) != 2 || purposes["clinic-b"] != "TREAT" || purposes["community-e"] != "COC" {
		t.Errorf("candidates %v purposes %v", cands, purposes)
	}
}

const base = `network: {id: net}
partners:
  - id: clinic-b
    kind: clinic
    endpoint: https://clinic.example/fhir
    agreement: {purposes: [TREAT], resource_types: [Patient, ServiceRequest, Task]}
  - id: ngo-d
    kind: ngo
    agreement: {purposes: [COC], resource_types: [Patient, ServiceRequest, Task]}
`

// TestConfigLintInlineSigningKey: an inline signing key is reported at its
// key, without the key itself.
func TestConfigLintInlineSigningKey(t *testing.T) {
	_, err := ParseConfig("pathway.yaml", []byte(base+"signing_key: \"c2VjcmV0LXNpZ25pbmcta2V5\"\n"))
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a *ConfigError", err)
	}
	if msg := ce.Error(); !strings.Contains(msg, "pathway.yaml:10:1: signing_key: a secret is written in the file") || strings.Contains(msg, "c2VjcmV0") {
		t.Errorf("problems:\n%s\nwant the signing key reported at 10:1, without its value", msg)
	}
}

func TestConfigLint(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"good", base + "routes:\n  - {to: [clinic-b], purpose: COC}\n", nil},
		{"unknown partner in a route", base + "routes:\n  - {name: r, to: [clinic-x]}\n",
			[]string{`pathway.yaml:11:`, `routes[0].to[0]: unknown partner "clinic-x"`}},
		{"purpose outside the agreement", base + "routes:\n  - {to: [ngo-d], purpose: TREAT}\n",
			[]string{`routes[0].to[0]: purpose TREAT is not in partner "ngo-d"'s agreement`}},
		{"CAREMGT is not under TREAT", base + "routes:\n  - {to: [clinic-b], purpose: CAREMGT}\n",
			[]string{`purpose CAREMGT is not in partner "clinic-b"'s agreement`}},
		{"inline secret", strings.Replace(base, "    endpoint: https://clinic.example/fhir\n", "    endpoint: https://clinic.example/fhir\n    auth: {type: bearer, token: abc123}\n", 1),
			[]string{`pathway.yaml:6:26: partners[0].auth.token: a secret is written in the file`}},
		{"inline signing key", base + "signing_key: \"ed25519-private-key-base64\"\n",
			[]string{`pathway.yaml:10:1: signing_key: a secret is written in the file`}},
		{"signing key from a file is fine", base + "signing_key: {file: /etc/pathway/signing.key}\n", nil},
		{"password anywhere", base + "store: {url: x, password: hunter2}\n",
			[]string{`store.password: a secret is written in the file`}},
		{"http outside loopback", strings.Replace(base, "https://clinic.example/fhir", "http://clinic.example/fhir", 1),
			[]string{`pathway.yaml:5:15: partners[0].endpoint: plain http to a partner outside this machine`}},
		{"http on loopback is fine", strings.Replace(base, "https://clinic.example/fhir", "http://127.0.0.1:8080/fhir", 1), nil},
		{"unknown key in services", strings.Replace(base, "    kind: ngo\n", "    kind: ngo\n    services: {languages: [uk], langauges: [ru]}\n", 1),
			[]string{`partners[1].services.langauges: unknown key "langauges"`}},
		{"bad retry", base + "retry: {base: soon, timeout: 1m, lease: 30s}\n",
			[]string{`retry.base: "soon" is not a positive duration`, `retry.lease: the lease (30s) must outlast the request timeout (1m0s)`}},
		{"bad routing level", base + "routing: {risk_flags: {self-harm: severe}}\n",
			[]string{`routing.risk_flags.self-harm: level "severe"`}},
		{"bearer without a source", strings.Replace(base, "    endpoint: https://clinic.example/fhir\n", "    endpoint: https://clinic.example/fhir\n    auth: {type: bearer}\n", 1),
			[]string{`partners[0].auth.token: a bearer token needs its source`}},
		{"route to an auditor", base + "  - {id: aud, kind: auditor, agreement: {purposes: [HOPERAT], resource_types: [Task]}}\nroutes:\n  - {to: [aud], purpose: HOPERAT}\n",
			[]string{`partner "aud" is an auditor`}},
		{"policy problems come too", strings.Replace(base, "base_policy", "x", 1) + "network2: 1\n",
			[]string{`network2`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("pathway.yaml", []byte(tc.yaml))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected problems:\n%v", err)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *ConfigError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("problems lack %q:\n%v", w, err)
				}
			}
			for _, p := range ce.Problems {
				if p.Line == 0 {
					t.Errorf("problem without a line: %s", p)
				}
				if strings.Contains(p.String(), "abc123") || strings.Contains(p.String(), "hunter2") {
					t.Errorf("problem quotes a secret: %s", p)
				}
			}
		})
	}
}

// TestConfigDocumented keeps docs/configuration.md in step with the keys
// the configuration accepts.
func TestConfigDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for shape, keys := range knownKeys {
		for _, k := range keys {
			if !regexp.MustCompile("[`{ ]" + regexp.QuoteMeta(k) + "[`:]").Match(doc) {
				t.Errorf("docs/configuration.md does not mention %s key `%s`", shape, k)
			}
		}
	}
}
