package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pathway-fhir/pathway/fhir"

	conpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/consent_go_proto"
)

// FuzzParseConfig: any bytes give a config or a *ConfigError whose every
// problem has a position, never a panic.
func FuzzParseConfig(f *testing.F) {
	data, err := os.ReadFile(filepath.Join(policyTestdata, "pathway.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte("partners: [{id: a, kind: ngo, agreement: {purposes: [COC], resource_types: [Patient], elements: [{resource_type: Patient, mask: [name.family]}]}}]"))
	f.Add([]byte("labels: [{name: x, path: a.b.c, labels: [PSY], inline: true}]\nvalue_sets: [{name: v, include: [{system: s, is_a: legal-status}]}]"))
	f.Add([]byte("a: &x {b: *x}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig("f.yaml", data)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("error %v is not a ConfigError with problems", err)
			}
			return
		}
		if !cfg.Network.BasePolicy.Valid() {
			t.Fatalf("accepted base policy %q", cfg.Network.BasePolicy)
		}
		if _, err := NewEngine(cfg); err != nil {
			t.Fatalf("a valid config does not compile: %v", err)
		}
	})
}

// FuzzDecide: any valid Consent JSON is evaluated without a panic, to a
// decision with an explanation, the same each time.
func FuzzDecide(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(policyTestdata, "consents", "*.json"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "COC")
	}
	e, err := NewEngine(nil)
	if err != nil {
		f.Fatal(err)
	}
	obs := readResource(f, filepath.Join(policyTestdata, "resources", "obs-legal-status.json"))
	f.Fuzz(func(t *testing.T, data []byte, purpose string) {
		r := fhir.Parse(data)
		c := r.Resource.GetConsent()
		if !r.Valid() || c == nil {
			return
		}
		req := Request{Partner: &Partner{ID: "clinic-b", Kind: KindClinic}, Purpose: purpose, At: testTime}
		d1 := e.Decide(req, []*conpb.Consent{c}, obs)
		d2 := e.Decide(req, []*conpb.Consent{c}, obs)
		if d1.Effect == "" || d1.Explain() == "" || d1.Effect != d2.Effect || d1.Explain() != d2.Explain() {
			t.Fatalf("decisions %+v and %+v", d1, d2)
		}
		if d1.Effect == Permit && strings.Contains(d1.Explain(), "Immigration and legal-status information is included") {
			// Released immigration data needs the exact purpose.
			if !explicitPermitExists([]*conpb.Consent{c}, req.Partner, purpose, testTime) {
				t.Fatalf("immigration data released without an explicit provision: %s", d1.Explain())
			}
		}
	})
}
