package main

import (
	"strings"
	"testing"
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
	if code != 0 || !strings.Contains(out, "ngo-referral-csv") || !strings.Contains(out, "csv") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}
