package mappings

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// listFields is Fields with several values per reference, as JSON arrays
// and repeated HL7 v2 fields give; "" keeps a position.
type listFields map[string][]string

func (l listFields) Lookup(ref string) ([]string, bool) {
	v, ok := l[ref]
	return v, ok
}

func mustLoad(t *testing.T, yaml string) *Mapping {
	t.Helper()
	m, err := Load("m.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatalf("load:\n%v", err)
	}
	return m
}

const langHead = `mapping: t
input: {format: hl7v2}
fields:
  source.system: {const: "https://clinic.example/hl7"}
`

func TestFromListAndJoin(t *testing.T) {
	m := mustLoad(t, langHead+`  source.record_id: {from: [MSH-4.1, RF1-6.2, RF1-6.1], join: "/", required: true}
  service.notes: {from: [RF1-14, RF1-24]}
  patient.phone: {from: [XTN.5, XTN.6, XTN.7], join: " "}
  service.categories: {const: "https://pathway-fhir.org/fhir/CodeSystem/pathway|mental-health"}
`)
	r, err := m.Apply(listFields{
		"MSH-4.1": {"RIVERSIDE"}, "RF1-6.2": {""}, "RF1-6.1": {"R-7"},
		"RF1-14": {"reason"}, "RF1-24": {"comment"},
		"XTN.5": {"44"}, "XTN.6": {"7700"}, "XTN.7": {"900123"},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Empty values are left out of a join; the values of a from list come in order.
	if r.RecordID != "RIVERSIDE/R-7" || !reflect.DeepEqual(r.Service.Notes, []string{"reason", "comment"}) || r.Patient.Phone != "44 7700 900123" {
		t.Errorf("referral: %q %q %q", r.RecordID, r.Service.Notes, r.Patient.Phone)
	}
	// A join of nothing is empty: required still fails.
	_, err = m.Apply(listFields{})
	var re *RecordError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), `source.record_id (from "MSH-4.1, RF1-6.2, RF1-6.1"): required, but empty`) {
		t.Errorf("empty join: %v", err)
	}
}

func TestIdentifiers(t *testing.T) {
	m := mustLoad(t, langHead+`  source.record_id: id
  patient.identifiers: {from: PID-3.1, system: {from: PID-3.4.1, table: assigners}, required: true}
  service.identifiers: {from: [RF1-6.1, RF1-11.1], system: {from: [RF1-6.2, RF1-11.2]}}
  practitioner.identifiers: {from: PRD-7.1, system: {const: staff}}
tables:
  assigners:
    unmapped: text
    map: {NHS: "https://fhir.nhs.uk/Id/nhs-number"}
`)
	tests := []struct {
		name    string
		fields  listFields
		patient []Identifier
		service []Identifier
		prac    []Identifier
		problem string
	}{
		{
			name: "systems by position",
			fields: listFields{"id": {"1"}, "PID-3.1": {"MRN-1", "", "943 476 5919"}, "PID-3.4.1": {"RIVERSIDE", "X", "nhs"},
				"RF1-6.1": {"R-7"}, "RF1-6.2": {""}, "RF1-11.1": {"E-9"}, "RF1-11.2": {"EXTID"}, "PRD-7.1": {"S-1", "S-2"}},
			patient: []Identifier{{"RIVERSIDE", "MRN-1"}, {"https://fhir.nhs.uk/Id/nhs-number", "943 476 5919"}},
			service: []Identifier{{"", "R-7"}, {"EXTID", "E-9"}},
			prac:    []Identifier{{"staff", "S-1"}, {"staff", "S-2"}},
		},
		{
			name:    "one system for all",
			fields:  listFields{"id": {"1"}, "PID-3.1": {"A", "B"}, "PID-3.4.1": {"", "NHS"}, "RF1-6.1": {"R-7"}},
			patient: []Identifier{{"", "A"}, {"https://fhir.nhs.uk/Id/nhs-number", "B"}},
			service: []Identifier{{"", "R-7"}},
		},
		{
			name:    "no systems",
			fields:  listFields{"id": {"1"}, "PID-3.1": {"A", "B"}},
			patient: []Identifier{{"", "A"}, {"", "B"}},
		},
		{name: "required", fields: listFields{"id": {"1"}, "PID-3.1": {""}}, problem: `patient.identifiers (from "PID-3.1"): required, but empty`},
		{name: "systems do not line up", fields: listFields{"id": {"1"}, "PID-3.1": {"A", "B", "C"}, "PID-3.4.1": {"X", "Y"}},
			problem: `patient.identifiers (from "PID-3.1"): 3 values but 2 systems`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := m.Apply(tc.fields)
			if tc.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("got %v, want %q", err, tc.problem)
				}
				if strings.Contains(err.Error(), "RIVERSIDE") {
					t.Errorf("a problem shows a value: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r.Patient.Identifiers, tc.patient) || !reflect.DeepEqual(r.Service.Identifiers, tc.service) ||
				!reflect.DeepEqual(r.Practitioner.Identifiers, tc.prac) {
				t.Errorf("identifiers:\npatient %v\nservice %v\npractitioner %v", r.Patient.Identifiers, r.Service.Identifiers, r.Practitioner.Identifiers)
			}
		})
	}
}

func TestRejectRules(t *testing.T) {
	m := mustLoad(t, langHead+`  source.record_id: {from: id, required: true}
reject:
  - when: {not: {field: MSH-9.2, in: [I12, I13]}}
    reason: only new and modified referrals are converted
  - when: {field: status, equals: not_approved}
    reason: marked Not Approved
`)
	if _, err := m.Apply(listFields{"MSH-9.2": {"I12"}, "id": {"1"}}); err != nil {
		t.Fatalf("a referral was rejected: %v", err)
	}
	_, err := m.Apply(listFields{"MSH-9.2": {"I14"}, "status": {"Not_Approved"}})
	var re *RecordError
	if !errors.As(err, &re) || len(re.Problems) != 3 {
		t.Fatalf("got %v, want two reject reasons and the record id", err)
	}
	want := []string{
		`record (from "MSH-9.2"): only new and modified referrals are converted`,
		`record (from "status"): marked Not Approved`,
		`source.record_id (from "id"): required, but empty`,
	}
	for i, p := range re.Problems {
		if p.String() != want[i] {
			t.Errorf("problem %d: %q, want %q", i, p, want[i])
		}
	}
}

func TestConditionSplit(t *testing.T) {
	m := mustLoad(t, `mapping: t
input: {format: json}
fields:
  source.system: {const: "urn:x"}
  source.record_id: _uuid
  risk[0].code: {const: "http://snomed.info/sct|248062006", when: {field: grp/risks, split: " ", equals: self_harm}}
  risk[1].code: {const: "http://snomed.info/sct|6471006", when: {field: grp/risks, split: " ", in: [suicidal_ideation]}}
  patient.interpreter_needed: {const: "yes", when: {field: grp/risks, equals: self_harm}}
`)
	r, err := m.Apply(JSONFields{"_uuid": "u1", "grp/risks": "violence self_harm"})
	if err != nil {
		t.Fatal(err)
	}
	// Without split the whole answer is compared: it does not equal self_harm.
	if len(r.Risks) != 1 || r.Risks[0].Code.Code != "248062006" || r.Patient.InterpreterNeeded != nil {
		t.Errorf("risks %+v, interpreter %v", r.Risks, r.Patient.InterpreterNeeded)
	}
}

func TestUnmappedCode(t *testing.T) {
	m := mustLoad(t, `mapping: t
input: {format: fhir}
tables:
  categories:
    unmapped: code
    map:
      "http://snomed.info/sct|410606002": https://pathway-fhir.org/fhir/CodeSystem/pathway|social-prescribing
fields:
  source.system: {const: "urn:x"}
  source.record_id: id
  service.categories: {from: cats, table: categories}
`)
	r, err := m.Apply(listFields{"id": {"1"}, "cats": {
		"http://snomed.info/sct|410606002|Social service procedure", // matches system|code whatever its display
		"https://clinic.example/cs|womens-group|Women's group",
		"http://loinc.org|LA1-2",
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Code{
		{System: "https://pathway-fhir.org/fhir/CodeSystem/pathway", Code: "social-prescribing"},
		{System: "https://clinic.example/cs", Code: "womens-group", Display: "Women's group"},
		{System: "http://loinc.org", Code: "LA1-2"},
	}
	if !reflect.DeepEqual(r.Service.Categories, want) {
		t.Errorf("categories %+v", r.Service.Categories)
	}
	_, err = m.Apply(listFields{"id": {"1"}, "cats": {"womens-group"}})
	if err == nil || !strings.Contains(err.Error(), `not a code written system|code (unmapped: code)`) || strings.Contains(err.Error(), "womens") {
		t.Errorf("a bare code: %v", err)
	}
}

func TestDateZoneToken(t *testing.T) {
	m := mustLoad(t, langHead+`  source.record_id: id
  service.authored_on: {from: MSH-7, date: [YYYYMMDDhhmmZZ, YYYYMMDD]}
  service.occurrence_start: {from: RF1-7, date: [YYYYMMDDhhmmZZ, YYYYMMDD]}
`)
	r, err := m.Apply(listFields{"id": {"1"}, "MSH-7": {"202201251620+0215"}, "RF1-7": {"20220125"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2022, 1, 25, 16, 20, 0, 0, time.FixedZone("", 2*3600+15*60)); !r.Service.AuthoredOn.Equal(want) {
		t.Errorf("authored on %v, want %v", r.Service.AuthoredOn, want)
	}
	if _, off := r.Service.AuthoredOn.Zone(); off != 2*3600+15*60 {
		t.Errorf("the offset was not kept: %v", r.Service.AuthoredOn)
	}
	if !r.Service.OccurrenceStart.Equal(time.Date(2022, 1, 25, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("occurrence start %v", r.Service.OccurrenceStart)
	}
}

func TestLoadProblemsNewOptions(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"system on a string", goodHead + "  patient.phone: {from: p, system: {const: x}}\n", `system gives identifiers their namespace, but patient.phone is a string`},
		{"table on identifiers", goodHead + "  patient.identifiers: {from: p, table: g}\n", `identifiers are kept as written: translate their namespace with a table under system`},
		{"when in system", goodHead + "  patient.identifiers: {from: p, system: {const: x, when: {field: a, empty: false}}}\n", `system takes no when`},
		{"empty from list", goodHead + "  patient.phone: {from: []}\n", `from needs a reference, or a list of them`},
		{"reject without reason", goodHead + "reject:\n  - when: {field: a, empty: true}\n", `m.yaml:11:5: a reject rule needs reason`},
		{"reject without when", goodHead + "reject:\n  - reason: no\n", `a reject rule needs when`},
		{"reject not a list", goodHead + "reject: {when: x}\n", `reject is a list of {when: CONDITION, reason: TEXT}`},
		{"reject unknown option", goodHead + "reject:\n  - {when: {field: a, empty: true}, reason: r, stop: true}\n", `unknown reject option "stop"`},
		{"split without field", goodHead + "  patient.phone: {from: p, when: {split: \" \", not: {field: a, empty: true}}}\n", `split applies to a field`},
		{"unmapped code is known", "mapping: t\ninput: {format: csv}\ntables:\n  g:\n    unmapped: keep\n    map: {a: b}\nfields: {source.system: {const: x}, source.record_id: id}\n", `unmapped must be reject, text, default or code`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("m.yaml", []byte(tc.yaml), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
	// split then join gives one value: allowed on a single-valued target.
	if _, err := Load("m.yaml", []byte(goodHead+"  patient.phone: {from: p, split: \";\", join: \" \"}\n"), nil); err != nil {
		t.Errorf("split with join: %v", err)
	}
}
