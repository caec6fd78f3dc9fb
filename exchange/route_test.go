package exchange

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/pathway-fhir/pathway/fhir"
)

const (
	pw     = fhir.SystemPathway + "|"
	triage = "https://pathway-fhir.org/fhir/CodeSystem/pathway-triage|"
)

func TestFactsOfGoldenBundle(t *testing.T) {
	data, err := os.ReadFile("../testdata/mappings/golden/full.json")
	if err != nil {
		t.Fatal(err)
	}
	res := fhir.Parse(data)
	if !res.Valid() {
		t.Fatalf("golden bundle invalid: %v", res.Issues)
	}
	f, err := FactsOf(res.Resource.GetBundle())
	if err != nil {
		t.Fatal(err)
	}
	if f.Priority != "urgent" || f.LinkWorker != "female" || f.Format != "individual" ||
		f.NamedOwner != "clinic-b" || f.RequesterOrg != "ngo-a" || !strings.HasPrefix(f.ServiceRequest, "ServiceRequest/") {
		t.Errorf("facts = %+v", f)
	}
	if len(f.Risks) != 1 || f.Risks[0] != "https://ngo-a.example/fhir/CodeSystem/risk|self-harm" {
		t.Errorf("risks = %v", f.Risks)
	}
	if len(f.Languages) == 0 || len(f.Services) < 4 || len(f.Triage) != 1 {
		t.Errorf("languages %v services %v triage %v", f.Languages, f.Services, f.Triage)
	}
	// The golden referral is urgent with a self-harm flag: high risk.
	if risk, why := DefaultRoutingRules().Assess(f); risk != RiskHigh || len(why) == 0 {
		t.Errorf("Assess = %v %v, want high", risk, why)
	}
}

var network = []Candidate{
	{Partner: "clinic-b", Service: Service{Kind: "clinic", Specialist: true, Categories: []string{"mental-health"}, Languages: []string{"en", "ar"}, Interpreters: true, LinkWorkerSexes: []string{"female", "male"}}},
	{Partner: "clinic-c", Service: Service{Kind: "clinic", Categories: []string{"mental-health"}, Languages: []string{"en"}}},
	{Partner: "ngo-d", Service: Service{Kind: "ngo", Categories: []string{"social-prescribing", "housing", "mental-health"}, Languages: []string{"uk", "ru"}, LinkWorkerSexes: []string{"female"}, Formats: []string{"individual", "group"}}},
	{Partner: "community-e", Service: Service{Kind: "community", Categories: []string{"social-prescribing", "peer-support"}, Languages: []string{"ar", "fa", "ti"}, LinkWorkerSexes: []string{"female", "male"}, Formats: []string{"group"}, Catchment: []string{"E1", "E2"}, Capacity: 10}},
}

func TestPlace(t *testing.T) {
	rules := DefaultRoutingRules()
	tests := []struct {
		name   string
		facts  Facts
		cands  []Candidate
		want   []string // partners, in order
		urgent bool
		risk   Risk
		unrout string // fragment of the unroutable reason
	}{
		{
			name:  "imminent risk goes to the specialist clinic, urgently",
			facts: Facts{Services: []string{pw + "mental-health"}, Triage: []string{triage + "imminent"}, Languages: []string{"ar"}},
			want:  []string{"clinic-b"}, urgent: true, risk: RiskImminent,
		},
		{
			name:  "a self-harm flag makes it high risk even when triage says low",
			facts: Facts{Services: []string{pw + "mental-health", pw + "social-prescribing"}, Triage: []string{triage + "low"}, Risks: []string{"https://ngo-a.example/risk|self-harm"}, Languages: []string{"ar"}},
			want:  []string{"clinic-b"}, urgent: true, risk: RiskHigh,
		},
		{
			name:  "high risk is never only for a community partner, even when the referrer named one",
			facts: Facts{Services: []string{pw + "mental-health", pw + "social-prescribing"}, Priority: "urgent", Languages: []string{"ar"}, NamedOwner: "community-e", Format: "group"},
			want:  []string{"clinic-b", "community-e"}, urgent: true, risk: RiskHigh,
		},
		{
			name:   "high risk without a specialist clinic is unroutable",
			facts:  Facts{Services: []string{pw + "mental-health"}, Priority: "stat"},
			cands:  network[2:],
			risk:   RiskImminent,
			unrout: "imminent risk needs a specialist clinic offering mental health",
		},
		{
			name:  "low risk goes to community supports, by language, sex and format",
			facts: Facts{Services: []string{pw + "social-prescribing"}, Triage: []string{triage + "low"}, Languages: []string{"fa-AF"}, LinkWorker: "male", Format: "group", Area: "E1 6AN"},
			want:  []string{"community-e"}, risk: RiskLow,
		},
		{
			name:  "Ukrainian speaker with a female link worker, one-to-one",
			facts: Facts{Services: []string{pw + "housing"}, Languages: []string{"uk"}, LinkWorker: "female", Format: "individual"},
			want:  []string{"ngo-d"}, risk: RiskUnknown,
		},
		{
			name:  "the referrer's named partner wins among those that qualify",
			facts: Facts{Services: []string{pw + "mental-health"}, Triage: []string{triage + "moderate"}, Languages: []string{"en"}, NamedOwner: "clinic-c"},
			want:  []string{"clinic-c"}, risk: RiskModerate,
		},
		{
			name:  "an interpreter need is met by a partner that provides interpreters",
			facts: Facts{Services: []string{pw + "mental-health"}, Triage: []string{triage + "moderate"}, Languages: []string{"ti"}, Interpreter: true},
			want:  []string{"clinic-b"}, risk: RiskModerate,
		},
		{
			name:   "outside every catchment and language: unroutable with each reason",
			facts:  Facts{Services: []string{pw + "peer-support"}, Languages: []string{"ar"}, Area: "N1"},
			risk:   RiskUnknown,
			unrout: "community-e: does not serve the person's area",
		},
		{
			name:   "at capacity",
			facts:  Facts{Services: []string{pw + "peer-support"}, Languages: []string{"ar"}},
			cands:  []Candidate{{Partner: "community-e", Service: network[3].Service, Open: 10}},
			unrout: "is at capacity (10 open of 10)",
		},
		{
			name:   "the referring partner is never a target",
			facts:  Facts{Services: []string{pw + "housing"}, Languages: []string{"uk"}, RequesterOrg: "ngo-d"},
			unrout: "no partner qualifies",
		},
		{
			name:   "a code from another system does not match a Pathway category",
			facts:  Facts{Services: []string{"https://ngo-a.example/service|housing"}, Languages: []string{"uk"}},
			unrout: "ngo-d: offers none of the services asked for",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cands := tc.cands
			if cands == nil {
				cands = network
			}
			d := rules.Place(tc.facts, cands)
			var got []string
			for _, r := range d.Routes {
				got = append(got, r.Partner)
				if len(r.Reasons) == 0 {
					t.Errorf("route to %s has no reasons", r.Partner)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("routes = %v, want %v (unroutable: %q)", got, tc.want, d.Unroutable)
			}
			if tc.risk != 0 && d.Risk != tc.risk {
				t.Errorf("risk = %v, want %v", d.Risk, tc.risk)
			}
			if tc.unrout != "" && !strings.Contains(d.Unroutable, tc.unrout) {
				t.Errorf("unroutable = %q, want it to contain %q", d.Unroutable, tc.unrout)
			}
			if tc.unrout == "" && d.Unroutable != "" {
				t.Errorf("unexpectedly unroutable: %s", d.Unroutable)
			}
			if len(d.Routes) > 0 && d.Routes[0].Urgent != tc.urgent {
				t.Errorf("first route urgent = %v, want %v", d.Routes[0].Urgent, tc.urgent)
			}
		})
	}
}

// TestPlaceNeverCommunityAloneForHighRisk checks the stepped-care rule over
// every subset of the network and every way of naming an owner.
func TestPlaceNeverCommunityAloneForHighRisk(t *testing.T) {
	rules := DefaultRoutingRules()
	for mask := 0; mask < 1<<len(network); mask++ {
		var cands []Candidate
		for i, c := range network {
			if mask&(1<<i) != 0 {
				cands = append(cands, c)
			}
		}
		for _, named := range []string{"", "clinic-b", "clinic-c", "ngo-d", "community-e"} {
			for _, level := range []string{"high", "imminent"} {
				f := Facts{Services: []string{pw + "mental-health", pw + "social-prescribing", pw + "housing"}, Triage: []string{triage + level}, NamedOwner: named}
				d := rules.Place(f, cands)
				if d.Unroutable != "" {
					continue
				}
				first := d.Routes[0]
				var svc Service
				for _, c := range network {
					if c.Partner == first.Partner {
						svc = c.Service
					}
				}
				if svc.Kind != "clinic" || !svc.Specialist || !first.Urgent {
					t.Errorf("mask %b named %q %s: first route %+v is not an urgent specialist clinic", mask, named, level, first)
				}
			}
		}
	}
}

func TestSameLanguage(t *testing.T) {
	for _, tc := range []struct {
		want, have string
		ok         bool
	}{
		{"fa-AF", "fa", true}, {"fa", "fa-AF", true}, {"fa-AF", "fa-IR", false}, {"AR", "ar", true}, {"ar", "uk", false},
	} {
		if got := sameLanguage(tc.want, tc.have); got != tc.ok {
			t.Errorf("sameLanguage(%q, %q) = %v", tc.want, tc.have, got)
		}
	}
}
