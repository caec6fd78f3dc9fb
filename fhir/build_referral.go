package fhir

import (
	"time"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	srpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/service_request_go_proto"
	tpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/task_go_proto"
)

// ServiceRequestSpec describes a referral: what is requested, for whom, by whom.
type ServiceRequestSpec struct {
	// ID is the logical id, usually NewID(source, recordID, "ServiceRequest").
	ID string
	// Profile lists meta.profile canonicals.
	Profile []string
	// Security lists meta.security labels.
	Security []*dpb.Coding
	// Identifiers are business identifiers (the source's referral id), each with system and value.
	Identifiers []*dpb.Identifier
	// Status is required.
	Status ServiceRequestStatus
	// Intent defaults to ServiceRequestIntentOrder.
	Intent ServiceRequestIntent
	// Priority is optional; stepped-care routing reads it.
	Priority Priority
	// Category classifies the service (mental health, social prescribing...); routing reads it.
	Category []*CodeableConcept
	// Code says what is requested. Required.
	Code *CodeableConcept
	// Subject is the Patient (or Group) the service is for. Required.
	Subject *Reference
	// AuthoredOn is when the referral was made.
	AuthoredOn time.Time
	// Occurrence is when the service should happen.
	Occurrence *dpb.Period
	// Requester is who asks (Practitioner, PractitionerRole, Organization...).
	Requester *Reference
	// PerformerType is the kind of performer wanted (a link worker, a psychologist).
	PerformerType *CodeableConcept
	// Performer lists the wanted performers (the target Organization, once routed).
	Performer []*Reference
	// ReasonCode says why (coded or as text).
	ReasonCode []*CodeableConcept
	// ReasonReference points at why (a Condition, an Observation).
	ReasonReference []*Reference
	// SupportingInfo points at more information (a QuestionnaireResponse, a Flag).
	SupportingInfo []*Reference
	// Note holds free-text notes. They may hold personal data: labelling and
	// data-sharing agreements decide who sees them.
	Note []string
	// PatientInstruction is what the person is told.
	PatientInstruction string
}

// Build checks the spec and returns the ServiceRequest.
func (s ServiceRequestSpec) Build() (*srpb.ServiceRequest, error) {
	c := &specCheck{typ: "ServiceRequest"}
	c.common(s.ID, s.Profile, s.Security)
	c.identifiers("identifier", s.Identifiers)
	status, ok := s.Status.proto()
	c.status("status", s.Status == "", ok)
	intent := s.Intent
	if intent == "" {
		intent = ServiceRequestIntentOrder
	}
	iv, ok := intent.proto()
	c.optionalCode("intent", false, ok)
	pv, ok := s.Priority.proto()
	c.optionalCode("priority", s.Priority == "", ok)
	c.concepts("category", s.Category)
	c.concept("code", s.Code, true)
	c.ref("subject", s.Subject, true)
	c.period("occurrencePeriod", s.Occurrence)
	c.ref("requester", s.Requester, false)
	c.concept("performerType", s.PerformerType, false)
	c.refs("performer", s.Performer)
	c.concepts("reasonCode", s.ReasonCode)
	c.refs("reasonReference", s.ReasonReference)
	c.refs("supportingInfo", s.SupportingInfo)
	c.nonEmpty("note", s.Note)

	sr := &srpb.ServiceRequest{
		Id:                 optID(s.ID),
		Meta:               buildMeta(s.Profile, s.Security),
		Identifier:         s.Identifiers,
		Status:             &srpb.ServiceRequest_StatusCode{Value: status},
		Intent:             &srpb.ServiceRequest_IntentCode{Value: iv},
		Category:           s.Category,
		Code:               s.Code,
		Subject:            s.Subject,
		AuthoredOn:         DateTime(s.AuthoredOn, PrecisionAuto),
		Requester:          s.Requester,
		PerformerType:      s.PerformerType,
		Performer:          s.Performer,
		ReasonCode:         s.ReasonCode,
		ReasonReference:    s.ReasonReference,
		SupportingInfo:     s.SupportingInfo,
		Note:               buildNotes(s.Note),
		PatientInstruction: optString(s.PatientInstruction),
	}
	if s.Priority != "" {
		sr.Priority = &srpb.ServiceRequest_PriorityCode{Value: pv}
	}
	if s.Occurrence != nil {
		sr.Occurrence = &srpb.ServiceRequest_OccurrenceX{
			Choice: &srpb.ServiceRequest_OccurrenceX_Period{Period: s.Occurrence},
		}
	}
	return specFinish(c, sr)
}

// TaskSpec describes a referral Task: the workflow state of a ServiceRequest
// between requester and owner (DESIGN.md, "Referral Task state machine").
type TaskSpec struct {
	// ID is the logical id, usually NewID(source, recordID, "Task").
	ID string
	// Profile lists meta.profile canonicals.
	Profile []string
	// Security lists meta.security labels.
	Security []*dpb.Coding
	// Identifiers are business identifiers, each with system and value.
	Identifiers []*dpb.Identifier
	// BasedOn lists requests this Task fulfils in part (rarely needed: Focus is the ServiceRequest).
	BasedOn []*Reference
	// Status is required.
	Status TaskStatus
	// StatusReason is why the Task has its status, in words a link worker can
	// read. Required when Status is rejected, cancelled, on-hold or failed.
	StatusReason string
	// BusinessStatus is a finer status (BSeR 2.0...7.0, say).
	BusinessStatus *CodeableConcept
	// Intent defaults to TaskIntentOrder.
	Intent TaskIntent
	// Priority is optional.
	Priority Priority
	// Code defaults to fulfill (SystemTaskCode): fulfil the Focus request.
	Code *CodeableConcept
	// Description is a short human-readable summary.
	Description string
	// Focus is the ServiceRequest to fulfil. Required for a fulfill Task.
	Focus *Reference
	// For is the Patient who benefits. Required for a fulfill Task.
	For *Reference
	// ExecutionPeriod is when work started and ended.
	ExecutionPeriod *dpb.Period
	// AuthoredOn is when the Task was created.
	AuthoredOn time.Time
	// LastModified is when it last changed; not before AuthoredOn (inv-1).
	LastModified time.Time
	// Requester is who asks: the referring organisation or practitioner.
	Requester *Reference
	// Owner is who is asked to act: the target partner.
	Owner *Reference
	// Note holds free-text notes.
	Note []string
	// Input lists inputs, each with a type and a value.
	Input []TaskParameter
	// Output lists what came of the Task (a Procedure done, a reason), each with a type and a value.
	Output []TaskParameter
}

// TaskParameter is one Task input or output.
type TaskParameter struct {
	// Type says what the value is. Required.
	Type *CodeableConcept
	// Value is the value, of any kind. Required.
	Value Value
}

// needsStatusReason lists the Task statuses DESIGN.md requires a reason for.
func (v TaskStatus) needsStatusReason() bool {
	switch v {
	case TaskStatusRejected, TaskStatusCancelled, TaskStatusOnHold, TaskStatusFailed:
		return true
	case TaskStatusDraft, TaskStatusRequested, TaskStatusReceived, TaskStatusAccepted, TaskStatusReady,
		TaskStatusInProgress, TaskStatusCompleted, TaskStatusEnteredInError:
		return false
	}
	return false
}

// FulfillCode returns Task.code fulfill (SystemTaskCode), the code of referral Tasks.
func FulfillCode() *CodeableConcept {
	return Concept("", Coding(SystemTaskCode, "fulfill", "Fulfill the focal request"))
}

// Build checks the spec and returns the Task.
func (s TaskSpec) Build() (*tpb.Task, error) {
	c := &specCheck{typ: "Task"}
	c.common(s.ID, s.Profile, s.Security)
	c.identifiers("identifier", s.Identifiers)
	c.refs("basedOn", s.BasedOn)
	status, ok := s.Status.proto()
	c.status("status", s.Status == "", ok)
	if s.Status.needsStatusReason() && s.StatusReason == "" {
		c.fail("statusReason.text", "required when status is "+string(s.Status))
	}
	c.concept("businessStatus", s.BusinessStatus, false)
	intent := s.Intent
	if intent == "" {
		intent = TaskIntentOrder
	}
	iv, ok := intent.proto()
	c.optionalCode("intent", false, ok)
	pv, ok := s.Priority.proto()
	c.optionalCode("priority", s.Priority == "", ok)
	code := s.Code
	if code == nil {
		code = FulfillCode()
	}
	c.concept("code", code, true)
	fulfill := hasCoding(code, SystemTaskCode, "fulfill")
	c.ref("focus", s.Focus, fulfill)
	c.ref("for", s.For, fulfill)
	c.period("executionPeriod", s.ExecutionPeriod)
	if !s.AuthoredOn.IsZero() && !s.LastModified.IsZero() && s.LastModified.Before(s.AuthoredOn) {
		c.fail("lastModified", "before authoredOn (inv-1)")
	}
	c.ref("requester", s.Requester, false)
	c.ref("owner", s.Owner, false)
	c.nonEmpty("note", s.Note)

	t := &tpb.Task{
		Id:              optID(s.ID),
		Meta:            buildMeta(s.Profile, s.Security),
		Identifier:      s.Identifiers,
		BasedOn:         s.BasedOn,
		Status:          &tpb.Task_StatusCode{Value: status},
		BusinessStatus:  s.BusinessStatus,
		Intent:          &tpb.Task_IntentCode{Value: iv},
		Code:            code,
		Description:     optString(s.Description),
		Focus:           s.Focus,
		ForValue:        s.For,
		ExecutionPeriod: s.ExecutionPeriod,
		AuthoredOn:      DateTime(s.AuthoredOn, PrecisionAuto),
		LastModified:    DateTime(s.LastModified, PrecisionAuto),
		Requester:       s.Requester,
		Owner:           s.Owner,
		Note:            buildNotes(s.Note),
	}
	if s.StatusReason != "" {
		t.StatusReason = Concept(s.StatusReason)
	}
	if s.Priority != "" {
		t.Priority = &tpb.Task_PriorityCode{Value: pv}
	}
	for i, p := range s.Input {
		f := specIndex("input", i)
		c.concept(f+".type", p.Type, true)
		param := &tpb.Task_Parameter{Type: p.Type}
		if vx := (&tpb.Task_Parameter_ValueX{}); p.Value.into(c, f+".value", true, vx) {
			param.Value = vx
		}
		t.Input = append(t.Input, param)
	}
	for i, p := range s.Output {
		f := specIndex("output", i)
		c.concept(f+".type", p.Type, true)
		out := &tpb.Task_Output{Type: p.Type}
		if vx := (&tpb.Task_Output_ValueX{}); p.Value.into(c, f+".value", true, vx) {
			out.Value = vx
		}
		t.Output = append(t.Output, out)
	}
	return specFinish(c, t)
}

// hasCoding reports whether cc has a coding system#code.
func hasCoding(cc *CodeableConcept, system, code string) bool {
	for _, cd := range cc.GetCoding() {
		if cd.GetSystem().GetValue() == system && cd.GetCode().GetValue() == code {
			return true
		}
	}
	return false
}
