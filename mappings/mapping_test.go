package mappings

import (
	"encoding/csv"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestBuiltinsLoad(t *testing.T) {
	names := Builtins()
	if len(names) == 0 {
		t.Fatal("no built-in mappings")
	}
	for _, n := range names {
		if _, err := Builtin(n); err != nil {
			t.Errorf("built-in %s: %v", n, err)
		}
	}
	if _, err := Builtin("nope"); err == nil || !strings.Contains(err.Error(), "ngo-referral-csv") {
		t.Errorf("unknown built-in: %v", err)
	}
}

func readCSV(t testing.TB, path string) []MapFields {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []MapFields
	for _, row := range rows[1:] {
		m := MapFields{}
		for i, h := range rows[0] {
			m[h] = row[i]
		}
		out = append(out, m)
	}
	return out
}

func TestNGOReferralCSV(t *testing.T) {
	m, err := Builtin("ngo-referral-csv")
	if err != nil {
		t.Fatal(err)
	}
	rows := readCSV(t, "../testdata/mappings/ngo-referral.csv")
	if len(rows) != 6 {
		t.Fatalf("%d rows", len(rows))
	}

	r, err := m.Apply(rows[0])
	if err != nil {
		t.Fatal(err)
	}
	if r.RecordID != "R-2026-0101" || r.SourceSystem != "https://pathway-fhir.org/source/ngo-referral-csv" {
		t.Errorf("source: %q %q", r.SourceSystem, r.RecordID)
	}
	p := r.Patient
	if p.Gender != "female" || p.BirthDate != "1991-03" || strings.Join(p.Languages, ",") != "ar,en" || p.PreferredLanguage != "ar" ||
		p.InterpreterNeeded == nil || !*p.InterpreterNeeded || p.ContactPreference != "phone" {
		t.Errorf("patient: %+v", p)
	}
	if p.LegalStatus.Code != "asylum-seeker" || p.LegalStatus.System != "https://pathway-fhir.org/fhir/CodeSystem/pathway" ||
		p.CountryOfBirth.Code != "SY" || p.Ethnicity.Text != "Kurdish" || p.MigrantType.Code != "forced-migrant" {
		t.Errorf("sensitive fields: %+v", p)
	}
	s := r.Service
	if len(s.Categories) != 1 || s.Categories[0].Code != "mental-health" || len(s.Needs) != 3 || s.Needs[1].Code != "immigration-advice" {
		t.Errorf("service codes: %+v %+v", s.Categories, s.Needs)
	}
	if s.Priority != "routine" || s.TriageLevel.Code != "moderate" || s.LinkWorkerSex != "female" ||
		!s.AuthoredOn.Equal(time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC)) {
		t.Errorf("service: priority %q triage %q sex %q authored %v", s.Priority, s.TriageLevel.Code, s.LinkWorkerSex, s.AuthoredOn)
	}
	if len(s.Notes) != 1 || s.Notes[0] != "تحتاج إلى معالجة نفسية ناطقة بالعربية" {
		t.Errorf("Arabic note changed: %q", s.Notes)
	}
	c := r.Consent
	if c.Given == nil || !*c.Given || strings.Join(c.Partners, ",") != "clinic-riverside,community-garden" ||
		strings.Join(c.Purposes, ",") != "TREAT,COC" || c.ShareImmigrationData || c.End.IsZero() {
		t.Errorf("consent: %+v", c)
	}
	if len(r.Screenings) != 2 || r.Screenings[0].Instrument != "phq-9" || *r.Screenings[0].Score != 14 || r.Screenings[1].Instrument != "gad-7" {
		t.Errorf("screenings: %+v", r.Screenings)
	}
	if r.Task.Owner != "clinic-riverside" || len(r.Risks) != 0 {
		t.Errorf("task %+v risks %+v", r.Task, r.Risks)
	}
	// Two outcomes, their values and dates in the same order.
	if len(r.Outcomes) != 2 {
		t.Errorf("outcomes: %+v", r.Outcomes)
	}

	// Row 2: ISO dates, default purpose, RHS-15 alone becomes the only screening.
	r2, err := m.Apply(rows[1])
	if err != nil {
		t.Fatal(err)
	}
	if r2.Patient.BirthDate != "1988-04-12" || strings.Join(r2.Consent.Purposes, ",") != "COC" ||
		len(r2.Screenings) != 1 || r2.Screenings[0].Instrument != "rhs-15" || r2.Service.Notes[0] != "Хоче знайти групу підтримки для матерів" {
		t.Errorf("row 2: %+v", r2)
	}
	// Row 3: high risk is urgent, two risk flags, explicit immigration sharing, year-only birth date.
	r3, err := m.Apply(rows[2])
	if err != nil {
		t.Fatal(err)
	}
	if r3.Service.Priority != "urgent" || len(r3.Risks) != 2 || r3.Risks[0].Code.Code != "248062006" || r3.Risks[1].Code.Code != "exploitation" || !r3.Consent.ShareImmigrationData ||
		r3.Patient.BirthDate != "2008" || len(r3.Service.Categories) != 2 {
		t.Errorf("row 3: %+v", r3)
	}
	// Row 4: consent declined, Tigrinya survives, unknown country passes as text.
	r4, err := m.Apply(rows[3])
	if err != nil {
		t.Fatal(err)
	}
	if r4.Consent.Given == nil || *r4.Consent.Given || r4.Service.Notes[0] != "ናይ ትግርኛ ተርጓሚ የድሊ" || r4.Patient.Languages[0] != "ti" {
		t.Errorf("row 4: %+v", r4)
	}
}

func TestRejectedRecordsNameEveryProblem(t *testing.T) {
	m, err := Builtin("ngo-referral-csv")
	if err != nil {
		t.Fatal(err)
	}
	rows := readCSV(t, "../testdata/mappings/ngo-referral.csv")
	tests := []struct {
		row  int
		want []string
	}{
		{4, []string{
			`patient.birth_date (from "date_of_birth"): not a valid date in any of the formats DD/MM/YYYY, YYYY-MM-DD, MM/YYYY, YYYY`,
			`service.categories (from "service"): value not in table "services" (unmapped: reject)`,
		}},
		{5, []string{
			`service.triage (from "risk_level"): value not in table "triage" (unmapped: reject)`,
			`service.authored_on (from "referral_date"): required, but empty`,
			`consent.given (from "consent"): not a yes/no value`,
		}},
	}
	for _, tt := range tests {
		_, err := m.Apply(rows[tt.row])
		var re *RecordError
		if !errors.As(err, &re) {
			t.Fatalf("row %d: want a RecordError, got %v", tt.row, err)
		}
		if len(re.Problems) != len(tt.want) {
			t.Errorf("row %d: %d problems, want %d: %v", tt.row, len(re.Problems), len(tt.want), re)
		}
		for _, w := range tt.want {
			if !strings.Contains(re.Error(), w) {
				t.Errorf("row %d: problems lack %q:\n%v", tt.row, w, re)
			}
		}
		for _, v := range rows[tt.row] {
			if len(v) > 3 && strings.Contains(re.Error(), v) {
				t.Errorf("row %d: problem text shows a value %q: %v", tt.row, v, re)
			}
		}
	}
}
