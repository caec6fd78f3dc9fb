package policy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pathway-fhir/pathway/fhir"

	conpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/consent_go_proto"
)

// TestCorpusConsents evaluates every Consent of the official R4 examples
// and of the implementation-guide examples for the situations their
// authors describe (testdata/policy/corpus/expected.yaml), and checks that
// none is left out.
func TestCorpusConsents(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(policyTestdata, "corpus", "expected.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		File      string   `yaml:"file"`
		Says      string   `yaml:"says"`
		Actor     string   `yaml:"actor"`
		Purpose   string   `yaml:"purpose"`
		Action    string   `yaml:"action"`
		At        string   `yaml:"at"`
		Resources []string `yaml:"resources"`
		Decision  string   `yaml:"decision"`
		Trail     []string `yaml:"trail"`
		Note      string   `yaml:"note"`
	}
	if err := yaml.Unmarshal(data, &rows); err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(nil)
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, r := range rows {
		covered[filepath.Base(r.File)] = true
		t.Run(filepath.Base(r.File)+"/"+r.Says, func(t *testing.T) {
			c := readResource(t, filepath.Join(policyTestdata, "corpus", r.File)).GetConsent()
			if c == nil {
				t.Fatal("not a Consent")
			}
			var res []*fhir.ContainedResource
			for _, f := range r.Resources {
				res = append(res, readResource(t, filepath.Join(policyTestdata, "corpus", "resources", f)))
			}
			at, err := time.Parse(time.RFC3339, r.At)
			if err != nil {
				t.Fatal(err)
			}
			p := &Partner{ID: strings.TrimPrefix(r.Actor, "Organization/")}
			d := e.Decide(Request{Partner: p, Purpose: r.Purpose, Action: r.Action, At: at}, []*conpb.Consent{c}, res...)
			if string(d.Effect) != r.Decision {
				t.Errorf("decision %s, want %s (%s)", d.Effect, r.Decision, d.Explain())
			}
			if got := stepStrings(d.Trail); !slices.Equal(got, r.Trail) {
				t.Errorf("trail:\n  got  %q\n  want %q", got, r.Trail)
			}
		})
	}
	// Every Consent of both corpora has its row.
	for _, dir := range []string{"../fhir-r4-examples/Consent", "corpus/ig"} {
		files, _ := filepath.Glob(filepath.Join(policyTestdata, dir, "*.json"))
		if len(files) == 0 {
			t.Fatalf("no files in %s", dir)
		}
		for _, f := range files {
			if !covered[filepath.Base(f)] {
				t.Errorf("%s has no expected result in corpus/expected.yaml", f)
			}
		}
	}
}
