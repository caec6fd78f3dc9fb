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
	// HL7 v2 field) and whether ref exists in the record at all. A CSV cell
	// gives one value; a JSON array or a repeated HL7 v2 field gives several.
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

// Apply fills a Referral from one record. Every problem is collected; the
// result is returned only when there are none.
func (m *Mapping) Apply(f Fields) (Referral, error) {
	var r Referral
	var problems []FieldProblem
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
	var raw []string
	switch {
	case e.constant != nil:
		raw = []string{*e.constant}
	default:
		raw, _ = f.Lookup(e.from)
	}
	vals := m.clean(e, raw)
	if len(vals) == 0 && e.def != nil {
		vals = m.clean(e, []string{*e.def})
	}
	if len(vals) == 0 {
		if e.required {
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

// clean trims, splits and normalises raw values, dropping empty ones.
func (m *Mapping) clean(e expr, raw []string) []string {
	var out []string
	add := func(s string) {
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
		if s != "" {
			out = append(out, s)
		}
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
	var nonEmpty []string
	for _, v := range vals {
		if v = strings.TrimSpace(v); v != "" {
			nonEmpty = append(nonEmpty, v)
		}
	}
	switch {
	case c.empty != nil:
		return (len(nonEmpty) == 0) == *c.empty
	case c.equals != nil:
		for _, v := range nonEmpty {
			if normKey(v) == normKey(*c.equals) {
				return true
			}
		}
	case c.in != nil:
		for _, v := range nonEmpty {
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
