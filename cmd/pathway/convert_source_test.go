package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// bundleIDs returns the ids of the entries of each bundle line.
func bundleIDs(t *testing.T, ndjson string) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(ndjson, "\n"), "\n") {
		var b struct {
			Entry []struct {
				Resource struct{ ID string } `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal([]byte(l), &b); err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Entry {
			ids[e.Resource.ID] = true
		}
	}
	return ids
}

// Two NGOs using ngo-referral-csv each have a referral R-001: with their
// own --source-system, none of their ids collide; with the default they
// would, and convert warns about it.
func TestConvertSourceSystemSeparatesNGOs(t *testing.T) {
	dir := t.TempDir()
	row := "referral_id,service,referrer_org,referral_date\r\nR-001,mental-health,ngo-x,20/11/2026\r\n"
	a := writeFile(t, dir, "ngo-a.csv", row)
	b := writeFile(t, dir, "ngo-b.csv", row)
	conv := func(args ...string) (map[string]bool, string) {
		t.Helper()
		code, stdout, stderr := runCmd(t, "", append([]string{"convert", "--mapping", "ngo-referral-csv"}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, stderr)
		}
		return bundleIDs(t, stdout), stderr
	}
	idsA, errA := conv("--source-system", "https://ngo-a.example/cases", a)
	idsB, _ := conv("--source-system", "https://ngo-b.example/cases", b)
	for id := range idsA {
		if idsB[id] {
			t.Errorf("NGO A and NGO B share the id %s", id)
		}
	}
	if strings.Contains(errA, "default source system") {
		t.Errorf("warned with --source-system given: %s", errA)
	}
	again, _ := conv("--source-system", "https://ngo-a.example/cases", a)
	if len(again) != len(idsA) {
		t.Fatal("ids differ between runs")
	}
	for id := range idsA {
		if !again[id] {
			t.Errorf("the same source system gave a different id than %s", id)
		}
	}
	defA, warn := conv(a)
	defB, _ := conv(b)
	if !strings.Contains(warn, "warning: the records' ids derive from the mapping's default source system https://pathway-fhir.org/source/ngo-referral-csv") ||
		!strings.Contains(warn, "--source-system") {
		t.Errorf("no warning for the default source system: %s", warn)
	}
	for id := range defA {
		if !defB[id] {
			t.Errorf("with the default, the ids should be the same (that is the collision); %s is not", id)
		}
	}
}

func TestConvertSourceSystemMustBeAbsoluteURI(t *testing.T) {
	for _, bad := range []string{"ngo-a", "/cases", "https://", "http://a b"} {
		if code, _, stderr := runCmd(t, "", "convert", "--mapping", "ngo-referral-csv", "--source-system", bad, sampleCSV); code != 2 || !strings.Contains(stderr, "--source-system") {
			t.Errorf("%q: exit %d, %s", bad, code, stderr)
		}
	}
}

// ngo-referral-csv takes several ;-separated risks, each a Flag, and
// parallel outcome lists, each an outcome Observation.
func TestConvertNGOOutcomesAndRisks(t *testing.T) {
	csv := "referral_id,service,referrer_org,referral_date,risk,outcome_code,outcome_value,outcome_date\r\n" +
		"R-1,mental-health,ngo-x,20/11/2026,self-harm;exploitation,phq-9;attended,12;yes,20/02/2027;20/12/2026\r\n"
	p := writeFile(t, t.TempDir(), "outcomes.csv", csv)
	code, stdout, stderr := runCmd(t, "", "convert", "--mapping", "ngo-referral-csv", "--source-system", "https://ngo-a.example/cases", p)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if n := strings.Count(stdout, `"resourceType":"Flag"`); n != 2 {
		t.Errorf("%d Flags, want 2", n)
	}
	if n := strings.Count(stdout, `"resourceType":"Observation"`); n != 2 || !strings.Contains(stdout, "44261-6") || !strings.Contains(stdout, "attended") {
		t.Errorf("%d Observations, want the two outcomes: %s", n, stdout)
	}
}
