package exchange

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pathway-fhir/pathway/policy"
)

var update = flag.Bool("update", false, "rewrite the partner-import golden files")

func readDirectoryFiles(t *testing.T, names ...string) []DirectoryFile {
	t.Helper()
	var fs []DirectoryFile
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "exchange", "directory", n))
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, DirectoryFile{Name: filepath.Base(n), Data: b})
	}
	return fs
}

// TestImportDirectoryGolden imports the samples and compares the YAML
// fragment and the warnings with golden files (refresh with
// -update). Each fragment must be a valid pathway.yaml with a
// minimal network section.
func TestImportDirectoryGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		format DirectoryFormat
		kind   string
		files  []string
	}{
		{"hsds-organization", DirectoryHSDS, "ngo", []string{"hsds/organization_full.json"}},
		{"hsds-tabular", DirectoryHSDS, "community", []string{"hsds/tabular.json"}},
		{"fhir", DirectoryFHIR, "ngo", []string{"fhir/Bundle-Example-MCSD.json", "fhir/Organization-f001.json", "fhir/Organization-hl7.json", "fhir/HealthcareService-example.json", "fhir/Endpoint-example.json", "fhir/pathway-directory.ndjson"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ImportDirectory(tc.format, readDirectoryFiles(t, tc.files...), DirectoryOptions{Kind: policyKind(tc.kind)})
			if err != nil {
				t.Fatal(err)
			}
			var got strings.Builder
			got.Write(d.YAML("pathway partners import --from " + string(tc.format)))
			got.WriteString("\n# warnings:\n")
			for _, w := range d.Warnings {
				got.WriteString("# " + w.String() + "\n")
			}
			golden := filepath.Join("..", "testdata", "exchange", "directory", "golden", tc.name+".yaml")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got.String() != string(want) {
				t.Errorf("output differs from %s (run with -update and review):\n%s", golden, got.String())
			}
			cfg, err := ParseConfig("imported.yaml", []byte("network:\n  id: test-network\n"+got.String()))
			if err != nil {
				t.Fatalf("the fragment is not a valid pathway.yaml: %v", err)
			}
			if len(cfg.Order) != len(d.Partners) || len(d.Partners) == 0 {
				t.Fatalf("config has %d partners, import %d", len(cfg.Order), len(d.Partners))
			}
			for _, p := range d.Partners {
				pp := cfg.Policy.Partner(p.ID)
				if pp == nil || len(pp.Agreement.Purposes) != 0 {
					t.Errorf("partner %s: want it present with no agreement purposes, got %+v", p.ID, pp)
				}
			}
		})
	}
}

func TestImportDirectoryMappings(t *testing.T) {
	d, err := ImportDirectory(DirectoryFHIR, readDirectoryFiles(t, "fhir/pathway-directory.ndjson", "fhir/Organization-f001.json", "fhir/HealthcareService-example.json", "fhir/Endpoint-example.json", "fhir/Organization-hl7.json"), DirectoryOptions{Kind: "ngo"})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]DirectoryPartner{}
	for _, p := range d.Partners {
		byID[p.ID] = p
	}
	hub := byID["refugee-wellbeing-hub"]
	if hub.Kind != "community" || hub.Endpoint != "https://fhir.rwh.example.org/r4" ||
		strings.Join(hub.Services.Categories, ",") != "food-support,housing,language-support" ||
		strings.Join(hub.Services.Languages, ",") != "ar,prs,ti" || strings.Join(hub.Services.Catchment, ",") != "E1,E2" {
		t.Errorf("hub = %+v", hub)
	}
	if f := byID["f001"]; f.Kind != "clinic" || strings.Join(f.Services.Categories, ",") != "mental-health" {
		t.Errorf("f001 = %+v", f)
	}
	if h := byID["hl7"]; h.Endpoint != "" || h.Kind != "ngo" || h.KindFrom != "--kind" {
		t.Errorf("hl7: a plain-http endpoint must not be used and the kind must come from --kind: %+v", h)
	}
	for _, w := range d.Warnings {
		if strings.Contains(w.Message, "Ann Persona") || strings.Contains(w.Message, "silent") {
			t.Errorf("warning carries personal data: %s", w)
		}
	}
}

func TestPartnerIDFromDirectory(t *testing.T) {
	for in, want := range map[string]string{
		"d9d5e0f5-d3ce-4f73-9a2f-4dd0ecc6c610": "d9d5e0f5-d3ce-4f73-9a2f-4dd0ecc6c610",
		"Org A/1":                              "Org-A-1-",
	} {
		got := PartnerIDFromDirectory(in)
		if !strings.HasPrefix(got, want) || !fhirIDPattern.MatchString(got) {
			t.Errorf("PartnerIDFromDirectory(%q) = %q, want prefix %q and a FHIR id", in, got, want)
		}
		if PartnerIDFromDirectory(in) != got {
			t.Errorf("not stable for %q", in)
		}
	}
	long := strings.Repeat("x", 80)
	if a, b := PartnerIDFromDirectory(long), PartnerIDFromDirectory(long+"y"); a == b || len(a) > 64 {
		t.Errorf("long ids: %q %q", a, b)
	}
}

func TestImportDirectoryErrors(t *testing.T) {
	org := `{"id":"org-1","name":"One","services":[]}`
	for _, tc := range []struct {
		name   string
		format DirectoryFormat
		kind   string
		files  []DirectoryFile
		want   []string
	}{
		{"hsds not json", DirectoryHSDS, "ngo", []DirectoryFile{{"dir.json", []byte("organizations: [")}}, []string{"dir.json: not valid JSON"}},
		{"fhir not json", DirectoryFHIR, "ngo", []DirectoryFile{{"dir.json", []byte("<Bundle/>")}}, []string{"dir.json: not valid JSON"}},
		{"hsds missing id", DirectoryHSDS, "ngo", []DirectoryFile{{"dir.json", []byte(`[{"name":"No id"}]`)}}, []string{"dir.json: [0].id: an organization needs an id"}},
		{"hsds tabular missing id", DirectoryHSDS, "ngo", []DirectoryFile{{"t.json", []byte(`{"organizations":[{"id":"a"},{"name":"x"}]}`)}}, []string{"t.json: organizations[1].id: an organization needs an id"}},
		{"hsds wrong type", DirectoryHSDS, "ngo", []DirectoryFile{{"dir.json", []byte(`{"id":"a","services":{"id":"s"}}`)}}, []string{"dir.json: services: wrong type"}},
		{"hsds duplicate across files", DirectoryHSDS, "ngo", []DirectoryFile{{"a.json", []byte(org)}, {"b.json", []byte(org)}}, []string{`b.json: (root).id: duplicate organization id "org-1": also at a.json: (root)`}},
		{"hsds no kind", DirectoryHSDS, "", []DirectoryFile{{"a.json", []byte(org)}}, []string{`a.json: (root): the directory does not make clear whether organization "org-1" is a clinic, an NGO or a community support: give --kind`}},
		{"fhir missing id", DirectoryFHIR, "ngo", []DirectoryFile{{"o.json", []byte(`{"resourceType":"Organization","name":"x"}`)}}, []string{"o.json: Organization.id: an Organization needs an id"}},
		{"fhir duplicate", DirectoryFHIR, "ngo", []DirectoryFile{{"o.ndjson", []byte(`{"resourceType":"Organization","id":"o1"}` + "\n" + `{"resourceType":"Organization","id":"o1"}` + "\n")}}, []string{`o.ndjson: line 2 Organization/o1.id: duplicate organization id "o1": also at o.ndjson: line 1 Organization/o1`}},
		{"fhir invalid", DirectoryFHIR, "ngo", []DirectoryFile{{"e.json", []byte(`{"resourceType":"Endpoint","id":"e","status":"bogus"}`)}}, []string{"e.json: Endpoint/e: invalid:"}},
		{"fhir not a resource", DirectoryFHIR, "ngo", []DirectoryFile{{"x.json", []byte(`{"id":"x"}`)}}, []string{"x.json: not a FHIR R4 resource"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ImportDirectory(tc.format, tc.files, DirectoryOptions{Kind: policyKind(tc.kind)})
			var de *DirectoryError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want a *DirectoryError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if _, err := ImportDirectory(DirectoryHSDS, nil, DirectoryOptions{Kind: "auditor"}); err == nil {
		t.Error("kind auditor accepted")
	}
}

func policyKind(s string) policy.PartnerKind { return policy.PartnerKind(s) }
