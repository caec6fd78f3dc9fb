package fhir

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	cspb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/code_system_go_proto"
)

func TestPathwayCodeSystemIsValid(t *testing.T) {
	r := Parse(pathwayCodeSystemJSON)
	if !r.Valid() || len(r.Issues) > 0 {
		t.Fatalf("codesystem-pathway.json: valid=%v issues=%v", r.Valid(), r.Issues)
	}
	cs, err := PathwayCodeSystem()
	if err != nil {
		t.Fatal(err)
	}
	if cs.GetUrl().GetValue() != SystemPathway {
		t.Errorf("url = %s, want SystemPathway", cs.GetUrl().GetValue())
	}
	if cs.GetStatus().GetValue() != cpb.PublicationStatusCode_ACTIVE ||
		cs.GetContent().GetValue() != cpb.CodeSystemContentModeCode_COMPLETE ||
		cs.GetHierarchyMeaning().GetValue() != cpb.CodeSystemHierarchyMeaningCode_GROUPED_BY ||
		!cs.GetCaseSensitive().GetValue() {
		t.Errorf("status, content, hierarchyMeaning or caseSensitive is not as published")
	}
	seen := map[string]bool{}
	var walk func(path string, depth int, cs []*cspb.CodeSystem_ConceptDefinition)
	walk = func(path string, depth int, concepts []*cspb.CodeSystem_ConceptDefinition) {
		for _, c := range concepts {
			code := c.GetCode().GetValue()
			if seen[code] {
				t.Errorf("code %q is not unique", code)
			}
			seen[code] = true
			if c.GetDisplay().GetValue() == "" || c.GetDefinition().GetValue() == "" {
				t.Errorf("code %q lacks a display or a definition", code)
			}
			notSelectable := false
			for _, p := range c.GetProperty() {
				notSelectable = notSelectable || p.GetCode().GetValue() == "notSelectable" && p.GetValue().GetBoolean().GetValue()
			}
			if group := depth == 0; group != notSelectable || group != (len(c.GetConcept()) > 0) {
				t.Errorf("code %q: groups (and only groups) are top-level, have concepts and are notSelectable", code)
			}
			walk(path+"/"+code, depth+1, c.GetConcept())
		}
	}
	walk("", 0, cs.GetConcept())
	if got := int(cs.GetCount().GetValue()); got != len(seen) {
		t.Errorf("count = %d, the file has %d concepts", got, len(seen))
	}

	// Every Pathway code constant in Go names a code of the file, and every code has a constant.
	consts := btPathwayConstants(t, "codesystem.go", "codes.go")
	byValue := map[string]string{}
	for name, value := range consts {
		if _, ok := PathwayCode(value); !ok {
			t.Errorf("%s = %q is not a code of codesystem-pathway.json", name, value)
		}
		byValue[value] = name
	}
	for code := range seen {
		if _, ok := byValue[code]; !ok {
			t.Errorf("code %q has no Go constant", code)
		}
	}
	if _, ok := consts["PathwaySensitivityImmigration"]; !ok {
		t.Error("PathwaySensitivityImmigration was not found in the sources")
	}

	if d, _ := PathwayCode(PathwaySensitivityImmigration); d != ImmigrationLabel().GetDisplay().GetValue() {
		t.Errorf("ImmigrationLabel display %q differs from the CodeSystem's %q", ImmigrationLabel().GetDisplay().GetValue(), d)
	}
	if c := PathwayCoding(PathwayLegalStatusRefugee); c.GetSystem().GetValue() != SystemPathway || c.GetDisplay().GetValue() != "Refugee" {
		t.Errorf("PathwayCoding(refugee) = %v", c)
	}
	if PathwayCoding("no-such-code") != nil {
		t.Error("PathwayCoding of an unknown code must be nil")
	}

	// PathwayCodeSystem returns a copy.
	cs.GetConcept()[0].GetCode().Value = "changed"
	again, _ := PathwayCodeSystem()
	if again.GetConcept()[0].GetCode().GetValue() == "changed" {
		t.Error("PathwayCodeSystem shares its result")
	}
}

// btPathwayConstants returns the string constants named Pathway... (not
// PathwayCodeSystem...) declared in the given files of this package.
func btPathwayConstants(t *testing.T, files ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if !strings.HasPrefix(id.Name, "Pathway") || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					out[id.Name] = v
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no Pathway constants found")
	}
	return out
}
