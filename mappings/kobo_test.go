package mappings

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// readKobo reads the sample KoboToolbox export as the JSON connector does
// (numbers as json.Number).
func readKobo(t *testing.T) []JSONFields {
	t.Helper()
	data, err := os.ReadFile("../testdata/mappings/kobo-referrals.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var subs []map[string]any
	if err := dec.Decode(&subs); err != nil {
		t.Fatal(err)
	}
	out := make([]JSONFields, len(subs))
	for i, s := range subs {
		out[i] = JSONFields(s)
	}
	return out
}

func TestKoboJSON(t *testing.T) {
	m, err := Builtin("kobo-json")
	if err != nil {
		t.Fatal(err)
	}
	subs := readKobo(t)
	if len(subs) != 6 {
		t.Fatalf("%d submissions", len(subs))
	}

	r, err := m.Apply(subs[0])
	if err != nil {
		t.Fatal(err)
	}
	p, s := r.Patient, r.Service
	if r.RecordID != "6c1f0e7a-3b52-4d1e-9a8f-2e4b7c9d0a11" || p.GivenName != "Rasha" || p.BirthDate != "1989-04-02" ||
		strings.Join(p.Languages, ",") != "ar,en" || p.PreferredLanguage != "ar" || p.ContactPreference != "sms" ||
		p.CountryOfBirth.Code != "SY" || p.LegalStatus.Code != "asylum-seeker" || p.YearOfArrival != "2024" {
		t.Errorf("patient: %+v", p)
	}
	// Select-multiple answers are space-separated codes.
	if len(s.Categories) != 1 || len(s.Needs) != 3 || s.Needs[1].Code != "immigration-advice" || s.Priority != "urgent" ||
		s.Requester != "ngo-harbour" || s.LinkWorkerSex != "female" || s.AuthoredOn.Format("2006-01-02T15:04:05Z07:00") != "2026-11-20T09:41:05+02:00" {
		t.Errorf("service: %+v", s)
	}
	if c := r.Consent; !*c.Given || strings.Join(c.Partners, ",") != "clinic-riverside,community-garden" ||
		strings.Join(c.Purposes, ",") != "TREAT,COC" || c.ShareImmigrationData || c.Method != "verbal" {
		t.Errorf("consent: %+v", c)
	}
	if pr := r.Practitioner; pr.FamilyName != "Haddad" || len(pr.Identifiers) != 1 || pr.Identifiers[0] != (Identifier{System: "kobo-user", Value: "harbour_cw2"}) {
		t.Errorf("practitioner: %+v", pr)
	}
	if len(r.Screenings) != 2 || *r.Screenings[0].Score != 17 || len(r.Risks) != 1 || r.Risks[0].Code.Code != "248062006" {
		t.Errorf("screenings %+v, risks %+v", r.Screenings, r.Risks)
	}

	// A pseudonymous minor: birth year only, three risks ticked, consent to share immigration data.
	r, err = m.Apply(subs[2])
	if err != nil {
		t.Fatal(err)
	}
	if r.Patient.GivenName != "" || r.Patient.Pseudonym != "Client K." || r.Patient.BirthDate != "2009" || len(r.Risks) != 3 ||
		!r.Consent.ShareImmigrationData || len(r.Service.Notes) != 2 || r.Service.Priority != "urgent" {
		t.Errorf("submission 3: %+v", r)
	}

	// Consent declined; no caseworker named and _submitted_by null: no Practitioner.
	r, err = m.Apply(subs[3])
	if err != nil {
		t.Fatal(err)
	}
	if r.Consent.Given == nil || *r.Consent.Given || len(r.Practitioner.Identifiers) != 0 || r.Patient.PreferredLanguage != "ti" {
		t.Errorf("submission 4: %+v", r)
	}

	// Rejected on purpose, every reason named, no value quoted.
	for i, want := range map[int][]string{
		4: {`record (from "_validation_status/uid"): the submission is marked Not Approved`},
		5: {`patient.gender (from "grp_client/gender"): value not in table "gender"`, `patient.birth_date (from "grp_client/dob"): not a valid date`, `service.categories (from "grp_referral/services"): required, but empty: the record has no such key (check its name)`},
	} {
		_, err := m.Apply(subs[i])
		var re *RecordError
		if !errors.As(err, &re) || len(re.Problems) != len(want) {
			t.Fatalf("submission %d: %v", i+1, err)
		}
		for j, w := range want {
			if !strings.HasPrefix(re.Problems[j].String(), w) {
				t.Errorf("submission %d problem %d: %q, want %q", i+1, j, re.Problems[j], w)
			}
		}
		if strings.Contains(err.Error(), "woman") || strings.Contains(err.Error(), "1994") {
			t.Errorf("a reason shows a value: %v", err)
		}
	}
}
