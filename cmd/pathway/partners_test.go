package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pathway-fhir/pathway/exchange"
)

func TestParsePartnersImport(t *testing.T) {
	for _, tc := range []struct {
		from, kind string
		files      []string
		ok         bool
	}{
		{"hsds", "", []string{"a.json"}, true},
		{"fhir", "clinic", []string{"a.json", "b.ndjson"}, true},
		{"", "", []string{"a.json"}, false},
		{"csv", "", []string{"a.json"}, false},
		{"hsds", "auditor", []string{"a.json"}, false},
		{"hsds", "", nil, false},
	} {
		_, err := parsePartnersImport(tc.from, tc.kind, false, tc.files)
		if (err == nil) != tc.ok {
			t.Errorf("parsePartnersImport(%q, %q, %v) = %v, want ok=%v", tc.from, tc.kind, tc.files, err, tc.ok)
		}
	}
}

func TestPartnersImportCommand(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "exchange", "directory")
	code, out, errOut := runCmd(t, "", "partners", "import", "--from", "fhir", "--kind", "ngo", filepath.Join(dir, "fhir", "pathway-directory.ndjson"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "- id: refugee-wellbeing-hub") || !strings.Contains(out, "# agreement:") {
		t.Errorf("stdout:\n%s", out)
	}
	if !strings.Contains(errOut, "warning: ") || !strings.Contains(errOut, "communication[3]") {
		t.Errorf("stderr: %s", errOut)
	}
	if _, err := exchange.ParseConfig("p.yaml", []byte("network:\n  id: n\n"+out)); err != nil {
		t.Errorf("fragment does not parse: %v", err)
	}

	code, out, _ = runCmd(t, "", "partners", "import", "--from", "hsds", "--kind", "community", "--json", filepath.Join(dir, "hsds", "tabular.json"))
	var doc struct {
		Partners []struct {
			ID       string `json:"id"`
			Kind     string `json:"kind"`
			Services struct {
				Languages []string `json:"languages"`
			} `json:"services"`
		} `json:"partners"`
		Warnings []struct{ File, Element, Message string } `json:"warnings"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Partners) != 1 || doc.Partners[0].Kind != "community" ||
		strings.Join(doc.Partners[0].Services.Languages, ",") != "ur" || len(doc.Warnings) == 0 {
		t.Errorf("--json: exit %d, %s", code, out)
	}

	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`[{"name":"no id"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCmd(t, "", "partners", "import", "--from", "hsds", "--kind", "ngo", bad)
	if code != 1 || out != "" || !strings.Contains(errOut, "bad.json: [0].id: an organization needs an id") {
		t.Errorf("bad input: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, _ = runCmd(t, "", "partners", "import", "--from", "xml", bad); code != 2 {
		t.Errorf("bad --from: exit %d, want 2", code)
	}
	if code, _, _ = runCmd(t, "", "partners", "import", "--from", "hsds", filepath.Join(dir, "missing.json")); code != 2 {
		t.Errorf("missing file: exit %d, want 2", code)
	}
}
