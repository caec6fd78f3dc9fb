package mappings

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const goodHead = `mapping: t
input: {format: csv}
tables:
  g:
    unmapped: reject
    map: {f: female}
fields:
  source.system: {const: "urn:x"}
  source.record_id: id
`

func TestLoadProblems(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // "line:col: message" fragments, all must appear
	}{
		{"good", goodHead + "  patient.gender: {from: g, table: g}\n", nil},
		{"unknown target with suggestion", goodHead + "  patient.gendr: sex\n", []string{`m.yaml:10:3: unknown target "patient.gendr" (did you mean "patient.gender"?)`}},
		{"unknown option", goodHead + "  patient.gender: {from: g, tabel: g}\n", []string{`m.yaml:10:29: unknown option "tabel"`}},
		{"undefined table", goodHead + "  patient.gender: {from: g, table: sex}\n", []string{`m.yaml:10:36: no table "sex"`}},
		{"both from and const", goodHead + "  patient.gender: {from: g, const: female}\n", []string{`m.yaml:10:19: an expression needs exactly one of from, const or cases`}},
		{"split on a single value", goodHead + "  patient.gender: {from: g, split: \";\"}\n", []string{`m.yaml:10:19: split gives several values, but patient.gender takes one`}},
		{"date without formats", goodHead + "  service.authored_on: when\n", []string{`m.yaml:10:24: service.authored_on is a date: give its formats explicitly`}},
		{"bad date token", goodHead + "  service.authored_on: {from: d, date: [DD/MM/YY]}\n", []string{`m.yaml:10:40: date format "DD/MM/YY": unknown token at "YY"`}},
		{"code without table", goodHead + "  patient.legal_status: status\n", []string{`is a code: translate it with a table`}},
		{"bad code constant", goodHead + "  patient.legal_status: {const: \"not a uri|x\"}\n", []string{`system "not a uri" is not an absolute URI`}},
		{"date without a year", goodHead + "  service.authored_on: {from: d, date: [DD/MM]}\n", []string{`m.yaml:10:40: date format "DD/MM" has no YYYY`}},
		{"list index out of range", goodHead + "  screening[40].score: s\n", []string{`m.yaml:10:3: list index in "screening[40].score" must be a number from 0 to 19`}},
		{"duplicate target", goodHead + "  patient.gender: a\n  patient.gender: b\n", []string{`m.yaml:11:3: target "patient.gender" is already set at line 10`}},
		{"bad condition", goodHead + "  patient.gender: {from: g, when: {field: x, equal: y}}\n", []string{`unknown condition "equal"`}},
		{"unknown format", "mapping: t\ninput: {format: xlsx}\nfields: {source.system: {const: x}, source.record_id: id}\n", []string{`m.yaml:2:17: unknown input format "xlsx"`}},
		{"missing record id", "mapping: t\ninput: {format: csv}\nfields:\n  source.system: {const: x}\n", []string{`m.yaml:4:3: no rule for source.record_id`}},
		{"table without unmapped rule", "mapping: t\ninput: {format: csv}\ntables:\n  g:\n    map: {a: b}\nfields: {source.system: {const: x}, source.record_id: id}\n", []string{`m.yaml:5:5: table "g" must say what happens to unmapped values`}},
		{"duplicate table key", "mapping: t\ninput: {format: csv}\ntables:\n  g:\n    unmapped: text\n    map: {A: b, a: c}\nfields: {source.system: {const: x}, source.record_id: id}\n", []string{`m.yaml:6:17: source value "a" appears twice in table "g"`}},
		{"not YAML", "mapping: [\n", []string{`m.yaml:`, `not valid YAML`}},
		{"unknown top-level key", "mapping: t\nformat: csv\n", []string{`m.yaml:2:1: unknown key "format"`, `missing "input"`, `missing "fields"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("m.yaml", []byte(tt.yaml), nil)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected problems: %v", err)
				}
				return
			}
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("want a LoadError, got %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("problems lack %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestTableFile(t *testing.T) {
	files := map[string]string{
		"dir/m.yaml":           "mapping: t\ninput: {format: csv}\ntables:\n  lang: {unmapped: text, file: tables/lang.yaml}\nfields:\n  source.system: {const: x}\n  source.record_id: id\n  patient.languages: {from: l, split: \";\", table: lang}\n",
		"dir/tables/lang.yaml": "arabic: ar\ndari: fa-AF\n",
	}
	read := func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, errors.New("no such file")
	}
	m, err := LoadFile("dir/m.yaml", read)
	if err != nil {
		t.Fatal(err)
	}
	r, err := m.Apply(MapFields{"id": "1", "l": "Arabic; DARI ;tlh"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.Patient.Languages, ","); got != "ar,fa-AF,tlh" {
		t.Errorf("languages %q", got)
	}
	files["dir/tables/lang.yaml"] = "arabic: [ar\n"
	if _, err := LoadFile("dir/m.yaml", read); err == nil || !strings.Contains(err.Error(), "tables/lang.yaml:") {
		t.Errorf("a broken table file must be reported at its own lines: %v", err)
	}
}

func TestConditionsAndCases(t *testing.T) {
	m, err := Load("m.yaml", []byte(goodHead+`  service.priority:
    cases:
      - when: {any: [{field: risk, equals: HIGH}, {field: flag, empty: false}]}
        const: urgent
      - when: {not: {field: risk, in: [low, none]}}
        const: asap
      - const: routine
  patient.pseudonym: {from: alias, when: {all: [{field: name, empty: true}, {field: alias, empty: false}]}}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		fields   MapFields
		priority string
		alias    string
	}{
		{MapFields{"id": "1", "risk": " high "}, "urgent", ""},
		{MapFields{"id": "1", "risk": "low", "flag": "x"}, "urgent", ""},
		{MapFields{"id": "1", "risk": "moderate"}, "asap", ""},
		{MapFields{"id": "1", "risk": "none", "alias": "A.", "name": " "}, "routine", "A."},
		{MapFields{"id": "1", "risk": "low", "alias": "A.", "name": "Ana"}, "routine", ""},
	}
	for _, tt := range tests {
		r, err := m.Apply(tt.fields)
		if err != nil {
			t.Fatal(err)
		}
		if r.Service.Priority != tt.priority || r.Patient.Pseudonym != tt.alias {
			t.Errorf("%v: priority %q alias %q, want %q %q", tt.fields, r.Service.Priority, r.Patient.Pseudonym, tt.priority, tt.alias)
		}
	}
}

func TestJSONFields(t *testing.T) {
	j := JSONFields{
		"grp_referral/need": "housing legal_advice",
		"_id":               json.Number("1042"),
		"person":            map[string]any{"languages": []any{"ar", "fa"}, "age": json.Number("31")},
		"items":             []any{map[string]any{"code": "a"}, map[string]any{"code": "b"}},
	}
	tests := map[string][]string{
		"grp_referral/need": {"housing legal_advice"},
		"_id":               {"1042"},
		"person/languages":  {"ar", "fa"},
		"person.age":        {"31"},
		"items/code":        {"a", "b"},
	}
	for ref, want := range tests {
		got, ok := j.Lookup(ref)
		if !ok || strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s: %q %v, want %q", ref, got, ok, want)
		}
	}
	if _, ok := j.Lookup("person/none"); ok {
		t.Error("a missing path must not be found")
	}
}
