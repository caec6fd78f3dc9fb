package fhir

import (
	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	vpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/valuesets_go_proto"
)

// TaskStatus is the status of a Task (R4 task-status, required binding). The
// referral state machine over these values is in DESIGN.md.
type TaskStatus string

const (
	// TaskStatusDraft (draft): the requester is still preparing the referral; nobody acts on it yet.
	TaskStatusDraft TaskStatus = "draft"

	// TaskStatusRequested (requested): the referral is ready for the owner to act on.
	TaskStatusRequested TaskStatus = "requested"

	// TaskStatusReceived (received): the owner's system has received it but nobody has looked at it (BSeR).
	TaskStatusReceived TaskStatus = "received"

	// TaskStatusAccepted (accepted): the owner agreed to act on it.
	TaskStatusAccepted TaskStatus = "accepted"

	// TaskStatusRejected (rejected): the owner declined it; statusReason says why.
	TaskStatusRejected TaskStatus = "rejected"

	// TaskStatusReady (ready): ready to be performed but not started (not used in the referral flow).
	TaskStatusReady TaskStatus = "ready"

	// TaskStatusCancelled (cancelled): requester or owner stopped it before completion; statusReason says why.
	TaskStatusCancelled TaskStatus = "cancelled"

	// TaskStatusInProgress (in-progress): the owner has started work: the person is being seen or supported.
	TaskStatusInProgress TaskStatus = "in-progress"

	// TaskStatusOnHold (on-hold): work is paused; statusReason says why.
	TaskStatusOnHold TaskStatus = "on-hold"

	// TaskStatusFailed (failed): work started but could not be completed; statusReason says why.
	TaskStatusFailed TaskStatus = "failed"

	// TaskStatusCompleted (completed): the service was delivered; outputs say what came of it.
	TaskStatusCompleted TaskStatus = "completed"

	// TaskStatusEnteredInError (entered-in-error): the Task should never have existed.
	TaskStatusEnteredInError TaskStatus = "entered-in-error"
)

// Valid reports whether v is an R4 task status.
func (v TaskStatus) Valid() bool { _, ok := v.proto(); return ok }

func (v TaskStatus) proto() (cpb.TaskStatusCode_Value, bool) {
	switch v {
	case TaskStatusDraft:
		return cpb.TaskStatusCode_DRAFT, true
	case TaskStatusRequested:
		return cpb.TaskStatusCode_REQUESTED, true
	case TaskStatusReceived:
		return cpb.TaskStatusCode_RECEIVED, true
	case TaskStatusAccepted:
		return cpb.TaskStatusCode_ACCEPTED, true
	case TaskStatusRejected:
		return cpb.TaskStatusCode_REJECTED, true
	case TaskStatusReady:
		return cpb.TaskStatusCode_READY, true
	case TaskStatusCancelled:
		return cpb.TaskStatusCode_CANCELLED, true
	case TaskStatusInProgress:
		return cpb.TaskStatusCode_IN_PROGRESS, true
	case TaskStatusOnHold:
		return cpb.TaskStatusCode_ON_HOLD, true
	case TaskStatusFailed:
		return cpb.TaskStatusCode_FAILED, true
	case TaskStatusCompleted:
		return cpb.TaskStatusCode_COMPLETED, true
	case TaskStatusEnteredInError:
		return cpb.TaskStatusCode_ENTERED_IN_ERROR, true
	}
	return cpb.TaskStatusCode_INVALID_UNINITIALIZED, false
}

// TaskIntent is the intent of a Task (R4 task-intent). Referral Tasks are orders.
type TaskIntent string

const (
	// TaskIntentUnknown (unknown): the intent is not known.
	TaskIntentUnknown TaskIntent = "unknown"

	// TaskIntentProposal (proposal): a suggestion, with no authorisation to act.
	TaskIntentProposal TaskIntent = "proposal"

	// TaskIntentPlan (plan): an intention to act, not yet authorised.
	TaskIntentPlan TaskIntent = "plan"

	// TaskIntentOrder (order): a request to act, with authority: the referral Task.
	TaskIntentOrder TaskIntent = "order"

	// TaskIntentOriginalOrder (original-order): the order as first given.
	TaskIntentOriginalOrder TaskIntent = "original-order"

	// TaskIntentReflexOrder (reflex-order): an order added automatically because of another's result.
	TaskIntentReflexOrder TaskIntent = "reflex-order"

	// TaskIntentFillerOrder (filler-order): the performer's own view of an order it accepted.
	TaskIntentFillerOrder TaskIntent = "filler-order"

	// TaskIntentInstanceOrder (instance-order): one occurrence of a repeating order.
	TaskIntentInstanceOrder TaskIntent = "instance-order"

	// TaskIntentOption (option): one of several alternatives of a request group.
	TaskIntentOption TaskIntent = "option"
)

// Valid reports whether v is an R4 task intent.
func (v TaskIntent) Valid() bool { _, ok := v.proto(); return ok }

func (v TaskIntent) proto() (vpb.TaskIntentValueSet_Value, bool) {
	switch v {
	case TaskIntentUnknown:
		return vpb.TaskIntentValueSet_UNKNOWN, true
	case TaskIntentProposal:
		return vpb.TaskIntentValueSet_PROPOSAL, true
	case TaskIntentPlan:
		return vpb.TaskIntentValueSet_PLAN, true
	case TaskIntentOrder:
		return vpb.TaskIntentValueSet_ORDER, true
	case TaskIntentOriginalOrder:
		return vpb.TaskIntentValueSet_ORIGINAL_ORDER, true
	case TaskIntentReflexOrder:
		return vpb.TaskIntentValueSet_REFLEX_ORDER, true
	case TaskIntentFillerOrder:
		return vpb.TaskIntentValueSet_FILLER_ORDER, true
	case TaskIntentInstanceOrder:
		return vpb.TaskIntentValueSet_INSTANCE_ORDER, true
	case TaskIntentOption:
		return vpb.TaskIntentValueSet_OPTION, true
	}
	return vpb.TaskIntentValueSet_INVALID_UNINITIALIZED, false
}

// ServiceRequestStatus is the status of a ServiceRequest (R4 request-status).
type ServiceRequestStatus string

const (
	// ServiceRequestStatusDraft (draft): being prepared; not yet actionable.
	ServiceRequestStatusDraft ServiceRequestStatus = "draft"

	// ServiceRequestStatusActive (active): in force: the referral may be acted on.
	ServiceRequestStatusActive ServiceRequestStatus = "active"

	// ServiceRequestStatusOnHold (on-hold): temporarily suspended.
	ServiceRequestStatusOnHold ServiceRequestStatus = "on-hold"

	// ServiceRequestStatusRevoked (revoked): withdrawn before completion.
	ServiceRequestStatusRevoked ServiceRequestStatus = "revoked"

	// ServiceRequestStatusCompleted (completed): everything requested was done.
	ServiceRequestStatusCompleted ServiceRequestStatus = "completed"

	// ServiceRequestStatusEnteredInError (entered-in-error): should never have existed.
	ServiceRequestStatusEnteredInError ServiceRequestStatus = "entered-in-error"

	// ServiceRequestStatusUnknown (unknown): the source system does not know which of the others applies.
	ServiceRequestStatusUnknown ServiceRequestStatus = "unknown"
)

// Valid reports whether v is an R4 request status.
func (v ServiceRequestStatus) Valid() bool { _, ok := v.proto(); return ok }

func (v ServiceRequestStatus) proto() (cpb.RequestStatusCode_Value, bool) {
	switch v {
	case ServiceRequestStatusDraft:
		return cpb.RequestStatusCode_DRAFT, true
	case ServiceRequestStatusActive:
		return cpb.RequestStatusCode_ACTIVE, true
	case ServiceRequestStatusOnHold:
		return cpb.RequestStatusCode_ON_HOLD, true
	case ServiceRequestStatusRevoked:
		return cpb.RequestStatusCode_REVOKED, true
	case ServiceRequestStatusCompleted:
		return cpb.RequestStatusCode_COMPLETED, true
	case ServiceRequestStatusEnteredInError:
		return cpb.RequestStatusCode_ENTERED_IN_ERROR, true
	case ServiceRequestStatusUnknown:
		return cpb.RequestStatusCode_UNKNOWN, true
	}
	return cpb.RequestStatusCode_INVALID_UNINITIALIZED, false
}

// ServiceRequestIntent is the intent of a ServiceRequest (R4 request-intent).
type ServiceRequestIntent string

const (
	// ServiceRequestIntentProposal (proposal): a suggestion, with no authorisation to act.
	ServiceRequestIntentProposal ServiceRequestIntent = "proposal"

	// ServiceRequestIntentPlan (plan): an intention to act, not yet authorised.
	ServiceRequestIntentPlan ServiceRequestIntent = "plan"

	// ServiceRequestIntentDirective (directive): a request from the patient or a legal guardian.
	ServiceRequestIntentDirective ServiceRequestIntent = "directive"

	// ServiceRequestIntentOrder (order): a request to act, with authority: a referral.
	ServiceRequestIntentOrder ServiceRequestIntent = "order"

	// ServiceRequestIntentOriginalOrder (original-order): the order as first given.
	ServiceRequestIntentOriginalOrder ServiceRequestIntent = "original-order"

	// ServiceRequestIntentReflexOrder (reflex-order): an order added automatically because of another's result.
	ServiceRequestIntentReflexOrder ServiceRequestIntent = "reflex-order"

	// ServiceRequestIntentFillerOrder (filler-order): the performer's own view of an order it accepted.
	ServiceRequestIntentFillerOrder ServiceRequestIntent = "filler-order"

	// ServiceRequestIntentInstanceOrder (instance-order): one occurrence of a repeating order.
	ServiceRequestIntentInstanceOrder ServiceRequestIntent = "instance-order"

	// ServiceRequestIntentOption (option): one of several alternatives of a request group.
	ServiceRequestIntentOption ServiceRequestIntent = "option"
)

// Valid reports whether v is an R4 request intent.
func (v ServiceRequestIntent) Valid() bool { _, ok := v.proto(); return ok }

func (v ServiceRequestIntent) proto() (cpb.RequestIntentCode_Value, bool) {
	switch v {
	case ServiceRequestIntentProposal:
		return cpb.RequestIntentCode_PROPOSAL, true
	case ServiceRequestIntentPlan:
		return cpb.RequestIntentCode_PLAN, true
	case ServiceRequestIntentDirective:
		return cpb.RequestIntentCode_DIRECTIVE, true
	case ServiceRequestIntentOrder:
		return cpb.RequestIntentCode_ORDER, true
	case ServiceRequestIntentOriginalOrder:
		return cpb.RequestIntentCode_ORIGINAL_ORDER, true
	case ServiceRequestIntentReflexOrder:
		return cpb.RequestIntentCode_REFLEX_ORDER, true
	case ServiceRequestIntentFillerOrder:
		return cpb.RequestIntentCode_FILLER_ORDER, true
	case ServiceRequestIntentInstanceOrder:
		return cpb.RequestIntentCode_INSTANCE_ORDER, true
	case ServiceRequestIntentOption:
		return cpb.RequestIntentCode_OPTION, true
	}
	return cpb.RequestIntentCode_INVALID_UNINITIALIZED, false
}

// Priority is how soon a request should be acted on (R4 request-priority),
// for ServiceRequest and Task. Stepped-care routing reads it.
type Priority string

const (
	// PriorityRoutine (routine): normal priority.
	PriorityRoutine Priority = "routine"

	// PriorityUrgent (urgent): sooner than routine.
	PriorityUrgent Priority = "urgent"

	// PriorityASAP (asap): as soon as possible, before urgent requests.
	PriorityASAP Priority = "asap"

	// PriorityStat (stat): immediately: an emergency.
	PriorityStat Priority = "stat"
)

// Valid reports whether v is an R4 request priority.
func (v Priority) Valid() bool { _, ok := v.proto(); return ok }

func (v Priority) proto() (cpb.RequestPriorityCode_Value, bool) {
	switch v {
	case PriorityRoutine:
		return cpb.RequestPriorityCode_ROUTINE, true
	case PriorityUrgent:
		return cpb.RequestPriorityCode_URGENT, true
	case PriorityASAP:
		return cpb.RequestPriorityCode_ASAP, true
	case PriorityStat:
		return cpb.RequestPriorityCode_STAT, true
	}
	return cpb.RequestPriorityCode_INVALID_UNINITIALIZED, false
}

// ConsentStatus is the status of a Consent (R4 consent-state-codes). Only
// active consents are evaluated.
type ConsentStatus string

const (
	// ConsentStatusDraft (draft): being prepared; not yet in force.
	ConsentStatusDraft ConsentStatus = "draft"

	// ConsentStatusProposed (proposed): offered to the patient, not yet agreed.
	ConsentStatusProposed ConsentStatus = "proposed"

	// ConsentStatusActive (active): in force.
	ConsentStatusActive ConsentStatus = "active"

	// ConsentStatusRejected (rejected): the patient declined it.
	ConsentStatusRejected ConsentStatus = "rejected"

	// ConsentStatusInactive (inactive): no longer in force: revoked or expired.
	ConsentStatusInactive ConsentStatus = "inactive"

	// ConsentStatusEnteredInError (entered-in-error): should never have existed.
	ConsentStatusEnteredInError ConsentStatus = "entered-in-error"
)

// Valid reports whether v is an R4 consent state.
func (v ConsentStatus) Valid() bool { _, ok := v.proto(); return ok }

func (v ConsentStatus) proto() (cpb.ConsentStateCode_Value, bool) {
	switch v {
	case ConsentStatusDraft:
		return cpb.ConsentStateCode_DRAFT, true
	case ConsentStatusProposed:
		return cpb.ConsentStateCode_PROPOSED, true
	case ConsentStatusActive:
		return cpb.ConsentStateCode_ACTIVE, true
	case ConsentStatusRejected:
		return cpb.ConsentStateCode_REJECTED, true
	case ConsentStatusInactive:
		return cpb.ConsentStateCode_INACTIVE, true
	case ConsentStatusEnteredInError:
		return cpb.ConsentStateCode_ENTERED_IN_ERROR, true
	}
	return cpb.ConsentStateCode_INVALID_UNINITIALIZED, false
}

// ProvisionType says whether a consent provision permits or denies what it matches
// (R4 consent-provision-type).
type ProvisionType string

const (
	// ProvisionTypeDeny (deny): what the provision matches is refused.
	ProvisionTypeDeny ProvisionType = "deny"

	// ProvisionTypePermit (permit): what the provision matches is allowed.
	ProvisionTypePermit ProvisionType = "permit"
)

// Valid reports whether v is an R4 consent provision type.
func (v ProvisionType) Valid() bool { _, ok := v.proto(); return ok }

func (v ProvisionType) proto() (cpb.ConsentProvisionTypeCode_Value, bool) {
	switch v {
	case ProvisionTypeDeny:
		return cpb.ConsentProvisionTypeCode_DENY, true
	case ProvisionTypePermit:
		return cpb.ConsentProvisionTypeCode_PERMIT, true
	}
	return cpb.ConsentProvisionTypeCode_INVALID_UNINITIALIZED, false
}

// ConsentDataMeaning says how a consent provision's data reference applies
// (R4 consent-data-meaning).
type ConsentDataMeaning string

const (
	// ConsentDataMeaningInstance (instance): the referenced resource itself.
	ConsentDataMeaningInstance ConsentDataMeaning = "instance"

	// ConsentDataMeaningRelated (related): the referenced resource and what it refers to.
	ConsentDataMeaningRelated ConsentDataMeaning = "related"

	// ConsentDataMeaningDependents (dependents): the referenced resource and what refers to it.
	ConsentDataMeaningDependents ConsentDataMeaning = "dependents"

	// ConsentDataMeaningAuthoredBy (authoredby): whatever the referenced actor authored.
	ConsentDataMeaningAuthoredBy ConsentDataMeaning = "authoredby"
)

// Valid reports whether v is an R4 consent data meaning.
func (v ConsentDataMeaning) Valid() bool { _, ok := v.proto(); return ok }

func (v ConsentDataMeaning) proto() (cpb.ConsentDataMeaningCode_Value, bool) {
	switch v {
	case ConsentDataMeaningInstance:
		return cpb.ConsentDataMeaningCode_INSTANCE, true
	case ConsentDataMeaningRelated:
		return cpb.ConsentDataMeaningCode_RELATED, true
	case ConsentDataMeaningDependents:
		return cpb.ConsentDataMeaningCode_DEPENDENTS, true
	case ConsentDataMeaningAuthoredBy:
		return cpb.ConsentDataMeaningCode_AUTHOREDBY, true
	}
	return cpb.ConsentDataMeaningCode_INVALID_UNINITIALIZED, false
}

// FlagStatus is the status of a Flag (R4 flag-status).
type FlagStatus string

const (
	// FlagStatusActive (active): the flag applies.
	FlagStatusActive FlagStatus = "active"

	// FlagStatusInactive (inactive): the flag no longer applies.
	FlagStatusInactive FlagStatus = "inactive"

	// FlagStatusEnteredInError (entered-in-error): should never have existed.
	FlagStatusEnteredInError FlagStatus = "entered-in-error"
)

// Valid reports whether v is an R4 flag status.
func (v FlagStatus) Valid() bool { _, ok := v.proto(); return ok }

func (v FlagStatus) proto() (cpb.FlagStatusCode_Value, bool) {
	switch v {
	case FlagStatusActive:
		return cpb.FlagStatusCode_ACTIVE, true
	case FlagStatusInactive:
		return cpb.FlagStatusCode_INACTIVE, true
	case FlagStatusEnteredInError:
		return cpb.FlagStatusCode_ENTERED_IN_ERROR, true
	}
	return cpb.FlagStatusCode_INVALID_UNINITIALIZED, false
}

// ObservationStatus is the status of an Observation (R4 observation-status).
type ObservationStatus string

const (
	// ObservationStatusRegistered (registered): expected, no result yet.
	ObservationStatusRegistered ObservationStatus = "registered"

	// ObservationStatusPreliminary (preliminary): an early result that may change.
	ObservationStatusPreliminary ObservationStatus = "preliminary"

	// ObservationStatusFinal (final): the result is complete and verified.
	ObservationStatusFinal ObservationStatus = "final"

	// ObservationStatusAmended (amended): changed after being final.
	ObservationStatusAmended ObservationStatus = "amended"

	// ObservationStatusCorrected (corrected): amended to correct an error.
	ObservationStatusCorrected ObservationStatus = "corrected"

	// ObservationStatusCancelled (cancelled): will not be completed.
	ObservationStatusCancelled ObservationStatus = "cancelled"

	// ObservationStatusEnteredInError (entered-in-error): should never have existed.
	ObservationStatusEnteredInError ObservationStatus = "entered-in-error"

	// ObservationStatusUnknown (unknown): the source system does not know which of the others applies.
	ObservationStatusUnknown ObservationStatus = "unknown"
)

// Valid reports whether v is an R4 observation status.
func (v ObservationStatus) Valid() bool { _, ok := v.proto(); return ok }

func (v ObservationStatus) proto() (cpb.ObservationStatusCode_Value, bool) {
	switch v {
	case ObservationStatusRegistered:
		return cpb.ObservationStatusCode_REGISTERED, true
	case ObservationStatusPreliminary:
		return cpb.ObservationStatusCode_PRELIMINARY, true
	case ObservationStatusFinal:
		return cpb.ObservationStatusCode_FINAL, true
	case ObservationStatusAmended:
		return cpb.ObservationStatusCode_AMENDED, true
	case ObservationStatusCorrected:
		return cpb.ObservationStatusCode_CORRECTED, true
	case ObservationStatusCancelled:
		return cpb.ObservationStatusCode_CANCELLED, true
	case ObservationStatusEnteredInError:
		return cpb.ObservationStatusCode_ENTERED_IN_ERROR, true
	case ObservationStatusUnknown:
		return cpb.ObservationStatusCode_UNKNOWN, true
	}
	return cpb.ObservationStatusCode_INVALID_UNINITIALIZED, false
}

// QuestionnaireResponseStatus is the status of a QuestionnaireResponse
// (R4 questionnaire-answers-status).
type QuestionnaireResponseStatus string

const (
	// QuestionnaireResponseStatusInProgress (in-progress): answers are still being added.
	QuestionnaireResponseStatusInProgress QuestionnaireResponseStatus = "in-progress"

	// QuestionnaireResponseStatusCompleted (completed): all answers were given.
	QuestionnaireResponseStatusCompleted QuestionnaireResponseStatus = "completed"

	// QuestionnaireResponseStatusAmended (amended): changed after being completed.
	QuestionnaireResponseStatusAmended QuestionnaireResponseStatus = "amended"

	// QuestionnaireResponseStatusEnteredInError (entered-in-error): should never have existed.
	QuestionnaireResponseStatusEnteredInError QuestionnaireResponseStatus = "entered-in-error"

	// QuestionnaireResponseStatusStopped (stopped): abandoned before completion; the answers given are kept.
	QuestionnaireResponseStatusStopped QuestionnaireResponseStatus = "stopped"
)

// Valid reports whether v is an R4 questionnaire response status.
func (v QuestionnaireResponseStatus) Valid() bool { _, ok := v.proto(); return ok }

func (v QuestionnaireResponseStatus) proto() (cpb.QuestionnaireResponseStatusCode_Value, bool) {
	switch v {
	case QuestionnaireResponseStatusInProgress:
		return cpb.QuestionnaireResponseStatusCode_IN_PROGRESS, true
	case QuestionnaireResponseStatusCompleted:
		return cpb.QuestionnaireResponseStatusCode_COMPLETED, true
	case QuestionnaireResponseStatusAmended:
		return cpb.QuestionnaireResponseStatusCode_AMENDED, true
	case QuestionnaireResponseStatusEnteredInError:
		return cpb.QuestionnaireResponseStatusCode_ENTERED_IN_ERROR, true
	case QuestionnaireResponseStatusStopped:
		return cpb.QuestionnaireResponseStatusCode_STOPPED, true
	}
	return cpb.QuestionnaireResponseStatusCode_INVALID_UNINITIALIZED, false
}

// AuditAction is what was done in an audited event (R4 audit-event-action).
type AuditAction string

const (
	// AuditActionCreate (C): data was created (FHIR create, a referral ingested).
	AuditActionCreate AuditAction = "C"

	// AuditActionRead (R): data was read, viewed or disclosed (FHIR read, search, a bundle sent).
	AuditActionRead AuditAction = "R"

	// AuditActionUpdate (U): data was changed (FHIR update, a Task transition).
	AuditActionUpdate AuditAction = "U"

	// AuditActionDelete (D): data was deleted.
	AuditActionDelete AuditAction = "D"

	// AuditActionExecute (E): an operation ran that is none of the above (a policy decision, a transaction).
	AuditActionExecute AuditAction = "E"
)

// Valid reports whether v is an R4 audit event action.
func (v AuditAction) Valid() bool { _, ok := v.proto(); return ok }

func (v AuditAction) proto() (cpb.AuditEventActionCode_Value, bool) {
	switch v {
	case AuditActionCreate:
		return cpb.AuditEventActionCode_C, true
	case AuditActionRead:
		return cpb.AuditEventActionCode_R, true
	case AuditActionUpdate:
		return cpb.AuditEventActionCode_U, true
	case AuditActionDelete:
		return cpb.AuditEventActionCode_D, true
	case AuditActionExecute:
		return cpb.AuditEventActionCode_E, true
	}
	return cpb.AuditEventActionCode_INVALID_UNINITIALIZED, false
}

// AuditOutcome is whether an audited event succeeded (R4 audit-event-outcome).
type AuditOutcome string

const (
	// AuditOutcomeSuccess (0): it succeeded (a deny decision correctly made is a success).
	AuditOutcomeSuccess AuditOutcome = "0"

	// AuditOutcomeMinorFailure (4): it failed in a way the caller can fix (invalid input, not permitted).
	AuditOutcomeMinorFailure AuditOutcome = "4"

	// AuditOutcomeSeriousFailure (8): it failed and the request could not be completed (a partner unreachable).
	AuditOutcomeSeriousFailure AuditOutcome = "8"

	// AuditOutcomeMajorFailure (12): it failed and the system is damaged or unavailable.
	AuditOutcomeMajorFailure AuditOutcome = "12"
)

// Valid reports whether v is an R4 audit event outcome.
func (v AuditOutcome) Valid() bool { _, ok := v.proto(); return ok }

func (v AuditOutcome) proto() (cpb.AuditEventOutcomeCode_Value, bool) {
	switch v {
	case AuditOutcomeSuccess:
		return cpb.AuditEventOutcomeCode_SUCCESS, true
	case AuditOutcomeMinorFailure:
		return cpb.AuditEventOutcomeCode_MINOR_FAILURE, true
	case AuditOutcomeSeriousFailure:
		return cpb.AuditEventOutcomeCode_SERIOUS_FAILURE, true
	case AuditOutcomeMajorFailure:
		return cpb.AuditEventOutcomeCode_MAJOR_FAILURE, true
	}
	return cpb.AuditEventOutcomeCode_INVALID_UNINITIALIZED, false
}

// AuditNetworkType is the kind of an AuditEvent agent's network address
// (R4 network-type).
type AuditNetworkType string

const (
	// AuditNetworkTypeMachineName (1): a host name (DNS name).
	AuditNetworkTypeMachineName AuditNetworkType = "1"

	// AuditNetworkTypeIPAddress (2): an IP address.
	AuditNetworkTypeIPAddress AuditNetworkType = "2"

	// AuditNetworkTypeTelephoneNumber (3): a telephone number.
	AuditNetworkTypeTelephoneNumber AuditNetworkType = "3"

	// AuditNetworkTypeEmailAddress (4): an email address.
	AuditNetworkTypeEmailAddress AuditNetworkType = "4"

	// AuditNetworkTypeURI (5): a URI, such as a partner's FHIR endpoint.
	AuditNetworkTypeURI AuditNetworkType = "5"
)

// Valid reports whether v is an R4 network type.
func (v AuditNetworkType) Valid() bool { _, ok := v.proto(); return ok }

func (v AuditNetworkType) proto() (cpb.AuditEventAgentNetworkTypeCode_Value, bool) {
	switch v {
	case AuditNetworkTypeMachineName:
		return cpb.AuditEventAgentNetworkTypeCode_MACHINE_NAME, true
	case AuditNetworkTypeIPAddress:
		return cpb.AuditEventAgentNetworkTypeCode_IP_ADDRESS, true
	case AuditNetworkTypeTelephoneNumber:
		return cpb.AuditEventAgentNetworkTypeCode_TELEPHONE_NUMBER, true
	case AuditNetworkTypeEmailAddress:
		return cpb.AuditEventAgentNetworkTypeCode_EMAIL_ADDRESS, true
	case AuditNetworkTypeURI:
		return cpb.AuditEventAgentNetworkTypeCode_URI, true
	}
	return cpb.AuditEventAgentNetworkTypeCode_INVALID_UNINITIALIZED, false
}

// ProvenanceEntityRole is how an entity was used in a Provenance activity
// (R4 provenance-entity-role).
type ProvenanceEntityRole string

const (
	// ProvenanceEntityRoleDerivation (derivation): the target was derived from the entity (a source record mapped to FHIR).
	ProvenanceEntityRoleDerivation ProvenanceEntityRole = "derivation"

	// ProvenanceEntityRoleRevision (revision): the target is a new version of the entity.
	ProvenanceEntityRoleRevision ProvenanceEntityRole = "revision"

	// ProvenanceEntityRoleQuotation (quotation): the target repeats the entity.
	ProvenanceEntityRoleQuotation ProvenanceEntityRole = "quotation"

	// ProvenanceEntityRoleSource (source): the entity is a primary source of the target.
	ProvenanceEntityRoleSource ProvenanceEntityRole = "source"

	// ProvenanceEntityRoleRemoval (removal): the entity was removed from the target (redaction).
	ProvenanceEntityRoleRemoval ProvenanceEntityRole = "removal"
)

// Valid reports whether v is an R4 provenance entity role.
func (v ProvenanceEntityRole) Valid() bool { _, ok := v.proto(); return ok }

func (v ProvenanceEntityRole) proto() (cpb.ProvenanceEntityRoleCode_Value, bool) {
	switch v {
	case ProvenanceEntityRoleDerivation:
		return cpb.ProvenanceEntityRoleCode_DERIVATION, true
	case ProvenanceEntityRoleRevision:
		return cpb.ProvenanceEntityRoleCode_REVISION, true
	case ProvenanceEntityRoleQuotation:
		return cpb.ProvenanceEntityRoleCode_QUOTATION, true
	case ProvenanceEntityRoleSource:
		return cpb.ProvenanceEntityRoleCode_SOURCE, true
	case ProvenanceEntityRoleRemoval:
		return cpb.ProvenanceEntityRoleCode_REMOVAL, true
	}
	return cpb.ProvenanceEntityRoleCode_INVALID_UNINITIALIZED, false
}

// EndpointStatus is the status of an Endpoint (R4 endpoint-status).
type EndpointStatus string

const (
	// EndpointStatusActive (active): in use.
	EndpointStatusActive EndpointStatus = "active"

	// EndpointStatusSuspended (suspended): temporarily not in use.
	EndpointStatusSuspended EndpointStatus = "suspended"

	// EndpointStatusError (error): not working.
	EndpointStatusError EndpointStatus = "error"

	// EndpointStatusOff (off): switched off.
	EndpointStatusOff EndpointStatus = "off"

	// EndpointStatusEnteredInError (entered-in-error): should never have existed.
	EndpointStatusEnteredInError EndpointStatus = "entered-in-error"

	// EndpointStatusTest (test): for testing only.
	EndpointStatusTest EndpointStatus = "test"
)

// Valid reports whether v is an R4 endpoint status.
func (v EndpointStatus) Valid() bool { _, ok := v.proto(); return ok }

func (v EndpointStatus) proto() (cpb.EndpointStatusCode_Value, bool) {
	switch v {
	case EndpointStatusActive:
		return cpb.EndpointStatusCode_ACTIVE, true
	case EndpointStatusSuspended:
		return cpb.EndpointStatusCode_SUSPENDED, true
	case EndpointStatusError:
		return cpb.EndpointStatusCode_ERROR, true
	case EndpointStatusOff:
		return cpb.EndpointStatusCode_OFF, true
	case EndpointStatusEnteredInError:
		return cpb.EndpointStatusCode_ENTERED_IN_ERROR, true
	case EndpointStatusTest:
		return cpb.EndpointStatusCode_TEST, true
	}
	return cpb.EndpointStatusCode_INVALID_UNINITIALIZED, false
}

// BundleType is the kind of Bundle (R4 bundle-type). The builder makes the
// kinds Pathway exchanges; documents, messages and histories are not among them.
type BundleType string

const (
	// BundleTypeTransaction (transaction): entries are processed all or nothing; each has a request.
	BundleTypeTransaction BundleType = "transaction"

	// BundleTypeTransactionResponse (transaction-response): the reply to a transaction; each entry has a response.
	BundleTypeTransactionResponse BundleType = "transaction-response"

	// BundleTypeBatch (batch): entries are processed one by one; each has a request.
	BundleTypeBatch BundleType = "batch"

	// BundleTypeBatchResponse (batch-response): the reply to a batch; each entry has a response.
	BundleTypeBatchResponse BundleType = "batch-response"

	// BundleTypeSearchset (searchset): the results of a search.
	BundleTypeSearchset BundleType = "searchset"

	// BundleTypeCollection (collection): a set of resources with no processing meaning.
	BundleTypeCollection BundleType = "collection"
)

// Valid reports whether v is a bundle type the builder makes.
func (v BundleType) Valid() bool { _, ok := v.proto(); return ok }

func (v BundleType) proto() (cpb.BundleTypeCode_Value, bool) {
	switch v {
	case BundleTypeTransaction:
		return cpb.BundleTypeCode_TRANSACTION, true
	case BundleTypeTransactionResponse:
		return cpb.BundleTypeCode_TRANSACTION_RESPONSE, true
	case BundleTypeBatch:
		return cpb.BundleTypeCode_BATCH, true
	case BundleTypeBatchResponse:
		return cpb.BundleTypeCode_BATCH_RESPONSE, true
	case BundleTypeSearchset:
		return cpb.BundleTypeCode_SEARCHSET, true
	case BundleTypeCollection:
		return cpb.BundleTypeCode_COLLECTION, true
	}
	return cpb.BundleTypeCode_INVALID_UNINITIALIZED, false
}

// HTTPMethod is the method of a Bundle entry request (R4 http-verb).
type HTTPMethod string

const (
	// HTTPMethodGET (GET): read or search.
	HTTPMethodGET HTTPMethod = "GET"

	// HTTPMethodHEAD (HEAD): read headers only.
	HTTPMethodHEAD HTTPMethod = "HEAD"

	// HTTPMethodPOST (POST): create, conditionally with ifNoneExist.
	HTTPMethodPOST HTTPMethod = "POST"

	// HTTPMethodPUT (PUT): create or update at a known id.
	HTTPMethodPUT HTTPMethod = "PUT"

	// HTTPMethodDELETE (DELETE): delete.
	HTTPMethodDELETE HTTPMethod = "DELETE"

	// HTTPMethodPATCH (PATCH): change part of a resource.
	HTTPMethodPATCH HTTPMethod = "PATCH"
)

// Valid reports whether v is an R4 HTTP verb.
func (v HTTPMethod) Valid() bool { _, ok := v.proto(); return ok }

func (v HTTPMethod) proto() (cpb.HTTPVerbCode_Value, bool) {
	switch v {
	case HTTPMethodGET:
		return cpb.HTTPVerbCode_GET, true
	case HTTPMethodHEAD:
		return cpb.HTTPVerbCode_HEAD, true
	case HTTPMethodPOST:
		return cpb.HTTPVerbCode_POST, true
	case HTTPMethodPUT:
		return cpb.HTTPVerbCode_PUT, true
	case HTTPMethodDELETE:
		return cpb.HTTPVerbCode_DELETE, true
	case HTTPMethodPATCH:
		return cpb.HTTPVerbCode_PATCH, true
	}
	return cpb.HTTPVerbCode_INVALID_UNINITIALIZED, false
}

// SearchMode is why a resource is in a searchset Bundle (R4 search-entry-mode).
type SearchMode string

const (
	// SearchModeMatch (match): it matched the search.
	SearchModeMatch SearchMode = "match"

	// SearchModeInclude (include): it was included because a match refers to it (_include).
	SearchModeInclude SearchMode = "include"

	// SearchModeOutcome (outcome): an OperationOutcome about the search.
	SearchModeOutcome SearchMode = "outcome"
)

// Valid reports whether v is an R4 search entry mode.
func (v SearchMode) Valid() bool { _, ok := v.proto(); return ok }

func (v SearchMode) proto() (cpb.SearchEntryModeCode_Value, bool) {
	switch v {
	case SearchModeMatch:
		return cpb.SearchEntryModeCode_MATCH, true
	case SearchModeInclude:
		return cpb.SearchEntryModeCode_INCLUDE, true
	case SearchModeOutcome:
		return cpb.SearchEntryModeCode_OUTCOME, true
	}
	return cpb.SearchEntryModeCode_INVALID_UNINITIALIZED, false
}

// Gender is a Patient's administrative gender (R4 administrative-gender).
type Gender string

const (
	// GenderMale (male): male.
	GenderMale Gender = "male"

	// GenderFemale (female): female.
	GenderFemale Gender = "female"

	// GenderOther (other): other than male or female.
	GenderOther Gender = "other"

	// GenderUnknown (unknown): not known, or not disclosed.
	GenderUnknown Gender = "unknown"
)

// Valid reports whether v is an R4 administrative gender.
func (v Gender) Valid() bool { _, ok := v.proto(); return ok }

func (v Gender) proto() (cpb.AdministrativeGenderCode_Value, bool) {
	switch v {
	case GenderMale:
		return cpb.AdministrativeGenderCode_MALE, true
	case GenderFemale:
		return cpb.AdministrativeGenderCode_FEMALE, true
	case GenderOther:
		return cpb.AdministrativeGenderCode_OTHER, true
	case GenderUnknown:
		return cpb.AdministrativeGenderCode_UNKNOWN, true
	}
	return cpb.AdministrativeGenderCode_INVALID_UNINITIALIZED, false
}
