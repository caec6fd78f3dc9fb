package policy

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/pathway-fhir/pathway/fhir"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	cspb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/code_system_go_proto"
)

// Extensions of the core specification that carry immigration and
// legal-status facts about a person.
const (
	extBirthPlace   = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
	extNationality  = "http://hl7.org/fhir/StructureDefinition/patient-nationality"
	extCitizenship  = "http://hl7.org/fhir/StructureDefinition/patient-citizenship"
	loincCountryOfB = "78746-5"
)

// builtinValueSets are the value sets Pathway ships, by name. Codes are the
// ones Pathway's mappings write plus well-known SNOMED CT and LOINC codes;
// add local codes with value_sets and labels in configuration.
var builtinValueSets = sync.OnceValue(func() map[string]*ValueSet {
	sct, loinc := fhir.SystemSNOMED, fhir.SystemLOINC
	sets := []ValueSet{
		{Name: "pathway-immigration", Include: []ValueSetInclude{
			{System: fhir.SystemPathway, IsA: fhir.PathwayGroupLegalStatus},
			{System: fhir.SystemPathway, IsA: fhir.PathwayGroupMigrantType},
			{System: fhir.SystemPathway, IsA: fhir.PathwayGroupMigrationHistory},
			{System: loinc, Codes: []string{loincCountryOfB}},
		}},
		{Name: "pathway-immigration-needs", Include: []ValueSetInclude{
			{System: fhir.SystemPathway, Codes: []string{fhir.PathwayNeedImmigrationAdvice}},
		}},
		{Name: "mental-health-conditions", Include: []ValueSetInclude{
			// Mental disorder, depressive disorder, major depressive disorder,
			// anxiety disorder, post-traumatic stress disorder, psychotic
			// disorder, bipolar disorder, schizophrenia.
			{System: sct, Codes: []string{"74732009", "35489007", "370143000", "197480006", "47505003", "69322001", "13746004", "58214004"}},
		}},
		{Name: "mental-health-screening", Include: []ValueSetInclude{
			// PHQ-9 panel and total score, PHQ-2 total, GAD-7 panel and total score.
			{System: loinc, Codes: []string{"44249-1", "44261-6", "55758-7", "69737-5", "70274-6"}},
		}},
		{Name: "mental-health-needs", Include: []ValueSetInclude{
			{System: fhir.SystemPathway, Codes: []string{fhir.PathwayNeedMentalHealth}},
		}},
		{Name: "substance-use", Include: []ValueSetInclude{
			// Substance abuse, drug abuse, drug dependence, alcohol abuse, alcoholism.
			{System: sct, Codes: []string{"66214007", "26416006", "191816009", "15167005", "7200002"}},
			// AUDIT total score, AUDIT-C total score.
			{System: loinc, Codes: []string{"75624-7", "75626-2"}},
		}},
		{Name: "sexual-domestic-violence", Include: []ValueSetInclude{
			{System: fhir.SystemPathway, Codes: []string{fhir.PathwayNeedDomesticViolenceSupport}},
		}},
	}
	m := make(map[string]*ValueSet, len(sets))
	for i := range sets {
		m[sets[i].Name] = &sets[i]
	}
	return m
})

// DefaultLabelRules returns the labelling rules Pathway ships (see
// docs/policy.md): immigration, asylum and legal status, migrant type,
// migration history and country of birth to IMMIG; psychiatric diagnoses to
// PSY; mental-health screening and needs to MH; substance use to SUD;
// sexual or domestic violence to SDV. Where a resource mixes sensitive and
// ordinary data (a ServiceRequest's reasons and categories, a Patient's
// extensions) the label goes inline on the element, so only that element
// is withheld.
func DefaultLabelRules() []LabelRule {
	return []LabelRule{
		{Name: "immigration-observation", ResourceTypes: []string{"Observation"}, Path: "code",
			ValueSets: []string{"pathway-immigration"}, Labels: []string{"IMMIG"}},
		{Name: "immigration-observation-value", ResourceTypes: []string{"Observation"}, Path: "value",
			ValueSets: []string{"pathway-immigration"}, Labels: []string{"IMMIG"}},
		{Name: "immigration-condition", ResourceTypes: []string{"Condition"}, Path: "code",
			ValueSets: []string{"pathway-immigration"}, Labels: []string{"IMMIG"}},
		{Name: "immigration-birth-place", ResourceTypes: []string{"Patient"}, Path: "extension",
			ExtensionURL: extBirthPlace, Labels: []string{"IMMIG"}, Inline: true},
		{Name: "immigration-nationality", ResourceTypes: []string{"Patient"}, Path: "extension",
			ExtensionURL: extNationality, Labels: []string{"IMMIG"}, Inline: true},
		{Name: "immigration-citizenship", ResourceTypes: []string{"Patient"}, Path: "extension",
			ExtensionURL: extCitizenship, Labels: []string{"IMMIG"}, Inline: true},
		{Name: "immigration-referral-category", ResourceTypes: []string{"ServiceRequest"}, Path: "category",
			ValueSets: []string{"pathway-immigration-needs", "pathway-immigration"}, Labels: []string{"IMMIG"}, Inline: true},
		{Name: "immigration-referral-reason", ResourceTypes: []string{"ServiceRequest"}, Path: "reasonCode",
			ValueSets: []string{"pathway-immigration-needs", "pathway-immigration"}, Labels: []string{"IMMIG"}, Inline: true},
		{Name: "psychiatric-diagnosis", ResourceTypes: []string{"Condition"}, Path: "code",
			ValueSets: []string{"mental-health-conditions"}, Labels: []string{"PSY"}},
		{Name: "psychiatric-referral-reason", ResourceTypes: []string{"ServiceRequest"}, Path: "reasonCode",
			ValueSets: []string{"mental-health-conditions"}, Labels: []string{"PSY"}, Inline: true},
		{Name: "mental-health-screening", ResourceTypes: []string{"Observation"}, Path: "code",
			ValueSets: []string{"mental-health-screening"}, Labels: []string{"MH"}},
		{Name: "mental-health-referral-category", ResourceTypes: []string{"ServiceRequest"}, Path: "category",
			ValueSets: []string{"mental-health-needs"}, Labels: []string{"MH"}, Inline: true},
		{Name: "substance-use-condition", ResourceTypes: []string{"Condition", "Observation"}, Path: "code",
			ValueSets: []string{"substance-use"}, Labels: []string{"SUD"}},
		{Name: "substance-use-referral-reason", ResourceTypes: []string{"ServiceRequest"}, Path: "reasonCode",
			ValueSets: []string{"substance-use"}, Labels: []string{"SUD"}, Inline: true},
		{Name: "violence-referral-category", ResourceTypes: []string{"ServiceRequest"}, Path: "category",
			ValueSets: []string{"sexual-domestic-violence"}, Labels: []string{"SDV"}, Inline: true},
		{Name: "violence-referral-reason", ResourceTypes: []string{"ServiceRequest"}, Path: "reasonCode",
			ValueSets: []string{"sexual-domestic-violence"}, Labels: []string{"SDV"}, Inline: true},
	}
}

// labelRule is a compiled LabelRule.
type labelRule struct {
	name     string
	types    map[string]bool // nil: any
	path     string
	extURL   string
	codes    map[Label]bool
	systems  map[string]bool // every code of these systems
	matchAll bool
	labels   []Label
	inline   bool
}

// Labeller applies labelling rules to resources.
type Labeller struct {
	rules  []labelRule
	byType map[string][]int // resource type -> the rules that may apply, in order
	any    []int            // rules for any resource type
	// immig holds the codes (and whole systems) of every rule that labels
	// IMMIG by code, whatever resource types and element paths the rule
	// names: such a code anywhere in a resource is immigration data.
	immig labelRule
}

// ruleImmigrationCodes names the labelling step that finds immigration and
// legal-status codes wherever a coding appears.
const ruleImmigrationCodes = "immigration-codes"

// rulesFor returns the indexes of the rules that may apply to a resource type.
func (l *Labeller) rulesFor(rtype string) []int {
	if rs, ok := l.byType[rtype]; ok {
		return rs
	}
	return l.any
}

// NewLabeller compiles Pathway's default rules followed by extra rules,
// with the value sets they name (built in or extra).
func NewLabeller(extra []LabelRule, sets []ValueSet) (*Labeller, error) {
	byName := map[string]*ValueSet{}
	for k, v := range builtinValueSets() {
		byName[k] = v
	}
	for i := range sets {
		byName[sets[i].Name] = &sets[i]
	}
	l := &Labeller{}
	for _, r := range append(DefaultLabelRules(), extra...) {
		lr := labelRule{name: r.Name, path: r.Path, extURL: r.ExtensionURL, inline: r.Inline,
			codes: map[Label]bool{}, systems: map[string]bool{}}
		if len(r.ResourceTypes) > 0 {
			lr.types = map[string]bool{}
			for _, t := range r.ResourceTypes {
				lr.types[t] = true
			}
		}
		for _, s := range r.Labels {
			lb, ok := ParseLabel(s)
			if !ok {
				return nil, fmt.Errorf("label rule %q: unknown label %q", r.Name, s)
			}
			lr.labels = append(lr.labels, lb)
		}
		for _, c := range r.Codes {
			sys, code, _ := strings.Cut(c, "|")
			lr.codes[Label{sys, code}] = true
		}
		for _, name := range r.ValueSets {
			vs := byName[name]
			if vs == nil {
				return nil, fmt.Errorf("label rule %q: no value set %q", r.Name, name)
			}
			for _, inc := range vs.Include {
				switch {
				case inc.IsA != "":
					for _, c := range pathwayDescendants(inc.IsA) {
						lr.codes[Label{inc.System, c}] = true
					}
				case len(inc.Codes) == 0:
					lr.systems[inc.System] = true
				}
				for _, c := range inc.Codes {
					lr.codes[Label{inc.System, c}] = true
				}
			}
		}
		lr.matchAll = len(r.Codes) == 0 && len(r.ValueSets) == 0
		l.rules = append(l.rules, lr)
		l.collectImmigration(&lr)
	}
	// Index the rules by resource type, keeping their order.
	l.byType = map[string][]int{}
	for i, r := range l.rules {
		if r.types == nil {
			l.any = append(l.any, i)
			for t := range l.byType {
				l.byType[t] = append(l.byType[t], i)
			}
			continue
		}
		for t := range r.types {
			if _, ok := l.byType[t]; !ok {
				l.byType[t] = append([]int(nil), l.any...)
			}
			l.byType[t] = append(l.byType[t], i)
		}
	}
	return l, nil
}

// collectImmigration adds the codes of a rule that labels IMMIG by code to
// the codes found anywhere in a resource.
func (l *Labeller) collectImmigration(r *labelRule) {
	if r.matchAll || r.extURL != "" {
		return
	}
	immig := false
	for _, lb := range r.labels {
		immig = immig || lb.isImmigration()
	}
	if !immig {
		return
	}
	if l.immig.codes == nil {
		l.immig = labelRule{name: ruleImmigrationCodes, codes: map[Label]bool{}, systems: map[string]bool{},
			labels: []Label{{fhir.SystemPathway, fhir.PathwaySensitivityImmigration}}}
	}
	for c := range r.codes {
		l.immig.codes[c] = true
	}
	for sys := range r.systems {
		l.immig.systems[sys] = true
	}
}

var descendantsCache sync.Map // code -> []string

// pathwayDescendants returns code and every code under it in Pathway's CodeSystem.
func pathwayDescendants(code string) []string {
	if v, ok := descendantsCache.Load(code); ok {
		return v.([]string)
	}
	cs, err := fhir.PathwayCodeSystem()
	if err != nil {
		return []string{code}
	}
	var out []string
	var walk func(cs []*cspb.CodeSystem_ConceptDefinition, in bool)
	walk = func(cs []*cspb.CodeSystem_ConceptDefinition, in bool) {
		for _, c := range cs {
			here := in || c.GetCode().GetValue() == code
			if here {
				out = append(out, c.GetCode().GetValue())
			}
			walk(c.GetConcept(), here)
		}
	}
	walk(cs.GetConcept(), false)
	if len(out) == 0 {
		out = []string{code}
	}
	descendantsCache.Store(code, out)
	return out
}

// containsCode reports whether a coding of the rule appears in m, not
// counting primitive values' extensions (containsCodeIn).
func (r *labelRule) containsCode(m protoreflect.Message) bool { return r.containsCodeIn(m, false) }

// containsCodeIn reports whether a coding of the rule appears in m,
// primitive values' extensions included with prims: on the walk plans,
// or where they cannot describe m, as containsCodeReflect.
func (r *labelRule) containsCodeIn(m protoreflect.Message, prims bool) bool {
	switch v := m.Interface().(type) {
	case *dpb.Coding:
		return r.codingMatches(v)
	case *dpb.CodeableConcept:
		for _, c := range v.GetCoding() {
			if r.codingMatches(c) {
				return true
			}
		}
		return false
	}
	p, ptr := planFor(m)
	if found, ok := searchPlan(p, ptr, r, prims, false); ok {
		return found
	}
	return r.containsCodeReflect(m, prims)
}

// containsCodeReflect is containsCodeIn on the reflective walk: the
// reference the planned walk is tested against.
func (r *labelRule) containsCodeReflect(m protoreflect.Message, prims bool) bool {
	switch v := m.Interface().(type) {
	case *dpb.Coding:
		return r.codingMatches(v)
	case *dpb.CodeableConcept:
		for _, c := range v.GetCoding() {
			if r.codingMatches(c) {
				return true
			}
		}
		return false
	}
	found := false
	walk(m, nil, prims, func(e *elem) bool {
		if found {
			return false
		}
		if c, ok := e.msg.Interface().(*dpb.Coding); ok {
			found = r.codingMatches(c)
			return false
		}
		if x, ok := e.msg.Interface().(*dpb.Extension); ok && x.GetUrl().GetValue() == ExtInlineSecurityLabel {
			return false
		}
		return true
	})
	return found
}

func (r *labelRule) codingMatches(c *dpb.Coding) bool {
	sys := c.GetSystem().GetValue()
	return r.systems[sys] || r.codes[Label{sys, c.GetCode().GetValue()}]
}

// Applied is one label a Labeller put on a resource.
type Applied struct {
	// Rule names the labelling rule.
	Rule string
	// Element is the element path for an inline label, "" for meta.security.
	Element string
	// Label is the label.
	Label Label
}

// Apply labels a resource in place (clone it first to keep the original)
// and returns what it added. Resources keep the labels they had. Anything
// given a sensitivity label also gets confidentiality R (unless it already
// is R or V), and a resource with inline labels gets PROCESSINLINELABEL.
func (l *Labeller) Apply(res proto.Message) []Applied {
	if cr, ok := res.(*fhir.ContainedResource); ok {
		res = fhir.Unwrap(cr)
	}
	if res == nil {
		return nil
	}
	m := res.ProtoReflect()
	w := inPlace(m)
	out, _ := l.apply(w)
	if hasInlineLabels(m) && addSecurity(w, Label{fhir.SystemActCode, LabelProcessInline}) {
		out = append(out, Applied{Rule: "inline-labels", Label: Label{fhir.SystemActCode, LabelProcessInline}})
	}
	return out
}

// apply runs the rules; it reports whether it put inline labels, and
// leaves PROCESSINLINELABEL to the caller.
func (l *Labeller) apply(w *cow) ([]Applied, bool) {
	out, inline, sensitive := l.applyRules(w)
	return l.applyRest(w, out, inline, sensitive, false)
}

// applyRules is apply's first part: the labelling rules, which label
// what their paths name. It reports whether it put inline labels and
// whether it gave a gating label; applyRest does the rest.
func (l *Labeller) applyRules(w *cow) (out []Applied, inline, sensitive bool) {
	m := w.root
	type resolved struct {
		path string
		es   []elem
	}
	var room [4]resolved // the paths a resource type's rules name: a few
	cache := room[:0]
	rtype := string(m.Descriptor().Name())
	for _, ri := range l.rulesFor(rtype) {
		r := &l.rules[ri]
		var es []elem
		found := false
		for _, c := range cache {
			if c.path == r.path {
				es, found = c.es, true
				break
			}
		}
		if !found {
			es = resolve(w.root, r.path)
			cache = append(cache, resolved{r.path, es})
		}
		for i := range es {
			e := &es[i]
			if r.extURL != "" {
				x, ok := e.msg.Interface().(*dpb.Extension)
				if !ok || x.GetUrl().GetValue() != r.extURL {
					continue
				}
			}
			if !r.matchAll && !r.containsCode(e.msg) {
				continue
			}
			for _, lb := range r.labels {
				var added bool
				if r.inline {
					added = addInline(w, e, lb)
				} else {
					added = addSecurity(w, lb)
				}
				if added {
					el := ""
					if r.inline {
						el = e.path()
						inline = true
					}
					if out == nil {
						out = make([]Applied, 0, 4) // a label, confidentiality R, inline labels...
					}
					out = append(out, Applied{Rule: r.name, Element: el, Label: lb})
				}
				if lb.gates() {
					sensitive = true
				}
			}
			if !r.inline {
				break // one match is enough for a resource label
			}
		}
	}
	return out, inline, sensitive
}

// applyRest is apply's second part, after applyRules: immigration codes
// wherever they are (labelImmigrationCodes), then confidentiality R for
// a resource given a gating label. noCodes says that the caller's walk
// (scanSearch) found no immigration code where labelImmigrationCodes
// looks, so it need not search.
func (l *Labeller) applyRest(w *cow, out []Applied, inline, sensitive, noCodes bool) ([]Applied, bool) {
	imm, inl := l.labelImmigrationCodes(w, noCodes)
	out = append(out, imm...)
	if len(imm) > 0 {
		sensitive = true
		inline = inline || inl
	}
	if sensitive {
		if raiseConfidentiality(w, "R") {
			out = append(out, Applied{Rule: "confidentiality", Label: Label{fhir.SystemConfidentiality, "R"}})
		}
	}
	return out, inline
}

// labelImmigrationCodes finds immigration and legal-status codes wherever
// a Coding appears in the resource (components, answers, evidence,
// extensions, identifiers' types, contained resources), not only where the
// rules look, and labels what holds them IMMIG unless a label already
// covers them: inline on the top-level element holding the code, or the
// whole resource when that element is required or cannot carry a label,
// or the code is in a contained resource. It reports whether it put
// inline labels.
func (l *Labeller) labelImmigrationCodes(w *cow, noCodes bool) ([]Applied, bool) {
	r := &l.immig
	if r.codes == nil {
		return nil, false
	}
	lb := r.labels[0]
	if slices.ContainsFunc(w.rootMeta().GetSecurity(), func(c *dpb.Coding) bool { return labelOf(c) == lb }) {
		return nil, false
	}
	// Most resources hold no immigration code at all: a planned walk that
	// finds none settles it without the reflective walk below (the
	// caller's, or this one).
	if noCodes {
		return nil, false
	}
	if maybe, ok := mayHoldCode(w.root, r); ok && !maybe {
		return nil, false
	}
	tops, whole, underPrim := immigrationTops(w.root, r)
	if underPrim {
		// The labels that cover these codes sit on (or in) primitive
		// values: the scan must look there.
		w.primLabels = true
	}
	if whole {
		if addSecurity(w, lb) {
			return []Applied{{Rule: r.name, Label: lb}}, false
		}
		return nil, false
	}
	var out []Applied
	for _, t := range tops {
		if addInline(w, t, lb) {
			out = append(out, Applied{Rule: r.name, Element: t.path(), Label: lb})
			continue
		}
		if !slices.Contains(inlineLabels(w.current(t.msg)), lb) {
			// The element cannot carry an inline label: label the resource.
			if addSecurity(w, lb) {
				out = append(out, Applied{Rule: r.name, Label: lb})
			}
		}
	}
	return out, len(out) > 0
}

// immigrationTops finds, on the reflective walk, the top-level elements
// holding a coding of r that no inline label covers yet (in primitive
// values' extensions too), and whether the whole resource must be
// labelled instead (a contained resource holds such a coding, or a
// top-level element holding one is required).
func immigrationTops(m protoreflect.Message, r *labelRule) (tops []*elem, whole, underPrim bool) {
	lb := r.labels[0]
	seen := map[string]bool{}
	walk(m, nil, true, func(e *elem) bool {
		switch v := e.msg.Interface().(type) {
		case *dpb.Meta, *dpb.Narrative:
			return false
		case *dpb.Extension:
			return v.GetUrl().GetValue() != ExtInlineSecurityLabel // a label, not data
		case *dpb.Coding:
			if !r.codingMatches(v) {
				return false
			}
			for x := e; x != nil; x = x.up {
				underPrim = underPrim || isPrimDescriptor(x.msg.Descriptor())
			}
			if labelledAlong(e, lb) {
				return false
			}
			top := e
			for top.up != nil {
				top = top.up
			}
			if p := top.path(); !seen[p] {
				seen[p] = true
				tops = append(tops, top.persist())
			}
			return false
		}
		return true
	})
	if containedHas(m, r) {
		whole = true
	}
	for _, t := range tops {
		if required(t.fd) {
			whole = true
		}
	}
	return tops, whole, underPrim
}

// mayHoldCode reports, on the walk plans, whether a coding of r may be
// where labelImmigrationCodes looks (immigrationTops): anywhere but meta,
// the narrative and inline labels (primitive values' extensions
// included), or in a contained resource. It is
// conservative: false only when immigrationTops would find nothing.
// ok is false when the plans cannot describe m.
func mayHoldCode(m protoreflect.Message, r *labelRule) (maybe, ok bool) {
	p, ptr := planFor(m)
	if p != nil && p.hasContained(ptr) {
		return true, true
	}
	return searchPlan(p, ptr, r, true, true)
}

// labelledAlong reports whether the element or one holding it carries the
// label inline (on an extension, on its value).
func labelledAlong(e *elem, lb Label) bool {
	for x := e; x != nil && x.parent != nil; x = x.up {
		if slices.Contains(inlineLabels(x.msg), lb) {
			return true
		}
		if ext, ok := x.msg.Interface().(*dpb.Extension); ok && ext.GetValue() != nil {
			if set := choiceSet(ext.GetValue().ProtoReflect()); set != nil && set.Message() != nil &&
				slices.Contains(inlineLabels(ext.GetValue().ProtoReflect().Get(set).Message()), lb) {
				return true
			}
		}
	}
	return false
}

// containedHas reports whether a contained resource holds a coding of the rule.
func containedHas(m protoreflect.Message, r *labelRule) bool {
	fd := m.Descriptor().Fields().ByName("contained")
	if fd == nil || !fd.IsList() || !m.Has(fd) {
		return false
	}
	l := m.Get(fd).List()
	for i := range l.Len() {
		a, ok := l.Get(i).Message().Interface().(*anypb.Any)
		if !ok {
			continue
		}
		cr := &fhir.ContainedResource{}
		if err := a.UnmarshalTo(cr); err != nil {
			return true // unreadable: fail safe
		}
		if res := fhir.Unwrap(cr); res != nil && r.containsCodeIn(res.ProtoReflect(), true) {
			return true
		}
	}
	return false
}

// addInline puts an inline security label on an element, once: on the
// element itself, or for an extension with a value, on the value (an
// extension may not have both a value and extensions, ext-1).
func addInline(w *cow, e *elem, lb Label) bool {
	host := w.current(e.msg)
	he := e
	if x, ok := host.Interface().(*dpb.Extension); ok && x.GetValue() != nil {
		wrap := x.GetValue().ProtoReflect()
		set := choiceSet(wrap)
		if set == nil || set.Message() == nil {
			return false
		}
		he = &elem{parent: host, fd: host.Descriptor().Fields().ByName("value"), idx: -1, msg: wrap.Get(set).Message(), name: "value", choice: set, up: e}
		host = w.current(he.msg)
	}
	if !w.reflective {
		// On the plan: the host's extensions are a []*dpb.Extension at
		// extOff (what protoreflect's Mutable and Append write to).
		if p, ptr := planFor(host); p != nil && p.extOff != noOffset {
			for _, x := range p.extensions(ptr) {
				if x.GetUrl().GetValue() == ExtInlineSecurityLabel && x.GetValue().GetCoding() != nil && labelOf(x.GetValue().GetCoding()) == lb {
					return false
				}
			}
			if isPrimDescriptor(host.Descriptor()) {
				w.primLabels = true
			}
			_, wptr := planFor(w.msg(he))
			exts := (*[]*dpb.Extension)(unsafe.Add(wptr, p.extOff))
			*exts = append(*exts, &dpb.Extension{
				Url:   fhir.URI(ExtInlineSecurityLabel),
				Value: &dpb.Extension_ValueX{Choice: &dpb.Extension_ValueX_Coding{Coding: w.coding(lb)}},
			})
			return true
		}
	}
	for _, x := range inlineLabels(host) {
		if x == lb {
			return false
		}
	}
	fd := host.Descriptor().Fields().ByName("extension")
	if fd == nil {
		return false
	}
	if isPrimDescriptor(host.Descriptor()) {
		w.primLabels = true
	}
	host = w.msg(he)
	ext := &dpb.Extension{
		Url:   fhir.URI(ExtInlineSecurityLabel),
		Value: &dpb.Extension_ValueX{Choice: &dpb.Extension_ValueX_Coding{Coding: w.coding(lb)}},
	}
	host.Mutable(fd).List().Append(protoreflect.ValueOfMessage(ext.ProtoReflect()))
	return true
}

// inlineLabels returns the inline labels directly on a message.
func inlineLabels(m protoreflect.Message) []Label {
	fd := m.Descriptor().Fields().ByName("extension")
	if fd == nil || !fd.IsList() || !m.Has(fd) {
		return nil
	}
	var out []Label
	l := m.Get(fd).List()
	for i := range l.Len() {
		x, ok := l.Get(i).Message().Interface().(*dpb.Extension)
		if ok && x.GetUrl().GetValue() == ExtInlineSecurityLabel && x.GetValue().GetCoding() != nil {
			out = append(out, labelOf(x.GetValue().GetCoding()))
		}
	}
	return out
}

// hasInlineLabels reports whether any element of m carries an inline
// label: on the walk plans, or where they cannot describe m, as
// hasInlineLabelsReflect.
func hasInlineLabels(m protoreflect.Message) bool {
	p, ptr := planFor(m)
	if p == nil || !p.ok || p.choice != nil {
		return hasInlineLabelsReflect(m)
	}
	v := visitors.Get().(*visitor)
	v.fn, v.prims, v.stop, v.deep, v.found = inlineLabelVisit, true, false, 0, false
	v.walk(p, ptr, nil, 0)
	found := v.found
	clear(v.stack[:min(v.deep+1, len(v.stack))])
	v.fn, v.found = nil, false
	visitors.Put(v)
	return found
}

// inlineLabelVisit is hasInlineLabels' visit: it ends the walk at the
// first element with an inline label (a DS4P extension with a Coding, as
// inlineLabels reads them).
func inlineLabelVisit(v *visitor, n *node) bool {
	for _, x := range n.plan.extensions(n.ptr) {
		if x.GetUrl().GetValue() == ExtInlineSecurityLabel && x.GetValue().GetCoding() != nil {
			v.found, v.stop = true, true
			return false
		}
	}
	return true
}

// hasInlineLabelsReflect is hasInlineLabels on the reflective walk: the
// reference the planned walk is tested against.
func hasInlineLabelsReflect(m protoreflect.Message) bool {
	found := false
	walk(m, nil, true, func(e *elem) bool {
		if found {
			return false
		}
		if len(inlineLabels(e.msg)) > 0 {
			found = true
			return false
		}
		return true
	})
	return found
}

// metaOf returns the resource's meta for reading, or nil.
func metaOf(m protoreflect.Message) *dpb.Meta {
	fd := m.Descriptor().Fields().ByName("meta")
	if fd == nil || !m.Has(fd) {
		return nil
	}
	meta, _ := m.Get(fd).Message().Interface().(*dpb.Meta)
	return meta
}

// writableMeta returns the resource's meta for writing, creating it.
func writableMeta(w *cow) *dpb.Meta {
	if w.meta != nil && w.rootMeta() == w.meta {
		return w.meta // made before, and still the resource's
	}
	if !w.inPlace && w.plan != nil && w.plan.metaOff != noOffset {
		// What w.field does, on the plan: the root is a copy, so its meta
		// pointer is written in place.
		slot := (**dpb.Meta)(unsafe.Add(w.ptr, w.plan.metaOff))
		var meta *dpb.Meta
		if old := *slot; old == nil {
			meta = &dpb.Meta{Security: make([]*dpb.Coding, 0, metaRoom)}
			w.copies.add(meta.ProtoReflect(), meta.ProtoReflect())
		} else if c, ok := w.copies.get(old.ProtoReflect()); ok {
			meta = c.Interface().(*dpb.Meta)
		} else {
			meta = (*dpb.Meta)(metaPlan().copy(unsafe.Pointer(old)))
			meta.Security = slices.Grow(meta.Security, metaRoom)
			w.copies.add(old.ProtoReflect(), meta.ProtoReflect())
		}
		*slot = meta
		w.meta = meta
		return meta
	}
	fd := w.root.Descriptor().Fields().ByName("meta")
	if fd == nil {
		return nil
	}
	meta, _ := w.field(w.root, fd).Interface().(*dpb.Meta)
	w.meta = meta
	return meta
}

// metaRoom is the room a copy's meta.security gets for the labels a
// Filter adds (a sensitivity label, confidentiality, PROCESSINLINELABEL,
// REDACTED, MASKED, refrain codes...): one array, not one per doubling.
const metaRoom = 6

var metaPlan = sync.OnceValue(func() *walkPlan { return planOfType(reflect.TypeFor[dpb.Meta]()) })

// securityLabels returns the resource's meta.security labels.
func securityLabels(m protoreflect.Message) []Label { return metaLabels(metaOf(m)) }

// labelsOf returns the labels of a meta.security.
func metaLabels(meta *dpb.Meta) []Label {
	out := make([]Label, 0, len(meta.GetSecurity()))
	for _, c := range meta.GetSecurity() {
		out = append(out, labelOf(c))
	}
	return out
}

// addSecurity adds a label to the resource's meta.security, once.
func addSecurity(w *cow, lb Label) bool {
	for _, c := range w.rootMeta().GetSecurity() {
		if labelOf(c) == lb {
			return false
		}
	}
	meta := writableMeta(w)
	if meta == nil {
		return false
	}
	meta.Security = append(meta.Security, w.coding(lb))
	return true
}

// raiseConfidentiality makes the resource's confidentiality at least code.
func raiseConfidentiality(w *cow, code string) bool {
	want := confidentialityRank[code]
	for i, c := range w.rootMeta().GetSecurity() {
		if c.GetSystem().GetValue() != fhir.SystemConfidentiality {
			continue
		}
		if confidentialityRank[c.GetCode().GetValue()] >= want {
			return false
		}
		writableMeta(w).Security[i] = w.coding(Label{fhir.SystemConfidentiality, code})
		return true
	}
	return addSecurity(w, Label{fhir.SystemConfidentiality, code})
}
