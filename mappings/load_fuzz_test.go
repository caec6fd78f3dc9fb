package mappings

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the mapping loader. It must never
// panic, and it either returns a mapping or a *LoadError whose every
// problem has a position inside the file (so lint output can always be
// followed to a line) and a message.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(goodHead + "  patient.gender: {from: g, table: g}\n"))
	f.Add([]byte(goodHead + "  service.authored_on: {from: d, date: [DD/MM/YYYY, YYYY-MM-DD]}\n"))
	f.Add([]byte(goodHead + "  patient.languages: {from: l, split: \";\", table: g, when: {field: x, in: [a, b]}}\n"))
	f.Add([]byte(goodHead + "  screening[0].score: s\n  screening[1].instrument: {const: gad-7}\n"))
	f.Add([]byte("mapping: t\ninput: {format: hl7v2}\nfields: {source.system: {const: x}, source.record_id: MSH-10}\n"))
	f.Add([]byte("tables: {a: {file: codes.csv}}\n"))
	f.Add([]byte("- [\n"))
	f.Add([]byte("&a [*a]\n"))
	f.Add([]byte(goodHead + "reject:\n  - {when: {field: s, split: \" \", in: [a]}, reason: r}\n  patient.identifiers: {from: [a, b], system: {from: c}, join: \"/\"}\n"))
	for _, name := range Builtins() {
		if b, err := builtinFS.ReadFile("builtin/" + name + ".yaml"); err == nil {
			f.Add(b)
		}
	}
	noFiles := func(name string) ([]byte, error) { return nil, fmt.Errorf("no file %q in the fuzz test", name) }
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Load("m.yaml", data, noFiles)
		if err == nil {
			if m == nil || m.Name == "" {
				t.Fatalf("Load returned no error and no named mapping")
			}
			return
		}
		var le *LoadError
		if !errors.As(err, &le) {
			t.Fatalf("Load error is %T, want *LoadError: %v", err, err)
		}
		if len(le.Problems) == 0 {
			t.Fatal("LoadError with no problems")
		}
		lines := strings.Count(string(data), "\n") + 1
		for _, p := range le.Problems {
			if p.File != "m.yaml" || p.Message == "" {
				t.Errorf("problem without file or message: %+v", p)
			}
			if p.Line < 0 || p.Line > lines+1 {
				t.Errorf("problem line %d outside a %d-line file: %s", p.Line, lines, p)
			}
		}
	})
}
