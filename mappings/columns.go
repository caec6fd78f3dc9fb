package mappings

import (
	"sort"
	"strings"
)

// Reference is a field a mapping reads: a CSV column, a JSON key or path,
// an HL7 v2 field. It names the source's structure, never a value.
type Reference struct {
	Name string
	// Required says a required expression reads it: a record without it
	// cannot convert.
	Required bool
	// RequiredBy are the targets whose required expression reads it, sorted.
	RequiredBy []string
	// Targets are the targets it fills or decides (through a when or a
	// case), sorted; "record" for reject rules.
	Targets []string
}

// Important says the reference decides triage or risk (service.triage,
// service.priority, risk[]): stepped-care routing depends on it, so a
// missing column must be noticed.
func (r Reference) Important() bool {
	for _, t := range r.Targets {
		if t == "service.triage" || t == "service.priority" || strings.HasPrefix(t, "risk[") {
			return true
		}
	}
	return false
}

// References lists every field the mapping reads, sorted by name.
func (m *Mapping) References() []Reference {
	refs := map[string]*Reference{}
	add := func(name, target string, required bool) {
		if name == "" {
			return
		}
		r := refs[name]
		if r == nil {
			r = &Reference{Name: name}
			refs[name] = r
		}
		if required {
			r.Required = true
			if !contains(r.RequiredBy, target) {
				r.RequiredBy = append(r.RequiredBy, target)
			}
		}
		for _, t := range r.Targets {
			if t == target {
				return
			}
		}
		r.Targets = append(r.Targets, target)
	}
	var cond func(c *condition, target string)
	cond = func(c *condition, target string) {
		if c == nil {
			return
		}
		add(c.field, target, false)
		cond(c.not, target)
		for _, s := range c.all {
			cond(s, target)
		}
		for _, s := range c.any {
			cond(s, target)
		}
	}
	var walk func(e expr, target string)
	walk = func(e expr, target string) {
		for _, f := range e.froms {
			add(f, target, e.required)
		}
		for _, c := range e.cases {
			cond(c.when, target)
			walk(c.expr, target)
		}
		if e.system != nil {
			walk(*e.system, target)
		}
	}
	for _, rj := range m.rejects {
		cond(rj.when, "record")
	}
	for _, ru := range m.rules {
		cond(ru.when, ru.name)
		walk(ru.expr, ru.name)
	}
	out := make([]Reference, 0, len(refs))
	for _, r := range refs {
		sort.Strings(r.Targets)
		sort.Strings(r.RequiredBy)
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// MissingColumn is a column the mapping reads that a CSV header lacks.
type MissingColumn struct {
	Reference
	// Closest is the header name most like it (a likely misspelling), or "".
	Closest string
}

// HeaderCheck is how a CSV header matches the columns a mapping reads.
type HeaderCheck struct {
	// Missing are the columns the mapping reads that the header lacks.
	// One that is Required makes every record fail: the file is unusable.
	Missing []MissingColumn
	// Unknown are header columns the mapping never reads: their cells are
	// ignored, which is fine for extra columns and wrong for misspellings.
	Unknown []string
}

// RequiredMissing returns the missing columns that are required.
func (h HeaderCheck) RequiredMissing() []MissingColumn {
	var out []MissingColumn
	for _, m := range h.Missing {
		if m.Required {
			out = append(out, m)
		}
	}
	return out
}

// CheckHeader compares a CSV header with the columns the mapping reads.
func (m *Mapping) CheckHeader(header []string) HeaderCheck {
	var h HeaderCheck
	inHeader := map[string]bool{}
	for _, c := range header {
		inHeader[c] = true
	}
	read := map[string]bool{}
	for _, r := range m.References() {
		read[r.Name] = true
	}
	for _, c := range header {
		if !read[c] {
			h.Unknown = append(h.Unknown, c)
		}
	}
	for _, r := range m.References() {
		if inHeader[r.Name] {
			continue
		}
		h.Missing = append(h.Missing, MissingColumn{Reference: r, Closest: closest(r.Name, h.Unknown)})
	}
	return h
}

// closest returns the candidate most like name, when it is like enough to
// be a misspelling of it (an edit distance of at most a third of its
// length, ignoring case, "_", "-" and spaces), or "".
func closest(name string, candidates []string) string {
	key := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '_' || r == '-' || r == ' ' {
				return -1
			}
			return r
		}, strings.ToLower(s))
	}
	want := key(name)
	best, bestD := "", len([]rune(want))/3+1
	for _, c := range candidates {
		if d := editDistance(want, key(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Damerau-Levenshtein (optimal string alignment)
// distance between a and b, in runes: a swap of two letters counts one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
