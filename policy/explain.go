package policy

import (
	"fmt"
	"slices"
	"strings"
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
		// The targets ("Type/id path") are cut from one string.
		n := len(r.elems) + len(r.redactions)
		size := 0
		for _, ed := range r.elems {
			size += len(r.key) + 1 + len(ed.e.path())
		}
		for _, x := range r.redactions {
			size += len(r.key) + 1 + len(x.path)
		}
		var sb strings.Builder
		sb.Grow(size)
		ends := make([]int, 0, n)
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
		targets := sb.String()
		target := func(i int) string {
			start := 0
			if i > 0 {
				start = ends[i-1]
			}
			return targets[start:ends[i]]
		}
		removes := make([]Obligation, 0, n)
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
		final := metaLabels(r.w.rootMeta())
		for _, a := range r.applied {
			if a.Element != "" && r.elementRemoved(a.Element) {
				continue
			}
			if a.Element == "" && !slices.Contains(final, a.Label) {
				continue
			}
			target := r.key
			if a.Element != "" {
				target += " " + a.Element
			}
			lb := a.Label
			ev.obl = append(ev.obl, Obligation{Action: AttachLabel, Target: target, Label: &lb, Because: "label rule " + a.Rule})
		}
	}
	if effect == Permit && ev.req.Agreement != nil {
		for _, code := range ev.req.Agreement.Refrain {
			lb, _ := ParseLabel(code)
			ev.obl = append(ev.obl, Obligation{Action: AttachLabel, Target: "every resource", Label: &lb, Because: ev.agreementRef() + " refrain"})
		}
	}
	if ev.obl == nil {
		ev.obl = []Obligation{}
	}
	if ev.trail == nil {
		ev.trail = []Step{}
	}
	return Decision{Effect: effect, Obligations: ev.obl, Trail: ev.trail, Explanation: ev.explain(effect, rs)}
}

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

// explain writes the decision in plain words for a link worker.
func (ev *evaluator) explain(effect Effect, rs []*resource) string {
	p := ev.req.Partner.displayName()
	pw := purposeWords(ev.req.Purpose)
	var out []string
	switch effect {
	case Permit:
		out = append(out, p+" may receive this for "+pw+".")
	case Deny:
		out = append(out, p+" may not receive this for "+pw+".")
	case NoConsent:
		out = append(out, fmt.Sprintf("%s may not receive this for %s: no active consent of the patient covers it, and the network's base policy is opt-in, so nothing is shared.", p, pw))
	}
	var allows []string
	generalPermit := false // a consent or the base policy permitted the request as a whole
	for _, s := range ev.trail {
		if s.Target != "" {
			continue
		}
		switch {
		case s.Source == SourceAgreement && s.Effect == Deny:
			covers := "no purpose at all"
			if a := ev.req.Agreement; a != nil && len(a.Purposes) > 0 {
				covers = "only " + strings.Join(a.Purposes, ", ")
			}
			out = append(out, fmt.Sprintf("Its data-sharing agreement %s covers %s: a purpose outside the agreement is refused, whatever the consent says.", s.Ref, covers))
		case s.Source == SourceAgreement && s.Effect == Permit:
			allows = append(allows, "the data-sharing agreement "+s.Ref+" covers "+ev.req.Purpose)
		case s.Source == SourceConsent && s.Effect == Deny:
			note := ""
			if s.Note != "" {
				note = "; " + s.Note
			}
			if effect == Permit {
				// Refused in general, permitted for some data: say both.
				out = append(out, fmt.Sprintf("The patient's consent %s refuses sharing in general (%s%s); only the data a provision allows is sent.", s.Ref, s.Path, note))
				continue
			}
			out = append(out, fmt.Sprintf("The patient's consent %s refuses it (%s%s).", s.Ref, s.Path, note))
		case s.Source == SourceConsent && s.Effect == Permit:
			generalPermit = true
			allows = append(allows, "the patient's consent "+s.Ref+" allows it ("+s.Path+")")
		case s.Source == SourceConsent && s.Effect == "" && s.Path != "":
			out = append(out, fmt.Sprintf("The consent %s does not apply: %s.", s.Ref, s.Note))
		case s.Source == SourceConsent && s.Effect == "":
			out = append(out, fmt.Sprintf("The consent %s was not used: %s.", s.Ref, s.Note))
		case s.Source == SourceBasePolicy && s.Effect == Permit:
			generalPermit = true
			allows = append(allows, "no active consent of the patient applies and the network's base policy is opt-out")
		}
	}
	if effect == Permit && !generalPermit {
		// Nothing permitted the request as a whole: name what permitted
		// the data that goes (immigration releases are named below).
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
	}
	if len(allows) > 0 && effect == Permit {
		if n := len(allows); n > 3 {
			allows = append(allows[:2], fmt.Sprintf("%d more consents allow it too", n-2))
		}
		out = append(out, upperFirst(strings.Join(allows, ", and "))+".")
	}
	// Withheld data, grouped by reason.
	type group struct {
		reason string
		types  []string
		counts map[string]int
		elems  []string
	}
	var groups []*group
	byReason := map[string]*group{}
	add := func(reason, rtype, element string) {
		g := byReason[reason]
		if g == nil {
			g = &group{reason: reason, counts: map[string]int{}}
			byReason[reason] = g
			groups = append(groups, g)
		}
		if element != "" {
			g.elems = append(g.elems, rtype+" "+element)
			return
		}
		if g.counts[rtype] == 0 {
			g.types = append(g.types, rtype)
		}
		g.counts[rtype]++
	}
	var reduced, masked, refs []string
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
			w := r.item.rtype + " " + stripIndexes(x.path)
			switch {
			case x.because == becauseWithheldRef:
				if !containsString(refs, w) {
					refs = append(refs, w)
				}
			case x.action == Mask && !containsString(masked, w):
				masked = append(masked, w)
			case x.action == Remove && !containsString(reduced, w):
				reduced = append(reduced, w)
			}
		}
	}
	if len(groups) > 0 {
		var parts []string
		for _, g := range groups {
			var what []string
			for _, t := range g.types {
				what = append(what, plural(g.counts[t], t))
			}
			what = append(what, g.elems...)
			parts = append(parts, strings.Join(what, ", ")+" ("+g.reason+")")
		}
		lead := "Withheld: "
		if effect != Permit {
			lead = "Nothing in it may be sent: "
		}
		out = append(out, lead+strings.Join(parts, "; ")+".")
	}
	if len(reduced) > 0 || len(masked) > 0 {
		s := "Reduced to the minimum necessary under " + ev.agreementRef() + ":"
		if len(reduced) > 0 {
			s += " left out " + strings.Join(reduced, ", ")
		}
		if len(masked) > 0 {
			if len(reduced) > 0 {
				s += ";"
			}
			s += " masked " + strings.Join(masked, ", ")
		}
		out = append(out, s+".")
	}
	if len(refs) > 0 {
		out = append(out, "References to what is withheld are left out: "+strings.Join(refs, ", ")+".")
	}
	var released []string
	for _, s := range ev.trail {
		if s.Source == SourceConsent && s.Effect == Permit && s.Target != "" && strings.HasPrefix(s.Note, "immigration") {
			released = append(released, s.Target+" ("+s.cite()+")")
		}
	}
	if len(released) > 0 {
		out = append(out, fmt.Sprintf("Immigration and legal-status information is included because the patient's consent releases it to %s for %s explicitly: %s.",
			p, ev.req.Purpose, strings.Join(released, ", ")))
	}
	// Obligations on data not given (a decision without data).
	if len(rs) == 0 && effect == Permit {
		for _, o := range ev.obl {
			switch {
			case o.Action == Remove && o.Because == "immigration-rule":
				out = append(out, fmt.Sprintf("Immigration and legal-status information (%s) must be left out: no consent provision releases it explicitly to %s for %s.", o.Target, p, ev.req.Purpose))
			case o.Action == Remove:
				out = append(out, fmt.Sprintf("Before anything is sent, %s must be left out (%s).", o.Target, o.Because))
			}
		}
	}
	if effect == Permit && ev.req.Agreement != nil {
		for _, code := range ev.req.Agreement.Refrain {
			out = append(out, refrainWords(code))
		}
	}
	return strings.Join(out, " ")
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
