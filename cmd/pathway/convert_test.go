package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pathway-fhir/pathway/fhir"
)

const sampleCSV = "../../testdata/mappings/ngo-referral.csv"

func TestConvertSample(t *testing.T) {
	dir := t.TempDir()
	out, rejects := filepath.Join(dir, "bundles.ndjson"), filepath.Join(dir, "rejects.ndjson")
	code, stdout, stderr := runCmd(t, "", "convert", "--mapping", "ngo-referral-csv", "--out", out, "--rejects", rejects, sampleCSV)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "6 records read, 4 converted, 2 rejected") {
		t.Fatalf("exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
	first, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(first), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d bundles", len(lines))
	}
	for i, l := range lines {
		r := fhir.Parse([]byte(l))
		if !r.Valid() || r.ResourceType != "Bundle" {
			t.Errorf("bundle %d invalid: %v", i, r.Issues)
		}
	}
	for _, want := range []string{"تحتاج إلى معالجة نفسية ناطقة بالعربية", "Хоче знайти групу підтримки для матерів", "ናይ ትግርኛ ተርጓሚ የድሊ"} {
		if !strings.Contains(string(first), want) {
			t.Errorf("output lost the text %q", want)
		}
	}

	f, err := os.Open(rejects)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rej []convertReject
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r convertReject
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		rej = append(rej, r)
	}
	if len(rej) != 2 || rej[0].Position != sampleCSV+":5" || rej[1].Position != sampleCSV+":6" || len(rej[1].Reasons) != 3 ||
		!strings.Contains(rej[0].Record, "R-2026-0105") {
		t.Fatalf("rejects: %+v", rej)
	}
	for _, r := range rej {
		for _, reason := range r.Reasons {
			if strings.Contains(reason, "31/02/1990") || strings.Contains(reason, "counselling") || strings.Contains(reason, "maybe") {
				t.Errorf("a reason shows a value: %q", reason)
			}
		}
	}

	// The same input converts to the same bytes.
	_, _, _ = runCmd(t, "", "convert", "--mapping", "ngo-referral-csv", "--out", out, "--rejects", rejects, sampleCSV)
	second, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(first) != string(second) {
		t.Error("converting the same input twice gave different bytes")
	}
}

func TestConvertToStdoutWithoutRejectsFile(t *testing.T) {
	code, stdout, stderr := runCmd(t, "", "convert", "--mapping", "ngo-referral-csv", "--json", sampleCSV)
	if code != 1 || strings.Count(stdout, "\n") != 4 {
		t.Fatalf("exit %d, %d lines on stdout", code, strings.Count(stdout, "\n"))
	}
	if !strings.Contains(stderr, sampleCSV+":5: rejected:") || !strings.Contains(stderr, `"converted":4`) {
		t.Errorf("stderr: %s", stderr)
	}
}

func TestConvertDuplicateIDs(t *testing.T) {
	data, err := os.ReadFile(sampleCSV)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\r\n"), "\r\n")
	dup := strings.Join([]string{lines[0], lines[1], lines[2], lines[1]}, "\r\n") + "\r\n"
	p := writeFile(t, t.TempDir(), "dup.csv", dup)
	code, stdout, stderr := runCmd(t, "", "convert", "--mapping", "ngo-referral-csv", p)
	if code != 1 || strings.Count(stdout, "\n") != 2 || !strings.Contains(stderr, "dup.csv:3: rejected:") ||
		!strings.Contains(stderr, "the same record id as "+p+":1") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
}

func TestConvertUsageErrors(t *testing.T) {
	dir := t.TempDir()
	badMapping := writeFile(t, dir, "bad.yaml", "mapping: x\ninput: {format: csv}\nfields: {patient.gendr: g}\n")
	tests := [][]string{
		{"convert", sampleCSV},
		{"convert", "--mapping", "no-such-mapping", sampleCSV},
		{"convert", "--mapping", badMapping, sampleCSV},
		{"convert", "--mapping", "ngo-referral-csv", filepath.Join(dir, "none.csv")},
	}
	for _, args := range tests {
		if code, _, stderr := runCmd(t, "", args...); code != 2 || stderr == "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out.ndjson")); !os.IsNotExist(err) {
		t.Error("no output file may appear on a usage error")
	}
}
