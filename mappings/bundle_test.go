package mappings

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pathway-fhir/pathway/fhir"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	conpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/consent_go_proto"
	obspb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/observation_go_proto"
	ppb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/patient_go_proto"
	srpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/service_request_go_proto"
	tpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/task_go_proto"
)

// updateGolden rewrites the golden bundles: go test ./mappings -run TestBuildGolden -update
var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/mappings/golden")

const bundleGoldenDir = "../testdata/mappings/golden"

// Local code systems of the fictional NGO in the fixtures.
const (
	bundleNGOServices = "https://ngo-a.example/fhir/CodeSystem/service"
	bundleNGONeeds    = "https://ngo-a.example/fhir/CodeSystem/need"
	bundleNGOSteps    = "https://ngo-a.example/fhir/CodeSystem/stepped-care"
	bundleNGORisks    = "https://ngo-a.example/fhir/CodeSystem/risk"
	bundleNGOOutcomes = "https://ngo-a.example/fhir/CodeSystem/outcome"
)

// Free text in the scripts NGO records hold. The mixed note has a
// decomposed é (e + U+0301), a right-to-left mark, a zero-width non-joiner
// (in the Dari note too), CRLF and a tab: none of it may be normalised.
var (
	bundleNoteArabic    = "تحتاج إلى دعم نفسي باللغة العربية، وتفضّل أن تكون المعالِجة امرأة."
	bundleNoteUkrainian = "Потребує допомоги з реєстрацією у сімейного лікаря та пошуком житла."
	bundleNoteDari      = "او می\u200cخواهد با یک مددکار زن به زبان دری صحبت کند."
	bundleNoteTigrinya  = "ብቋንቋ ትግርኛ ክዝረብ ይደሊ። ቆጸራ ንግሆ ይሓይሽ።"
	bundleNoteMixed     = "Met at the Cafe\u0301 Unity drop-in\u200f.\r\nFollow-up:\tcall before Friday. "
)

func bundleBool(b bool) *bool { return &b }
func bundleInt(n int) *int    { return &n }

func bundleDay(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// bundleFullReferral sets every field of a Referral.
func bundleFullReferral() Referral {
	return Referral{
		SourceSystem: "https://ngo-a.example/cases",
		RecordID:     "case-2026-0042",
		Patient: Person{
			Identifier:        "client-881",
			Pseudonym:         "Umm Karim",
			GivenName:         "Amal",
			FamilyName:        "Haddad",
			Gender:            "female",
			BirthDate:         "1991-07",
			Languages:         []string{"en", "ar"},
			PreferredLanguage: "ar",
			InterpreterNeeded: bundleBool(true),
			Phone:             "+44 7700 900123",
			Email:             "amal.h@example.org",
			ContactPreference: "sms",
			CountryOfBirth:    Code{System: "urn:iso:std:iso:3166", Code: "SY", Display: "Syrian Arab Republic"},
			Ethnicity:         Code{Text: "Arab"},
			MigrantType:       Code{System: fhir.SystemPathway, Code: fhir.PathwayMigrantForced},
			LegalStatus:       Code{System: fhir.SystemPathway, Code: fhir.PathwayLegalStatusAsylumSeeker, Text: "asylum seeker, awaiting decision"},
			YearOfArrival:     "2023",
			MigrationHistory:  "Travelled through Türkiye and Greece; separated from her brother in 2022.",
		},
		Service: Service{
			ReferralIdentifier: "REF-7781",
			Categories: []Code{
				{System: bundleNGOServices, Code: "mental-health", Display: "Mental health support"},
				{System: bundleNGOServices, Code: "social-prescribing", Display: "Social prescribing"},
			},
			Needs: []Code{
				{System: bundleNGONeeds, Code: "housing", Display: "Housing"},
				{System: bundleNGONeeds, Code: "gp-registration", Display: "GP registration"},
				{System: bundleNGOServices, Code: "mental-health", Display: "Mental health support"}, // a duplicate: written once
			},
			Priority:      "urgent",
			TriageLevel:   Code{System: bundleNGOSteps, Code: "step-2", Display: "Step 2: low-intensity psychological support"},
			ReasonText:    "Low mood and poor sleep since arrival; feels isolated.",
			ReasonCodes:   []Code{{System: fhir.SystemSNOMED, Code: "35489007", Display: "Depressive disorder"}},
			Requester:     "ngo-a",
			RequesterName: "NGO A Community Link Service",
			AuthoredOn:    time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC),
			Notes:         []string{bundleNoteArabic, bundleNoteUkrainian, bundleNoteDari, bundleNoteTigrinya, bundleNoteMixed},
			LinkWorkerSex: "female",
			Format:        "individual",
			Approach:      "conversation",
			Instruction:   "Please avoid Friday appointments. الرجاء تجنب مواعيد يوم الجمعة.",
		},
		Consent: ConsentTerms{
			Given:        bundleBool(true),
			Date:         bundleDay(2026, 3, 2),
			Start:        bundleDay(2026, 3, 2),
			End:          bundleDay(2027, 3, 1),
			Partners:     []string{"clinic-b", "community-c"},
			PartnerKinds: []string{"community"},
			Purposes:     []string{"COC", "TREAT"},
			Method:       "verbal",
		},
		Task: TaskTerms{Owner: "clinic-b", OwnerName: "Clinic B Psychological Therapies"},
		Screenings: []Screening{
			{Instrument: "phq-9", Score: bundleInt(14), Date: bundleDay(2026, 2, 27)},
			{Instrument: "GAD-7", Score: bundleInt(11), Date: bundleDay(2026, 2, 27)},
			{Instrument: "rhs-15", Score: bundleInt(19), Date: time.Date(2026, 2, 20, 14, 5, 0, 0, time.FixedZone("", 2*3600))},
		},
		Risks: []Risk{
			{Code: Code{System: bundleNGORisks, Code: "self-harm", Display: "Risk of self-harm", Text: "passive thoughts of self-harm"}, Date: bundleDay(2026, 2, 27)},
		},
		Outcomes: []Outcome{
			{Code: Code{System: bundleNGOOutcomes, Code: "wemwbs", Display: "WEMWBS total"}, Value: "41", Date: bundleDay(2026, 3, 1)},
			{Code: Code{System: bundleNGOOutcomes, Code: "attended-first-session", Display: "Attended first session"}},
		},
	}
}

// bundleMinimalReferral is a pseudonymous record with one need in free text and
// nothing said about consent.
func bundleMinimalReferral() Referral {
	return Referral{
		SourceSystem: "https://ngo-b.example/intake",
		RecordID:     "K-17",
		Patient:      Person{Pseudonym: "Client K"},
		Service:      Service{Needs: []Code{{Text: "help finding somewhere to live"}}},
	}
}

// bundleDeclinedReferral is a record where the person declined consent.
func bundleDeclinedReferral() Referral {
	r := bundleMinimalReferral()
	r.RecordID = "K-18"
	r.Patient.Languages = []string{"uk"}
	r.Consent = ConsentTerms{Given: bundleBool(false), Date: bundleDay(2026, 4, 1), Method: "written"}
	return r
}

// bundleImmigrationReferral is a record where the person agreed that their
// immigration status may go to a legal-advice partner.
func bundleImmigrationReferral() Referral {
	return Referral{
		SourceSystem: "https://ngo-a.example/cases",
		RecordID:     "case-2026-0077",
		Patient: Person{
			Identifier:        "client-912",
			Pseudonym:         "Tesfay",
			Gender:            "male",
			BirthDate:         "1999",
			Languages:         []string{"ti", "prs"},
			InterpreterNeeded: bundleBool(false),
			ContactPreference: "via-caseworker",
			LegalStatus:       Code{System: fhir.SystemPathway, Code: fhir.PathwayLegalStatusRefusedAsylumSeeker},
			YearOfArrival:     "2021",
		},
		Service: Service{
			Needs:      []Code{{System: bundleNGONeeds, Code: "legal-advice", Display: "Legal or immigration advice"}},
			Priority:   "routine",
			Requester:  "ngo-a",
			AuthoredOn: time.Date(2026, 5, 11, 16, 0, 0, 0, time.FixedZone("", 3600)),
			Approach:   "signposting",
		},
		Consent: ConsentTerms{
			Given:                bundleBool(true),
			Date:                 bundleDay(2026, 5, 11),
			Start:                bundleDay(2026, 5, 11),
			Partners:             []string{"legal-aid-d"},
			ShareImmigrationData: true,
			Method:               "digital",
		},
		Task: TaskTerms{Owner: "legal-aid-d"},
	}
}

// bundleCases are the referrals every property test runs on.
var bundleCases = []struct {
	name   string
	golden bool
	r      func() Referral
}{
	{"full", true, bundleFullReferral},
	{"minimal-pseudonymous", true, bundleMinimalReferral},
	{"consent-declined", true, bundleDeclinedReferral},
	{"consent-immigration", true, bundleImmigrationReferral},
	{"name-only", false, func() Referral {
		r := bundleMinimalReferral()
		r.Patient = Person{FamilyName: "Kovalenko", Phone: "0300 123 4567", ContactPreference: "phone"}
		return r
	}},
	{"consent-given-no-partners", false, func() Referral {
		r := bundleMinimalReferral()
		r.Consent = ConsentTerms{Given: bundleBool(true), PartnerKinds: []string{"ngo", "community", "ngo"}}
		return r
	}},
	{"requester-name-only", false, func() Referral {
		r := bundleMinimalReferral()
		r.Service.RequesterName = "A GP practice"
		r.Task.OwnerName = "a name without an id"
		r.Patient.Email = "k@example.org"
		r.Patient.ContactPreference = "email"
		return r
	}},
}

// mustValid checks that a bundle is valid FHIR R4 without a single issue,
// built (fhir.Validate) and on the wire (fhir.Parse of fhir.Marshal), and
// returns its JSON.
func bundleMustValid(t *testing.T, bundle *rpb.Bundle) []byte {
	t.Helper()
	if is := fhir.Validate(bundle); len(is) > 0 {
		t.Errorf("fhir.Validate: %v", is)
	}
	data, err := fhir.Marshal(bundle)
	if err != nil {
		t.Fatalf("fhir.Marshal: %v", err)
	}
	res := fhir.Parse(data)
	if !res.Valid() || len(res.Issues) > 0 {
		t.Errorf("fhir.Parse: valid %v, issues %v", res.Valid(), res.Issues)
	}
	return data
}

func TestBuildGolden(t *testing.T) {
	for _, tc := range bundleCases {
		if !tc.golden {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			bundle, err := Build(tc.r())
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			bundleMustValid(t, bundle)
			got, err := fhir.MarshalIndent(bundle)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join(bundleGoldenDir, tc.name+".json")
			if *updateGolden {
				if err := os.MkdirAll(bundleGoldenDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./mappings -run TestBuildGolden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("bundle differs from %s (run with -update and review the diff)", path)
			}
		})
	}
}

func TestBuildValid(t *testing.T) {
	for _, tc := range bundleCases {
		t.Run(tc.name, func(t *testing.T) {
			bundle, err := Build(tc.r())
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			data := bundleMustValid(t, bundle)
			enc, err := Encode(tc.r())
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if !bytes.Equal(enc, data) {
				t.Error("Encode differs from fhir.Marshal(Build)")
			}
			r := tc.r()
			if got, want := bundle.GetId().GetValue(), fhir.NewID(r.SourceSystem, r.RecordID, "Bundle"); got != want {
				t.Errorf("bundle id %s, want %s", got, want)
			}
			if bundle.GetType().GetValue().String() != "TRANSACTION" || bundle.GetTimestamp() != nil {
				t.Errorf("want a transaction without timestamp, got %v, %v", bundle.GetType(), bundle.GetTimestamp())
			}
			for i, e := range bundle.GetEntry() {
				typ, id := fhir.TypeOf(e.GetResource()), fhir.IDOf(e.GetResource())
				if e.GetFullUrl().GetValue() != "urn:uuid:"+id {
					t.Errorf("entry %d: fullUrl %q for id %q", i, e.GetFullUrl().GetValue(), id)
				}
				if m, u := e.GetRequest().GetMethod().GetValue().String(), e.GetRequest().GetUrl().GetValue(); m != "PUT" || u != typ+"/"+id {
					t.Errorf("entry %d: %s %s, want PUT %s/%s", i, m, u, typ, id)
				}
			}
		})
	}
}

// resources returns the bundle's resources by type and id.
func bundleResources(t *testing.T, bundle *rpb.Bundle) map[string]proto.Message {
	t.Helper()
	out := map[string]proto.Message{}
	for _, e := range bundle.GetEntry() {
		out[fhir.Key(e.GetResource())] = fhir.Unwrap(e.GetResource())
	}
	return out
}

func TestBuildIDs(t *testing.T) {
	r := bundleFullReferral()
	bundle, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	id := func(parts ...string) string { return fhir.NewID(r.SourceSystem, r.RecordID, parts...) }
	want := []string{
		"Patient/" + id("Patient"),
		"ServiceRequest/" + id("ServiceRequest"),
		"Consent/" + id("Consent"),
		"Task/" + id("Task"),
		"Observation/" + id("Observation", "screening", "0"),
		"Observation/" + id("Observation", "screening", "1"),
		"Observation/" + id("Observation", "screening", "2"),
		"Flag/" + id("Flag", "0"),
		"Observation/" + id("Observation", "legal-status"),
		"Observation/" + id("Observation", "migrant-type"),
		"Observation/" + id("Observation", "year-of-arrival"),
		"Observation/" + id("Observation", "migration-history"),
		"Observation/" + id("Observation", "country-of-birth"),
		"Observation/" + id("Observation", "ethnicity"),
		"Observation/" + id("Observation", "outcome", "0"),
		"Observation/" + id("Observation", "outcome", "1"),
	}
	var got []string
	for _, e := range bundle.GetEntry() {
		got = append(got, fhir.Key(e.GetResource()))
	}
	if !slices.Equal(got, want) {
		t.Errorf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestBuildDeterministic(t *testing.T) {
	for _, tc := range bundleCases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Encode(tc.r())
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				b, err := Encode(tc.r())
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(a, b) {
					t.Fatal("two builds of the same referral differ")
				}
			}
		})
	}

	// A changed record: new content under the same ids.
	changes := map[string]func(*Referral){
		"note":        func(r *Referral) { r.Service.Notes[0] += "!" },
		"consent":     func(r *Referral) { r.Consent.ShareImmigrationData = true },
		"score":       func(r *Referral) { *r.Screenings[0].Score = 15 },
		"legal":       func(r *Referral) { r.Patient.LegalStatus.Code = fhir.PathwayLegalStatusRefugee },
		"authored on": func(r *Referral) { r.Service.AuthoredOn = r.Service.AuthoredOn.Add(time.Hour) },
	}
	base, err := Build(bundleFullReferral())
	if err != nil {
		t.Fatal(err)
	}
	baseJSON, _ := fhir.Marshal(base)
	for name, change := range changes {
		t.Run("change "+name, func(t *testing.T) {
			r := bundleFullReferral()
			change(&r)
			changed, err := Build(r)
			if err != nil {
				t.Fatal(err)
			}
			changedJSON, _ := fhir.Marshal(changed)
			if bytes.Equal(baseJSON, changedJSON) {
				t.Error("a changed referral gave the same bytes")
			}
			if !slices.Equal(bundleKeys(base), bundleKeys(changed)) || base.GetId().GetValue() != changed.GetId().GetValue() {
				t.Error("a changed referral gave different ids")
			}
		})
	}
}

func bundleKeys(b *rpb.Bundle) []string {
	var out []string
	for _, e := range b.GetEntry() {
		out = append(out, e.GetFullUrl().GetValue())
	}
	return out
}

// TestBuildTextByteExact reads the bundle back from JSON and finds every
// free text exactly as it went in.
func TestBuildTextByteExact(t *testing.T) {
	r := bundleFullReferral()
	data, err := Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	res := fhir.Parse(data)
	if !res.Valid() {
		t.Fatal(res.Issues)
	}
	var sr *srpb.ServiceRequest
	var history string
	for _, e := range fhir.Unwrap(res.Resource).(*rpb.Bundle).GetEntry() {
		switch x := fhir.Unwrap(e.GetResource()).(type) {
		case *srpb.ServiceRequest:
			sr = x
		case *obspb.Observation:
			if x.GetId().GetValue() == fhir.NewID(r.SourceSystem, r.RecordID, "Observation", "migration-history") {
				history = x.GetValue().GetStringValue().GetValue()
			}
		}
	}
	var notes []string
	for _, n := range sr.GetNote() {
		notes = append(notes, n.GetText().GetValue())
	}
	if !slices.Equal(notes, r.Service.Notes) {
		for i := range max(len(notes), len(r.Service.Notes)) {
			var got, want string
			if i < len(notes) {
				got = notes[i]
			}
			if i < len(r.Service.Notes) {
				want = r.Service.Notes[i]
			}
			if got != want {
				t.Errorf("note %d: got %+q, want %+q", i, got, want)
			}
		}
	}
	if pi := sr.GetPatientInstruction().GetValue(); !strings.HasSuffix(pi, " "+r.Service.Instruction) {
		t.Errorf("patientInstruction %q does not end with the instruction", pi)
	}
	if history != r.Patient.MigrationHistory {
		t.Errorf("migration history %q, want %q", history, r.Patient.MigrationHistory)
	}
	if !bytes.Contains(data, []byte("Cafe\u0301")) || !bytes.Contains(data, []byte("می\u200cخواهد")) {
		t.Error("the JSON lost a combining accent or a zero-width non-joiner")
	}
}

func TestBuildPatient(t *testing.T) {
	t.Run("pseudonymous", func(t *testing.T) {
		bundle, err := Build(bundleMinimalReferral())
		if err != nil {
			t.Fatal(err)
		}
		p := bundleFindPatient(t, bundle)
		if len(p.GetName()) != 1 {
			t.Fatalf("names: %v", p.GetName())
		}
		n := p.GetName()[0]
		if n.GetUse().GetValue().String() != "ANONYMOUS" || n.GetText().GetValue() != "Client K" || n.GetFamily() != nil || len(n.GetGiven()) > 0 {
			t.Errorf("name: %v", n)
		}
		if len(p.GetIdentifier()) > 0 || len(p.GetTelecom()) > 0 || len(p.GetExtension()) > 0 || p.GetMeta() != nil {
			t.Errorf("a pseudonymous record gave more than its pseudonym: %v", p)
		}
	})
	t.Run("full", func(t *testing.T) {
		r := bundleFullReferral()
		bundle, err := Build(r)
		if err != nil {
			t.Fatal(err)
		}
		p := bundleFindPatient(t, bundle)
		if id := p.GetIdentifier()[0]; id.GetSystem().GetValue() != "https://ngo-a.example/cases/client" || id.GetValue().GetValue() != "client-881" {
			t.Errorf("identifier: %v", id)
		}
		if got := len(p.GetName()); got != 2 || p.GetName()[1].GetUse().GetValue().String() != "ANONYMOUS" {
			t.Errorf("names: %v", p.GetName())
		}
		langs := p.GetCommunication()
		if len(langs) != 2 || langs[0].GetLanguage().GetCoding()[0].GetCode().GetValue() != "ar" || !langs[0].GetPreferred().GetValue() || langs[1].GetPreferred() != nil {
			t.Errorf("communication: %v", langs)
		}
		if ext := p.GetExtension(); len(ext) != 1 || ext[0].GetUrl().GetValue() != fhir.ExtInterpreterRequired || !ext[0].GetValue().GetBoolean().GetValue() {
			t.Errorf("extensions: %v", ext)
		}
		if tel := p.GetTelecom(); tel[0].GetSystem().GetValue().String() != "SMS" || tel[0].GetRank().GetValue() != 1 || tel[1].GetRank() != nil {
			t.Errorf("telecom: %v", tel)
		}
		if p.GetBirthDate().GetPrecision() != dpb.Date_MONTH {
			t.Errorf("birth date precision: %v", p.GetBirthDate())
		}
	})
}

func bundleFindPatient(t *testing.T, bundle *rpb.Bundle) *ppb.Patient {
	t.Helper()
	for _, e := range bundle.GetEntry() {
		if p, ok := fhir.Unwrap(e.GetResource()).(*ppb.Patient); ok {
			return p
		}
	}
	t.Fatal("no Patient")
	return nil
}

// TestBuildSensitiveData checks where migration data goes: never on the
// Patient, each fact an Observation labelled IMMIG and R, nothing
// referring to them.
func TestBuildSensitiveData(t *testing.T) {
	r := bundleFullReferral()
	bundle, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := fhir.Marshal(bundle)
	if bytes.Contains(data, []byte("patient-birthPlace")) {
		t.Error("country of birth is on the Patient")
	}
	id := func(kind string) string { return fhir.NewID(r.SourceSystem, r.RecordID, "Observation", kind) }
	labels := map[string][]string{
		id("legal-status"):      {"IMMIG", "R"},
		id("migrant-type"):      {"IMMIG", "R"},
		id("year-of-arrival"):   {"IMMIG", "R"},
		id("migration-history"): {"IMMIG", "R"},
		id("country-of-birth"):  {"IMMIG", "R"},
		id("ethnicity"):         {"R"},
	}
	seen := 0
	for _, e := range bundle.GetEntry() {
		res := fhir.Unwrap(e.GetResource())
		rid := fhir.IDOf(res)
		var got []string
		for _, c := range bundleSecurity(res) {
			got = append(got, c.GetCode().GetValue())
		}
		want, sensitive := labels[rid]
		if sensitive {
			seen++
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: labels %v, want %v", fhir.Key(res), got, want)
		}
		// No resource refers to a sensitive Observation.
		for other := range labels {
			if bytes.Contains(bundleMustMarshal(t, res), []byte(other)) && other != rid {
				t.Errorf("%s refers to the sensitive %s", fhir.Key(res), other)
			}
		}
	}
	if seen != len(labels) {
		t.Errorf("%d sensitive Observations, want %d", seen, len(labels))
	}
}

func bundleSecurity(m proto.Message) []*dpb.Coding {
	f := m.ProtoReflect().Descriptor().Fields().ByName("meta")
	if f == nil {
		return nil
	}
	meta, _ := m.ProtoReflect().Get(f).Message().Interface().(*dpb.Meta)
	return meta.GetSecurity()
}

func bundleMustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := fhir.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBuildServiceRequest(t *testing.T) {
	r := bundleFullReferral()
	bundle, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	res := bundleResources(t, bundle)
	id := func(parts ...string) string { return fhir.NewID(r.SourceSystem, r.RecordID, parts...) }
	sr := res["ServiceRequest/"+id("ServiceRequest")].(*srpb.ServiceRequest)
	var cats []string
	for _, c := range sr.GetCategory() {
		cats = append(cats, c.GetCoding()[0].GetCode().GetValue())
	}
	if want := []string{"mental-health", "social-prescribing", "housing", "gp-registration"}; !slices.Equal(cats, want) {
		t.Errorf("categories %v, want %v", cats, want)
	}
	if c := sr.GetCode().GetCoding()[0]; c.GetSystem().GetValue() != fhir.SystemSNOMED || c.GetCode().GetValue() != "3457005" {
		t.Errorf("code: %v", c)
	}
	var supporting []string
	for _, ref := range sr.GetSupportingInfo() {
		supporting = append(supporting, fhir.RefString(ref))
	}
	want := []string{"urn:uuid:" + id("Consent"), "urn:uuid:" + id("Observation", "screening", "0"),
		"urn:uuid:" + id("Observation", "screening", "1"), "urn:uuid:" + id("Observation", "screening", "2"),
		"urn:uuid:" + id("Flag", "0")}
	if !slices.Equal(supporting, want) {
		t.Errorf("supportingInfo %v, want %v", supporting, want)
	}
	wantPI := "Would prefer a female link worker. Would prefer one-to-one support. " +
		"Would like a personalised conversation about what matters to them. " +
		"Prefers to be contacted by text message (SMS). " + r.Service.Instruction
	if pi := sr.GetPatientInstruction().GetValue(); pi != wantPI {
		t.Errorf("patientInstruction:\n%q\nwant\n%q", pi, wantPI)
	}
	if len(sr.GetReasonCode()) != 2 || sr.GetReasonCode()[1].GetText().GetValue() != r.Service.ReasonText {
		t.Errorf("reasonCode: %v", sr.GetReasonCode())
	}
	if got := sr.GetAuthoredOn(); got.GetPrecision() != dpb.DateTime_SECOND {
		t.Errorf("authoredOn: %v", got)
	}
	task := res["Task/"+id("Task")].(*tpb.Task)
	if fhir.RefString(task.GetOwner()) != "Organization/clinic-b" || fhir.RefString(task.GetFocus()) != "urn:uuid:"+id("ServiceRequest") ||
		fhir.RefString(task.GetForValue()) != "urn:uuid:"+id("Patient") || fhir.RefString(task.GetRequester()) != "Organization/ngo-a" {
		t.Errorf("task: %v", task)
	}
}

// TestBuildDates: a midnight-UTC time is a date; other times keep their
// precision and offset.
func TestBuildDates(t *testing.T) {
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{bundleDay(2026, 3, 2), `"2026-03-02"`},
		{time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC), `"2026-03-02T09:30:00Z"`},
		{time.Date(2026, 3, 2, 0, 0, 0, 0, time.FixedZone("", 3600)), `"2026-03-02T00:00:00+01:00"`},
		{time.Date(2026, 3, 2, 0, 0, 0, 5e6, time.UTC), `"2026-03-02T00:00:00.005Z"`},
	} {
		r := bundleMinimalReferral()
		r.Service.AuthoredOn = tc.in
		data, err := Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(data, []byte(`"authoredOn":`+tc.want)) {
			t.Errorf("%v: want authoredOn %s in %s", tc.in, tc.want, data)
		}
	}
}

func TestBuildConsent(t *testing.T) {
	with := func(c ConsentTerms) Referral { r := bundleMinimalReferral(); r.Consent = c; return r }
	for _, tc := range []struct {
		name  string
		r     Referral
		check func(t *testing.T, c *conpb.Consent)
	}{
		{"not stated", bundleMinimalReferral(), func(t *testing.T, c *conpb.Consent) {
			if c.GetStatus().GetValue().String() != "PROPOSED" || c.GetProvision() != nil || len(c.GetPerformer()) > 0 {
				t.Errorf("consent: %v", c)
			}
		}},
		{"declined", with(ConsentTerms{Given: bundleBool(false), Partners: []string{"clinic-b"}}), func(t *testing.T, c *conpb.Consent) {
			p := c.GetProvision()
			if c.GetStatus().GetValue().String() != "ACTIVE" || p.GetType().GetValue().String() != "DENY" ||
				len(p.GetActor()) > 0 || len(p.GetPurpose()) > 0 || len(p.GetProvision()) > 0 {
				t.Errorf("consent: %v", c)
			}
		}},
		{"given, default purpose, immigration denied", with(ConsentTerms{Given: bundleBool(true), Partners: []string{"clinic-b", "clinic-b"}}), func(t *testing.T, c *conpb.Consent) {
			p := c.GetProvision()
			if p.GetType().GetValue().String() != "PERMIT" || len(p.GetActor()) != 1 || p.GetActor()[0].GetRole().GetCoding()[0].GetCode().GetValue() != "IRCP" {
				t.Errorf("provision: %v", p)
			}
			if len(p.GetPurpose()) != 1 || p.GetPurpose()[0].GetCode().GetValue() != "COC" {
				t.Errorf("purpose: %v", p.GetPurpose())
			}
			if n := p.GetProvision(); len(n) != 1 || n[0].GetType().GetValue().String() != "DENY" ||
				n[0].GetSecurityLabel()[0].GetCode().GetValue() != "IMMIG" || len(n[0].GetProvision()) > 0 {
				t.Errorf("nested: %v", n)
			}
			if c.GetPolicyRule().GetCoding()[0].GetCode().GetValue() != "OPTIN" || c.GetScope().GetCoding()[0].GetCode().GetValue() != "patient-privacy" {
				t.Errorf("policy or scope: %v", c)
			}
		}},
		{"given, immigration shared", bundleImmigrationReferral(), func(t *testing.T, c *conpb.Consent) {
			deny := c.GetProvision().GetProvision()[0]
			if len(deny.GetProvision()) != 1 {
				t.Fatalf("nested: %v", deny)
			}
			permit := deny.GetProvision()[0]
			if permit.GetType().GetValue().String() != "PERMIT" || permit.GetSecurityLabel()[0].GetCode().GetValue() != "IMMIG" ||
				fhir.RefString(permit.GetActor()[0].GetReference()) != "Organization/legal-aid-d" || permit.GetPurpose()[0].GetCode().GetValue() != "COC" {
				t.Errorf("immigration permit: %v", permit)
			}
			if ext := c.GetExtension(); len(ext) != 1 || ext[0].GetValue().GetCode().GetValue() != "digital" {
				t.Errorf("method: %v", ext)
			}
		}},
		{"partner kinds", with(ConsentTerms{Given: bundleBool(true), PartnerKinds: []string{"ngo", "community", "ngo"}, Purposes: []string{"TREAT"}}), func(t *testing.T, c *conpb.Consent) {
			var kinds []string
			for _, m := range c.GetProvision().GetModifierExtension() {
				if m.GetUrl().GetValue() == ExtConsentPartnerKind {
					kinds = append(kinds, m.GetValue().GetCode().GetValue())
				}
			}
			if !slices.Equal(kinds, []string{"ngo", "community"}) || len(c.GetProvision().GetActor()) > 0 {
				t.Errorf("kinds %v, actors %v", kinds, c.GetProvision().GetActor())
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundle, err := Build(tc.r)
			if err != nil {
				t.Fatal(err)
			}
			bundleMustValid(t, bundle)
			for _, e := range bundle.GetEntry() {
				if c, ok := fhir.Unwrap(e.GetResource()).(*conpb.Consent); ok {
					tc.check(t, c)
					return
				}
			}
			t.Fatal("no Consent")
		})
	}
}

func TestBuildErrors(t *testing.T) {
	const secret = "SECRET-VALUE"
	for _, tc := range []struct {
		name   string
		change func(*Referral)
		want   []string // targets with a problem
	}{
		{"no record id", func(r *Referral) { r.RecordID = "" }, []string{"source.record_id"}},
		{"no source system", func(r *Referral) { r.SourceSystem = "" }, []string{"source.system"}},
		{"source system not a URI", func(r *Referral) { r.SourceSystem = secret + " cases" }, []string{"source.system"}},
		{"identifier system not a URI", func(r *Referral) { r.Patient.IdentifierSystem = secret }, []string{"patient.identifier_system"}},
		{"nothing requested", func(r *Referral) { r.Service.Categories, r.Service.Needs = nil, nil }, []string{"service"}},
		{"empty category", func(r *Referral) { r.Service.Categories = append(r.Service.Categories, Code{}) }, []string{"service.categories[2]"}},
		{"blank category", func(r *Referral) { r.Service.Categories = append(r.Service.Categories, Code{Text: " \t"}) }, []string{"service.categories[2]"}},
		{"display without code", func(r *Referral) { r.Patient.Ethnicity = Code{Display: secret} }, []string{"patient.ethnicity"}},
		{"priority", func(r *Referral) { r.Service.Priority = secret }, []string{"service.priority"}},
		{"gender", func(r *Referral) { r.Patient.Gender = secret }, []string{"patient.gender"}},
		{"day-first birth date", func(r *Referral) { r.Patient.BirthDate = "31/02/2024" }, []string{"patient.birth_date"}},
		{"impossible birth date", func(r *Referral) { r.Patient.BirthDate = "2024-02-31" }, []string{"patient.birth_date"}},
		{"language", func(r *Referral) { r.Patient.Languages = []string{"ar", secret + " tag"} }, []string{"patient.languages[1]"}},
		{"preferred language", func(r *Referral) { r.Patient.PreferredLanguage = "a" }, []string{"patient.preferred_language"}},
		{"contact preference", func(r *Referral) { r.Patient.ContactPreference = secret }, []string{"patient.contact_preference"}},
		{"year of arrival", func(r *Referral) { r.Patient.YearOfArrival = "23" }, []string{"patient.year_of_arrival"}},
		{"legal status group code", func(r *Referral) { r.Patient.LegalStatus.Code = fhir.PathwayGroupLegalStatus }, []string{"patient.legal_status"}},
		{"legal status from another group", func(r *Referral) { r.Patient.LegalStatus.Code = fhir.PathwayMigrantLabour }, []string{"patient.legal_status"}},
		{"unknown Pathway code", func(r *Referral) { r.Patient.MigrantType.Code = secret }, []string{"patient.migrant_type"}},
		{"code without system", func(r *Referral) { r.Service.Needs[0].System = "" }, []string{"service.needs[0]"}},
		{"code with spaces", func(r *Referral) { r.Service.TriageLevel.Code = " " + secret }, []string{"service.triage"}},
		{"requester id", func(r *Referral) { r.Service.Requester = secret + " org" }, []string{"service.requester"}},
		{"link worker sex", func(r *Referral) { r.Service.LinkWorkerSex = secret }, []string{"service.link_worker_sex"}},
		{"format", func(r *Referral) { r.Service.Format = secret }, []string{"service.format"}},
		{"approach", func(r *Referral) { r.Service.Approach = secret }, []string{"service.approach"}},
		{"note not UTF-8", func(r *Referral) { r.Service.Notes[1] = secret + "\xff" }, []string{"service.notes[1]"}},
		{"note with NUL", func(r *Referral) { r.Service.Notes[0] = secret + "\x00" }, []string{"service.notes[0]"}},
		{"consent ends before it starts", func(r *Referral) { r.Consent.End = bundleDay(2020, 1, 1) }, []string{"consent.end"}},
		{"partner id", func(r *Referral) { r.Consent.Partners = []string{"clinic-b", secret + "/x"} }, []string{"consent.partners[1]"}},
		{"partner kind", func(r *Referral) { r.Consent.PartnerKinds = []string{secret + "  x"} }, []string{"consent.partner_kinds[0]"}},
		{"purpose", func(r *Referral) { r.Consent.Purposes = []string{secret} }, []string{"consent.purposes[0]"}},
		{"method", func(r *Referral) { r.Consent.Method = secret }, []string{"consent.method"}},
		{"immigration without partners", func(r *Referral) {
			r.Consent.ShareImmigrationData, r.Consent.Partners = true, nil
		}, []string{"consent.share_immigration_data"}},
		{"immigration without consent", func(r *Referral) {
			r.Consent.ShareImmigrationData, r.Consent.Given = true, bundleBool(false)
		}, []string{"consent.share_immigration_data"}},
		{"owner id", func(r *Referral) { r.Task.Owner = secret + "#1" }, []string{"task.owner"}},
		{"instrument", func(r *Referral) { r.Screenings[0].Instrument = secret }, []string{"screening[0].instrument"}},
		{"no score", func(r *Referral) { r.Screenings[1].Score = nil }, []string{"screening[1].score"}},
		{"score out of range", func(r *Referral) { *r.Screenings[0].Score = 28 }, []string{"screening[0].score"}},
		{"risk without code", func(r *Referral) { r.Risks[0].Code = Code{} }, []string{"risk[0].code"}},
		{"outcome without code", func(r *Referral) { r.Outcomes[0].Code = Code{} }, []string{"outcome[0].code"}},
		{"every problem at once", func(r *Referral) {
			r.RecordID, r.Service.Priority, r.Patient.Gender, r.Consent.Purposes = "", secret, secret, []string{secret}
		}, []string{"source.record_id", "patient.gender", "service.priority", "consent.purposes[0]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := bundleFullReferral()
			tc.change(&r)
			bundle, err := Build(r)
			if err == nil {
				t.Fatalf("Build succeeded: %d entries", len(bundle.GetEntry()))
			}
			var re *RecordError
			if !errors.As(err, &re) {
				t.Fatalf("error %T, want *RecordError", err)
			}
			var got []string
			for _, p := range re.Problems {
				got = append(got, p.Target)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("problems at %v, want %v (%v)", got, tc.want, err)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("the error shows the value: %v", err)
			}
			if _, err := Encode(r); err == nil {
				t.Error("Encode succeeded")
			}
		})
	}
}

// bundleSetters put one string into one field of a referral, for FuzzBuild.
var bundleSetters = []func(r *Referral, s string){
	func(r *Referral, s string) { r.SourceSystem = s },
	func(r *Referral, s string) { r.RecordID = s },
	func(r *Referral, s string) { r.Patient.IdentifierSystem = s },
	func(r *Referral, s string) { r.Patient.Identifier = s },
	func(r *Referral, s string) { r.Patient.Pseudonym = s },
	func(r *Referral, s string) { r.Patient.GivenName = s },
	func(r *Referral, s string) { r.Patient.FamilyName = s },
	func(r *Referral, s string) { r.Patient.Gender = s },
	func(r *Referral, s string) { r.Patient.BirthDate = s },
	func(r *Referral, s string) { r.Patient.Languages = append(r.Patient.Languages, s) },
	func(r *Referral, s string) { r.Patient.PreferredLanguage = s },
	func(r *Referral, s string) { r.Patient.Phone = s },
	func(r *Referral, s string) { r.Patient.Email = s },
	func(r *Referral, s string) { r.Patient.ContactPreference = s },
	func(r *Referral, s string) { r.Patient.CountryOfBirth = Code{Text: s} },
	func(r *Referral, s string) { r.Patient.CountryOfBirth.Code = s },
	func(r *Referral, s string) { r.Patient.Ethnicity.System = s },
	func(r *Referral, s string) { r.Patient.MigrantType.Code = s },
	func(r *Referral, s string) { r.Patient.LegalStatus = Code{Display: s} },
	func(r *Referral, s string) { r.Patient.YearOfArrival = s },
	func(r *Referral, s string) { r.Patient.MigrationHistory = s },
	func(r *Referral, s string) { r.Service.ReferralIdentifier = s },
	func(r *Referral, s string) { r.Service.Categories = append(r.Service.Categories, Code{Text: s}) },
	func(r *Referral, s string) { r.Service.Needs = []Code{{System: ngoOrEmpty(s), Code: s}} },
	func(r *Referral, s string) { r.Service.Priority = s },
	func(r *Referral, s string) { r.Service.TriageLevel = Code{Text: s} },
	func(r *Referral, s string) { r.Service.ReasonText = s },
	func(r *Referral, s string) { r.Service.Requester = s },
	func(r *Referral, s string) { r.Service.RequesterName = s },
	func(r *Referral, s string) { r.Service.Notes = append(r.Service.Notes, s) },
	func(r *Referral, s string) { r.Service.LinkWorkerSex = s },
	func(r *Referral, s string) { r.Service.Instruction = s },
	func(r *Referral, s string) { r.Consent.Partners = append(r.Consent.Partners, s) },
	func(r *Referral, s string) { r.Consent.PartnerKinds = append(r.Consent.PartnerKinds, s) },
	func(r *Referral, s string) { r.Consent.Purposes = append(r.Consent.Purposes, s) },
	func(r *Referral, s string) { r.Consent.Method = s },
	func(r *Referral, s string) { r.Task.Owner = s },
	func(r *Referral, s string) { r.Task.OwnerName = s },
	func(r *Referral, s string) { r.Screenings[0].Instrument = s },
	func(r *Referral, s string) { r.Risks[0].Code = Code{Text: s} },
	func(r *Referral, s string) { r.Outcomes[0].Value = s },
	func(r *Referral, s string) { r.Outcomes[1].Code = Code{System: "urn:x", Code: s, Text: s} },
}

func ngoOrEmpty(s string) string {
	if len(s)%2 == 0 {
		return bundleNGONeeds
	}
	return ""
}

// FuzzBuild puts arbitrary text into one field of the full referral: Build
// either rejects the referral with a *RecordError or returns a bundle that
// is valid FHIR R4 without a single issue.
func FuzzBuild(f *testing.F) {
	for _, s := range []string{"", " ", "x", "\t\n", "\xff", "a\x00b", "2024-02-29", "1991", "0000", "ar", "COC",
		"female", "https://x.example", "urn:uuid:1", "clinic-b", "a  b", " a", "\u200f", "e\u0301", "phq-9"} {
		for i := range bundleSetters {
			f.Add(uint8(i), s)
		}
	}
	f.Fuzz(func(t *testing.T, field uint8, s string) {
		r := bundleFullReferral()
		bundleSetters[int(field)%len(bundleSetters)](&r, s)
		bundle, err := Build(r)
		if err != nil {
			var re *RecordError
			if !errors.As(err, &re) {
				t.Fatalf("error %T, want *RecordError: %v", err, err)
			}
			return
		}
		if is := fhir.Validate(bundle); len(is) > 0 {
			t.Fatalf("fhir.Validate: %v", is)
		}
		data, err := fhir.Marshal(bundle)
		if err != nil {
			t.Fatal(err)
		}
		if res := fhir.Parse(data); !res.Valid() || len(res.Issues) > 0 {
			t.Fatalf("fhir.Parse: %v", res.Issues)
		}
	})
}

// BenchmarkEncode measures a full referral to bundle bytes (Build and
// fhir.Marshal, no validation), the share of BenchmarkConvert that is Build's.
func BenchmarkEncode(b *testing.B) {
	r := bundleFullReferral()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuild measures Build alone on a full referral.
func BenchmarkBuild(b *testing.B) {
	r := bundleFullReferral()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(r); err != nil {
			b.Fatal(err)
		}
	}
}
