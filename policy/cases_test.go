package policy

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pathway-fhir/pathway/fhir"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	conpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/consent_go_proto"
)

var (
	showCases   = flag.Bool("show", false, "print every case's actual result as YAML")
	updateCases = flag.Bool("update", false, "rewrite the expectations of testdata/policy case files and golden files from the actual results (review the diff)")
)

const policyTestdata = "../testdata/policy"

// policyCase is one row of testdata/policy/cases/*.yaml: consents and a
// request (and optionally resources) with the expected decision, the
// trail, the obligations and the explanation, all exact.
type policyCase struct {
	Name      string   `yaml:"name"`
	Consents  []string `yaml:"consents"`  // files in testdata/policy/consents
	Actor     string   `yaml:"actor"`     // Organization/ID or SYSTEM|VALUE
	Kind      string   `yaml:"kind"`      // the actor's partner kind, if known
	Purpose   string   `yaml:"purpose"`   //
	Action    string   `yaml:"action"`    // default disclose
	At        string   `yaml:"at"`        // RFC 3339
	Base      string   `yaml:"base"`      // opt-in (default) or opt-out
	Resources []string `yaml:"resources"` // files in testdata/policy/resources
	Status    string   `yaml:"status"`    // sets every consent's status (a revocation)
	Expect    struct {
		Decision    string   `yaml:"decision"`
		Obligations []string `yaml:"obligations"`
		Trail       []string `yaml:"trail"`
		Explanation string   `yaml:"explanation"`
	} `yaml:"expect"`
}

func loadCases(t *testing.T, pattern string) map[string][]policyCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(policyTestdata, pattern))
	if err != nil || len(files) == 0 {
		t.Fatalf("no case files %s: %v", pattern, err)
	}
	out := map[string][]policyCase{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cs []policyCase
		if err := yaml.Unmarshal(data, &cs); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = cs
	}
	return out
}

func readResource(t testing.TB, path string) *fhir.ContainedResource {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cr, err := fhir.Decode(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cr
}

var statusCodes = map[string]cpb.ConsentStateCode_Value{
	"draft": cpb.ConsentStateCode_DRAFT, "proposed": cpb.ConsentStateCode_PROPOSED, "active": cpb.ConsentStateCode_ACTIVE,
	"rejected": cpb.ConsentStateCode_REJECTED, "inactive": cpb.ConsentStateCode_INACTIVE,
	"entered-in-error": cpb.ConsentStateCode_ENTERED_IN_ERROR,
}

// run evaluates a case.
func (c policyCase) run(t *testing.T) Decision {
	t.Helper()
	var consents []*conpb.Consent
	for _, f := range c.Consents {
		con := readResource(t, filepath.Join(policyTestdata, "consents", f)).GetConsent()
		if con == nil {
			t.Fatalf("%s is not a Consent", f)
		}
		if c.Status != "" {
			v, ok := statusCodes[c.Status]
			if !ok {
				t.Fatalf("unknown status %q", c.Status)
			}
			con.Status.Value = v
		}
		consents = append(consents, con)
	}
	var data []*fhir.ContainedResource
	for _, f := range c.Resources {
		data = append(data, readResource(t, filepath.Join(policyTestdata, "resources", f)))
	}
	p := &Partner{Kind: PartnerKind(c.Kind)}
	if id, ok := strings.CutPrefix(c.Actor, "Organization/"); ok {
		p.ID, p.Name = id, id
	} else if sys, val, ok := strings.Cut(c.Actor, "|"); ok {
		p.Identifiers = []Identifier{{System: sys, Value: val}}
		p.Name = c.Actor
	} else {
		t.Fatalf("actor %q", c.Actor)
	}
	at, err := time.Parse(time.RFC3339, c.At)
	if err != nil {
		t.Fatalf("at: %v", err)
	}
	e, err := NewEngine(nil)
	if err != nil {
		t.Fatal(err)
	}
	return e.Decide(Request{Partner: p, Purpose: c.Purpose, Action: c.Action, At: at, Base: BasePolicy(c.Base)}, consents, data...)
}

// obligationStrings renders obligations as the case files write them.
func obligationStrings(os []Obligation) []string {
	var out []string
	for _, o := range os {
		s := string(o.Action) + " " + o.Target
		if o.Label != nil {
			s += " " + o.Label.String()
		}
		out = append(out, s+" ("+o.Because+")")
	}
	return out
}

func stepStrings(ss []Step) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.String())
	}
	return out
}

func TestPolicyCases(t *testing.T) {
	for file, cases := range loadCases(t, "cases/*.yaml") {
		var actual []any
		for _, c := range cases {
			t.Run(strings.TrimSuffix(file, ".yaml")+"/"+c.Name, func(t *testing.T) {
				d := c.run(t)
				got := struct {
					Decision    string   `yaml:"decision"`
					Obligations []string `yaml:"obligations"`
					Trail       []string `yaml:"trail"`
					Explanation string   `yaml:"explanation"`
				}{string(d.Effect), obligationStrings(d.Obligations), stepStrings(d.Trail), d.Explain()}
				actual = append(actual, got)
				if *showCases {
					b, _ := yaml.Marshal(map[string]any{"expect": got})
					fmt.Printf("# %s / %s\n%s\n", file, c.Name, b)
				}
				if *updateCases {
					return
				}
				if got.Decision != c.Expect.Decision {
					t.Errorf("decision %q, want %q", got.Decision, c.Expect.Decision)
				}
				if !slices.Equal(got.Trail, c.Expect.Trail) {
					t.Errorf("trail:\n  got  %q\n  want %q", got.Trail, c.Expect.Trail)
				}
				if !slices.Equal(got.Obligations, c.Expect.Obligations) {
					t.Errorf("obligations:\n  got  %q\n  want %q", got.Obligations, c.Expect.Obligations)
				}
				if got.Explanation != c.Expect.Explanation {
					t.Errorf("explanation:\n  got  %q\n  want %q", got.Explanation, c.Expect.Explanation)
				}
			})
		}
		if *updateCases {
			rewriteExpectations(t, filepath.Join(policyTestdata, "cases", file), actual)
		}
	}
}

// rewriteExpectations replaces the expect block of every case in a case
// file, keeping its comments, anchors and order.
func rewriteExpectations(t *testing.T, path string, actual []any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	seq := doc.Content[0]
	if len(seq.Content) != len(actual) {
		t.Fatalf("%s: %d cases, %d results", path, len(seq.Content), len(actual))
	}
	for i, item := range seq.Content {
		var v yaml.Node
		if err := v.Encode(actual[i]); err != nil {
			t.Fatal(err)
		}
		replaced := false
		for j := 0; j+1 < len(item.Content); j += 2 {
			if item.Content[j].Value == "expect" {
				item.Content[j+1] = &v
				replaced = true
			}
		}
		if !replaced {
			item.Content = append(item.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "expect"}, &v)
		}
	}
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(b.String(), "!!merge <<:", "<<:")), 0o644); err != nil {
		t.Fatal(err)
	}
}
