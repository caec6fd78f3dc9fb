package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pathway-fhir/pathway/mappings"
)

func TestMappingLint(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", "mapping: g\ninput: {format: csv}\nfields:\n  source.system: {const: \"urn:x\"}\n  source.record_id: id\n")
	bad := writeFile(t, dir, "bad.yaml", "mapping: b\ninput: {format: csv}\nfields:\n  source.system: {const: \"urn:x\"}\n  source.record_id: id\n  patient.gendr: sex\n  service.authored_on: {from: d, date: [DD/MM/YY]}\n")
	code, out, _ := runCmd(t, "", "mapping", "lint", good)
	if code != 0 || !strings.Contains(out, "1 mapping files checked: no problems") {
		t.Fatalf("good mapping: exit %d\n%s", code, out)
	}
	code, out, errOut := runCmd(t, "", "mapping", "lint", good, bad)
	if code != 1 {
		t.Fatalf("bad mapping: exit %d\n%s", code, out)
	}
	for _, want := range []string{bad + `:6:3: unknown target "patient.gendr"`, bad + `:7:40: date format "DD/MM/YY"`} {
		if !strings.Contains(out, want) {
			t.Errorf("lint output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "1 of 2 mapping files have problems") {
		t.Errorf("stderr: %q", errOut)
	}
	if code, _, _ := runCmd(t, "", "mapping", "lint", dir+"/none.yaml"); code != 2 {
		t.Errorf("missing file: exit %d, want 2", code)
	}
}

func TestMappingList(t *testing.T) {
	code, out, _ := runCmd(t, "", "mapping", "list")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{"fhir-referral ", "hl7v2-ref-i12 ", "kobo-json ", "ngo-referral-csv "} {
		if !strings.Contains(out, want) {
			t.Errorf("mapping list lacks %s:\n%s", want, out)
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(mappings.Builtins()) || len(lines) < 4 {
		t.Errorf("%d lines for %d built-in mappings:\n%s", len(lines), len(mappings.Builtins()), out)
	}
	for _, l := range lines {
		if f := strings.Fields(l); len(f) < 3 || (f[1] != "csv" && f[1] != "json" && f[1] != "fhir" && f[1] != "hl7v2") {
			t.Errorf("line without a name, format and description: %q", l)
		}
	}
}

// TestMappingLintBuiltins lints every mapping shipped inside Pathway, as
// files, with pathway mapping lint.
func TestMappingLintBuiltins(t *testing.T) {
	files, err := filepath.Glob("../../mappings/builtin/*.yaml")
	if err != nil || len(files) != len(mappings.Builtins()) {
		t.Fatalf("%d files for %d built-ins (%v)", len(files), len(mappings.Builtins()), err)
	}
	code, out, errOut := runCmd(t, "", append([]string{"mapping", "lint"}, files...)...)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("%d mapping files checked: no problems", len(files))) {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
}
