package policy

import (
	"fmt"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	conpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/consent_go_proto"
)

// BenchmarkDecide evaluates the request "may clinic-b receive this
// Observation for COC" against 1, 10 and 100 consents of the patient (the
// referral consent and inactive or unrelated ones), labelling included.
func BenchmarkDecide(b *testing.B) {
	e, err := NewEngine(nil)
	if err != nil {
		b.Fatal(err)
	}
	ref := readResource(b, filepath.Join(policyTestdata, "consents", "referral.json")).GetConsent()
	other := readResource(b, filepath.Join(policyTestdata, "consents", "treat.json")).GetConsent()
	obs := readResource(b, filepath.Join(policyTestdata, "resources", "obs-phq9.json"))
	req := Request{Partner: &Partner{ID: "clinic-b", Kind: KindClinic}, Purpose: "COC", At: testTime}
	for _, n := range []int{1, 10, 100} {
		consents := []*conpb.Consent{ref}
		for i := 1; i < n; i++ {
			c := proto.Clone(other).(*conpb.Consent)
			c.Id.Value = fmt.Sprintf("other-%d", i)
			consents = append(consents, c)
		}
		b.Run(fmt.Sprintf("consents=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d := e.Decide(req, consents, obs); d.Effect != Permit {
					b.Fatal(d.Explain())
				}
			}
		})
		b.Run(fmt.Sprintf("consents=%d/no-data", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d := e.Decide(req, consents); d.Effect != Permit {
					b.Fatal(d.Explain())
				}
			}
		})
	}
}

// BenchmarkFilter decides, labels and redacts a 5-resource referral Bundle
// (Patient, ServiceRequest, Consent, Task, PHQ-9 Observation) for a clinic
// and, with minimum-necessary element rules, for a community partner.
func BenchmarkFilter(b *testing.B) {
	cfg := testConfig(b)
	e, err := NewEngine(cfg)
	if err != nil {
		b.Fatal(err)
	}
	in := testBundle(b, "referral-5.json")
	for _, partner := range []string{"clinic-b", "community-c"} {
		req := filterRequest(cfg, partner, "COC")
		b.Run(partner, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if out, d := e.Filter(req, in); out == nil {
					b.Fatal(d.Explain())
				}
			}
		})
	}
}

// BenchmarkApply labels the five resources of the referral Bundle in
// place, as the ingest pipeline does (Labeller.Apply on every resource);
// the copies it labels are made outside the timing.
func BenchmarkApply(b *testing.B) {
	e, err := NewEngine(testConfig(b))
	if err != nil {
		b.Fatal(err)
	}
	in := testBundle(b, "referral-5.json")
	copies := make([][]proto.Message, 64)
	fresh := func() {
		for i := range copies {
			copies[i] = copies[i][:0]
			for _, en := range in.GetEntry() {
				copies[i] = append(copies[i], proto.Clone(en.GetResource()))
			}
		}
	}
	b.ReportAllocs()
	i := len(copies)
	for b.Loop() {
		if i == len(copies) {
			b.StopTimer()
			fresh()
			i = 0
			b.StartTimer()
		}
		for _, res := range copies[i] {
			e.Labeller().Apply(res)
		}
		i++
	}
}
