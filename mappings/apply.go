package mappings

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// Fields gives a mapping read access to one source record.
type Fields interface {
	// Lookup returns the values at ref (a CSV column, a JSON key or path, an
	// HL7 v2 field, a FHIR path) and whether ref exists in the record at
	// all. A CSV cell gives one value; a JSON array, a repeated HL7 v2 field
	// or a FHIR list gives several.
	Lookup(ref string) ([]string, bool)
}

// FieldProblem is why one target of a record could not be filled. It
// names the target and the source field, never the value.
type FieldProblem struct {
	Target string // "patient.birth_date"
	From   string // the column, path or HL7 field read ("" for constants)
	Reason string
}

func (p FieldProblem) String() string {
	if p.From == "" {
		return p.Target + ": " + p.Reason
	}
	return fmt.Sprintf("%s (from %q): %s", p.Target, p.From, p.Reason)
}

// RecordError lists every problem of one record. The record is rejected
// whole: nothing of it is converted.
type RecordError struct{ Problems []FieldProblem }

func (e *RecordError) Error() string {
	s := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		s[i] = p.String()
	}
	return strings.Join(s, "; ")
}

// Apply fills a Referral from one record. Every problem is collected (the
// reasons of the reject rules that hold, then those of the fields); the
// result is returned only when there are none.
func (m *Mapping) Apply(f Fields) (Referral, error) {
	var r Referral
	var problems []FieldProblem
	for _, rj := range m.rejects {
		if rj.when.holds(f) {
			problems = append(problems, FieldProblem{Target: "record", From: rj.when.firstField(), Reason: rj.reason})
		}
	}
	for _, ru := range m.rules {
		if ru.when != nil && !ru.when.holds(f) {
			continue
		}
		v, set, err := m.eval(ru.expr, ru.target, f)
		if err != nil {
			problems = append(problems, FieldProblem{Target: ru.name, From: err.from, Reason: err.reason})
			continue
		}
		if set {
			ru.target.set(&r, ru.index, v)
		}
	}
	if m.sourceSystem != "" {
		r.SourceSystem = m.sourceSystem
	}
	if r.RecordID == "" && !hasProblem(problems, "source.record_id") {
		problems = append(problems, FieldProblem{Target: "source.record_id", Reason: "the record has no id"})
	}
	if len(problems) > 0 {
		return Referral{}, &RecordError{Problems: problems}
	}
	compact(&r)
	return r, nil
}

// compact drops list entries a mapping left without their key value (a
// GAD-7 score column filled while the PHQ-9 one is empty leaves screening[0]
// empty), so gaps never reach the bundle.
func compact(r *Referral) {
	s := r.Screenings[:0]
	for _, x := range r.Screenings {
		if x.Instrument != "" || x.Score != nil {
			s = append(s, x)
		}
	}
	r.Screenings = s
	rs := r.Risks[:0]
	for _, x := range r.Risks {
		if !x.Code.IsZero() {
			rs = append(rs, x)
		}
	}
	r.Risks = rs
	os := r.Outcomes[:0]
	for _, x := range r.Outcomes {
		if !x.Code.IsZero() || x.Value != "" {
			os = append(os, x)
		}
	}
	r.Outcomes = os
	if len(r.Screenings) == 0 {
		r.Screenings = nil
	}
	if len(r.Risks) == 0 {
		r.Risks = nil
	}
	if len(r.Outcomes) == 0 {
		r.Outcomes = nil
	}
}

func hasProblem(ps []FieldProblem, target string) bool {
	for _, p := range ps {
		if p.Target == target {
			return true
		}
	}
	return false
}

type evalError struct{ from, reason string }

// eval computes an expression's value. set is false when there is no value
// and none is required.
func (m *Mapping) eval(e expr, t target, f Fields) (value, bool, *evalError) {
	if len(e.cases) > 0 {
		for _, c := range e.cases {
			if c.when == nil || c.when.holds(f) {
				return m.eval(c.expr, t, f)
			}
		}
		return value{}, false, nil
	}
	if t.kind == kindIdentifiers {
		return m.identifiers(e, f)
	}
	vals := m.clean(e, m.raw(e, f))
	if len(vals) == 0 && e.def != nil {
		vals = m.clean(e, []string{*e.def})
	}
	if e.join != nil && len(vals) > 1 {
		vals = []string{strings.Join(vals, *e.join)}
	}
	if len(vals) == 0 {
		if e.required {
			if m.keyed() && e.constant == nil && !present(e, f) {
				return value{}, false, &evalError{e.from, "required, but empty: the record has no such key (check its name)"}
			}
			return value{}, false, &evalError{e.from, "required, but empty"}
		}
		return value{}, false, nil
	}
	multi := t.kind == kindStrings || t.kind == kindCodes
	if !multi && len(vals) > 1 {
		return value{}, false, &evalError{e.from, fmt.Sprintf("%d values, but %s takes one", len(vals), t.kind)}
	}
	var v value
	for i, s := range vals {
		item := ""
		if multi && len(vals) > 1 {
			item = fmt.Sprintf(" (item %d)", i+1)
		}
		switch t.kind {
		case kindString, kindStrings:
			if e.table != nil {
				c, err := m.translate(e.table, s)
				if err != "" {
					return value{}, false, &evalError{e.from, err + item}
				}
				s = c.Code
				if s == "" {
					s = c.Text
				}
			}
			v.s = s
			v.ss = append(v.ss, s)
		case kindBool:
			b, ok := e.boolValues[normKey(s)]
			if !ok && e.boolValues == nil {
				b, ok = parseBool(s)
			}
			if !ok {
				return value{}, false, &evalError{e.from, "not a yes/no value (use booleans: to name the source's words)"}
			}
			v.b = b
		case kindInt:
			n, err := strconv.Atoi(s)
			if err != nil {
				return value{}, false, &evalError{e.from, "not a whole number"}
			}
			v.i = n
		case kindDate, kindPartialDate:
			formats := e.dates
			if e.constant != nil && len(formats) == 0 {
				formats = []dateFormat{{written: "iso", iso: true}}
			}
			tm, precision, ok := parseDate(s, formats, m.Input.Location)
			if !ok {
				return value{}, false, &evalError{e.from, "not a valid date in any of the formats " + formatList(formats)}
			}
			v.t = tm
			v.s = partialDate(tm, precision)
		case kindCode, kindCodes:
			var c Code
			if e.table != nil {
				var err string
				if c, err = m.translate(e.table, s); err != "" {
					return value{}, false, &evalError{e.from, err + item}
				}
			} else {
				var perr error
				if c, perr = parseCode(s); perr != nil {
					return value{}, false, &evalError{e.from, perr.Error()}
				}
			}
			v.code = c
			v.codes = append(v.codes, c)
		}
	}
	return v, true, nil
}

// raw returns the source values of an expression: its constant, or the
// values of each of its references in turn.
func (m *Mapping) raw(e expr, f Fields) []string {
	if e.constant != nil {
		return []string{*e.constant}
	}
	if len(e.froms) == 1 {
		vals, _ := f.Lookup(e.froms[0])
		return vals
	}
	var out []string
	for _, ref := range e.froms {
		vals, _ := f.Lookup(ref)
		out = append(out, vals...)
	}
	return out
}

// keyed says records name their fields (JSON keys and paths), so a field
// the record lacks is worth telling apart from an empty one. CSV headers
// are checked once per file instead; HL7 v2 leaves empty fields out.
func (m *Mapping) keyed() bool {
	switch m.Input.Format {
	case FormatJSON, FormatNDJSON, FormatFHIR:
		return true
	}
	return false
}

// present reports whether any reference of e exists in the record, even
// empty: a missing column or key is told apart from an empty one.
func present(e expr, f Fields) bool {
	for _, ref := range e.froms {
		if _, ok := f.Lookup(ref); ok {
			return true
		}
	}
	return false
}

// tidy trims and normalises one value.
func (m *Mapping) tidy(e expr, s string) string {
	if e.trim {
		s = strings.TrimSpace(s)
	}
	for _, op := range e.normalize {
		switch op {
		case "lower":
			s = strings.ToLower(s)
		case "upper":
			s = strings.ToUpper(s)
		case "collapse-space":
			s = strings.Join(strings.Fields(s), " ")
		case "nfc":
			s = norm.NFC.String(s)
		}
	}
	return s
}

// clean trims, splits and normalises raw values, dropping empty ones.
func (m *Mapping) clean(e expr, raw []string) []string {
	var out []string
	add := func(s string) {
		if s = m.tidy(e, s); s != "" {
			out = append(out, s)
		}
	}
	if e.item > 0 && e.split != "" {
		// Positions count empty values, so items of parallel lists
		// ("a;;c" and "1;2;3") stay aligned.
		var parts []string
		for _, s := range raw {
			parts = append(parts, strings.Split(s, e.split)...)
		}
		if e.item <= len(parts) {
			add(parts[e.item-1])
		}
		return out
	}
	for _, s := range raw {
		if e.split == "" {
			add(s)
			continue
		}
		for _, part := range strings.Split(s, e.split) {
			add(part)
		}
	}
	return out
}

// positions evaluates an expression keeping one value per source position
// (split parts included): an empty value stays "", so two expressions over
// the same repeated element line up, as identifier values and their systems
// must. Tables translate each non-empty value; join makes one value.
func (m *Mapping) positions(e expr, f Fields) ([]string, *evalError) {
	if len(e.cases) > 0 {
		for _, c := range e.cases {
			if c.when == nil || c.when.holds(f) {
				return m.positions(c.expr, f)
			}
		}
		return nil, nil
	}
	var vals []string
	for _, s := range m.raw(e, f) {
		parts := []string{s}
		if e.split != "" {
			parts = strings.Split(s, e.split)
		}
		for _, p := range parts {
			vals = append(vals, m.tidy(e, p))
		}
	}
	if e.def != nil && len(nonEmpty(vals)) == 0 {
		vals = []string{m.tidy(e, *e.def)}
	}
	if e.join != nil && len(vals) > 0 {
		vals = []string{strings.Join(nonEmpty(vals), *e.join)}
	}
	if e.table == nil {
		return vals, nil
	}
	for i, s := range vals {
		if s == "" {
			continue
		}
		c, err := m.translate(e.table, s)
		if err != "" {
			return nil, &evalError{e.from, err}
		}
		if vals[i] = c.Code; vals[i] == "" {
			vals[i] = c.Text
		}
	}
	return vals, nil
}

// nonEmpty returns the values that are not "".
func nonEmpty(vals []string) []string {
	var out []string
	for _, v := range vals {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// identifiers evaluates an identifier target: each value with the system
// at the same position, or the one system given for all of them.
func (m *Mapping) identifiers(e expr, f Fields) (value, bool, *evalError) {
	vals, err := m.positions(e, f)
	if err != nil {
		return value{}, false, err
	}
	var systems, given []string
	if e.system != nil {
		if systems, err = m.positions(*e.system, f); err != nil {
			return value{}, false, err
		}
		given = nonEmpty(systems)
	}
	var ids []Identifier
	for i, v := range vals {
		if v == "" {
			continue
		}
		var sys string
		switch {
		case len(systems) == len(vals):
			sys = systems[i]
		case len(given) == 1:
			sys = given[0]
		case len(given) > 1:
			return value{}, false, &evalError{e.from, fmt.Sprintf("%d values but %d systems: system gives one namespace for all values, or one per value", len(vals), len(systems))}
		}
		ids = append(ids, Identifier{System: sys, Value: v})
	}
	if len(ids) == 0 {
		if e.required {
			return value{}, false, &evalError{e.from, "required, but empty"}
		}
		return value{}, false, nil
	}
	return value{ids: ids}, true, nil
}

// translate looks a value up in a table, applying its unmapped rule. The
// problem it returns names the table, never the value.
func (m *Mapping) translate(t *Table, s string) (Code, string) {
	if c, ok := t.Lookup(s); ok {
		return c, ""
	}
	switch t.Unmapped {
	case UnmappedText:
		return Code{Text: s}, ""
	case UnmappedDefault:
		return t.Default, ""
	case UnmappedCode:
		if c, err := parseCode(s); err == nil && c.System != "" {
			return c, ""
		}
		return Code{}, fmt.Sprintf("value not in table %q, and not a code written system|code (unmapped: code)", t.Name)
	}
	return Code{}, fmt.Sprintf("value not in table %q (unmapped: reject)", t.Name)
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "yes", "y", "true", "t", "1":
		return true, true
	case "no", "n", "false", "f", "0":
		return false, true
	}
	return false, false
}

// firstField returns the first field the condition tests, for problems.
func (c *condition) firstField() string {
	if c.field != "" {
		return c.field
	}
	if c.not != nil {
		return c.not.firstField()
	}
	for _, sub := range append(append([]*condition(nil), c.all...), c.any...) {
		if f := sub.firstField(); f != "" {
			return f
		}
	}
	return ""
}

// holds evaluates a condition against a record.
func (c *condition) holds(f Fields) bool {
	switch {
	case c.not != nil:
		return !c.not.holds(f)
	case c.all != nil:
		for _, sub := range c.all {
			if !sub.holds(f) {
				return false
			}
		}
		return true
	case c.any != nil:
		for _, sub := range c.any {
			if sub.holds(f) {
				return true
			}
		}
		return false
	}
	vals, _ := f.Lookup(c.field)
	if c.split != "" {
		var parts []string
		for _, v := range vals {
			parts = append(parts, strings.Split(v, c.split)...)
		}
		vals = parts
	}
	var present []string
	for _, v := range vals {
		if v = strings.TrimSpace(v); v != "" {
			present = append(present, v)
		}
	}
	switch {
	case c.empty != nil:
		return (len(present) == 0) == *c.empty
	case c.equals != nil:
		for _, v := range present {
			if normKey(v) == normKey(*c.equals) {
				return true
			}
		}
	case c.in != nil:
		for _, v := range present {
			for _, want := range c.in {
				if normKey(v) == normKey(want) {
					return true
				}
			}
		}
	}
	return false
}

// MapFields adapts a CSV row (header to cell) to Fields.
type MapFields map[string]string

// Lookup returns the cell under the column ref.
func (m MapFields) Lookup(ref string) ([]string, bool) {
	v, ok := m[ref]
	if !ok {
		return nil, false
	}
	return []string{v}, true
}
