package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCmd runs pathway in process and returns exit code, stdout and stderr.
func runCmd(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, streams{in: strings.NewReader(stdin), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const validTask = `{"resourceType":"Task","id":"t1","status":"requested","intent":"order"}`

func TestValidateExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.json", validTask)
	bad := writeFile(t, dir, "bad.json", `{"resourceType":"Task","id":"t2","status":"done","intent":"order"}`)
	tests := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"valid file", []string{"validate", good}, 0, "1 resources in 1 files: 1 valid, 0 invalid"},
		{"invalid file", []string{"validate", good, bad}, 1, "bad.json: Task/t2: invalid"},
		{"missing path is a usage error", []string{"validate", filepath.Join(dir, "nope.json")}, 2, ""},
		{"no path is a usage error", []string{"validate"}, 2, ""},
		{"unknown flag is a usage error", []string{"validate", "--colour", good}, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, "", tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			if !strings.Contains(out, tt.out) {
				t.Errorf("stdout lacks %q:\n%s", tt.out, out)
			}
			if tt.code == 2 && errOut == "" {
				t.Error("usage error printed nothing on stderr")
			}
		})
	}
}

// TestValidateDemoData checks the text report on the demo data: file,
// position (line for NDJSON) and every issue, without values.
func TestValidateDemoData(t *testing.T) {
	code, out, _ := runCmd(t, "", "validate", "../../testdata/demo")
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{
		"testdata/demo/broken-referral.json: ServiceRequest/broken-sr-1: invalid",
		"ServiceRequest.(unknown) [unknown-element]", // the key itself is input: shown only with --show-values
		"ServiceRequest.status [ele-1]",
		"testdata/demo/clinic-referrals.ndjson:4: Task/clinic-t-102: invalid",
		"11 resources in 3 files: 9 valid, 2 invalid",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "20/11/2026") || strings.Contains(out, "housing") {
		t.Errorf("report shows values from the input:\n%s", out)
	}
}

type record struct {
	File         string  `json:"file"`
	Index        *int    `json:"index"`
	ResourceType string  `json:"resourceType"`
	ID           string  `json:"id"`
	Valid        bool    `json:"valid"`
	Issues       []issue `json:"issues"`
}

type issue struct {
	Severity, Path, Code, Details string
}

func decodeRecords(t *testing.T, out string) []record {
	t.Helper()
	var recs []record
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r record
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if r.Issues == nil {
			t.Fatalf("issues must be a list, even empty: %q", line)
		}
		recs = append(recs, r)
	}
	return recs
}

func TestValidateJSON(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a/bundle.json", `{"resourceType":"Bundle","type":"collection","entry":[{"resource":`+validTask+`},{"resource":{"resourceType":"Patient","id":"p","gender":"x"}}]}`)
	writeFile(t, dir, "b/list.ndjson", validTask+"\n\n"+`{"resourceType":"Nope"}`+"\n")
	writeFile(t, dir, "b/ignored.txt", "not looked at")
	code, out, errOut := runCmd(t, "", "validate", "--json", dir)
	if code != 1 {
		t.Fatalf("exit %d:\n%s%s", code, out, errOut)
	}
	recs := decodeRecords(t, out)
	type got struct {
		file  string
		index int
		key   string
		valid bool
	}
	var gots []got
	for _, r := range recs {
		idx := -1
		if r.Index != nil {
			idx = *r.Index
		}
		gots = append(gots, got{filepath.Base(r.File), idx, r.ResourceType + "/" + r.ID, r.Valid})
	}
	want := []got{
		{"bundle.json", -1, "Bundle/", true}, // the Bundle's own elements are fine; entry 1 is not
		{"bundle.json", 0, "Task/t1", true},
		{"bundle.json", 1, "Patient/p", false},
		{"list.ndjson", 1, "Task/t1", true},
		{"list.ndjson", 3, "/", false}, // an unknown type is not echoed
	}
	if len(gots) != len(want) {
		t.Fatalf("records %v, want %v", gots, want)
	}
	for i := range want {
		if gots[i] != want[i] {
			t.Errorf("record %d = %v, want %v", i, gots[i], want[i])
		}
	}
	if p := recs[2].Issues[0].Path; p != "Bundle.entry[1].resource.Patient.gender" {
		t.Errorf("entry issue path %q", p)
	}
	if !strings.Contains(errOut, "5 resources in 2 files: 3 valid, 2 invalid") {
		t.Errorf("summary on stderr: %q", errOut)
	}
}

func TestValidateStdin(t *testing.T) {
	code, out, _ := runCmd(t, "{\n  \"resourceType\": \"Task\",\n  \"status\": \"requested\",\n  \"intent\": \"order\"\n}\n", "validate", "--json", "-")
	if recs := decodeRecords(t, out); code != 0 || len(recs) != 1 || recs[0].File != "<stdin>" || recs[0].Index != nil || !strings.Contains(out, `"file":"<stdin>"`) {
		t.Fatalf("pretty JSON on stdin: exit %d, %s", code, out)
	}
	code, out, _ = runCmd(t, validTask+"\n"+validTask+"\n"+`{"resourceType":"Task"}`, "validate", "--json", "-")
	recs := decodeRecords(t, out)
	if code != 1 || len(recs) != 3 || *recs[2].Index != 3 || recs[2].Valid {
		t.Fatalf("NDJSON on stdin: exit %d, %s", code, out)
	}
}

func TestValidateBadInputs(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"array.json":   `[` + validTask + `]`,
		"text.json":    `hello`,
		"empty.json":   ``,
		"unknown.json": `{"resourceType":"Referral","id":"r"}`,
	}
	for name, content := range files {
		writeFile(t, dir, name, content)
	}
	if err := os.Symlink(filepath.Join(dir, "gone"), filepath.Join(dir, "dangling.json")); err != nil {
		t.Fatal(err)
	}
	big, err := os.Create(filepath.Join(dir, "huge.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := big.Truncate(65 << 20); err != nil { // sparse: a 65 MiB file costs no disk
		t.Fatal(err)
	}
	big.Close()

	code, out, _ := runCmd(t, "", "validate", "--json", dir)
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	byFile := map[string]record{}
	for _, r := range decodeRecords(t, out) {
		byFile[filepath.Base(r.File)] = r
	}
	wants := map[string]string{
		"array.json":    "a JSON array",
		"text.json":     "not a JSON object",
		"empty.json":    "empty input",
		"unknown.json":  "unknown resourceType",
		"dangling.json": "open: no such file or directory",
		"huge.json":     "larger than 64 MiB",
	}
	for name, want := range wants {
		r, ok := byFile[name]
		if !ok {
			t.Errorf("%s: no record", name)
			continue
		}
		if r.Valid || len(r.Issues) == 0 || !strings.Contains(r.Issues[0].Details, want) {
			t.Errorf("%s: want an issue saying %q, got %+v", name, want, r)
		}
		if name == "huge.json" && r.Issues[0].Code != "too-large" {
			t.Errorf("huge.json: code %q, want too-large", r.Issues[0].Code)
		}
	}
}

func TestValidateHelp(t *testing.T) {
	code, out, _ := runCmd(t, "", "validate", "--help")
	if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "--json") || !strings.Contains(out, "Exit status") {
		t.Fatalf("help (exit %d):\n%s", code, out)
	}
}

func TestValidateShowValues(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "x.json", `{"resourceType":"Task","status":"requested","intent":"order","referralReason":"housing"}`)
	_, out, _ := runCmd(t, "", "validate", p)
	if strings.Contains(out, "referralReason") {
		t.Fatalf("the offending key is shown without --show-values:\n%s", out)
	}
	_, out, errOut := runCmd(t, "", "validate", "--show-values", p)
	if !strings.Contains(out, `"referralReason"`) || !strings.Contains(errOut, "personal data") {
		t.Fatalf("--show-values must show the key and warn:\n%s\n%s", out, errOut)
	}
	_, out, _ = runCmd(t, "", "validate", "--show-values", "--json", p)
	if !strings.Contains(out, `"diagnostics":"\"referralReason\""`) {
		t.Fatalf("--json --show-values: %s", out)
	}
}
