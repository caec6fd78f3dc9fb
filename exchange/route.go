package exchange

import (
	"fmt"
	"slices"
	"strings"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	"github.com/pathway-fhir/pathway/fhir"
)

// Risk is the stepped-care level of a referral.
type Risk int

const (
	RiskUnknown  Risk = iota
	RiskLow           // mild distress: community supports
	RiskModerate      // community or clinic
	RiskHigh          // a specialist clinic, urgently
	RiskImminent      // a specialist clinic, at once
)

var riskNames = []string{"unknown", "low", "moderate", "high", "imminent"}

func (r Risk) String() string { return riskNames[r] }

// ParseRisk reads a risk level name.
func ParseRisk(s string) (Risk, bool) {
	i := slices.Index(riskNames, strings.ToLower(strings.TrimSpace(s)))
	if i < 0 {
		return RiskUnknown, false
	}
	return Risk(i), true
}

// Facts are what routing reads of one referral bundle: codes and
// preferences, no names, notes or identifiers.
type Facts struct {
	ServiceRequest string // "ServiceRequest/id"
	Priority       string // routine | urgent | asap | stat
	// Services are the codes of ServiceRequest.category and .code, as
	// "system|code".
	Services []string
	// Triage holds the ServiceRequest.orderDetail codes ("system|code").
	Triage []string
	// Risks holds the codes of the active Flags ("system|code").
	Risks        []string
	Languages    []string // BCP-47 tags, from Patient.communication
	Interpreter  bool
	LinkWorker   string // female | male | "" (no preference)
	Format       string // individual | group | "" (either)
	Area         string // catchment: the Patient's address district or postal code prefix, when present
	NamedOwner   string // the partner the source named in Task.owner ("Organization/x" -> "x")
	RequesterOrg string // the referring partner ("Organization/x" -> "x")
}

// Service is what a partner offers, for routing.
type Service struct {
	// Kind is clinic, ngo or community.
	Kind string `yaml:"-"`
	// Specialist marks a clinic that takes high and imminent risk.
	Specialist bool `yaml:"specialist"`
	// Categories lists the services offered: codes of Pathway's
	// CodeSystem ("mental-health", "housing") or "system|code".
	Categories      []string `yaml:"categories"`
	Languages       []string `yaml:"languages"`
	Interpreters    bool     `yaml:"interpreters"`
	LinkWorkerSexes []string `yaml:"link_worker_sexes"`
	Formats         []string `yaml:"formats"`
	// Catchment lists the areas served (district names or postal code
	// prefixes); empty serves everywhere.
	Catchment []string `yaml:"catchment"`
	// Capacity is how many open referrals the partner takes; 0 is no limit.
	Capacity int `yaml:"capacity"`
}

// Candidate is one partner routing may choose.
type Candidate struct {
	Partner string
	Service Service
	// Open is how many referrals the partner holds open now.
	Open int
}

// RoutingRules configure how codes become risk levels. Triage codes and
// risk flag codes map to a level; the priority maps too (stat and asap
// count as imminent, urgent as high, by default).
type RoutingRules struct {
	// TriageLevels maps "system|code" (or a bare code) of a triage code to
	// a risk level name.
	TriageLevels map[string]string `yaml:"triage_levels"`
	// RiskFlags maps "system|code" (or a bare code) of a Flag to a level.
	RiskFlags map[string]string `yaml:"risk_flags"`
	// Priorities maps a ServiceRequest priority to a level.
	Priorities map[string]string `yaml:"priorities"`
}

// DefaultRoutingRules are the levels Pathway ships with.
func DefaultRoutingRules() RoutingRules {
	return RoutingRules{
		TriageLevels: map[string]string{
			"https://pathway-fhir.org/fhir/CodeSystem/pathway-triage|low":      "low",
			"https://pathway-fhir.org/fhir/CodeSystem/pathway-triage|moderate": "moderate",
			"https://pathway-fhir.org/fhir/CodeSystem/pathway-triage|high":     "high",
			"https://pathway-fhir.org/fhir/CodeSystem/pathway-triage|imminent": "imminent",
		},
		RiskFlags: map[string]string{
			"self-harm":      "high",
			"suicide-risk":   "high",
			"suicidal-plan":  "imminent",
			"harm-to-others": "high",
		},
		Priorities: map[string]string{"stat": "imminent", "asap": "imminent", "urgent": "high"},
	}
}

// Route is one chosen target and why.
type Route struct {
	Partner string
	Urgent  bool
	Reasons []string
}

// Decision is the outcome of routing one referral: the routes, or why
// there are none (Unroutable).
type Decision struct {
	Risk       Risk
	Routes     []Route
	Unroutable string
}

// Assess returns the referral's risk: the highest level any of its
// triage codes, active risk flags or priority gives.
func (rr RoutingRules) Assess(f Facts) (Risk, []string) {
	risk := RiskUnknown
	var why []string
	raise := func(level, source string) {
		r, ok := ParseRisk(level)
		if ok && r > risk {
			risk = r
			why = append(why, source+" gives "+r.String())
		}
	}
	lookup := func(m map[string]string, code string) (string, bool) {
		if l, ok := m[code]; ok {
			return l, true
		}
		if i := strings.LastIndexByte(code, '|'); i >= 0 {
			l, ok := m[code[i+1:]]
			return l, ok
		}
		return "", false
	}
	for _, c := range f.Triage {
		if l, ok := lookup(rr.TriageLevels, c); ok {
			raise(l, "triage "+c)
		}
	}
	for _, c := range f.Risks {
		if l, ok := lookup(rr.RiskFlags, c); ok {
			raise(l, "risk flag "+c)
		}
	}
	if l, ok := rr.Priorities[f.Priority]; ok {
		raise(l, "priority "+f.Priority)
	}
	return risk, why
}

// Place chooses the partners for a referral among the candidates.
//
// Stepped care comes first: high and imminent risk go to a specialist
// clinic offering mental health, urgently, and never only to a community
// partner (with no such clinic available, the referral is unroutable);
// low risk goes to community supports and NGOs; moderate to either.
// Then each candidate must offer one of the referral's services, speak
// one of the person's languages (or offer interpreters), match the
// link-worker sex and format preferences, serve the person's area, and
// have capacity. A partner the source named in Task.owner is preferred
// when it qualifies. The referring partner is never a target.
func (rr RoutingRules) Place(f Facts, cands []Candidate) Decision {
	risk, why := rr.Assess(f)
	d := Decision{Risk: risk}
	var specialists, others []Route
	var rejected []string
	for _, c := range cands {
		if c.Partner == f.RequesterOrg {
			continue
		}
		reasons, miss := qualifies(f, c)
		if miss != "" {
			rejected = append(rejected, c.Partner+": "+miss)
			continue
		}
		r := Route{Partner: c.Partner, Reasons: reasons}
		isSpecialist := c.Service.Kind == "clinic" && c.Service.Specialist && offers(c.Service, "mental-health")
		switch {
		case risk >= RiskHigh && isSpecialist:
			r.Urgent = true
			r.Reasons = append(append([]string{"stepped care: " + risk.String() + " risk goes to a specialist clinic"}, why...), r.Reasons...)
			specialists = append(specialists, r)
		case risk >= RiskHigh:
			// Community and NGO partners may add support, never alone.
			r.Reasons = append([]string{"alongside a specialist clinic"}, r.Reasons...)
			others = append(others, r)
		case risk == RiskLow && c.Service.Kind == "clinic":
			rejected = append(rejected, c.Partner+": low risk goes to community supports, not a clinic")
		default:
			others = append(others, r)
		}
	}
	if risk >= RiskHigh {
		if len(specialists) == 0 {
			d.Unroutable = fmt.Sprintf("%s risk needs a specialist clinic offering mental health and none qualifies (%s)", risk, strings.Join(rejected, "; "))
			if len(rejected) == 0 {
				d.Unroutable = risk.String() + " risk needs a specialist clinic offering mental health and the network has none"
			}
			return d
		}
		d.Routes = append(pickOne(specialists, f.NamedOwner), preferNamed(others, f.NamedOwner)...)
		return d
	}
	if len(others) == 0 {
		if len(rejected) == 0 {
			d.Unroutable = "no partner offers what this referral asks for"
		} else {
			d.Unroutable = "no partner qualifies: " + strings.Join(rejected, "; ")
		}
		return d
	}
	d.Routes = pickOne(others, f.NamedOwner)
	return d
}

// pickOne chooses the named owner when it qualified, else the first
// candidate (candidates come in configuration order).
func pickOne(rs []Route, named string) []Route {
	for _, r := range rs {
		if r.Partner == named {
			r.Reasons = append([]string{"named by the referrer"}, r.Reasons...)
			return []Route{r}
		}
	}
	return rs[:1]
}

// preferNamed keeps only the named partner among additional supports, if
// the source named one of them; otherwise none: extra recipients are only
// added when asked for.
func preferNamed(rs []Route, named string) []Route {
	for _, r := range rs {
		if r.Partner == named {
			r.Reasons = append([]string{"named by the referrer"}, r.Reasons...)
			return []Route{r}
		}
	}
	return nil
}

func offers(s Service, code string) bool {
	for _, c := range s.Categories {
		if serviceMatches(fhir.SystemPathway+"|"+code, c) {
			return true
		}
	}
	return false
}

// serviceMatches reports whether a referral's code ("system|code")
// matches a partner's category: "system|code", or a bare code of Pathway's
// CodeSystem.
func serviceMatches(want, have string) bool {
	if !strings.Contains(have, "|") {
		have = fhir.SystemPathway + "|" + have
	}
	return want == have
}

// qualifies checks one candidate's hard constraints; miss says the first
// one it fails.
func qualifies(f Facts, c Candidate) (reasons []string, miss string) {
	s := c.Service
	var matched []string
	for _, want := range f.Services {
		for _, have := range s.Categories {
			if serviceMatches(want, have) {
				matched = append(matched, have)
			}
		}
	}
	if len(matched) == 0 {
		return nil, "offers none of the services asked for"
	}
	reasons = append(reasons, "offers "+strings.Join(dedupe(matched), ", "))
	if len(f.Languages) > 0 {
		spoken := ""
		for _, l := range f.Languages {
			for _, have := range s.Languages {
				if sameLanguage(l, have) {
					spoken = have
					break
				}
			}
			if spoken != "" {
				break
			}
		}
		// Someone who needs an interpreter needs one for the local
		// language: a partner speaking their own language needs none.
		switch {
		case spoken != "":
			reasons = append(reasons, "speaks "+spoken)
		case s.Interpreters:
			reasons = append(reasons, "provides interpreters")
		default:
			return nil, "speaks none of the person's languages and provides no interpreters"
		}
	}
	if f.LinkWorker != "" && len(s.LinkWorkerSexes) > 0 {
		if !slices.Contains(s.LinkWorkerSexes, f.LinkWorker) {
			return nil, "has no " + f.LinkWorker + " link worker"
		}
		reasons = append(reasons, "has a "+f.LinkWorker+" link worker")
	}
	if f.Format != "" && len(s.Formats) > 0 {
		if !slices.Contains(s.Formats, f.Format) {
			return nil, "does not offer " + f.Format + " support"
		}
	}
	if f.Area != "" && len(s.Catchment) > 0 {
		in := false
		for _, a := range s.Catchment {
			if strings.EqualFold(a, f.Area) || strings.HasPrefix(strings.ToUpper(f.Area), strings.ToUpper(a)) {
				in = true
				break
			}
		}
		if !in {
			return nil, "does not serve the person's area"
		}
	}
	if s.Capacity > 0 && c.Open >= s.Capacity {
		return nil, fmt.Sprintf("is at capacity (%d open of %d)", c.Open, s.Capacity)
	}
	return reasons, ""
}

// sameLanguage matches BCP-47 tags on their primary subtag ("fa-AF" and
// "fa"), except where the region or script is what the person asked for
// and the partner names another.
func sameLanguage(want, have string) bool {
	want, have = strings.ToLower(want), strings.ToLower(have)
	if want == have {
		return true
	}
	wp, _, wsub := strings.Cut(want, "-")
	hp, _, hsub := strings.Cut(have, "-")
	return wp == hp && (!wsub || !hsub)
}

func dedupe(ss []string) []string {
	out := ss[:0:0]
	for _, s := range ss {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// FactsOf reads the routing facts of a referral transaction bundle made by
// a mapping: its ServiceRequest, Patient, Task and active Flags.
func FactsOf(b *rpb.Bundle) (Facts, error) {
	var f Facts
	found := false
	for _, e := range b.GetEntry() {
		r := e.GetResource()
		switch {
		case r.GetServiceRequest() != nil:
			sr := r.GetServiceRequest()
			if found {
				return Facts{}, fmt.Errorf("bundle holds more than one ServiceRequest: route each referral on its own")
			}
			found = true
			f.ServiceRequest = "ServiceRequest/" + sr.GetId().GetValue()
			if p := sr.GetPriority(); p != nil {
				f.Priority = strings.ToLower(strings.ReplaceAll(p.GetValue().String(), "_", "-"))
			}
			for _, cc := range sr.GetCategory() {
				f.Services = append(f.Services, codes(cc)...)
			}
			f.Services = append(f.Services, codes(sr.GetCode())...)
			for _, cc := range sr.GetOrderDetail() {
				f.Triage = append(f.Triage, codes(cc)...)
			}
			for _, ext := range sr.GetExtension() {
				if ext.GetUrl().GetValue() != "https://pathway-fhir.org/fhir/StructureDefinition/referral-preferences" {
					continue
				}
				for _, sub := range ext.GetExtension() {
					v := sub.GetValue().GetCode().GetValue()
					switch sub.GetUrl().GetValue() {
					case "linkWorkerSex":
						if v == "female" || v == "male" {
							f.LinkWorker = v
						}
					case "format":
						if v == "individual" || v == "group" {
							f.Format = v
						}
					}
				}
			}
			f.RequesterOrg = orgID(sr.GetRequester())
		case r.GetPatient() != nil:
			p := r.GetPatient()
			for _, c := range p.GetCommunication() {
				for _, cd := range c.GetLanguage().GetCoding() {
					if v := cd.GetCode().GetValue(); v != "" {
						f.Languages = append(f.Languages, v)
					}
				}
			}
			for _, ext := range p.GetExtension() {
				if ext.GetUrl().GetValue() == fhir.ExtInterpreterRequired && ext.GetValue().GetBoolean().GetValue() {
					f.Interpreter = true
				}
			}
			for _, a := range p.GetAddress() {
				if d := a.GetDistrict().GetValue(); d != "" {
					f.Area = d
				} else if pc := a.GetPostalCode().GetValue(); pc != "" && f.Area == "" {
					f.Area = pc
				}
			}
		case r.GetTask() != nil:
			f.NamedOwner = orgID(r.GetTask().GetOwner())
		case r.GetFlag() != nil:
			fl := r.GetFlag()
			if fl.GetStatus().GetValue().String() == "ACTIVE" {
				f.Risks = append(f.Risks, codes(fl.GetCode())...)
			}
		}
	}
	if !found {
		return Facts{}, fmt.Errorf("bundle holds no ServiceRequest")
	}
	return f, nil
}

func codes(cc *dpb.CodeableConcept) []string {
	var out []string
	for _, c := range cc.GetCoding() {
		if v := c.GetCode().GetValue(); v != "" {
			out = append(out, c.GetSystem().GetValue()+"|"+v)
		}
	}
	return out
}

// orgID returns x of a reference "Organization/x", else "".
func orgID(r *dpb.Reference) string {
	if id := r.GetOrganizationId(); id != nil {
		return id.GetValue()
	}
	return ""
}
