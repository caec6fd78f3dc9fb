package fhir

import (
	"time"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	flagpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/flag_go_proto"
	obspb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/observation_go_proto"
	qrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/questionnaire_response_go_proto"
)

// FlagSpec describes a Flag: a warning about the person that routing and
// partners should see first (a risk, a safeguarding concern).
type FlagSpec struct {
	// ID is the logical id, usually NewID(source, recordID, "Flag", code).
	ID string
	// Profile lists meta.profile canonicals.
	Profile []string
	// Security lists meta.security labels.
	Security []*dpb.Coding
	// Identifiers are business identifiers, each with system and value.
	Identifiers []*dpb.Identifier
	// Status is required.
	Status FlagStatus
	// Category classifies the flag (flag-category: safety, behavioral...).
	Category []*CodeableConcept
	// Code says what the flag is about. Required.
	Code *CodeableConcept
	// Subject is the Patient the flag is about. Required.
	Subject *Reference
	// Period is when the flag applies.
	Period *dpb.Period
	// Author is who raised it.
	Author *Reference
}

// Build checks the spec and returns the Flag.
func (s FlagSpec) Build() (*flagpb.Flag, error) {
	c := &specCheck{typ: "Flag"}
	c.common(s.ID, s.Profile, s.Security)
	c.identifiers("identifier", s.Identifiers)
	status, ok := s.Status.proto()
	c.status("status", s.Status == "", ok)
	c.concepts("category", s.Category)
	c.concept("code", s.Code, true)
	c.ref("subject", s.Subject, true)
	c.period("period", s.Period)
	c.ref("author", s.Author, false)
	return specFinish(c, &flagpb.Flag{
		Id:         optID(s.ID),
		Meta:       buildMeta(s.Profile, s.Security),
		Identifier: s.Identifiers,
		Status:     &flagpb.Flag_StatusCode{Value: status},
		Category:   s.Category,
		Code:       s.Code,
		Subject:    s.Subject,
		Period:     s.Period,
		Author:     s.Author,
	})
}

// ObservationSpec describes an Observation: an outcome measure, a screening
// score, a social-history fact (migration history codes are in SystemPathway).
type ObservationSpec struct {
	// ID is the logical id, usually NewID(source, recordID, "Observation", code).
	ID string
	// Profile lists meta.profile canonicals.
	Profile []string
	// Security lists meta.security labels (PathwaySensitivityImmigration for migration history).
	Security []*dpb.Coding
	// Identifiers are business identifiers, each with system and value.
	Identifiers []*dpb.Identifier
	// BasedOn lists the requests this observation fulfils (the ServiceRequest).
	BasedOn []*Reference
	// Status is required.
	Status ObservationStatus
	// Category classifies it (SystemObservationCategory social-history, survey...).
	Category []*CodeableConcept
	// Code says what was observed. Required.
	Code *CodeableConcept
	// Subject is the Patient observed. Required: Pathway's consents apply per patient.
	Subject *Reference
	// Focus lists what the observation is about when not the subject itself.
	Focus []*Reference
	// Effective is when the observation applies (effectiveDateTime).
	Effective time.Time
	// EffectivePeriod is the span it applies to; at most one of Effective and EffectivePeriod.
	EffectivePeriod *dpb.Period
	// Issued is when it was made available.
	Issued time.Time
	// Performer lists who observed.
	Performer []*Reference
	// Value is the result: integer, string, boolean, dateTime, CodeableConcept or Quantity.
	Value Value
	// Interpretation lists what the value means (high, low, positive...).
	Interpretation []*CodeableConcept
	// Note holds free-text notes.
	Note []string
	// DerivedFrom lists what the value was derived from (a QuestionnaireResponse).
	DerivedFrom []*Reference
}

// Build checks the spec and returns the Observation.
func (s ObservationSpec) Build() (*obspb.Observation, error) {
	c := &specCheck{typ: "Observation"}
	c.common(s.ID, s.Profile, s.Security)
	c.identifiers("identifier", s.Identifiers)
	c.refs("basedOn", s.BasedOn)
	status, ok := s.Status.proto()
	c.status("status", s.Status == "", ok)
	c.concepts("category", s.Category)
	c.concept("code", s.Code, true)
	c.ref("subject", s.Subject, true)
	c.refs("focus", s.Focus)
	c.refs("performer", s.Performer)
	c.concepts("interpretation", s.Interpretation)
	c.nonEmpty("note", s.Note)
	c.refs("derivedFrom", s.DerivedFrom)
	o := &obspb.Observation{
		Id:             optID(s.ID),
		Meta:           buildMeta(s.Profile, s.Security),
		Identifier:     s.Identifiers,
		BasedOn:        s.BasedOn,
		Status:         &obspb.Observation_StatusCode{Value: status},
		Category:       s.Category,
		Code:           s.Code,
		Subject:        s.Subject,
		Focus:          s.Focus,
		Issued:         Instant(s.Issued),
		Performer:      s.Performer,
		Interpretation: s.Interpretation,
		Note:           buildNotes(s.Note),
		DerivedFrom:    s.DerivedFrom,
	}
	switch {
	case !s.Effective.IsZero() && s.EffectivePeriod != nil:
		c.fail("effective[x]", "give Effective or EffectivePeriod, not both")
	case !s.Effective.IsZero():
		o.Effective = &obspb.Observation_EffectiveX{
			Choice: &obspb.Observation_EffectiveX_DateTime{DateTime: DateTime(s.Effective, PrecisionAuto)},
		}
	case s.EffectivePeriod != nil:
		c.period("effectivePeriod", s.EffectivePeriod)
		o.Effective = &obspb.Observation_EffectiveX{
			Choice: &obspb.Observation_EffectiveX_Period{Period: s.EffectivePeriod},
		}
	}
	if vx := (&obspb.Observation_ValueX{}); s.Value.into(c, "value[x]", false, vx) {
		o.Value = vx
	}
	return specFinish(c, o)
}

// QuestionnaireResponseSpec describes answers to a questionnaire (a screening
// instrument such as PHQ-9, or an NGO's intake form).
type QuestionnaireResponseSpec struct {
	// ID is the logical id, usually NewID(source, recordID, "QuestionnaireResponse").
	ID string
	// Profile lists meta.profile canonicals.
	Profile []string
	// Security lists meta.security labels.
	Security []*dpb.Coding
	// Identifier is the business identifier (one only in R4), with system and value.
	Identifier *dpb.Identifier
	// BasedOn lists the requests this answers (a ServiceRequest).
	BasedOn []*Reference
	// Questionnaire is the canonical URL of the questionnaire answered.
	Questionnaire string
	// Status is required.
	Status QuestionnaireResponseStatus
	// Subject is the Patient the answers are about. Required.
	Subject *Reference
	// Authored is when the answers were recorded.
	Authored time.Time
	// Author is who recorded them.
	Author *Reference
	// Source is who answered (the patient, a relative).
	Source *Reference
	// Items are the answered questions and groups.
	Items []ResponseItem
}

// ResponseItem is one question or group of a QuestionnaireResponse.
type ResponseItem struct {
	// LinkID is the item's linkId in the questionnaire. Required.
	LinkID string
	// Text is the question as shown.
	Text string
	// Answers are the answers: integer, string, boolean, dateTime, Coding,
	// Quantity or Reference values. An item has answers or items, not both.
	Answers []Value
	// Items are the items of a group.
	Items []ResponseItem
}

// Build checks the spec and returns the QuestionnaireResponse.
func (s QuestionnaireResponseSpec) Build() (*qrpb.QuestionnaireResponse, error) {
	c := &specCheck{typ: "QuestionnaireResponse"}
	c.common(s.ID, s.Profile, s.Security)
	if s.Identifier != nil {
		c.identifier("identifier", s.Identifier)
	}
	c.refs("basedOn", s.BasedOn)
	status, ok := s.Status.proto()
	c.status("status", s.Status == "", ok)
	c.ref("subject", s.Subject, true)
	c.ref("author", s.Author, false)
	c.ref("source", s.Source, false)
	qr := &qrpb.QuestionnaireResponse{
		Id:         optID(s.ID),
		Meta:       buildMeta(s.Profile, s.Security),
		Identifier: s.Identifier,
		BasedOn:    s.BasedOn,
		Status:     &qrpb.QuestionnaireResponse_StatusCode{Value: status},
		Subject:    s.Subject,
		Authored:   DateTime(s.Authored, PrecisionAuto),
		Author:     s.Author,
		Source:     s.Source,
		Item:       buildResponseItems(c, "item", s.Items),
	}
	if s.Questionnaire != "" {
		qr.Questionnaire = Canonical(s.Questionnaire)
	}
	return specFinish(c, qr)
}

// buildResponseItems checks and converts items and their nested items.
func buildResponseItems(c *specCheck, field string, items []ResponseItem) []*qrpb.QuestionnaireResponse_Item {
	var out []*qrpb.QuestionnaireResponse_Item
	for i, it := range items {
		f := specIndex(field, i)
		c.text(f+".linkId", it.LinkID)
		if len(it.Answers) > 0 && len(it.Items) > 0 {
			c.fail(f, "an item has answers or nested items, not both (qrs-1)")
		}
		qi := &qrpb.QuestionnaireResponse_Item{
			LinkId: String(it.LinkID),
			Text:   optString(it.Text),
			Item:   buildResponseItems(c, f+".item", it.Items),
		}
		for j, a := range it.Answers {
			ans := &qrpb.QuestionnaireResponse_Item_Answer{}
			if vx := (&qrpb.QuestionnaireResponse_Item_Answer_ValueX{}); a.into(c, specIndex(f+".answer", j)+".value[x]", true, vx) {
				ans.Value = vx
			}
			qi.Answer = append(qi.Answer, ans)
		}
		out = append(out, qi)
	}
	return out
}
