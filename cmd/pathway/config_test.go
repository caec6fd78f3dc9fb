package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInitThenLint(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pathway.yaml")
	if code, out, errOut := runCmd(t, "", "init", file); code != 0 || !strings.Contains(out, "config lint") {
		t.Fatalf("init: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := runCmd(t, "", "init", file); code != 2 || !strings.Contains(errOut, "--force") {
		t.Errorf("init over an existing file: exit %d %s", code, errOut)
	}
	if code, out, errOut := runCmd(t, "", "config", "lint", file); code != 0 || !strings.Contains(out, ": ok") {
		t.Fatalf("lint of the starter: exit %d\n%s%s", code, out, errOut)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(data), "client_secret: {env: CLINIC_B_CLIENT_SECRET}", "client_secret: sup3rs3cret", 1)
	bad = strings.Replace(bad, "to: [community-e]", "to: [community-x]", 1)
	if err := os.WriteFile(file, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCmd(t, "", "config", "lint", file)
	if code != 1 || !strings.Contains(out, "partners[0].auth.client_secret: a secret is written in the file") ||
		!strings.Contains(out, `unknown partner "community-x"`) || strings.Contains(out, "sup3rs3cret") {
		t.Errorf("lint of a bad file: exit %d\n%s", code, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(line, file+":") {
			t.Errorf("problem not as file:line:col: %q", line)
		}
	}
	code, out, _ = runCmd(t, "", "config", "lint", "--json", file)
	var res struct {
		Valid    bool
		Problems []struct {
			Line    int
			Message string
		}
	}
	if code != 1 || json.Unmarshal([]byte(out), &res) != nil || res.Valid || len(res.Problems) != 2 || res.Problems[0].Line == 0 {
		t.Errorf("lint --json: exit %d %s", code, out)
	}
	if code, _, _ := runCmd(t, "", "config", "lint", filepath.Join(t.TempDir(), "none.yaml")); code != 2 {
		t.Errorf("lint of a missing file: exit %d, want 2", code)
	}
}
