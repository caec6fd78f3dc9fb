package mappings

import (
	"fmt"
	"net/url"
	"path"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Format is the kind of input a mapping reads.
type Format string

const (
	FormatCSV    Format = "csv"    // one record per row; from: names a column
	FormatJSON   Format = "json"   // a JSON array of objects; from: names a key or a path (grp/field, a.b)
	FormatNDJSON Format = "ndjson" // one JSON object per line; from: as for json
	FormatHL7v2  Format = "hl7v2"  // HL7 v2 messages; from: names a field (PID-5.1)
	FormatFHIR   Format = "fhir"   // FHIR JSON resources or Bundles; from: as for json
)

func (f Format) valid() bool {
	switch f {
	case FormatCSV, FormatJSON, FormatNDJSON, FormatHL7v2, FormatFHIR:
		return true
	}
	return false
}

// Input says how to read a mapping's source files.
type Input struct {
	Format Format
	// Delimiter separates CSV cells (default ",").
	Delimiter string
	// Encoding of CSV files: utf-8 (default), windows-1252 or latin-1.
	Encoding string
	// Location is the time zone of dates written without one (default UTC).
	Location *time.Location
}

// Mapping is a loaded, checked mapping file. Apply it to a record's fields
// to get a Referral.
type Mapping struct {
	Name        string
	Description string
	Input       Input
	rules       []rule
	rejects     []rejectRule
	tables      map[string]*Table
	// sourceSystem, when set, replaces what the source.system rule gives.
	sourceSystem string
}

// WithSourceSystem returns a copy of the mapping whose records all have
// source system uri, in place of what its source.system rule gives. The
// source system seeds every id, so two NGOs using the same built-in
// mapping must each name their own, or their records' ids collide
// (both NGOs' "R-001" would become the same resources). uri must be an
// absolute URI.
func (m *Mapping) WithSourceSystem(uri string) (*Mapping, error) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme == "" || (u.Opaque == "" && u.Host == "") || strings.ContainsAny(uri, " \t\r\n") {
		return nil, fmt.Errorf("source system %q is not an absolute URI such as https://ngo-a.example/cases or urn:oid:1.2.3", uri)
	}
	c := *m
	c.sourceSystem = uri
	return &c, nil
}

// DefaultSourceSystem returns the constant the mapping's source.system
// rule gives, when it is a plain constant and WithSourceSystem has not
// replaced it: such a mapping gives every user the same ids for the same
// record ids.
func (m *Mapping) DefaultSourceSystem() (string, bool) {
	if m.sourceSystem != "" {
		return "", false
	}
	for _, r := range m.rules {
		if r.name == "source.system" && r.when == nil && r.expr.constant != nil && len(r.expr.cases) == 0 {
			return *r.expr.constant, true
		}
	}
	return "", false
}

// rejectRule rejects the records its condition holds for, with a reason the
// mapping's author wrote (so it never holds a value from the record).
type rejectRule struct {
	when   *condition
	reason string
}

// rule fills one target from an expression, when its condition holds.
type rule struct {
	name   string // as written: "screening[0].score"
	target target
	index  int
	when   *condition
	expr   expr
	line   int
}

// expr computes a target's value from a record.
type expr struct {
	from       string   // the references as written, for problems: "RF1-6.1, RF1-11.1"
	froms      []string // the references read, in order
	constant   *string
	cases      []caseRule
	def        *string
	trim       bool
	normalize  []string
	split      string
	item       int // pick the item-th value (from 1) of the split values, empty ones counted; 0: all
	dates      []dateFormat
	table      *Table
	required   bool
	boolValues map[string]bool
	dateGiven  bool    // a date option was written, even if its formats were wrong
	join       *string // join the values into one, with this separator
	system     *expr   // identifier targets: the namespace of each value
}

type caseRule struct {
	when *condition
	expr expr
}

// condition is a test on the record's fields.
type condition struct {
	field  string
	split  string // test each part of each value (a select-multiple answer)
	equals *string
	in     []string
	empty  *bool
	all    []*condition
	any    []*condition
	not    *condition
}

// Problem is one thing wrong in a mapping file, at file:line:col.
type Problem struct {
	File      string
	Line, Col int
	Message   string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Col, p.Message)
}

// LoadError lists every problem found in a mapping file.
type LoadError struct{ Problems []Problem }

func (e *LoadError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// loader collects problems while reading a mapping file.
type loader struct {
	file     string
	readFile func(string) ([]byte, error)
	problems []Problem
	tables   map[string]*Table
}

func (l *loader) errorf(n *yaml.Node, format string, args ...any) {
	p := Problem{File: l.file, Message: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Col = n.Line, n.Column
	}
	l.problems = append(l.problems, p)
}

// Load reads a mapping file. name is the file name used in problems;
// readFile opens files the mapping refers to (code tables), relative to
// the mapping's folder. Every problem is reported, as a *LoadError.
func Load(name string, data []byte, readFile func(string) ([]byte, error)) (*Mapping, error) {
	l := &loader{file: name, readFile: readFile, tables: map[string]*Table{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &LoadError{Problems: []Problem{yamlProblem(name, err)}}
	}
	if len(doc.Content) == 0 {
		return nil, &LoadError{Problems: []Problem{{File: name, Line: 1, Col: 1, Message: "empty mapping file"}}}
	}
	root := doc.Content[0]
	m := &Mapping{tables: l.tables, Input: Input{Delimiter: ",", Encoding: "utf-8", Location: time.UTC}}
	if root.Kind != yaml.MappingNode {
		l.errorf(root, "a mapping file is a YAML mapping with keys mapping, input, tables, reject and fields")
		return nil, &LoadError{Problems: l.problems}
	}
	var fieldsNode *yaml.Node
	seen := map[string]bool{}
	for _, kv := range pairs(root) {
		k, v := kv[0], kv[1]
		if seen[k.Value] {
			l.errorf(k, "%q appears twice", k.Value)
		}
		seen[k.Value] = true
		switch k.Value {
		case "mapping":
			m.Name = l.str(v)
		case "description":
			m.Description = l.str(v)
		case "input":
			l.input(v, &m.Input)
		case "tables":
			l.tablesNode(v)
		case "fields":
			fieldsNode = v
		case "reject":
			m.rejects = l.rejectRules(v)
		default:
			l.errorf(k, "unknown key %q: expected mapping, description, input, tables, reject or fields", k.Value)
		}
	}
	if m.Name == "" {
		l.errorf(root, "missing \"mapping\": the mapping's name")
	}
	if m.Input.Format == "" {
		l.errorf(root, "missing \"input\" with a format (csv, json, ndjson, hl7v2, fhir)")
	}
	if fieldsNode == nil {
		l.errorf(root, "missing \"fields\": what fills the referral")
	} else {
		m.rules = l.fields(fieldsNode)
	}
	if len(l.problems) > 0 {
		return nil, &LoadError{Problems: l.problems}
	}
	return m, nil
}

func yamlProblem(file string, err error) Problem {
	p := Problem{File: file, Line: 1, Col: 1, Message: "not valid YAML: " + err.Error()}
	var line int
	if _, scanErr := fmt.Sscanf(strings.TrimPrefix(err.Error(), "yaml: "), "line %d:", &line); scanErr == nil && line > 0 {
		p.Line = line
		if _, msg, ok := strings.Cut(err.Error(), fmt.Sprintf("line %d: ", line)); ok {
			p.Message = "not valid YAML: " + msg
		}
	}
	return p
}

// pairs returns a mapping node's key/value pairs.
func pairs(n *yaml.Node) [][2]*yaml.Node {
	var out [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		out = append(out, [2]*yaml.Node{n.Content[i], n.Content[i+1]})
	}
	return out
}

func (l *loader) str(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode {
		l.errorf(n, "expected a single value")
		return ""
	}
	return n.Value
}

func (l *loader) boolean(n *yaml.Node) bool {
	var b bool
	if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
		l.errorf(n, "expected true or false")
	}
	return b
}

func (l *loader) strList(n *yaml.Node) []string {
	switch n.Kind {
	case yaml.ScalarNode:
		return []string{n.Value}
	case yaml.SequenceNode:
		out := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			out = append(out, l.str(c))
		}
		return out
	}
	l.errorf(n, "expected a value or a list of values")
	return nil
}

func (l *loader) input(n *yaml.Node, in *Input) {
	if n.Kind != yaml.MappingNode {
		l.errorf(n, "input is a mapping: {format: csv, delimiter: \",\", encoding: utf-8, timezone: UTC}")
		return
	}
	for _, kv := range pairs(n) {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "format":
			in.Format = Format(l.str(v))
			if !in.Format.valid() {
				l.errorf(v, "unknown input format %q: expected csv, json, ndjson, hl7v2 or fhir", v.Value)
			}
		case "delimiter":
			in.Delimiter = l.str(v)
			if len([]rune(in.Delimiter)) != 1 || in.Delimiter == "\"" || in.Delimiter == "\n" {
				l.errorf(v, "delimiter must be one character, such as \",\", \";\" or \"\\t\"")
			}
		case "encoding":
			in.Encoding = strings.ToLower(l.str(v))
			switch in.Encoding {
			case "utf-8", "utf8", "windows-1252", "cp1252", "latin-1", "iso-8859-1":
			default:
				l.errorf(v, "unknown encoding %q: expected utf-8, windows-1252 or latin-1", v.Value)
			}
		case "timezone":
			loc, err := time.LoadLocation(l.str(v))
			if err != nil {
				l.errorf(v, "unknown time zone %q: use an IANA name such as Europe/Athens", v.Value)
			} else {
				in.Location = loc
			}
		default:
			l.errorf(k, "unknown input option %q: expected format, delimiter, encoding or timezone", k.Value)
		}
	}
}

func (l *loader) tablesNode(n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		l.errorf(n, "tables is a mapping from table name to table")
		return
	}
	for _, kv := range pairs(n) {
		name := kv[0].Value
		if _, dup := l.tables[name]; dup {
			l.errorf(kv[0], "table %q defined twice", name)
		}
		if t := l.table(name, kv[1]); t != nil {
			l.tables[name] = t
		}
	}
}

func (l *loader) fields(n *yaml.Node) []rule {
	if n.Kind != yaml.MappingNode {
		l.errorf(n, "fields is a mapping from target (patient.gender) to expression")
		return nil
	}
	var rules []rule
	seen := map[string]*yaml.Node{}
	for _, kv := range pairs(n) {
		k, v := kv[0], kv[1]
		t, idx, err := lookupTarget(k.Value)
		if err != nil {
			l.errorf(k, "%v", err)
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			l.errorf(k, "target %q is already set at line %d", k.Value, prev.Line)
			continue
		}
		seen[k.Value] = k
		r := rule{name: k.Value, target: t, index: idx, line: k.Line}
		r.when, r.expr = l.expression(v, t)
		rules = append(rules, r)
	}
	if seen["source.record_id"] == nil {
		l.errorf(n, "no rule for source.record_id: every record needs a stable id")
	}
	if seen["source.system"] == nil {
		l.errorf(n, "no rule for source.system: ids are derived from the source system and the record id")
	}
	return rules
}

// expression reads one expression. A bare scalar is short for {from: NAME}.
func (l *loader) expression(n *yaml.Node, t target) (*condition, expr) {
	e := expr{trim: true}
	if n.Kind == yaml.ScalarNode {
		e.from, e.froms = n.Value, []string{n.Value}
		l.checkKind(n, t, &e)
		return nil, e
	}
	if n.Kind != yaml.MappingNode {
		l.errorf(n, "an expression is a column name or a mapping such as {from: column, table: name}")
		return nil, e
	}
	var when *condition
	var sources int
	for _, kv := range pairs(n) {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "from":
			e.froms = l.strList(v)
			e.from = strings.Join(e.froms, ", ")
			if len(e.froms) == 0 {
				l.errorf(v, "from needs a reference, or a list of them")
			}
			sources++
		case "const":
			s := l.str(v)
			e.constant = &s
			sources++
		case "cases":
			sources++
			if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
				l.errorf(v, "cases is a list of {when: ..., from|const: ...}, first match wins")
				continue
			}
			for _, c := range v.Content {
				cw, ce := l.expression(c, t)
				e.cases = append(e.cases, caseRule{when: cw, expr: ce})
			}
		case "when":
			when = l.condition(v)
		case "default":
			s := l.str(v)
			e.def = &s
		case "trim":
			e.trim = l.boolean(v)
		case "required":
			e.required = l.boolean(v)
		case "normalize", "normalise":
			e.normalize = l.strList(v)
			for _, op := range e.normalize {
				switch op {
				case "lower", "upper", "collapse-space", "nfc":
				default:
					l.errorf(v, "unknown normalisation %q: expected lower, upper, collapse-space or nfc", op)
				}
			}
		case "split":
			e.split = l.str(v)
			if e.split == "" {
				l.errorf(v, "split needs a separator such as \";\"")
			}
		case "item":
			if v.Kind != yaml.ScalarNode || v.Decode(&e.item) != nil || e.item < 1 {
				l.errorf(v, "item is a position from 1: which of the split values to take (item: 2 is the second)")
			}
		case "date":
			e.dateGiven = true
			for _, f := range l.strList(v) {
				df, err := parseDateFormat(f)
				if err != nil {
					l.errorf(v, "%v", err)
					continue
				}
				e.dates = append(e.dates, df)
			}
		case "table":
			name := l.str(v)
			if tb, ok := l.tables[name]; ok {
				e.table = tb
			} else {
				l.errorf(v, "no table %q: define it under tables (before fields)", name)
			}
		case "join":
			sep := l.str(v)
			e.join = &sep
		case "system":
			sw, se := l.expression(v, target{name: t.name + " system", kind: kindString})
			if sw != nil {
				l.errorf(v, "system takes no when: put the condition on the identifier expression")
			}
			e.system = &se
		case "booleans":
			if v.Kind != yaml.MappingNode {
				l.errorf(v, "booleans maps source values to true or false: {oui: true, non: false}")
				continue
			}
			e.boolValues = map[string]bool{}
			for _, bv := range pairs(v) {
				e.boolValues[normKey(bv[0].Value)] = l.boolean(bv[1])
			}
		default:
			l.errorf(k, "unknown option %q: expected from, const, cases, when, default, trim, required, normalize, split, item, join, date, table, booleans or system", k.Value)
		}
	}
	if sources != 1 {
		l.errorf(n, "an expression needs exactly one of from, const or cases")
	}
	l.checkKind(n, t, &e)
	return when, e
}

// checkKind reports options that make no sense for the target's kind.
func (l *loader) checkKind(n *yaml.Node, t target, e *expr) {
	multi := t.kind == kindStrings || t.kind == kindCodes || t.kind == kindIdentifiers
	if e.item > 0 && e.split == "" {
		l.errorf(n, "item picks one of the split values: give split too")
	}
	if e.split != "" && e.join == nil && e.item == 0 && !multi {
		l.errorf(n, "split gives several values, but %s takes one (%s)", t.name, t.kind)
	}
	if len(e.dates) > 0 && t.kind != kindDate && t.kind != kindPartialDate {
		l.errorf(n, "date formats given, but %s is a %s", t.name, t.kind)
	}
	if (t.kind == kindDate || t.kind == kindPartialDate) && !e.dateGiven && e.constant == nil && len(e.cases) == 0 {
		l.errorf(n, "%s is a date: give its formats explicitly, e.g. date: [DD/MM/YYYY, YYYY-MM-DD]", t.name)
	}
	if (t.kind == kindCode || t.kind == kindCodes) && e.table == nil && e.constant == nil && len(e.cases) == 0 {
		l.errorf(n, "%s is a code: translate it with a table, or give const: system|code|display", t.name)
	}
	if e.constant != nil && (t.kind == kindCode || t.kind == kindCodes) && e.table == nil {
		if _, err := parseCode(*e.constant); err != nil {
			l.errorf(n, "const for %s: %v", t.name, err)
		}
	}
	if e.boolValues != nil && t.kind != kindBool {
		l.errorf(n, "booleans given, but %s is a %s", t.name, t.kind)
	}
	if e.system != nil && t.kind != kindIdentifiers {
		l.errorf(n, "system gives identifiers their namespace, but %s is a %s", t.name, t.kind)
	}
	if t.kind == kindIdentifiers && e.table != nil {
		l.errorf(n, "identifiers are kept as written: translate their namespace with a table under system")
	}
}

// rejectRules reads the reject list: [{when: CONDITION, reason: TEXT}].
func (l *loader) rejectRules(n *yaml.Node) []rejectRule {
	if n.Kind != yaml.SequenceNode {
		l.errorf(n, "reject is a list of {when: CONDITION, reason: TEXT}")
		return nil
	}
	var out []rejectRule
	for _, item := range n.Content {
		if item.Kind != yaml.MappingNode {
			l.errorf(item, "a reject rule is {when: CONDITION, reason: TEXT}")
			continue
		}
		var r rejectRule
		for _, kv := range pairs(item) {
			k, v := kv[0], kv[1]
			switch k.Value {
			case "when":
				r.when = l.condition(v)
			case "reason":
				r.reason = strings.TrimSpace(l.str(v))
			default:
				l.errorf(k, "unknown reject option %q: expected when and reason", k.Value)
			}
		}
		if r.when == nil {
			l.errorf(item, "a reject rule needs when: the condition that rejects a record")
		}
		if r.reason == "" {
			l.errorf(item, "a reject rule needs reason: what the rejects file says (it may not quote the record)")
		}
		if r.when != nil && r.reason != "" {
			out = append(out, r)
		}
	}
	return out
}

func (l *loader) condition(n *yaml.Node) *condition {
	if n.Kind != yaml.MappingNode {
		l.errorf(n, "when is a condition such as {field: column, equals: value}")
		return nil
	}
	c := &condition{}
	ops := 0
	for _, kv := range pairs(n) {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "field":
			c.field = l.str(v)
		case "split":
			if c.split = l.str(v); c.split == "" {
				l.errorf(v, "split needs a separator such as \" \" (KoboToolbox select-multiple answers) or \";\"")
			}
		case "equals":
			s := l.str(v)
			c.equals = &s
			ops++
		case "in":
			c.in = l.strList(v)
			ops++
		case "empty":
			b := l.boolean(v)
			c.empty = &b
			ops++
		case "all", "any":
			if v.Kind != yaml.SequenceNode {
				l.errorf(v, "%s is a list of conditions", k.Value)
				continue
			}
			for _, sub := range v.Content {
				if sc := l.condition(sub); sc != nil {
					if k.Value == "all" {
						c.all = append(c.all, sc)
					} else {
						c.any = append(c.any, sc)
					}
				}
			}
			ops++
		case "not":
			c.not = l.condition(v)
			ops++
		default:
			l.errorf(k, "unknown condition %q: expected field (and split) with equals, in or empty; or all, any, not", k.Value)
		}
	}
	if ops != 1 {
		l.errorf(n, "a condition needs exactly one of equals, in, empty, all, any or not")
	}
	if (c.equals != nil || c.in != nil || c.empty != nil) && c.field == "" {
		l.errorf(n, "the condition needs field: the column or path to test")
	}
	if c.split != "" && c.field == "" {
		l.errorf(n, "split applies to a field: {field: REF, split: \" \", equals: VALUE}")
	}
	return c
}

// LoadFile reads a mapping from disk; code tables named in it are read
// relative to its folder.
func LoadFile(name string, readFile func(string) ([]byte, error)) (*Mapping, error) {
	data, err := readFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading mapping %q: %w", name, err)
	}
	dir := path.Dir(name)
	return Load(name, data, func(p string) ([]byte, error) {
		if !path.IsAbs(p) {
			p = path.Join(dir, p)
		}
		return readFile(p)
	})
}
