package audit

import (
	"encoding/hex"
	"fmt"
	"strings"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	aepb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/audit_event_go_proto"
	provpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/provenance_go_proto"

	"github.com/pathway-fhir/pathway/fhir"
)

// Code systems and profiles of IHE Basic Audit Log Patterns (BALP) the
// AuditEvents use.
const (
	// SystemBALPAuthZSubType holds BALP authorization decision subtypes (AuthZ-Consent).
	SystemBALPAuthZSubType = "https://profiles.ihe.net/ITI/BALP/CodeSystem/AuthZsubType"
	// SystemBALPEntityType holds BALP entity types (XrequestId).
	SystemBALPEntityType = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
	// SystemLifecycle holds ISO 21089 record lifecycle events (disclose).
	SystemLifecycle = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle"
	// SystemRoleClass holds v3 RoleClass codes (PROV).
	SystemRoleClass = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
	// SystemSecurityRoleType holds extra security role types (authserver).
	SystemSecurityRoleType = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
	// ProfileAuthZConsent is the BALP profile of a consent authorization decision.
	ProfileAuthZConsent = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.AuthZconsent"
	// ProfileDisclosureSource is the BALP profile of a privacy disclosure recorded at the source.
	ProfileDisclosureSource = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PrivacyDisclosure.Source"
	// SystemExchangeID names Pathway's exchange ids in AuditEvent identifiers.
	SystemExchangeID = "https://pathway-fhir.org/fhir/sid/exchange"
	// DetailSHA256 is the entity detail type of a hash of the entity's exact bytes (lowercase hex).
	DetailSHA256 = "sha256"
)

// AuditEvent returns the entry as an R4 AuditEvent in the shape of the IHE
// BALP pattern for its kind (docs/audit.md, "AuditEvents"):
//
//   - decision: a consent authorization decision (type DCM 110113, subtype
//     AuthZ-Consent, action E; outcome 0 for permit, 4 for deny), with the
//     partner as recipient, the consents and other inputs as entities with
//     their SHA-256, and the effect, obligations and trail as details of
//     the exchange entity;
//   - disclosure: a privacy disclosure at the source (type DCM 110106
//     Export, subtype disclose, action R), Pathway as source and the
//     partner as recipient, the bundle and the disclosed versions as
//     entities with their SHA-256;
//   - access: a RESTful operation (type rest, subtype the interaction), the
//     partner as client and Pathway as server.
//
// The event holds only what the entry holds: references, codes and hashes.
// The BALP profile is claimed in meta.profile only when the entry carries
// everything the profile requires (the site, and for a disclosure the
// recipient's endpoint, the patient and the bundle).
func (e Entry) AuditEvent() (*aepb.AuditEvent, error) {
	spec := fhir.AuditEventSpec{
		ID:       e.ID,
		Recorded: e.Time,
		Outcome:  fhir.AuditOutcomeSuccess,
		Source: fhir.AuditSource{
			Site:     e.Site,
			Observer: fhir.ParseRef(e.Observer),
			Type:     []*dpb.Coding{fhir.Coding(fhir.SystemSecuritySourceType, "4", "Application Server")},
		},
	}
	if e.Purpose != "" {
		spec.PurposeOfEvent = []*fhir.CodeableConcept{purposeOfUse(e.Purpose)}
	}
	if e.Effect == EffectDeny {
		spec.Outcome = fhir.AuditOutcomeMinorFailure
	}
	var site *fhir.AuditNetwork
	if e.Site != "" {
		site = &fhir.AuditNetwork{Address: e.Site, Type: fhir.AuditNetworkTypeMachineName}
	}
	patient := e.Patient != ""
	switch e.Kind {
	case KindDecision:
		spec.Type = fhir.Coding(fhir.SystemDICOM, "110113", "Security Alert")
		spec.Subtype = []*dpb.Coding{fhir.Coding(SystemBALPAuthZSubType, "AuthZ-Consent", "Authorization Decision by Consent")}
		spec.Action = fhir.AuditActionExecute
		spec.OutcomeDesc = decisionDesc(e)
		purpose := spec.PurposeOfEvent
		spec.Agent = []fhir.AuditAgent{
			{Type: agentType(fhir.SystemDICOM, "110150", "Application"), Who: fhir.ParseRef(e.Observer), Network: site},
			{Type: agentType(fhir.SystemParticipationType, "IRCP", "information recipient"), Who: fhir.ParseRef(e.Actor), Requestor: true, PurposeOfUse: purpose},
			{Type: agentType(SystemRoleClass, "PROV", "healthcare provider"), Who: fhir.ParseRef(e.Actor)},
			{Type: agentType(SystemSecurityRoleType, "authserver", "authorization server"), Who: fhir.ParseRef(e.Observer)},
		}
		hasConsent := false
		for _, in := range e.Inputs {
			hasConsent = hasConsent || strings.HasPrefix(in.Ref, "Consent/")
		}
		if site != nil && patient && hasConsent {
			spec.Profile = []string{ProfileAuthZConsent}
		}
	case KindDisclosure:
		spec.Type = fhir.Coding(fhir.SystemDICOM, "110106", "Export")
		spec.Subtype = []*dpb.Coding{fhir.Coding(SystemLifecycle, "disclose", "Disclose Record Lifecycle Event")}
		if e.Interaction != "" {
			spec.Subtype = append(spec.Subtype, fhir.Coding(fhir.SystemRestfulInteraction, e.Interaction, ""))
		}
		spec.Action = fhir.AuditActionRead
		var endpoint *fhir.AuditNetwork
		if e.Endpoint != "" {
			endpoint = &fhir.AuditNetwork{Address: e.Endpoint, Type: fhir.AuditNetworkTypeURI}
		}
		spec.Agent = []fhir.AuditAgent{
			{Type: agentType(fhir.SystemDICOM, "110153", "Source Role ID"), Who: fhir.ParseRef(e.Observer), Network: site},
			{Type: agentType(fhir.SystemDICOM, "110152", "Destination Role ID"), Who: fhir.ParseRef(e.Actor), Network: endpoint},
		}
		if site != nil && endpoint != nil && patient {
			spec.Profile = []string{ProfileDisclosureSource}
		}
	case KindAccess:
		spec.Type = fhir.Coding(fhir.SystemAuditEventType, "rest", "Restful Operation")
		spec.Subtype = []*dpb.Coding{fhir.Coding(fhir.SystemRestfulInteraction, e.Interaction, "")}
		spec.Action = restfulInteractions[e.Interaction]
		spec.OutcomeDesc = string(e.Effect)
		spec.Agent = []fhir.AuditAgent{
			{Type: agentType(fhir.SystemDICOM, "110153", "Source Role ID"), Who: fhir.ParseRef(e.Actor), Requestor: true},
			{Type: agentType(fhir.SystemDICOM, "110152", "Destination Role ID"), Who: fhir.ParseRef(e.Observer), Network: site},
		}
	default:
		return nil, fmt.Errorf("building AuditEvent %s: unknown kind", safeID(e.ID))
	}
	if patient {
		spec.Entity = append(spec.Entity, fhir.AuditEntity{
			What: fhir.ParseRef(e.Patient),
			Type: fhir.Coding(fhir.SystemAuditEntityType, "1", "Person"),
			Role: fhir.Coding(fhir.SystemObjectRole, "1", "Patient"),
		})
	}
	for _, in := range e.Inputs {
		spec.Entity = append(spec.Entity, inputEntity(in))
	}
	if e.Bundle != nil {
		spec.Entity = append(spec.Entity, inputEntity(*e.Bundle))
	}
	if e.Exchange != "" {
		ent := fhir.AuditEntity{
			What: &fhir.Reference{Identifier: fhir.Identifier(SystemExchangeID, e.Exchange)},
			Type: fhir.Coding(SystemBALPEntityType, "XrequestId", "X-Request-Id"),
		}
		if e.Kind == KindDecision {
			ent.Detail = append(ent.Detail, fhir.AuditDetail{Type: "effect", Value: string(e.Effect)})
			for _, o := range e.Obligations {
				ent.Detail = append(ent.Detail, fhir.AuditDetail{Type: "obligation", Value: o})
			}
			for _, t := range e.Trail {
				ent.Detail = append(ent.Detail, fhir.AuditDetail{Type: "trail", Value: t})
			}
		}
		spec.Entity = append(spec.Entity, ent)
	}
	ev, err := spec.Build()
	if err != nil {
		return nil, fmt.Errorf("building AuditEvent %s: %w", safeID(e.ID), err)
	}
	return ev, nil
}

func agentType(system, code, display string) *fhir.CodeableConcept {
	return fhir.Concept("", fhir.Coding(system, code, display))
}

func purposeOfUse(code string) *fhir.CodeableConcept {
	return fhir.Concept("", fhir.Coding(fhir.SystemActReason, code, ""))
}

// inputEntity is an entity for a versioned input or the bundle, with the
// SHA-256 of its bytes. A Consent is typed as BALP's consent slice wants.
func inputEntity(in Input) fhir.AuditEntity {
	ent := fhir.AuditEntity{
		What:   fhir.ParseRef(in.Ref),
		Type:   fhir.Coding(fhir.SystemAuditEntityType, "2", "System Object"),
		Role:   fhir.Coding(fhir.SystemObjectRole, "4", "Domain Resource"),
		Detail: []fhir.AuditDetail{{Type: DetailSHA256, Value: hex.EncodeToString(in.Hash[:])}},
	}
	if strings.HasPrefix(in.Ref, "Consent/") {
		ent.Type = fhir.Coding(fhir.SystemResourceTypes, "Consent", "")
		ent.Role = nil
	}
	return ent
}

// decisionDesc says the decision in codes only: "permit", "deny" or
// "permit with obligations REDACT NORDSCLCD".
func decisionDesc(e Entry) string {
	if e.Effect == EffectPermit && len(e.Obligations) > 0 {
		return "permit with obligations " + strings.Join(e.Obligations, " ")
	}
	return string(e.Effect)
}

// Provenance returns the Provenance of a disclosure: its targets are the
// exact versions disclosed (the entry's inputs), recorded at the entry's
// time, for its purpose, with Pathway (the observer) as custodian and the
// partner as the recipient it was disclosed to, and the exchanged Bundle,
// with its SHA-256 in the entry, as the entity quoted. Its id is derived
// from the entry's. It is not signed: the audit log is what makes it
// tamper-evident (a receipt proves the entry it was built from).
func (e Entry) Provenance() (*provpb.Provenance, error) {
	if e.Kind != KindDisclosure {
		return nil, fmt.Errorf("building Provenance of %s: not a disclosure", safeID(e.ID))
	}
	if len(e.Inputs) == 0 {
		return nil, fmt.Errorf("building Provenance of %s: the disclosure names no disclosed resource (inputs)", safeID(e.ID))
	}
	spec := fhir.ProvenanceSpec{
		ID:       fhir.NewID("pathway-audit", e.ID, "Provenance"),
		Recorded: e.Time,
		Occurred: e.Time,
		Reason:   []*fhir.CodeableConcept{purposeOfUse(e.Purpose)},
		Activity: fhir.Concept("", fhir.Coding(SystemLifecycle, "disclose", "Disclose Record Lifecycle Event")),
		Agent: []fhir.ProvenanceAgent{
			{Type: fhir.Concept("", fhir.Coding(fhir.SystemProvenanceParticipantType, "custodian", "Custodian")), Who: fhir.ParseRef(e.Observer)},
			{Type: fhir.Concept("", fhir.Coding(fhir.SystemParticipationType, "IRCP", "information recipient")), Who: fhir.ParseRef(e.Actor)},
		},
		Entity: []fhir.ProvenanceEntity{{Role: fhir.ProvenanceEntityRoleQuotation, What: fhir.ParseRef(e.Bundle.Ref)}},
	}
	for _, in := range e.Inputs {
		spec.Target = append(spec.Target, fhir.ParseRef(in.Ref))
	}
	p, err := spec.Build()
	if err != nil {
		return nil, fmt.Errorf("building Provenance of %s: %w", safeID(e.ID), err)
	}
	return p, nil
}
