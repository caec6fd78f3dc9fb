package mappings

import (
	"fmt"
	"net/url"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Unmapped says what a table does with a source value it has no entry for.
type Unmapped string

const (
	UnmappedReject  Unmapped = "reject"  // the record is rejected, naming the table and the field
	UnmappedText    Unmapped = "text"    // the value is kept as text, without a code
	UnmappedDefault Unmapped = "default" // the table's default code is used
	// UnmappedCode keeps a value that is already a code, written
	// system|code or system|code|display (as a FHIR source's codings are
	// read), and rejects the record when the value is not one.
	UnmappedCode Unmapped = "code"
)

// Table is a code translation table, ConceptMap-like: source values (matched
// without regard to case or surrounding spaces) to codes.
type Table struct {
	Name     string
	Unmapped Unmapped
	Default  Code
	entries  map[string]Code
}

// Lookup translates a source value. A value written system|code|display
// that has no entry of its own matches the entry for system|code, so a
// coding matches whatever display it carries.
func (t *Table) Lookup(v string) (Code, bool) {
	if c, ok := t.entries[normKey(v)]; ok {
		return c, true
	}
	if strings.Count(v, "|") == 2 {
		c, ok := t.entries[normKey(v[:strings.LastIndexByte(v, '|')])]
		return c, ok
	}
	return Code{}, false
}

// normKey is how table keys and source values are compared.
func normKey(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(s), " "))
}

// parseCode reads "system|code|display", "system|code" or a bare "code".
func parseCode(s string) (Code, error) {
	parts := strings.Split(s, "|")
	switch len(parts) {
	case 1:
		if strings.TrimSpace(parts[0]) == "" {
			return Code{}, fmt.Errorf("empty code")
		}
		return Code{Code: strings.TrimSpace(parts[0])}, nil
	case 2, 3:
		c := Code{System: strings.TrimSpace(parts[0]), Code: strings.TrimSpace(parts[1])}
		if len(parts) == 3 {
			c.Display = strings.TrimSpace(parts[2])
		}
		if c.Code == "" {
			return Code{}, fmt.Errorf("missing code in system|code|display")
		}
		if u, err := url.Parse(c.System); err != nil || (u.Scheme == "") {
			return Code{}, fmt.Errorf("system %q is not an absolute URI (http://snomed.info/sct, urn:ietf:bcp:47...)", c.System)
		}
		return c, nil
	}
	return Code{}, fmt.Errorf("too many | in a code: write system|code|display")
}

// table reads one table: {unmapped: reject|text|default, default: code,
// map: {value: code}} or {file: path, ...} with the map in that file.
func (l *loader) table(name string, n *yaml.Node) *Table {
	if n.Kind != yaml.MappingNode {
		l.errorf(n, "table %q is a mapping with unmapped, map (or file) and, for unmapped: default, default", name)
		return nil
	}
	t := &Table{Name: name, entries: map[string]Code{}}
	var defNode, mapNode *yaml.Node
	for _, kv := range pairs(n) {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "unmapped":
			t.Unmapped = Unmapped(l.str(v))
			switch t.Unmapped {
			case UnmappedReject, UnmappedText, UnmappedDefault, UnmappedCode:
			default:
				l.errorf(v, "unmapped must be reject, text, default or code")
			}
		case "default":
			defNode = v
			if c, err := parseCode(l.str(v)); err != nil {
				l.errorf(v, "default of table %q: %v", name, err)
			} else {
				t.Default = c
			}
		case "map":
			mapNode = v
		case "file":
			mapNode = l.tableFile(v)
		default:
			l.errorf(k, "unknown table option %q: expected unmapped, default, map or file", k.Value)
		}
	}
	if t.Unmapped == "" {
		l.errorf(n, "table %q must say what happens to unmapped values: unmapped: reject, text, default or code", name)
	}
	if t.Unmapped == UnmappedDefault && defNode == nil {
		l.errorf(n, "table %q has unmapped: default but no default", name)
	}
	if mapNode == nil {
		l.errorf(n, "table %q has no map (or file)", name)
		return t
	}
	if mapNode.Kind != yaml.MappingNode {
		l.errorf(mapNode, "map is a mapping from source value to system|code|display")
		return t
	}
	for _, kv := range pairs(mapNode) {
		k, v := kv[0], kv[1]
		key := normKey(k.Value)
		if key == "" {
			l.errorf(k, "empty source value in table %q", name)
			continue
		}
		if _, dup := t.entries[key]; dup {
			l.errorf(k, "source value %q appears twice in table %q (values match without regard to case)", k.Value, name)
			continue
		}
		c, err := parseCode(l.str(v))
		if err != nil {
			l.errorf(v, "table %q: %v", name, err)
			continue
		}
		t.entries[key] = c
	}
	return t
}

// tableFile loads a table's map from a YAML file: a mapping of source value
// to system|code|display. Problems in it are reported at that file's lines.
func (l *loader) tableFile(v *yaml.Node) *yaml.Node {
	name := l.str(v)
	if l.readFile == nil {
		l.errorf(v, "table file %q: files cannot be read here", name)
		return nil
	}
	data, err := l.readFile(name)
	if err != nil {
		l.errorf(v, "reading table file %q: %v", name, err)
		return nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		p := yamlProblem(name, err)
		l.problems = append(l.problems, p)
		return nil
	}
	if len(doc.Content) == 0 {
		l.errorf(v, "table file %q is empty", name)
		return nil
	}
	return doc.Content[0]
}
