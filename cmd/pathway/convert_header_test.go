package main

import (
	"strings"
	"testing"
)

// A misspelt triage column must not pass silently: the record would
// convert as routine with no triage, and stepped care would route it wrong.
func TestConvertWarnsOnMisspeltRiskColumn(t *testing.T) {
	csv := "referral_id,service,referrer_org,referral_date,risk_levle,shoe_size\r\n" +
		"R-1,mental-health,ngo-harbour,20/11/2026,imminent,forty-three\r\n"
	p := writeFile(t, t.TempDir(), "misspelt.csv", csv)
	code, stdout, stderr := runCmd(t, "", "convert", "--mapping", "ngo-referral-csv", p)
	if code != 0 || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	for _, want := range []string{
		p + `: WARNING: no column "risk_level"`, "service.priority", "service.triage", `the header has "risk_levle"`,
		`warning: no column "approach", "client_id", `, `"phq9", `,
		`the mapping reads no column "risk_levle", "shoe_size"`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	for _, cell := range []string{"imminent", "R-1", "forty-three"} {
		if strings.Contains(stderr, cell) {
			t.Errorf("stderr shows the cell %q:\n%s", cell, stderr)
		}
	}
}

func TestConvertRejectsFileMissingRequiredColumn(t *testing.T) {
	csv := "referral_id,service,referrer_org,referal_date,risk_level\r\n" +
		"R-1,mental-health,ngo-harbour,20/11/2026,imminent\r\n"
	p := writeFile(t, t.TempDir(), "missing.csv", csv)
	code, stdout, stderr := runCmd(t, "", "convert", "--mapping", "ngo-referral-csv", p)
	if code != 1 || stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	for _, want := range []string{p, `no column "referral_date" (required by service.authored_on)`, `the header has "referal_date"`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "20/11/2026") || strings.Contains(stderr, "imminent") {
		t.Errorf("stderr shows a cell:\n%s", stderr)
	}
}
