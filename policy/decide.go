package policy

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pathway-fhir/pathway/fhir"

	conpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/consent_go_proto"
)

// Request is one question to the policy engine: may this partner receive
// the patient's data for this purpose, now?
type Request struct {
	// Partner is the recipient: its id (Organization/ID in consents), kind
	// and identifiers. Required.
	Partner *Partner
	// Agreement is the partner's data-sharing agreement; nil decides on the
	// consents alone (pathway consent check).
	Agreement *Agreement
	// Purpose is the v3-ActReason purpose of use (COC, TREAT...). Required.
	Purpose string
	// Action is the consentaction code; "" means disclose, which is what
	// Pathway does when it sends data to a partner.
	Action string
	// At is the time of the request; consent periods are matched on it.
	At time.Time
	// Base is the network's base policy; "" means the engine's (the
	// configuration's network.base_policy, else opt-in).
	Base BasePolicy
}

// Decision is the answer: its effect, what must be done to the data before
// it leaves, why, and the same in plain words (Explain). Its JSON form,
// {"decision", "obligations", "trail", "explanation"}, is what `pathway
// consent check --json` prints.
type Decision struct {
	// Effect is permit, deny or no-consent.
	Effect Effect `json:"decision"`
	// Obligations lists what must be done to the data: remove or mask
	// resources and elements, attach labels.
	Obligations []Obligation `json:"obligations"`
	// Trail lists the steps that decided, in order.
	Trail []Step `json:"trail"`
	// why is the decision as the engine made it, which Explain writes the
	// explanation from; nil for a decision made with its explanation
	// (NewDecision, or read from JSON), which text holds.
	why  *evaluator
	text string
}

// NewDecision returns a decision with an effect and an explanation, and
// neither obligations nor trail: one a caller makes without the engine
// (nothing decided yet).
func NewDecision(effect Effect, explanation string) Decision {
	return Decision{Effect: effect, text: explanation}
}

// Permitted reports whether anything may be sent.
func (d Decision) Permitted() bool { return d.Effect == Permit }

// Explain says what the decision says in a paragraph a link worker can
// read. It names the partner and the purpose, never the patient's
// details. The engine's decisions write it when asked, from what they
// were decided on: the trail and obligations as decided (changing the
// Decision's slices afterwards does not change it) and the request's
// Partner and Agreement, which must not change meanwhile (the
// configuration's do not).
func (d Decision) Explain() string {
	if d.why == nil {
		return d.text
	}
	return d.why.explain(d.why.effect, d.why.rs)
}

// decisionJSON is a Decision's JSON form.
type decisionJSON struct {
	Effect      Effect       `json:"decision"`
	Obligations []Obligation `json:"obligations"`
	Trail       []Step       `json:"trail"`
	Explanation string       `json:"explanation"`
}

// MarshalJSON writes the decision with its explanation. It does not
// escape HTML: json.Marshal escapes what it returns as it escapes any
// string, and an Encoder with SetEscapeHTML(false) leaves it as is.
func (d Decision) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(decisionJSON{d.Effect, d.Obligations, d.Trail, d.Explain()}); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// UnmarshalJSON reads a decision's JSON form; its explanation is the text read.
func (d *Decision) UnmarshalJSON(data []byte) error {
	var j decisionJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*d = Decision{Effect: j.Effect, Obligations: j.Obligations, Trail: j.Trail, text: j.Explanation}
	return nil
}

// ObligationAction is what an obligation asks.
type ObligationAction string

const (
	// Remove the target (a resource, an element, or the data described).
	Remove ObligationAction = "remove"
	// Mask the target's value.
	Mask ObligationAction = "mask"
	// Label the target (meta.security, or inline for an element).
	AttachLabel ObligationAction = "label"
)

// Obligation is one thing to do to the data before it leaves.
type Obligation struct {
	Action ObligationAction `json:"action"`
	// Target is "Type/id", "Type/id element" (an element path), "every
	// resource", or a description of data ("data labelled IMMIG") for a
	// decision made without the data.
	Target string `json:"target"`
	// Label is the label to attach (action label).
	Label *Label `json:"label,omitempty"`
	// Because cites the step that requires it: "Consent/c1
	// provision.provision[0]", "agreement dsa-1 labels", "label rule psychiatric-diagnosis".
	Because string `json:"because"`
}

// Source says what a trail step consulted.
type Source string

const (
	// SourceConsent is a patient's Consent.
	SourceConsent Source = "consent"
	// SourceAgreement is the partner's data-sharing agreement.
	SourceAgreement Source = "agreement"
	// SourceBasePolicy is the network's base policy.
	SourceBasePolicy Source = "base-policy"
	// SourceRule is a rule Pathway enforces whatever the consents say
	// (immigration and legal-status data).
	SourceRule Source = "rule"
)

// Step is one step of a decision's trail.
type Step struct {
	Source Source `json:"source"`
	// Ref names what was consulted: "Consent/c1", the agreement id,
	// "network", "immigration".
	Ref string `json:"ref"`
	// Path is where in it: "provision.provision[1]", "purposes".
	Path string `json:"path,omitempty"`
	// Effect is what this step decided; empty for a step that did not
	// apply (a consent that was not active).
	Effect Effect `json:"effect,omitempty"`
	// Target is the resource or element the step decided for; empty for
	// the request as a whole.
	Target string `json:"target,omitempty"`
	// Note adds what a reader needs: why a consent was skipped, which
	// criterion could not be decided.
	Note string `json:"note,omitempty"`
}

// String renders "Consent/c1 provision.provision[1]: deny Observation/o1 (note)".
func (s Step) String() string {
	var b strings.Builder
	b.WriteString(s.Ref)
	if s.Path != "" {
		b.WriteString(" " + s.Path)
	}
	b.WriteString(":")
	if s.Effect != "" {
		b.WriteString(" " + string(s.Effect))
	} else {
		b.WriteString(" not applied")
	}
	if s.Target != "" {
		b.WriteString(" " + s.Target)
	}
	if s.Note != "" {
		b.WriteString(" (" + s.Note + ")")
	}
	return b.String()
}

// cite renders the step as an obligation's Because.
func (s Step) cite() string {
	if s.Path != "" {
		return s.Ref + " " + s.Path
	}
	return s.Ref
}

// Engine decides and filters under one configuration. It holds no state
// between calls and is safe for concurrent use.
type Engine struct {
	labeller *Labeller
	base     BasePolicy
	// reference makes the engine take the earlier, plainer path where a
	// faster one replaced it (every resource labelled, withheld or not):
	// the differential tests compare the two.
	reference bool
}

// NewEngine compiles the labelling rules of cfg (Pathway's defaults and the
// extra ones); cfg may be nil for the defaults alone.
func NewEngine(cfg *Config) (*Engine, error) {
	var rules []LabelRule
	var sets []ValueSet
	e := &Engine{base: OptIn}
	if cfg != nil {
		rules, sets = cfg.Labels, cfg.ValueSets
		e.base = cfg.Network.BasePolicy.orDefault()
	}
	l, err := NewLabeller(rules, sets)
	if err != nil {
		return nil, err
	}
	e.labeller = l
	return e, nil
}

// withBase fills in the configured base policy when the request has none.
func (e *Engine) withBase(req Request) Request {
	if req.Base == "" {
		req.Base = e.base
	}
	return req
}

// Labeller returns the engine's labeller.
func (e *Engine) Labeller() *Labeller { return e.labeller }

// resource is one resource under evaluation: a labelled copy.
type resource struct {
	key          string
	fullURL      string
	w            *cow                 // the resource's writer
	msg          protoreflect.Message // the resource as labelled (w.root)
	item         *item
	applied      []Applied
	scan         scanned
	remove       *Step          // why the whole resource is withheld
	elems        []elemDecision // elements withheld for their labels
	redactions   []redaction    // elements removed or masked when redacting
	removedPaths *remover       // what redaction removed
}

type elemDecision struct {
	e    *elem
	step Step
}

// evaluator holds one decision in progress.
type evaluator struct {
	req      Request
	q        *request
	consents []*consentRule
	keys     *keyIndex
	trail    []Step
	obl      []Obligation
	base     BasePolicy
	// denyBuf and permitBuf hold decideItem's steps from one decision to
	// the next.
	denyBuf, permitBuf []Step
	// effect and rs are what finish decided, for Decision.Explain.
	effect Effect
	rs     []*resource
}

func newEvaluator(req Request, consents []*conpb.Consent, keys *keyIndex) *evaluator {
	ev := &evaluator{req: req, keys: keys, base: req.Base.orDefault()}
	action := req.Action
	if action == "" {
		action = "disclose"
	}
	ev.q = &request{partner: req.Partner, purpose: req.Purpose, action: action, at: req.At, keys: keys}
	for i, c := range consents {
		ev.consents = append(ev.consents, compileConsent(c, i))
	}
	return ev
}

// agreementRef names the agreement in trails.
func (ev *evaluator) agreementRef() string {
	if a := ev.req.Agreement; a != nil && a.ID != "" {
		return a.ID
	}
	return "partners[" + ev.req.Partner.ID + "].agreement"
}

// checkPurpose applies the agreement's purposes: a purpose outside them is
// a deny whatever the consents say.
func (ev *evaluator) checkPurpose() (Step, bool) {
	a := ev.req.Agreement
	for _, p := range a.Purposes {
		if PurposeSubsumes(p, ev.req.Purpose) {
			note := ""
			if p != ev.req.Purpose {
				note = ev.req.Purpose + " is under " + p
			}
			return Step{Source: SourceAgreement, Ref: ev.agreementRef(), Path: "purposes", Effect: Permit, Note: note}, true
		}
	}
	note := ev.req.Purpose + " is not among the agreement's purposes"
	if len(a.Purposes) == 0 {
		note = "the agreement lists no purpose"
	}
	return Step{Source: SourceAgreement, Ref: ev.agreementRef(), Path: "purposes", Effect: Deny, Note: note}, false
}

// consentResult is what the consents together say about an item.
type consentResult struct {
	effect   Effect
	steps    []Step
	explicit bool           // a permit provision names the partner and purpose for immigration data
	unused   []*consentRule // active, readable consents that did not apply
}

// decideItem combines every consent for one item (nil: the request in
// general), deny overriding permit, falling back to the base policy.
//
// The consents' steps of the result are kept in arrays the evaluator
// reuses: they are valid until it decides again (callers copy what they
// keep into the trail, or a step by value).
func (ev *evaluator) decideItem(it *item, conds *[]conditional) consentResult {
	denies, permits := ev.denyBuf[:0], ev.permitBuf[:0]
	explicit := false
	target := ""
	if it != nil {
		target = it.target()
	}
	var unused []*consentRule
	for _, cr := range ev.consents {
		if !cr.appliesTo(it) {
			continue // about another patient
		}
		n := 0
		if conds != nil {
			n = len(*conds)
		}
		o := cr.eval(ev.q, it, conds)
		if o.effect == "" && cr.skip == "" && (conds == nil || len(*conds) == n) {
			unused = append(unused, cr)
		}
		switch o.effect {
		case Deny:
			s := Step{Source: SourceConsent, Ref: cr.ref, Effect: Deny, Target: target}
			if o.rule != nil {
				s.Path = o.rule.path
			}
			switch {
			case cr.broken != "":
				s.Note = "not readable safely: " + cr.broken
			case o.unsure:
				s.Note = "a criterion could not be checked, so the deny is applied"
			}
			denies = append(denies, s)
		case Permit:
			permits = append(permits, Step{Source: SourceConsent, Ref: cr.ref, Path: o.rule.path, Effect: Permit, Target: target})
			if ev.namesExplicitly(o.rule) {
				explicit = true
			}
		}
	}
	ev.denyBuf, ev.permitBuf = denies[:0], permits[:0]
	switch {
	case len(denies) > 0:
		return consentResult{effect: Deny, steps: denies}
	case len(permits) > 0:
		return consentResult{effect: Permit, steps: permits, explicit: explicit}
	case ev.base == OptOut:
		return consentResult{effect: Permit, unused: unused, steps: []Step{{Source: SourceBasePolicy, Ref: "network", Path: "base_policy",
			Effect: Permit, Target: target, Note: "opt-out: no active consent applies"}}}
	}
	return consentResult{effect: NoConsent, unused: unused, steps: []Step{{Source: SourceBasePolicy, Ref: "network", Path: "base_policy",
		Effect: NoConsent, Target: target, Note: "opt-in: no active consent applies"}}}
}

// namesExplicitly reports whether a permit provision releases immigration
// and legal-status data to this partner for this purpose explicitly: it
// has the IMMIG security label, names the partner among its actors (by
// Organization reference or identifier, not by kind) and lists the
// requested purpose itself (not a broader one).
func (ev *evaluator) namesExplicitly(r *rule) bool {
	if r == nil {
		return false
	}
	label := false
	for _, l := range r.labels {
		if l.isImmigration() {
			label = true
		}
	}
	purpose := false
	for _, p := range r.purposes {
		if p.Code == ev.req.Purpose && (p.System == "" || p.System == fhir.SystemActReason) {
			purpose = true
		}
	}
	return label && purpose && ev.q.matchActors(r.recips) == yes
}

// immigrationStep is the trail step of the immigration rule.
func (ev *evaluator) immigrationStep(target string) Step {
	return Step{Source: SourceRule, Ref: "immigration-rule", Effect: Deny, Target: target,
		Note: "immigration and legal-status data needs a consent provision labelled IMMIG that names this partner and purpose " + ev.req.Purpose}
}

// judge decides one item: the agreement's types and labels, the consents,
// and the immigration rule. It returns the step that withholds the item,
// or nil and the steps that allowed it (valid until the next decision, see
// decideItem).
func (ev *evaluator) judge(it *item, checkType bool) (*Step, []Step) {
	a := ev.req.Agreement
	if checkType && a.withholdsType(it.rtype) {
		return &Step{Source: SourceAgreement, Ref: ev.agreementRef(), Path: "resource_types", Effect: Deny,
			Target: it.target(), Note: it.rtype + " is not among the resource types the partner may receive"}, nil
	}
	res := ev.decideItem(it, nil)
	if res.effect != Permit {
		s := res.steps[0]
		return &s, nil
	}
	if it.hasImmigration() && !res.explicit {
		s := ev.immigrationStep(it.target())
		return &s, nil
	}
	if a != nil {
		for _, l := range it.labels {
			if l.gates() && !agreementAllows(a, l) {
				return &Step{Source: SourceAgreement, Ref: ev.agreementRef(), Path: "labels", Effect: Deny,
					Target: it.target(), Note: "labelled " + l.String() + ", which the agreement does not allow"}, nil
			}
		}
	}
	return nil, res.steps
}

// withholdsType reports whether the agreement withholds every resource of
// the type, whatever its labels and the consents say (judge decides this
// first; label leaves such resources unlabelled). A nil agreement
// withholds nothing.
func (a *Agreement) withholdsType(rtype string) bool {
	return a != nil && !containsString(a.ResourceTypes, rtype)
}

func agreementAllows(a *Agreement, l Label) bool {
	for _, s := range a.Labels {
		if al, ok := ParseLabel(s); ok && al == l {
			return true
		}
	}
	return false
}

// Decide evaluates the consents for a request. Without data it answers for
// the request in general: provisions about particular data (labels,
// classes, codes...) become obligations on such data. With data (resources,
// or Bundles whose entries are read), it decides resource by resource and
// element by element; the data is labelled on a copy first and never
// changed. Consents must be the patient's: Decide does not check who they
// are about (see AboutPatient).
func (e *Engine) Decide(req Request, consents []*conpb.Consent, data ...*fhir.ContainedResource) Decision {
	if len(data) == 0 {
		return e.decideGeneral(req, consents)
	}
	var entries []entryIn
	for _, cr := range data {
		if b := cr.GetBundle(); b != nil {
			for _, en := range b.GetEntry() {
				if en.GetResource() != nil {
					entries = append(entries, entryIn{fullURL: en.GetFullUrl().GetValue(), res: en.GetResource()})
				}
			}
			continue
		}
		entries = append(entries, entryIn{res: cr})
	}
	keys, rs := e.label(entries, req.Agreement)
	ev := newEvaluator(e.withBase(req), consents, keys)
	return ev.finish(ev.decideData(rs), rs)
}

// entryIn is one input resource, with the fullUrl it had in a Bundle.
type entryIn struct {
	fullURL string
	res     *fhir.ContainedResource
}

// decideGeneral decides a request without data.
func (e *Engine) decideGeneral(req Request, consents []*conpb.Consent) Decision {
	ev := newEvaluator(e.withBase(req), consents, &keyIndex{})
	if ev.req.Agreement != nil {
		s, ok := ev.checkPurpose()
		ev.trail = append(ev.trail, s)
		if !ok {
			return ev.finish(Deny, nil)
		}
	}
	var conds []conditional
	res := ev.decideItem(nil, &conds)
	ev.noteSkipped(res)
	ev.trail = append(ev.trail, res.steps...)
	if res.effect != Permit {
		return ev.finish(res.effect, nil)
	}
	for _, c := range conds {
		if c.effect != Deny {
			continue
		}
		s := Step{Source: SourceConsent, Ref: c.consent, Path: c.rule.path, Effect: Deny, Target: describeData(c.rule)}
		ev.trail = append(ev.trail, s)
		ev.obl = append(ev.obl, Obligation{Action: Remove, Target: s.Target, Because: s.cite()})
	}
	// Would immigration data go? Ask the consents about data labelled IMMIG.
	probe := &item{key: "data labelled IMMIG", labels: []Label{{fhir.SystemPathway, fhir.PathwaySensitivityImmigration}}}
	if r := ev.decideItem(probe, nil); r.effect != Permit || !r.explicit {
		s := ev.immigrationStep("data labelled " + fhir.PathwaySensitivityImmigration)
		if !ev.hasObligation(s.Target) {
			ev.trail = append(ev.trail, s)
			ev.obl = append(ev.obl, Obligation{Action: Remove, Target: s.Target, Because: s.cite()})
		}
	}
	return ev.finish(Permit, nil)
}

func (ev *evaluator) hasObligation(target string) bool {
	for _, o := range ev.obl {
		if o.Target == target && o.Action == Remove {
			return true
		}
	}
	return false
}

// noteSkipped adds a step for every consent that was not used, and why.
func (ev *evaluator) noteSkipped(res consentResult) {
	for _, cr := range ev.consents {
		if cr.skip != "" {
			ev.trail = append(ev.trail, Step{Source: SourceConsent, Ref: cr.ref, Note: cr.skip})
		}
	}
	if res.effect == Permit && len(res.steps) > 0 && res.steps[0].Source == SourceConsent {
		return // a consent decided: the others do not matter
	}
	for _, cr := range res.unused {
		ev.trail = append(ev.trail, Step{Source: SourceConsent, Ref: cr.ref, Path: "provision", Note: cr.whyNot(ev.q)})
	}
}

// decideData decides resource by resource and element by element and
// returns the effect; finish assembles the decision.
func (ev *evaluator) decideData(rs []*resource) Effect {
	if ev.req.Agreement != nil {
		s, ok := ev.checkPurpose()
		ev.trail = append(ev.trail, s)
		if !ok {
			for _, r := range rs {
				r.remove = &s
			}
			return Deny
		}
	}
	var conds []conditional
	general := ev.decideItem(nil, &conds)
	ev.noteSkipped(general)
	ev.trail = append(ev.trail, general.steps...)
	kept := 0
	for _, r := range rs {
		s, steps := ev.judge(r.item, true)
		if s != nil {
			r.remove = s
			continue
		}
		kept++
		if general.effect != Permit || r.item.hasImmigration() {
			steps = slices.Clone(steps) // judgeElements decides again
		}
		ev.judgeElements(r)
		if general.effect != Permit {
			// The request as a whole was not permitted: say what permitted this.
			ev.trail = append(ev.trail, steps...)
		} else if r.item.hasImmigration() {
			for _, s := range steps {
				s.Note = "immigration and legal-status data released by a provision naming this partner and purpose"
				ev.trail = append(ev.trail, s)
			}
		}
	}
	if kept > 0 {
		return Permit
	}
	// Nothing may be sent. It is "no-consent" when no consent applied at
	// all, neither to the request nor to any resource; a consent or the
	// immigration rule that refused something makes it a deny.
	if general.effect != NoConsent {
		return Deny
	}
	for _, r := range rs {
		if r.remove != nil && r.remove.Effect == Deny && r.remove.Source != SourceAgreement {
			return Deny
		}
	}
	return NoConsent
}

// judgeElements decides the elements of a kept resource that carry inline
// labels of their own.
func (ev *evaluator) judgeElements(r *resource) {
	for _, le := range r.scan.labelled {
		it := *r.item
		it.element = le.e.path()
		it.labels = append(append([]Label(nil), r.item.labels...), le.labels...)
		s, steps := ev.judge(&it, false)
		if s != nil {
			r.elems = append(r.elems, elemDecision{e: le.e, step: *s})
			continue
		}
		if it.hasImmigration() && !r.item.hasImmigration() {
			for _, st := range steps {
				st.Note = "immigration and legal-status data released by a provision naming this partner and purpose"
				ev.trail = append(ev.trail, st)
			}
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
