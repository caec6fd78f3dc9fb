package policy

import (
	"strconv"
	"strings"
	"time"

	"github.com/pathway-fhir/pathway/fhir"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	conpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/consent_go_proto"
)

// tri is a three-valued match: a criterion holds, does not, or cannot be
// decided from what the request and the data say.
type tri uint8

const (
	no tri = iota
	yes
	unknown
)

func and(a, b tri) tri {
	switch {
	case a == no || b == no:
		return no
	case a == unknown || b == unknown:
		return unknown
	}
	return yes
}

// span is a time interval [start, end); a zero bound is open.
type span struct {
	start, end time.Time
}

func (s span) contains(t time.Time) bool {
	return (s.start.IsZero() || !t.Before(s.start)) && (s.end.IsZero() || t.Before(s.end))
}

func (s span) overlaps(o span) bool {
	return (s.start.IsZero() || o.end.IsZero() || o.end.After(s.start)) &&
		(s.end.IsZero() || o.start.IsZero() || o.start.Before(s.end))
}

// zone returns a fixed zone for google/fhir's timezone strings ("Z", "UTC",
// "+02:00"); named zones would need the zone database (I/O), so they count
// as UTC, which moves a bound by at most a day's hours.
func zone(tz string) *time.Location {
	if len(tz) == 6 && (tz[0] == '+' || tz[0] == '-') && tz[3] == ':' {
		h, err1 := strconv.Atoi(tz[1:3])
		m, err2 := strconv.Atoi(tz[4:6])
		if err1 == nil && err2 == nil {
			off := h*3600 + m*60
			if tz[0] == '-' {
				off = -off
			}
			return time.FixedZone(tz, off)
		}
	}
	return time.UTC
}

// dateTimeSpan returns the interval a dateTime covers at its precision:
// "2016-01-01" is that whole day, "2016" the whole year.
func dateTimeSpan(d *dpb.DateTime) span {
	t := time.UnixMicro(d.GetValueUs()).In(zone(d.GetTimezone()))
	switch d.GetPrecision() {
	case dpb.DateTime_YEAR:
		return span{t, t.AddDate(1, 0, 0)}
	case dpb.DateTime_MONTH:
		return span{t, t.AddDate(0, 1, 0)}
	case dpb.DateTime_DAY:
		return span{t, t.AddDate(0, 0, 1)}
	case dpb.DateTime_SECOND:
		return span{t, t.Add(time.Second)}
	case dpb.DateTime_MILLISECOND:
		return span{t, t.Add(time.Millisecond)}
	}
	return span{t, t.Add(time.Microsecond)}
}

// periodSpan returns the interval of a Period: from the start of its start
// to the end of its end, each at its own precision.
func periodSpan(p *dpb.Period) span {
	var s span
	if p.GetStart() != nil {
		s.start = dateTimeSpan(p.GetStart()).start
	}
	if p.GetEnd() != nil {
		s.end = dateTimeSpan(p.GetEnd()).end
	}
	return s
}

// actor is a provision actor: a literal reference, an identifier, or
// neither (display only, which cannot be matched).
type actor struct {
	ref   string // "Organization/clinic-b", "urn:uuid:..."; "" for none
	ident Identifier
}

// rule is one compiled provision.
type rule struct {
	path     string
	effect   Effect // permit, deny or "" (a root without type)
	period   *span
	recips   []actor // actors in any role but custodian and author: who receives
	custs    []actor // custodian (CST): who holds the data
	authors  []actor // author (AUT): who wrote the data
	kinds    []string
	actions  []Label
	purposes []Label
	labels   []Label
	classes  []Label
	codes    []Label
	dataSpan *span
	data     []dataRef
	children []*rule
	// modifier names a modifier extension Pathway does not understand.
	modifier string
}

type dataRef struct {
	meaning string // instance, related, dependents, authoredby
	ref     string
}

// hasData reports whether the rule has criteria about the data itself.
func (r *rule) hasData() bool {
	return len(r.labels) > 0 || len(r.classes) > 0 || len(r.codes) > 0 || r.dataSpan != nil ||
		len(r.data) > 0 || len(r.authors) > 0
}

// consentRule is one compiled Consent.
type consentRule struct {
	ref     string // "Consent/c1"
	skip    string // why the consent is not evaluated at all
	broken  string // why it cannot be read safely: it denies (fails closed)
	root    *rule
	base    Effect // the root's effect when it has no type (from policyRule)
	patient *dpb.Reference
	// about holds the keys of the patients the consent is about, when
	// known (Filter): it applies only to resources about them. nil: it
	// applies to everything it is asked about (Decide).
	about map[string]bool
}

// appliesTo reports whether the consent may decide an item (nil: the
// request in general).
func (cr *consentRule) appliesTo(it *item) bool {
	return cr.about == nil || it == nil || cr.about[it.patient]
}

// Effect is the outcome of a decision or of one of its steps.
type Effect string

const (
	// Permit: the data may be sent (with the obligations).
	Permit Effect = "permit"
	// Deny: nothing is sent.
	Deny Effect = "deny"
	// NoConsent: no active consent of the patient applies and the network's
	// base policy is opt-in: nothing is sent.
	NoConsent Effect = "no-consent"
)

// consentRef names a consent in trails: "Consent/id", or "Consent[i]" when
// it has no id.
func consentRef(c *conpb.Consent, i int) string {
	if id := c.GetId().GetValue(); id != "" {
		return "Consent/" + id
	}
	return "Consent[" + strconv.Itoa(i) + "]"
}

// compileConsent reads a Consent into a rule tree.
func compileConsent(c *conpb.Consent, i int) *consentRule {
	cr := &consentRule{ref: consentRef(c, i), patient: c.GetPatient()}
	switch c.GetStatus().GetValue() {
	case cpb.ConsentStateCode_ACTIVE:
	default:
		cr.skip = "status is " + strings.ToLower(strings.ReplaceAll(c.GetStatus().GetValue().String(), "_", "-")) + ", not active"
		return cr
	}
	if !hasCoding(c.GetScope(), fhir.SystemConsentScope, "patient-privacy") {
		cr.skip = "scope is not patient-privacy"
		return cr
	}
	for _, e := range c.GetModifierExtension() {
		cr.broken = "it has a modifier extension Pathway does not understand (" + e.GetUrl().GetValue() + ")"
		return cr
	}
	for _, cd := range c.GetPolicyRule().GetCoding() {
		if cd.GetSystem().GetValue() != fhir.SystemActCode {
			continue
		}
		switch cd.GetCode().GetValue() {
		case "OPTIN", "OPTINR":
			cr.base = Permit
		case "OPTOUT", "OPTOUTE":
			cr.base = Deny
		}
	}
	if c.GetProvision() == nil {
		if cr.base == "" {
			cr.skip = "it has no provision and no opt-in or opt-out policy rule Pathway can read"
			return cr
		}
		cr.root = &rule{path: "policyRule"}
		return cr
	}
	cr.root = compileProvision(c.GetProvision(), "provision")
	if m := findModifier(cr.root); m != "" {
		cr.broken = m
	}
	return cr
}

func findModifier(r *rule) string {
	if r.modifier != "" {
		return r.path + " has a modifier extension Pathway does not understand (" + r.modifier + ")"
	}
	for _, c := range r.children {
		if m := findModifier(c); m != "" {
			return m
		}
	}
	return ""
}

func compileProvision(p *conpb.Consent_Provision, path string) *rule {
	r := &rule{path: path}
	switch p.GetType().GetValue() {
	case cpb.ConsentProvisionTypeCode_PERMIT:
		r.effect = Permit
	case cpb.ConsentProvisionTypeCode_DENY:
		r.effect = Deny
	}
	if p.GetPeriod() != nil {
		s := periodSpan(p.GetPeriod())
		r.period = &s
	}
	if p.GetDataPeriod() != nil {
		s := periodSpan(p.GetDataPeriod())
		r.dataSpan = &s
	}
	for _, e := range p.GetModifierExtension() {
		if e.GetUrl().GetValue() == ExtConsentPartnerKind {
			if k := e.GetValue().GetCode().GetValue(); k != "" {
				r.kinds = append(r.kinds, k)
				continue
			}
		}
		r.modifier = e.GetUrl().GetValue()
	}
	for _, a := range p.GetActor() {
		ac := actor{ref: refString(a.GetReference())}
		if id := a.GetReference().GetIdentifier(); id != nil {
			ac.ident = Identifier{System: id.GetSystem().GetValue(), Value: id.GetValue().GetValue()}
		}
		switch {
		case hasCoding(a.GetRole(), fhir.SystemParticipationType, "CST"):
			r.custs = append(r.custs, ac)
		case hasCoding(a.GetRole(), fhir.SystemParticipationType, "AUT"):
			r.authors = append(r.authors, ac)
		default:
			r.recips = append(r.recips, ac)
		}
	}
	for _, a := range p.GetAction() {
		for _, cd := range a.GetCoding() {
			r.actions = append(r.actions, labelOf(cd))
		}
		if len(a.GetCoding()) == 0 {
			r.actions = append(r.actions, Label{}) // text only: never matches
		}
	}
	for _, cd := range p.GetPurpose() {
		r.purposes = append(r.purposes, labelOf(cd))
	}
	for _, cd := range p.GetSecurityLabel() {
		r.labels = append(r.labels, labelOf(cd))
	}
	for _, cd := range p.GetClassValue() {
		r.classes = append(r.classes, labelOf(cd))
	}
	for _, cc := range p.GetCode() {
		for _, cd := range cc.GetCoding() {
			r.codes = append(r.codes, labelOf(cd))
		}
		if len(cc.GetCoding()) == 0 {
			r.codes = append(r.codes, Label{})
		}
	}
	for _, d := range p.GetData() {
		r.data = append(r.data, dataRef{
			meaning: strings.ToLower(d.GetMeaning().GetValue().String()),
			ref:     refString(d.GetReference()),
		})
	}
	for i, c := range p.GetProvision() {
		r.children = append(r.children, compileProvision(c, path+".provision["+strconv.Itoa(i)+"]"))
	}
	return r
}

func hasCoding(cc *dpb.CodeableConcept, system, code string) bool {
	for _, c := range cc.GetCoding() {
		if c.GetSystem().GetValue() == system && c.GetCode().GetValue() == code {
			return true
		}
	}
	return false
}

// request is a request as the evaluator sees it.
type request struct {
	partner *Partner
	purpose string
	action  string
	at      time.Time
	keys    *keyIndex // resolves references to resources of the bundle
}

// matchActors matches actors against the recipient: its Organization
// reference or one of its identifiers.
func (q *request) matchActors(as []actor) tri {
	res := no
	for _, a := range as {
		switch {
		case a.ref != "" && q.partner.ID != "" && q.keys.norm(a.ref) == "Organization/"+q.partner.ID:
			return yes
		case a.ident.Value != "":
			for _, id := range q.partner.Identifiers {
				if id == a.ident {
					return yes
				}
			}
		case a.ref == "":
			res = unknown // display only: cannot tell who it is
		}
	}
	return res
}

// matchRequest matches the criteria about the request: period, recipient
// actors (and partner kinds), custodian, action and purpose.
func (r *rule) matchRequest(q *request) tri {
	m := yes
	if r.period != nil && !r.period.contains(q.at) {
		return no
	}
	if len(r.recips) > 0 || len(r.kinds) > 0 {
		a := q.matchActors(r.recips)
		if a != yes && len(r.kinds) > 0 {
			switch {
			case q.partner.Kind == "":
				a = unknown
			case containsString(r.kinds, string(q.partner.Kind)):
				a = yes
			}
		}
		if m = and(m, a); m == no {
			return no
		}
	}
	if len(r.custs) > 0 {
		// Who holds the data is not part of a Pathway request: the network
		// holds everything it sends.
		m = and(m, unknown)
	}
	if len(r.actions) > 0 {
		a := no
		if q.action == "" {
			a = unknown
		}
		for _, l := range r.actions {
			if l.Code == q.action && (l.System == "" || l.System == fhir.SystemConsentAction) {
				a = yes
				break
			}
		}
		if m = and(m, a); m == no {
			return no
		}
	}
	if len(r.purposes) > 0 {
		a := no
		for _, l := range r.purposes {
			if codingSubsumesPurpose(l.System, l.Code, q.purpose) {
				a = yes
				break
			}
		}
		m = and(m, a)
	}
	return m
}

// matchData matches the criteria about the data against one item.
func (r *rule) matchData(q *request, it *item) tri {
	m := yes
	if len(r.labels) > 0 {
		m = and(m, it.hasAnyLabel(r.labels))
	}
	if m != no && len(r.classes) > 0 {
		a := no
		for _, c := range r.classes {
			if it.isClass(c) {
				a = yes
				break
			}
		}
		m = and(m, a)
	}
	if m != no && len(r.codes) > 0 {
		a := no
		for _, c := range r.codes {
			if c.Code != "" && it.hasCode(c) {
				a = yes
				break
			}
		}
		m = and(m, a)
	}
	if m != no && r.dataSpan != nil {
		switch {
		case it.date == nil:
			m = and(m, unknown)
		case !r.dataSpan.overlaps(*it.date):
			m = no
		}
	}
	if m != no && len(r.data) > 0 {
		a := no
		for _, d := range r.data {
			a = or(a, it.matchDataRef(q.keys, d))
		}
		m = and(m, a)
	}
	if m != no && len(r.authors) > 0 {
		m = and(m, it.authoredBy(q.keys, r.authors))
	}
	return m
}

func or(a, b tri) tri {
	switch {
	case a == yes || b == yes:
		return yes
	case a == unknown || b == unknown:
		return unknown
	}
	return no
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// outcome is what one consent says about one item.
type outcome struct {
	effect Effect // permit, deny; "" when the consent does not apply
	rule   *rule  // the provision that decided
	unsure bool   // a criterion could not be decided and was read to fail safe
}

// conditional is a provision about data, met while deciding a request
// without data: it decides for the data it describes.
type conditional struct {
	consent string
	rule    *rule
	effect  Effect
}

// eval evaluates a rule for an item (nil: the request in general, where
// provisions about data become conditionals).
func (r *rule) eval(q *request, it *item, inherited Effect, consent string, conds *[]conditional) outcome {
	eff := r.effect
	if eff == "" {
		eff = inherited
	}
	m := r.matchRequest(q)
	if m != no && r.hasData() {
		if it == nil {
			if eff != "" && (m == yes || eff == Deny) && conds != nil {
				*conds = append(*conds, conditional{consent: consent, rule: r, effect: eff})
			}
			return outcome{}
		}
		m = and(m, r.matchData(q, it))
	}
	if m == no || (m == unknown && eff != Deny) {
		return outcome{}
	}
	var best outcome
	for _, c := range r.children {
		o := c.eval(q, it, eff, consent, conds)
		switch {
		case o.effect == "":
		case o.effect == Permit && m == unknown:
			// An exception to a provision that may not apply at all
			// (a criterion could not be checked) cannot permit: unknown
			// criteria keep a permit from applying.
		case best.effect == "" || (o.effect == Deny && best.effect != Deny):
			best = o
		}
	}
	if best.effect != "" {
		best.unsure = best.unsure || m == unknown
		return best
	}
	if eff == "" {
		return outcome{}
	}
	return outcome{effect: eff, rule: r, unsure: m == unknown}
}

// evalConsent evaluates one compiled consent for an item.
func (cr *consentRule) eval(q *request, it *item, conds *[]conditional) outcome {
	if cr.skip != "" {
		return outcome{}
	}
	if cr.broken != "" {
		return outcome{effect: Deny, rule: cr.root}
	}
	return cr.root.eval(q, it, cr.base, cr.ref, conds)
}

// whyNot says why a consent's root provision does not apply to the
// request (for the trail and the explanation), or "" when it does.
func (cr *consentRule) whyNot(q *request) string {
	r := cr.root
	if r == nil {
		return ""
	}
	if r.period != nil && !r.period.contains(q.at) {
		return "its period (" + spanDates(*r.period) + ") does not include the time of the request"
	}
	// What certainly does not match comes first (the actors named, the
	// action, the purpose); what cannot be checked (an actor without
	// reference, a custodian) only after, so the reason given is the one
	// that settles it.
	actorUnknown := ""
	if len(r.recips) > 0 || len(r.kinds) > 0 {
		a := q.matchActors(r.recips)
		if a != yes && len(r.kinds) > 0 && q.partner.Kind != "" && containsString(r.kinds, string(q.partner.Kind)) {
			a = yes
		}
		switch {
		case a == no && len(r.kinds) > 0 && q.partner.Kind == "":
			return "it does not name this recipient, and the recipient's kind is not known"
		case a == no:
			return "it does not name this recipient"
		case a == unknown && len(r.kinds) > 0 && q.partner.Kind == "":
			actorUnknown = "it names recipients by kind, and the recipient's kind is not known"
		case a == unknown:
			actorUnknown = "a recipient it names cannot be identified (no reference or identifier)"
		}
	}
	if len(r.actions) > 0 {
		actionOK := false
		var as []string
		for _, a := range r.actions {
			as = append(as, a.Code)
			actionOK = actionOK || (a.Code == q.action && (a.System == "" || a.System == fhir.SystemConsentAction))
		}
		if !actionOK {
			return "its actions (" + strings.Join(as, ", ") + ") do not include " + q.action
		}
	}
	if len(r.purposes) > 0 {
		ok := false
		var ps []string
		for _, p := range r.purposes {
			ps = append(ps, p.Code)
			ok = ok || codingSubsumesPurpose(p.System, p.Code, q.purpose)
		}
		if !ok {
			return "its purposes (" + strings.Join(ps, ", ") + ") do not cover " + q.purpose
		}
	}
	if actorUnknown != "" {
		return actorUnknown
	}
	if len(r.custs) > 0 {
		return "it is about data held by a custodian, which a Pathway request cannot show"
	}
	if r.hasData() {
		return "it is only about " + strings.TrimPrefix(describeData(r), "data ") + " data"
	}
	return "none of its provisions matches"
}

// spanDates renders a period as dates where it is whole days.
func spanDates(s span) string {
	f := func(t time.Time) string {
		if t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0 {
			return t.Format("2006-01-02")
		}
		return t.Format(time.RFC3339)
	}
	switch {
	case s.start.IsZero() && s.end.IsZero():
		return "always"
	case s.start.IsZero():
		return "until " + f(s.end.Add(-time.Nanosecond).Truncate(24*time.Hour))
	case s.end.IsZero():
		return "from " + f(s.start)
	}
	end := s.end.Add(-time.Nanosecond)
	if s.end.Hour() == 0 && s.end.Minute() == 0 && s.end.Second() == 0 {
		end = time.Date(end.Year(), end.Month(), end.Day(), 0, 0, 0, 0, end.Location())
	}
	return f(s.start) + " to " + f(end)
}
