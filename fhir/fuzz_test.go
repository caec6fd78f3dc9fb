package fhir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the parser, seeded with the corpus
// copy in testdata and google/fhir's corner cases. The parser must never
// panic or hang; every failure must be an issue with a code and a path (or a
// fatal issue about the input as a whole); a valid result must marshal and
// parse again as valid.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{
		"../testdata/fhir-r4-examples/*/*.json",
		"../testdata/google-fhir/jsonformat/*.json",
	} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil && len(data) < 64<<10 {
				f.Add(data)
			}
		}
	}
	for _, s := range []string{
		``, `[]`, `null`, `{}`, `{"resourceType":null}`, `{"resourceType":"Task","status":""}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Task"}}]}`,
		`{"resourceType":"Patient","name":[{"given":[null]}]}`, "{\"resourceType\":\"Patient\",\"id\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := Parse(data)
		for _, is := range r.Issues {
			if is.Code == "" || is.Details == "" {
				t.Fatalf("issue without code or details: %+v", is)
			}
			if is.Path == "" && is.Severity != SeverityFatal {
				t.Fatalf("non-fatal issue without a path: %+v", is)
			}
			if is.Code == "internal" {
				t.Fatalf("parser failure not understood: %+v", is)
			}
			// Paths hold R4 names only: input never reaches them.
			if is.Path != "(root)" && is.Path != "resourceType" && cleanPath(is.Path) != is.Path {
				t.Fatalf("path with a name that is not R4's: %q", is.Path)
			}
		}
		if r.Valid() {
			out, err := Marshal(r.Resource)
			if err != nil {
				t.Fatalf("valid resource does not marshal: %v", err)
			}
			if again := Parse(out); !again.Valid() {
				t.Fatalf("marshalled output is not valid: %v\n%s", again.Issues, out)
			}
			if !strings.HasPrefix(string(out), `{"resourceType":`) {
				t.Fatalf("resourceType not first: %s", out)
			}
		}
	})
}
