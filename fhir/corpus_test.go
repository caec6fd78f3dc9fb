package fhir

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// knownInvalid lists public examples that are not valid FHIR R4, with the
// reason. The corpus tests expect exactly these to fail, so a file that
// starts failing, or an exception that starts passing, both show up.
var knownInvalid = map[string]string{
	// Official R4 example whose nested items have no linkId (Questionnaire.item.linkId is 1..1).
	"Questionnaire-qs1.json": "Questionnaire.item.linkId missing in the official example",
	// SDOH Clinical Care profile differential that leaves binding.strength to the base (1..1 in ElementDefinition.binding).
	"StructureDefinition-SDOHCC-ObservationEthnicityOMB.json": "differential binding without strength",
}

// notResources are JSON files in the corpus that are not FHIR resources.
var notResources = map[string]bool{
	"package.json":               true,
	"instance_descriptions.json": true,
}

// corpusDirs are the folders the corpus tests walk: the copy in testdata,
// and the whole shared corpus when PATHWAY_CORPUS names it (make corpus).
func corpusDirs(t *testing.T) []string {
	dirs := []string{"../testdata/fhir-r4-examples"}
	if c := os.Getenv("PATHWAY_CORPUS"); c != "" {
		if _, err := os.Stat(c); err != nil {
			t.Fatalf("PATHWAY_CORPUS=%s: %v", c, err)
		}
		dirs = []string{c}
	}
	return dirs
}

func TestCorpusExamples(t *testing.T) {
	var checked, roundTripped, exceptions int
	for _, dir := range corpusDirs(t) {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			name := d.Name()
			if d.IsDir() {
				switch name {
				case "_edge_cases_google_fhir":
					return fs.SkipDir // primitives and parser corner cases have their own tests
				case "service-directory":
					return fs.SkipDir // Open Referral HSDS files are not FHIR
				}
				return nil
			}
			if filepath.Ext(name) != ".json" || notResources[name] {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if bytes.HasPrefix(bytes.TrimSpace(data), []byte("[")) {
				return nil // lists of examples, not resources
			}
			checked++
			r := Parse(data)
			if reason, ok := knownInvalid[name]; ok {
				exceptions++
				if r.Valid() {
					t.Errorf("%s: listed as known invalid (%s) but now valid: remove the exception", path, reason)
				}
				return nil
			}
			if !r.Valid() {
				t.Errorf("%s: invalid: %v", path, r.Issues.Errors())
				return nil
			}
			if diff := roundTrip(data, r.Resource); diff != "" {
				t.Errorf("%s: round trip changed the resource: %s", path, diff)
				return nil
			}
			roundTripped++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if checked == 0 {
		t.Fatal("no corpus examples found")
	}
	t.Logf("corpus: %d resources checked, %d parsed, validated and round-tripped, %d known-invalid exceptions confirmed", checked, roundTripped, exceptions)
}

// roundTrip marshals res and compares it with the original JSON as JSON
// values (object key order aside), decimals compared as written.
func roundTrip(original []byte, res *ContainedResource) string {
	out, err := Marshal(res)
	if err != nil {
		return "marshal: " + err.Error()
	}
	if !bytes.HasPrefix(out, []byte(`{"resourceType":`)) {
		return "resourceType is not the first member"
	}
	a, err := decodeJSON(original)
	if err != nil {
		return "decoding original: " + err.Error()
	}
	b, err := decodeJSON(out)
	if err != nil {
		return "decoding output: " + err.Error()
	}
	return jsonDiff("", a, b)
}

func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}

// jsonDiff returns the first path where a and b differ, or "".
func jsonDiff(path string, a, b any) string {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: object became %T", path, b)
		}
		keys := make([]string, 0, len(av)+len(bv))
		for k := range av {
			keys = append(keys, k)
		}
		for k := range bv {
			if _, ok := av[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			if d := jsonDiff(path+"."+k, av[k], bv[k]); d != "" {
				return d
			}
		}
		return ""
	case []any:
		bv, ok := b.([]any)
		if !ok {
			return fmt.Sprintf("%s: array became %T", path, b)
		}
		if len(av) != len(bv) {
			return fmt.Sprintf("%s: %d items became %d", path, len(av), len(bv))
		}
		for i := range av {
			if d := jsonDiff(path+"["+strconv.Itoa(i)+"]", av[i], bv[i]); d != "" {
				return d
			}
		}
		return ""
	case string:
		if bv, ok := b.(string); ok && sameFraction(av, bv) {
			return ""
		}
		if !reflect.DeepEqual(a, b) {
			return fmt.Sprintf("%s: string value changed", path)
		}
		return ""
	default:
		if !reflect.DeepEqual(a, b) {
			return fmt.Sprintf("%s: %T value changed", path, a)
		}
		return ""
	}
}

// fractionRE matches the fractional seconds of a FHIR dateTime, instant or time.
var fractionRE = regexp.MustCompile(`(T?\d\d:\d\d:\d\d)\.(\d+)`)

// sameFraction reports whether a and b differ only by trailing zeros in
// fractional seconds. google/fhir keeps seconds to millisecond or
// microsecond precision, so "43.4" is written back as "43.400": the same
// instant, written differently. This is the one documented way its round
// trip is not byte-for-byte.
func sameFraction(a, b string) bool {
	if a == b || !fractionRE.MatchString(a) {
		return a == b
	}
	trim := func(s string) string {
		return fractionRE.ReplaceAllStringFunc(s, func(m string) string {
			m = strings.TrimRight(m, "0")
			return strings.TrimSuffix(m, ".")
		})
	}
	return trim(a) == trim(b)
}

// hostFor wraps one primitive JSON value in a resource element of that type.
var hostFor = map[string]func(v string) string{
	"reference": func(v string) string {
		return `{"resourceType":"Task","status":"requested","intent":"order","focus":` + v + `}`
	},
	"xhtml": func(v string) string {
		return `{"resourceType":"Patient","text":{"status":"generated","div":` + v + `}}`
	},
}

// extensionValue names the value[x] of an Extension for each primitive file.
var extensionValue = map[string]string{
	"base64_binary": "valueBase64Binary", "boolean": "valueBoolean", "canonical": "valueCanonical",
	"code": "valueCode", "date": "valueDate", "date_time": "valueDateTime", "decimal": "valueDecimal",
	"id": "valueId", "instant": "valueInstant", "integer": "valueInteger", "markdown": "valueMarkdown",
	"oid": "valueOid", "positive_int": "valuePositiveInt", "string": "valueString", "time": "valueTime",
	"unsigned_int": "valueUnsignedInt", "uri": "valueUri", "url": "valueUrl", "uuid": "valueUuid",
}

// primitiveExceptions are google/fhir "valid" cases Pathway rejects on purpose.
var primitiveExceptions = map[string]string{
	"null": "ele-1: google/fhir reads null as absent; FHIR forbids null values and so does Pathway",
	`""`:   "ele-1 (and txt-2 for xhtml): empty strings carry no value; FHIR forbids them",
}

// edgeCaseDir is google/fhir's test cases: the copy in testdata, or the
// shared corpus's when PATHWAY_CORPUS names it (make corpus).
func edgeCaseDir(sub string) string {
	if c := os.Getenv("PATHWAY_CORPUS"); c != "" {
		return filepath.Join(c, "fhir-r4-examples", "_edge_cases_google_fhir", sub)
	}
	return filepath.Join("../testdata/google-fhir", sub)
}

func TestPrimitiveValidity(t *testing.T) {
	dir := edgeCaseDir("primitive_validity")
	files, err := filepath.Glob(filepath.Join(dir, "*.ndjson"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no primitive cases in %s: %v", dir, err)
	}
	var cases, exceptions int
	for _, f := range files {
		base := filepath.Base(f)
		typ, want, _ := strings.Cut(strings.TrimSuffix(base, ".ndjson"), ".")
		host := hostFor[typ]
		if host == nil {
			field, ok := extensionValue[typ]
			if !ok {
				t.Errorf("%s: no host element for primitive type %q", base, typ)
				continue
			}
			host = func(v string) string {
				return `{"resourceType":"Patient","extension":[{"url":"http://example.org/x","` + field + `":` + v + `}]}`
			}
		}
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for line := 1; sc.Scan(); line++ {
			v := strings.TrimSpace(sc.Text())
			if v == "" {
				continue
			}
			cases++
			r := Parse([]byte(host(v)))
			switch {
			case want == "valid" && primitiveExceptions[v] != "":
				exceptions++
				if r.Valid() {
					t.Errorf("%s:%d: expected Pathway to reject %s (%s)", base, line, v, primitiveExceptions[v])
				}
			case want == "valid" && !r.Valid():
				t.Errorf("%s:%d: valid value rejected: %v", base, line, r.Issues.Errors())
			case want == "invalid" && r.Valid():
				t.Errorf("%s:%d: invalid value accepted", base, line)
			}
		}
		fh.Close()
	}
	t.Logf("primitives: %d cases, %d documented exceptions", cases, exceptions)
}

func TestGoogleFHIRParserCornerCases(t *testing.T) {
	tests := []struct {
		file  string
		valid bool
	}{
		{"observation_decimal_corner_cases.json", true},
		{"observation_scientific_notation_corner_cases.json", true},
		// "0385" is a four-digit year with a leading zero: valid per the FHIR date regex.
		{"observation_three_digit_year.json", true},
		// Escaped \r \n \t are allowed in FHIR strings ([ \r\n\t\S]+); google/fhir accepts them too.
		{"observation_invalid_unicode.json", true},
		{"observation_invalid_multiple_choicex_provided.json", false},
		{"location_ndjson.json", true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(edgeCaseDir("jsonformat"), tt.file))
			if err != nil {
				t.Fatal(err)
			}
			r := Parse(data)
			if r.Valid() != tt.valid {
				t.Fatalf("valid = %v, want %v; issues: %v", r.Valid(), tt.valid, r.Issues)
			}
			if tt.valid {
				if diff := roundTrip(data, r.Resource); diff != "" {
					t.Errorf("round trip: %s", diff)
				}
			}
		})
	}
}
