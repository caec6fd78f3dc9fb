package policy

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"

	"github.com/pathway-fhir/pathway/fhir"

	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// testConfig loads testdata/policy/pathway.yaml.
func testConfig(t testing.TB) *Config {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(policyTestdata, "pathway.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig("pathway.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func testBundle(t testing.TB, name string) *rpb.Bundle {
	t.Helper()
	return readResource(t, filepath.Join(policyTestdata, "bundles", name)).GetBundle()
}

var testTime = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

func filterRequest(cfg *Config, partner, purpose string) Request {
	p := cfg.Partner(partner)
	return Request{Partner: p, Agreement: &p.Agreement, Purpose: purpose, At: testTime, Base: cfg.Network.BasePolicy}
}

// checkGolden compares got with the golden file, or rewrites it with -update.
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *updateCases {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (run with -update and review the diff):\n%s", path, firstDiff(got, want))
	}
}

func firstDiff(a, b []byte) string {
	la, lb := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	for i := 0; i < len(la) || i < len(lb); i++ {
		var x, y []byte
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if !bytes.Equal(x, y) {
			return "line " + itoa(i+1) + ":\n  got  " + string(x) + "\n  want " + string(y)
		}
	}
	return ""
}

func TestFilterCases(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(policyTestdata, "filter", "cases.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Name, Bundle, Partner, Purpose, Decision string
	}
	if err := yaml.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			in := testBundle(t, c.Bundle)
			before, _ := proto.Marshal(in)
			out, d := e.Filter(filterRequest(cfg, c.Partner, c.Purpose), in)
			if after, _ := proto.Marshal(in); !bytes.Equal(before, after) {
				t.Fatal("Filter changed its input Bundle")
			}
			if string(d.Effect) != c.Decision {
				t.Errorf("decision %s, want %s: %s", d.Effect, c.Decision, d.Explain())
			}
			if (out != nil) != (d.Effect == Permit) {
				t.Fatalf("a %s decision came with bundle %v", d.Effect, out != nil)
			}
			dj, err := json.MarshalIndent(d, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, filepath.Join(policyTestdata, "filter", "golden", c.Name+".decision.json"), append(dj, '\n'))
			if out == nil {
				return
			}
			if is := fhir.Validate(out); is.HasErrors() {
				t.Fatalf("filtered Bundle is not valid: %v", is.Errors())
			}
			b, err := fhir.MarshalIndent(out)
			if err != nil {
				t.Fatal(err)
			}
			if r := fhir.Parse(b); !r.Valid() {
				t.Fatalf("filtered Bundle does not parse back as valid FHIR: %v", r.Issues.Errors())
			}
			checkGolden(t, filepath.Join(policyTestdata, "filter", "golden", c.Name+".json"), append(b, '\n'))
		})
	}
}
