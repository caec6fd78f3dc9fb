package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
)

// finish assembles the decision: the trail of what was withheld, the
// obligations, and the explanation.
func (ev *evaluator) finish(effect Effect, rs []*resource) Decision {
	// Room for every step and obligation below, at most, in one go.
	steps, obls := 0, 0
	for _, r := range rs {
		if r.remove != nil {
			steps, obls = steps+1, obls+1
			continue
		}
		steps += len(r.elems)
		obls += len(r.elems) + len(r.redactions) + len(r.applied)
	}
	if ev.req.Agreement != nil {
		obls += len(ev.req.Agreement.Refrain)
	}
	ev.trail = slices.Grow(ev.trail, steps)
	ev.obl = slices.Grow(ev.obl, obls)
	// The targets ("Type/id path") of every resource are cut from one
	// builder's bytes, and the labels of the label obligations sit in one
	// array: sized here, so that neither moves.
	size, most, labels := 0, 0, 0
	for _, r := range rs {
		if r.remove != nil {
			continue
		}
		for _, ed := range r.elems {
			size += len(r.key) + 1 + len(ed.e.path())
		}
		for _, x := range r.redactions {
			size += len(r.key) + 1 + len(x.path)
		}
		most = max(most, len(r.elems)+len(r.redactions))
		labels += len(r.applied)
	}
	if effect == Permit && ev.req.Agreement != nil {
		labels += len(ev.req.Agreement.Refrain)
	}
	var sb strings.Builder
	sb.Grow(size)
	ends := make([]int, 0, most)
	removes := make([]Obligation, 0, most)
	lbs := make([]Label, 0, labels)
	label := func(lb Label) *Label {
		lbs = append(lbs, lb)
		return &lbs[len(lbs)-1]
	}
	for _, r := range rs {
		if r.remove != nil {
			s := *r.remove
			s.Target = r.key
			if s.Source == SourceAgreement && s.Path == "purposes" {
				continue // the request-level step already says it
			}
			ev.trail = append(ev.trail, s)
			ev.obl = append(ev.obl, Obligation{Action: Remove, Target: r.key, Because: s.cite()})
			continue
		}
		base := sb.Len()
		ends = ends[:0]
		for _, ed := range r.elems {
			sb.WriteString(r.key)
			sb.WriteByte(' ')
			sb.WriteString(ed.e.path())
			ends = append(ends, sb.Len())
		}
		for _, x := range r.redactions {
			sb.WriteString(r.key)
			sb.WriteByte(' ')
			sb.WriteString(x.path)
			ends = append(ends, sb.Len())
		}
		// A Builder never changes the bytes it wrote: targets stays what
		// it is when more is written (or if the builder grew after all).
		targets := sb.String()
		target := func(i int) string {
			start := base
			if i > 0 {
				start = ends[i-1]
			}
			return targets[start:ends[i]]
		}
		removes = removes[:0]
		for i, ed := range r.elems {
			ev.trail = append(ev.trail, ed.step)
			removes = append(removes, Obligation{Action: Remove, Target: target(i), Because: ed.step.cite()})
		}
		for i, x := range r.redactions {
			removes = append(removes, Obligation{Action: x.action, Target: target(len(r.elems) + i), Because: x.because})
		}
		for i, o := range removes {
			if !coveredBy(o, removes[:i]) && !coveredBy(o, removes[i+1:]) {
				ev.obl = append(ev.obl, o)
			}
		}
		final := r.w.rootMeta().GetSecurity()
		for _, a := range r.applied {
			if a.Element != "" && r.elementRemoved(a.Element) {
				continue
			}
			if a.Element == "" && !slices.ContainsFunc(final, func(c *dpb.Coding) bool { return labelOf(c) == a.Label }) {
				continue
			}
			target := r.key
			if a.Element != "" {
				target += " " + a.Element
			}
			ev.obl = append(ev.obl, Obligation{Action: AttachLabel, Target: target, Label: label(a.Label), Because: "label rule " + a.Rule})
		}
	}
	if effect == Permit && ev.req.Agreement != nil {
		because := ev.agreementRef() + " refrain"
		for _, code := range ev.req.Agreement.Refrain {
			lb, _ := ParseLabel(code)
			ev.obl = append(ev.obl, Obligation{Action: AttachLabel, Target: "every resource", Label: label(lb), Because: because})
		}
	}
	if ev.obl == nil {
		ev.obl = []Obligation{}
	}
	if ev.trail == nil {
		ev.trail = []Step{}
	}
	// The explanation is written when asked (Decision.Explain): most
	// callers never read it. What it is written from stays as it is now:
	// finish is the decision's last step.
	ev.effect, ev.rs = effect, rs
	ev.consents, ev.denyBuf, ev.permitBuf = nil, nil, nil // not needed to explain: not kept alive by the Decision
	if checkExplain != nil {
		checkExplain(ev, effect, rs)
	}
	return Decision{Effect: effect, Obligations: ev.obl, Trail: ev.trail, why: ev}
}

// checkExplain, when a test sets it, sees every decision as finish makes
// it, with what its explanation is written from (TestExplainMatchesReference).
var checkExplain func(ev *evaluator, effect Effect, rs []*resource)

// coveredBy reports whether a removal is implied by another removal of an
// element holding it.
func coveredBy(o Obligation, others []Obligation) bool {
	if o.Action != Remove {
		return false
	}
	for _, x := range others {
		if x.Action == Remove && within(o.Target, x.Target) {
			return true
		}
	}
	return false
}

// within reports whether the path p lies strictly inside the path outer
// ("name[0].family" inside "name[0]" and "name").
func within(p, outer string) bool {
	return len(p) > len(outer) && p[:len(outer)] == outer && (p[len(outer)] == '.' || p[len(outer)] == '[')
}

// elementRemoved reports whether an element (or one containing it) is withheld.
func (r *resource) elementRemoved(path string) bool {
	for _, ed := range r.elems {
		if p := ed.e.path(); path == p || within(path, p) {
			return true
		}
	}
	for _, x := range r.redactions {
		if x.action == Remove && (path == x.path || within(path, x.path)) {
			return true
		}
	}
	return false
}

// explain writes the decision in plain words for a link worker: sentences
// written one after the other into one builder (explainReference in the
// tests is the same text built from joined strings, which cost a third of
// Filter's allocations on a community partner's Bundle).
func (ev *evaluator) explain(effect Effect, rs []*resource) string {
	p := ev.req.Partner.displayName()
	pw := purposeWords(ev.req.Purpose)
	n := 0
	for _, r := range rs {
		n += 1 + len(r.elems) + len(r.redactions)
	}
	var w sentences
	w.Grow(384 + 48*n)
	switch effect {
	case Permit:
		w.say(p, " may receive this for ", pw, ".")
	case Deny:
		w.say(p, " may not receive this for ", pw, ".")
	case NoConsent:
		w.say(p, " may not receive this for ", pw, ": no active consent of the patient covers it, and the network's base policy is opt-in, so nothing is shared.")
	}
	for _, s := range ev.trail {
		if s.Target != "" {
			continue
		}
		switch {
		case s.Source == SourceAgreement && s.Effect == Deny:
			w.say("Its data-sharing agreement ", s.Ref, " covers ")
			if a := ev.req.Agreement; a != nil && len(a.Purposes) > 0 {
				w.WriteString("only ")
				w.join(a.Purposes, ", ")
			} else {
				w.WriteString("no purpose at all")
			}
			w.WriteString(": a purpose outside the agreement is refused, whatever the consent says.")
		case s.Source == SourceConsent && s.Effect == Deny:
			if effect == Permit {
				// Refused in general, permitted for some data: say both.
				w.say("The patient's consent ", s.Ref, " refuses sharing in general (", s.Path)
				w.note(s.Note)
				w.WriteString("); only the data a provision allows is sent.")
				continue
			}
			w.say("The patient's consent ", s.Ref, " refuses it (", s.Path)
			w.note(s.Note)
			w.WriteString(").")
		case s.Source == SourceConsent && s.Effect == "" && s.Path != "":
			w.say("The consent ", s.Ref, " does not apply: ", s.Note, ".")
		case s.Source == SourceConsent && s.Effect == "":
			w.say("The consent ", s.Ref, " was not used: ", s.Note, ".")
		}
	}
	allows := ev.permits(effect)
	if len(allows) > 0 && effect == Permit {
		w.say()
		w.upperFirst(allows[0])
		for _, a := range allows[1:] {
			w.WriteString(", and ")
			w.WriteString(a)
		}
		w.WriteString(".")
	}
	// Withheld data, grouped by reason, in the order the reasons come.
	type typeCount struct {
		rtype string
		n     int
	}
	type group struct {
		reason string
		types  []typeCount
		elems  []typedPath
	}
	var groups []group
	add := func(reason, rtype, element string) {
		gi := slices.IndexFunc(groups, func(g group) bool { return g.reason == reason })
		if gi < 0 {
			groups = append(groups, group{reason: reason})
			gi = len(groups) - 1
		}
		g := &groups[gi]
		if element != "" {
			g.elems = append(g.elems, typedPath{rtype, element})
			return
		}
		if ti := slices.IndexFunc(g.types, func(tc typeCount) bool { return tc.rtype == rtype }); ti >= 0 {
			g.types[ti].n++
			return
		}
		g.types = append(g.types, typeCount{rtype, 1})
	}
	var reduced, masked, refs typedPaths
	ev.eachWithheld(rs, add, func(rtype string, x redaction) {
		tp := typedPath{rtype, stripIndexes(x.path)}
		switch {
		case x.because == becauseWithheldRef:
			refs.addOnce(tp)
		case x.action == Mask && !masked.has(tp):
			masked = append(masked, tp)
		case x.action == Remove && !reduced.has(tp):
			reduced = append(reduced, tp)
		}
	})
	if len(groups) > 0 {
		if effect != Permit {
			w.say("Nothing in it may be sent: ")
		} else {
			w.say("Withheld: ")
		}
		for i, g := range groups {
			if i > 0 {
				w.WriteString("; ")
			}
			first := true
			for _, tc := range g.types {
				if !first {
					w.WriteString(", ")
				}
				first = false
				w.WriteString(plural(tc.n, tc.rtype))
			}
			for _, e := range g.elems {
				if !first {
					w.WriteString(", ")
				}
				first = false
				w.path(e)
			}
			w.WriteString(" (")
			w.WriteString(g.reason)
			w.WriteString(")")
		}
		w.WriteString(".")
	}
	if len(reduced) > 0 || len(masked) > 0 {
		w.say("Reduced to the minimum necessary under ", ev.agreementRef(), ":")
		if len(reduced) > 0 {
			w.WriteString(" left out ")
			w.paths(reduced)
		}
		if len(masked) > 0 {
			if len(reduced) > 0 {
				w.WriteString(";")
			}
			w.WriteString(" masked ")
			w.paths(masked)
		}
		w.WriteString(".")
	}
	if len(refs) > 0 {
		w.say("References to what is withheld are left out: ")
		w.paths(refs)
		w.WriteString(".")
	}
	released := false
	for _, s := range ev.trail {
		if s.Source == SourceConsent && s.Effect == Permit && s.Target != "" && strings.HasPrefix(s.Note, "immigration") {
			if !released {
				w.say("Immigration and legal-status information is included because the patient's consent releases it to ", p, " for ", ev.req.Purpose, " explicitly: ")
			} else {
				w.WriteString(", ")
			}
			released = true
			w.WriteString(s.Target)
			w.WriteString(" (")
			w.WriteString(s.cite())
			w.WriteString(")")
		}
	}
	if released {
		w.WriteString(".")
	}
	// Obligations on data not given (a decision without data).
	if len(rs) == 0 && effect == Permit {
		for _, o := range ev.obl {
			switch {
			case o.Action == Remove && o.Because == "immigration-rule":
				w.say("Immigration and legal-status information (", o.Target, ") must be left out: no consent provision releases it explicitly to ", p, " for ", ev.req.Purpose, ".")
			case o.Action == Remove:
				w.say("Before anything is sent, ", o.Target, " must be left out (", o.Because, ").")
			}
		}
	}
	if effect == Permit && ev.req.Agreement != nil {
		for _, code := range ev.req.Agreement.Refrain {
			w.say(refrainWords(code))
		}
	}
	return w.String()
}

// eachWithheld calls add for every resource withheld (but for a purpose
// outside the agreement, which the request's step says) and every element
// withheld for its labels, with the reason in words, and redacted for
// every element the redaction removed or masked, in the resources' order.
func (ev *evaluator) eachWithheld(rs []*resource, add func(reason, rtype, element string), redacted func(rtype string, x redaction)) {
	for _, r := range rs {
		if r.remove != nil {
			if r.remove.Source == SourceAgreement && r.remove.Path == "purposes" {
				continue
			}
			add(ev.reasonWords(*r.remove), r.item.rtype, "")
			continue
		}
		for _, ed := range r.elems {
			add(ev.reasonWords(ed.step), r.item.rtype, ed.e.path())
		}
		for _, x := range r.redactions {
			redacted(r.item.rtype, x)
		}
	}
}

// permits returns what the explanation of a permit says allowed it, in
// the order of the trail: the agreement, the consents or the base policy
// that permitted the request as a whole, else (appendDataPermits) what
// permitted the data that goes; past three, the rest are counted.
func (ev *evaluator) permits(effect Effect) []string {
	var allows []string
	generalPermit := false // a consent or the base policy permitted the request as a whole
	for _, s := range ev.trail {
		if s.Target != "" || s.Effect != Permit {
			continue
		}
		switch s.Source {
		case SourceAgreement:
			allows = append(allows, "the data-sharing agreement "+s.Ref+" covers "+ev.req.Purpose)
		case SourceConsent:
			generalPermit = true
			allows = append(allows, "the patient's consent "+s.Ref+" allows it ("+s.Path+")")
		case SourceBasePolicy:
			generalPermit = true
			allows = append(allows, "no active consent of the patient applies and the network's base policy is opt-out")
		}
	}
	if effect == Permit && !generalPermit {
		// Nothing permitted the request as a whole: name what permitted
		// the data that goes (immigration releases are named below).
		allows = ev.appendDataPermits(allows)
	}
	if n := len(allows); n > 3 {
		allows = append(allows[:2], strconv.Itoa(n-2)+" more consents allow it too")
	}
	return allows
}

// appendDataPermits appends, for a permit that nothing permitted as a
// whole, what permitted the data that goes: each consent provision (or the
// opt-out base policy) with the resources it allowed.
func (ev *evaluator) appendDataPermits(allows []string) []string {
	byCite := map[string][]string{}
	var cites []string
	for _, s := range ev.trail {
		if s.Target == "" || s.Effect != Permit || strings.HasPrefix(s.Note, "immigration") {
			continue
		}
		var c string
		switch s.Source {
		case SourceConsent:
			c = "the patient's consent " + s.Ref + " (" + s.Path + ") allows"
		case SourceBasePolicy:
			c = "the network's base policy (opt-out) allows"
		default:
			continue
		}
		if _, ok := byCite[c]; !ok {
			cites = append(cites, c)
		}
		byCite[c] = append(byCite[c], s.Target)
	}
	for _, c := range cites {
		allows = append(allows, c+" "+strings.Join(byCite[c], ", "))
	}
	return allows
}

// sentences is an explanation being written: sentences separated by a
// space.
type sentences struct{ strings.Builder }

// say starts a sentence with the parts.
func (w *sentences) say(parts ...string) {
	if w.Len() > 0 {
		w.WriteByte(' ')
	}
	for _, p := range parts {
		w.WriteString(p)
	}
}

// note writes "; note" when there is a note.
func (w *sentences) note(note string) {
	if note != "" {
		w.WriteString("; ")
		w.WriteString(note)
	}
}

// join writes ss separated by sep (strings.Join without the string).
func (w *sentences) join(ss []string, sep string) {
	for i, s := range ss {
		if i > 0 {
			w.WriteString(sep)
		}
		w.WriteString(s)
	}
}

// upperFirst writes s with its first letter in upper case, as upperFirst
// returns it.
func (w *sentences) upperFirst(s string) {
	switch {
	case s == "":
	case s[0] >= 'a' && s[0] <= 'z':
		w.WriteByte(s[0] - 'a' + 'A')
		w.WriteString(s[1:])
	case s[0] < utf8.RuneSelf:
		w.WriteString(s)
	default:
		w.WriteString(upperFirst(s))
	}
}

// typedPath is an element named in an explanation: "Patient name.family".
type typedPath struct{ rtype, path string }

// typedPaths are elements named once each, in the order first met.
type typedPaths []typedPath

func (ps typedPaths) has(p typedPath) bool { return slices.Contains(ps, p) }

func (ps *typedPaths) addOnce(p typedPath) {
	if !ps.has(p) {
		*ps = append(*ps, p)
	}
}

func (w *sentences) path(p typedPath) {
	w.WriteString(p.rtype)
	w.WriteByte(' ')
	w.WriteString(p.path)
}

// paths writes the elements separated by commas.
func (w *sentences) paths(ps typedPaths) {
	for i, p := range ps {
		if i > 0 {
			w.WriteString(", ")
		}
		w.path(p)
	}
}

// reasonWords says why a step withheld something.
func (ev *evaluator) reasonWords(s Step) string {
	switch s.Source {
	case SourceRule:
		return fmt.Sprintf("immigration and legal-status information, which no consent provision releases explicitly to %s for %s",
			ev.req.Partner.displayName(), ev.req.Purpose)
	case SourceAgreement:
		switch s.Path {
		case "resource_types":
			return "resource types the agreement " + s.Ref + " does not cover"
		case "labels":
			return strings.TrimSuffix(s.Note, ", which the agreement does not allow") + ", which the agreement " + s.Ref + " does not allow"
		}
		return "the agreement " + s.Ref + " " + s.Path
	case SourceConsent:
		if s.Note != "" {
			return "refused by the patient's consent " + s.Ref + " " + s.Path + "; " + s.Note
		}
		return "refused by the patient's consent " + s.Ref + " " + s.Path
	case SourceBasePolicy:
		if s.Effect == NoConsent {
			return "no active consent of the patient covers it and the base policy is opt-in"
		}
	}
	return s.cite()
}

func refrainWords(code string) string {
	switch code {
	case "NORDSCLCD", "NORDSCLCDS":
		return "The partner must not pass it on without the patient's consent (" + code + ")."
	case "NOREUSE", "NOPERSISTP":
		return "The partner must not use it for any other purpose (" + code + ")."
	case "NOINTEGRATE":
		return "The partner must not merge it into other records (" + code + ")."
	}
	return "The partner must follow the refrain policy " + code + " (" + refrainCodes[code] + ")."
}

func plural(n int, t string) string {
	if n == 1 {
		return "1 " + t
	}
	return fmt.Sprintf("%d %ss", n, t)
}

// stripIndexes turns "name[0].family" into "name.family".
func stripIndexes(p string) string {
	if !strings.ContainsAny(p, "[]") {
		return p
	}
	var b strings.Builder
	depth := 0
	for _, r := range p {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// describeData says which data a provision's data criteria pick out.
func describeData(r *rule) string {
	var parts []string
	if len(r.labels) > 0 {
		var ls []string
		for _, l := range r.labels {
			ls = append(ls, l.String())
		}
		parts = append(parts, "labelled "+strings.Join(ls, " or "))
	}
	if len(r.classes) > 0 {
		var cs []string
		for _, c := range r.classes {
			cs = append(cs, c.Code)
		}
		parts = append(parts, "of class "+strings.Join(cs, " or "))
	}
	if len(r.codes) > 0 {
		var cs []string
		for _, c := range r.codes {
			cs = append(cs, c.String())
		}
		parts = append(parts, "coded "+strings.Join(cs, " or "))
	}
	if r.dataSpan != nil {
		parts = append(parts, "from "+spanDates(*r.dataSpan))
	}
	for _, d := range r.data {
		switch d.meaning {
		case "instance":
			parts = append(parts, "being "+d.ref)
		case "related":
			parts = append(parts, "being "+d.ref+" or what it refers to")
		case "dependents":
			parts = append(parts, "being "+d.ref+" or referring to it")
		case "authoredby":
			parts = append(parts, "authored by "+d.ref)
		}
	}
	if len(r.authors) > 0 {
		var as []string
		for _, a := range r.authors {
			as = append(as, a.ref)
		}
		parts = append(parts, "authored by "+strings.Join(as, " or "))
	}
	return "data " + strings.Join(parts, " and ")
}
