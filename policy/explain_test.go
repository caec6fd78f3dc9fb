package policy

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	conpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/consent_go_proto"
)

// TestExplainMatchesReference: Decision.Explain writes, word for word,
// what explainReference (explain's earlier form, below) writes as the
// decision is made, on the decisions of every Bundle of the test data for
// every partner and purpose, on generated Bundles, and on decisions
// without data; and its JSON form says the same.
func TestExplainMatchesReference(t *testing.T) {
	checked := 0
	var want []string // the references written as finish made the decisions
	checkExplain = func(ev *evaluator, effect Effect, rs []*resource) {
		want = append(want, ev.explainReference(effect, rs))
	}
	defer func() { checkExplain = nil }()
	check := func(d Decision) {
		t.Helper()
		if len(want) != 1 {
			t.Fatalf("%d decisions made, want 1", len(want))
		}
		checked++
		if got := d.Explain(); got != want[0] {
			t.Errorf("explain differs from the reference:\n got: %s\nwant: %s", got, want[0])
		}
		var j struct{ Explanation string }
		if data, err := json.Marshal(d); err != nil || json.Unmarshal(data, &j) != nil || j.Explanation != want[0] {
			t.Errorf("JSON explanation differs from the reference (%v):\n got: %s\nwant: %s", err, j.Explanation, want[0])
		}
		want = want[:0]
	}
	filter := func(e *Engine, req Request, b *rpb.Bundle, consents ...*conpb.Consent) {
		t.Helper()
		_, d := e.Filter(req, b, consents...)
		check(d)
	}
	cfg := testConfig(t)
	pcfg := permissiveConfig(t)
	purposes := []string{"COC", "TREAT", "HOPERAT", "ETREAT"}
	files, _ := filepath.Glob(filepath.Join(policyTestdata, "bundles", "*.json"))
	var consents []*conpb.Consent
	cfiles, _ := filepath.Glob(filepath.Join(policyTestdata, "consents", "*.json"))
	for _, f := range cfiles {
		if c := readResource(t, f).GetConsent(); c != nil {
			consents = append(consents, c)
		}
	}
	// Several consents that each permit: the explanation names two and
	// counts the others.
	var many []*conpb.Consent
	ref := readResource(t, filepath.Join(policyTestdata, "consents", "referral.json")).GetConsent()
	for i := range 5 {
		c := proto.Clone(ref).(*conpb.Consent)
		c.Id.Value = fmt.Sprintf("many-%d", i)
		many = append(many, c)
	}
	for _, c := range []*Config{cfg, pcfg} {
		e, err := NewEngine(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b := readResource(t, f).GetBundle()
			for i := range c.Partners {
				p := &c.Partners[i]
				for _, purpose := range purposes {
					for _, base := range []BasePolicy{OptIn, OptOut} {
						filter(e, Request{Partner: p, Agreement: &p.Agreement, Purpose: purpose, At: testTime, Base: base}, b)
						filter(e, Request{Partner: p, Purpose: purpose, At: testTime, Base: base}, b, consents...)
					}
				}
			}
		}
		for i := range c.Partners {
			p := &c.Partners[i]
			for _, purpose := range purposes {
				check(e.Decide(Request{Partner: p, Agreement: &p.Agreement, Purpose: purpose, At: testTime}, consents))
				check(e.Decide(Request{Partner: p, Agreement: &Agreement{ID: "no-purposes"}, Purpose: purpose, At: testTime}, consents))
				check(e.Decide(Request{Partner: p, Purpose: purpose, At: testTime}, many))
				for _, cs := range consents {
					check(e.Decide(Request{Partner: p, Purpose: purpose, At: testTime}, []*conpb.Consent{cs}))
				}
			}
		}
	}
	g := &gen{r: rand.New(rand.NewPCG(5, 2026)), partners: cfg.Partners}
	for i := range 300 {
		c := []*Config{cfg, pcfg}[i%2]
		e, err := NewEngine(c)
		if err != nil {
			t.Fatal(err)
		}
		p := &c.Partners[g.r.IntN(len(c.Partners))]
		filter(e, Request{Partner: p, Agreement: &p.Agreement, Purpose: g.pick(purposes), At: testTime}, g.bundle())
	}
	if checked < 1000 {
		t.Fatalf("only %d explanations checked", checked)
	}
}

// explainReference is explain as it was written before it wrote into one
// builder (the clauses of what allowed a permit, ev.permits, aside): the
// reference TestExplainMatchesReference holds explain to.
func (ev *evaluator) explainReference(effect Effect, rs []*resource) string {
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
		case s.Source == SourceConsent && s.Effect == "" && s.Path != "":
			out = append(out, fmt.Sprintf("The consent %s does not apply: %s.", s.Ref, s.Note))
		case s.Source == SourceConsent && s.Effect == "":
			out = append(out, fmt.Sprintf("The consent %s was not used: %s.", s.Ref, s.Note))
		}
	}
	allows := ev.permits(effect)
	if len(allows) > 0 && effect == Permit {
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
	ev.eachWithheld(rs, add, func(rtype string, x redaction) {
		w := rtype + " " + stripIndexes(x.path)
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
	})
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

// TestDecisionJSON: a Decision's JSON is what the struct with an
// Explanation field it replaced wrote, through json.Marshal, MarshalIndent
// and an Encoder that does not escape HTML, and reads back.
func TestDecisionJSON(t *testing.T) {
	type earlier struct {
		Effect      Effect       `json:"decision"`
		Obligations []Obligation `json:"obligations"`
		Trail       []Step       `json:"trail"`
		Explanation string       `json:"explanation"`
	}
	text := "Partner <A&B> may not receive this for \u2028coordination of care (COC)."
	obl := []Obligation{{Action: Remove, Target: "Observation/o1", Because: "x & y"}}
	trail := []Step{{Source: SourceConsent, Ref: "Consent/c1", Path: "provision", Effect: Deny}}
	d := NewDecision(Deny, text)
	d.Obligations, d.Trail = obl, trail
	old := earlier{Deny, obl, trail, text}
	encode := func(v any, escape bool) string {
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(escape)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	for _, escape := range []bool{true, false} {
		if got, want := encode(d, escape), encode(old, escape); got != want {
			t.Errorf("Encoder (escape HTML %v):\n got %s\nwant %s", escape, got, want)
		}
	}
	got, _ := json.Marshal(d)
	want, _ := json.Marshal(old)
	if string(got) != string(want) {
		t.Errorf("Marshal:\n got %s\nwant %s", got, want)
	}
	got, _ = json.MarshalIndent(d, "", "  ")
	want, _ = json.MarshalIndent(old, "", "  ")
	if string(got) != string(want) {
		t.Errorf("MarshalIndent:\n got %s\nwant %s", got, want)
	}
	var back Decision
	if err := json.Unmarshal(got, &back); err != nil || back.Explain() != text || back.Effect != Deny || len(back.Trail) != 1 || len(back.Obligations) != 1 {
		t.Errorf("read back %+v (%v)", back, err)
	}
	if empty, _ := json.Marshal(NewDecision(Deny, "")); string(empty) != `{"decision":"deny","obligations":null,"trail":null,"explanation":""}` {
		t.Errorf("Marshal of a decision without obligations and trail: %s", empty)
	}
}
