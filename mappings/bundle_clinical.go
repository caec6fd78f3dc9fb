package mappings

import (
	"strconv"
	"strings"
	"time"

	"github.com/pathway-fhir/pathway/fhir"

	flagpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/flag_go_proto"
	obspb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/observation_go_proto"
)

// screenings builds one Observation per screening score: status final,
// category survey, the instrument's total-score code (LOINC 44261-6 for
// PHQ-9, 70274-6 for GAD-7, text only for RHS-15, which has no LOINC code),
// valueInteger, effective the screening date. Labelling (PSY and the like)
// is left to the labeller, which reads these codes.
func (b *bundler) screenings() ([]*obspb.Observation, error) {
	var out []*obspb.Observation
	for i, s := range b.r.Screenings {
		inst := bundleInstruments[strings.ToLower(s.Instrument)]
		o, err := fhir.ObservationSpec{
			ID:       b.id("Observation", "screening", strconv.Itoa(i)),
			Status:   fhir.ObservationStatusFinal,
			Category: []*fhir.CodeableConcept{bundleObservationCategory("survey", "Survey")},
			Code:     inst.code(),
			Subject:  bundleURN(b.id("Patient")),
			Value:    fhir.IntegerValue(int32(*s.Score)),
		}.Build()
		if err != nil {
			return nil, err
		}
		bundleEffective(o, s.Date)
		out = append(out, o)
	}
	return out, nil
}

// flags builds one Flag per risk: status active, category safety
// (flag-category), the risk's code, the Patient, and a period starting on
// the risk's date.
func (b *bundler) flags() ([]*flagpb.Flag, error) {
	var out []*flagpb.Flag
	for i, rk := range b.r.Risks {
		f, err := fhir.FlagSpec{
			ID:     b.id("Flag", strconv.Itoa(i)),
			Status: fhir.FlagStatusActive,
			Category: []*fhir.CodeableConcept{fhir.Concept("",
				fhir.Coding("http://terminology.hl7.org/CodeSystem/flag-category", "safety", "Safety"))},
			Code:    bundleConcept(rk.Code),
			Subject: bundleURN(b.id("Patient")),
			Period:  bundlePeriod(rk.Date, time.Time{}),
		}.Build()
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// outcomes builds one Observation per outcome: status final, the outcome's
// code, valueString (kept byte for byte; absent when the code says it all),
// effective the outcome's date, basedOn the ServiceRequest it came of.
func (b *bundler) outcomes() ([]*obspb.Observation, error) {
	var out []*obspb.Observation
	for i, oc := range b.r.Outcomes {
		spec := fhir.ObservationSpec{
			ID:      b.id("Observation", "outcome", strconv.Itoa(i)),
			BasedOn: []*fhir.Reference{bundleURN(b.id("ServiceRequest"))},
			Status:  fhir.ObservationStatusFinal,
			Code:    bundleConcept(oc.Code),
			Subject: bundleURN(b.id("Patient")),
		}
		if !bundleBlank(oc.Value) {
			spec.Value = fhir.StringValue(oc.Value)
		}
		o, err := spec.Build()
		if err != nil {
			return nil, err
		}
		bundleEffective(o, oc.Date)
		out = append(out, o)
	}
	return out, nil
}
