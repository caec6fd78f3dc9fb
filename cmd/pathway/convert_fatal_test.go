package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// koboElements returns n copies of the sample's first submission, each
// with its own _uuid, as JSON array elements.
func koboElements(t *testing.T, prefix string, n int) []string {
	t.Helper()
	data, err := os.ReadFile("../../testdata/mappings/kobo-referrals.json")
	if err != nil {
		t.Fatal(err)
	}
	var subs []map[string]any
	if err := json.Unmarshal(data, &subs); err != nil {
		t.Fatal(err)
	}
	out := make([]string, n)
	for i := range out {
		subs[0]["_uuid"] = fmt.Sprintf("%s-%04d", prefix, i)
		b, _ := json.Marshal(subs[0])
		out[i] = string(b)
	}
	return out
}

// A JSON array broken at element 301 stops that input only: the 300
// bundles before it are whole on stdout, the next input converts, the
// failure is in the rejects file with its file and line, and the summary
// is printed.
func TestConvertFatalInputErrorGoesOn(t *testing.T) {
	dir := t.TempDir()
	broken := writeFile(t, dir, "broken.json", "[\n"+strings.Join(koboElements(t, "a", 300), ",\n")+",\n{\"_uuid\" \"x\"},\n"+koboElements(t, "z", 1)[0]+"\n]\n")
	good := writeFile(t, dir, "good.json", "["+strings.Join(koboElements(t, "b", 2), ",")+"]")
	rejects := filepath.Join(dir, "rejects.ndjson")
	code, stdout, stderr := runCmd(t, "", "convert", "--mapping", "kobo-json", "--rejects", rejects, broken, good)
	if code != 1 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 302 || !strings.HasSuffix(stdout, "\n") {
		t.Fatalf("%d bundle lines, want 302\n%s", len(lines), stderr)
	}
	for i, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Fatalf("line %d is not a whole bundle", i+1)
		}
	}
	if !strings.Contains(stderr, "302 records read, 302 converted, 0 rejected, 1 of 2 inputs not read to the end") {
		t.Errorf("summary: %s", stderr)
	}
	rej, err := os.ReadFile(rejects)
	if err != nil {
		t.Fatal(err)
	}
	var r convertReject
	if err := json.Unmarshal(rej, &r); err != nil || r.Position != broken || len(r.Reasons) != 1 ||
		!strings.Contains(r.Reasons[0], "element 301") || !strings.Contains(r.Reasons[0], "input not read to the end") {
		t.Errorf("rejects: %s (%v)", rej, err)
	}
}

// With --out, a failed input still leaves the whole bundles converted in
// the output file, and the summary in JSON counts the failed input.
func TestConvertFatalInputErrorWithOut(t *testing.T) {
	dir := t.TempDir()
	broken := writeFile(t, dir, "broken.json", "["+strings.Join(koboElements(t, "a", 2), ",")+",{]")
	noHeader := writeFile(t, dir, "empty.json", "")
	out := filepath.Join(dir, "out.ndjson")
	code, _, stderr := runCmd(t, "", "convert", "--mapping", "kobo-json", "--json", "--out", out, broken, noHeader)
	if code != 1 || !strings.Contains(stderr, `"converted":2`) || !strings.Contains(stderr, `"inputs_failed":2`) ||
		!strings.Contains(stderr, broken+": input not read to the end") || !strings.Contains(stderr, noHeader+": input not read to the end") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	data, err := os.ReadFile(out)
	if err != nil || strings.Count(string(data), "\n") != 2 {
		t.Fatalf("output: %d lines, %v", strings.Count(string(data), "\n"), err)
	}
}
