package fhir

import (
	"time"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	aepb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/audit_event_go_proto"
	provpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/provenance_go_proto"
)

// AuditEventSpec describes an AuditEvent in the shapes of IHE Basic Audit
// Log Patterns (BALP): one per decision and per disclosure.
type AuditEventSpec struct {
	// ID is the logical id.
	ID string
	// Profile lists meta.profile canonicals (the BALP profile, say).
	Profile []string
	// Security lists meta.security labels.
	Security []*dpb.Coding
	// Type is the kind of event (SystemAuditEventType rest, SystemDICOM 110106 Export...). Required.
	Type *dpb.Coding
	// Subtype refines it (SystemRestfulInteraction create, read, transaction...).
	Subtype []*dpb.Coding
	// Action is what was done. Required.
	Action AuditAction
	// Period is when the activity took place, if not an instant.
	Period *dpb.Period
	// Recorded is when the event was recorded. Required.
	Recorded time.Time
	// Outcome is whether it succeeded. Required.
	Outcome AuditOutcome
	// OutcomeDesc describes the outcome, in words safe to log.
	OutcomeDesc string
	// PurposeOfEvent lists the purposes of use (PurposeOfUse codings in a concept).
	PurposeOfEvent []*CodeableConcept
	// Agent lists who took part: at least one.
	Agent []AuditAgent
	// Source is the system that recorded the event. Its Observer is required.
	Source AuditSource
	// Entity lists the data involved: the Patient, the resources, the query.
	Entity []AuditEntity
}

// AuditAgent is one actor of an audited event.
type AuditAgent struct {
	// Type is the agent's role in the event (SystemDICOM 110153 Source Role ID, 110152 Destination Role ID).
	Type *CodeableConcept
	// Role lists the agent's security roles.
	Role []*CodeableConcept
	// Who is the agent (an Organization, a Device, a Practitioner).
	Who *Reference
	// AltID is another id of the agent (a client id, a user login).
	AltID string
	// Name is a human-friendly name of the agent (never a patient's).
	Name string
	// Requestor marks the agent that started the event.
	Requestor bool
	// Policy lists the policies that authorised the agent (URIs).
	Policy []string
	// Network is where the agent acted from.
	Network *AuditNetwork
	// PurposeOfUse lists the purposes the agent acted for.
	PurposeOfUse []*CodeableConcept
}

// AuditNetwork is an agent's network address.
type AuditNetwork struct {
	// Address is the address (a host name, an IP, a URI). Required.
	Address string
	// Type says what kind of address it is. Required.
	Type AuditNetworkType
}

// AuditSource is the system that recorded an event.
type AuditSource struct {
	// Site is the logical place of the source (the network's name).
	Site string
	// Observer is the recording system (a Device or Organization). Required.
	Observer *Reference
	// Type lists the source's types (SystemSecuritySourceType 4 application server).
	Type []*dpb.Coding
}

// AuditEntity is one piece of data involved in an event.
type AuditEntity struct {
	// What is the resource involved.
	What *Reference
	// Type is the entity's type (SystemAuditEntityType 1 person, 2 system object).
	Type *dpb.Coding
	// Role is the entity's role (SystemObjectRole 1 patient, 4 domain resource, 24 query).
	Role *dpb.Coding
	// SecurityLabel lists the labels of the data involved.
	SecurityLabel []*dpb.Coding
	// Name is a descriptor; at most one of Name and Query (sev-1).
	Name string
	// Description describes the entity, in words safe to log.
	Description string
	// Query is the query run (a search URL), as bytes.
	Query []byte
	// Detail lists more facts as type/value pairs (a decision id, a trail reference).
	Detail []AuditDetail
}

// AuditDetail is a named string fact about an entity.
type AuditDetail struct {
	// Type names the fact. Required.
	Type string
	// Value is the fact. Required.
	Value string
}

// Build checks the spec and returns the AuditEvent.
func (s AuditEventSpec) Build() (*aepb.AuditEvent, error) {
	c := &specCheck{typ: "AuditEvent"}
	c.common(s.ID, s.Profile, s.Security)
	c.coding("type", s.Type, true)
	c.codings("subtype", s.Subtype)
	av, ok := s.Action.proto()
	c.status("action", s.Action == "", ok)
	c.period("period", s.Period)
	c.require("recorded", !s.Recorded.IsZero())
	ov, ok := s.Outcome.proto()
	c.status("outcome", s.Outcome == "", ok)
	c.concepts("purposeOfEvent", s.PurposeOfEvent)
	c.require("agent", len(s.Agent) > 0)
	c.ref("source.observer", s.Source.Observer, true)
	c.codings("source.type", s.Source.Type)
	ae := &aepb.AuditEvent{
		Id:             optID(s.ID),
		Meta:           buildMeta(s.Profile, s.Security),
		Type:           s.Type,
		Subtype:        s.Subtype,
		Action:         &aepb.AuditEvent_ActionCode{Value: av},
		Period:         s.Period,
		Recorded:       Instant(s.Recorded),
		Outcome:        &aepb.AuditEvent_OutcomeCode{Value: ov},
		OutcomeDesc:    optString(s.OutcomeDesc),
		PurposeOfEvent: s.PurposeOfEvent,
		Source: &aepb.AuditEvent_Source{
			Site:     optString(s.Source.Site),
			Observer: s.Source.Observer,
			Type:     s.Source.Type,
		},
	}
	for i, a := range s.Agent {
		f := specIndex("agent", i)
		c.concept(f+".type", a.Type, false)
		c.concepts(f+".role", a.Role)
		c.ref(f+".who", a.Who, false)
		c.nonEmpty(f+".policy", a.Policy)
		c.concepts(f+".purposeOfUse", a.PurposeOfUse)
		ag := &aepb.AuditEvent_Agent{
			Type:         a.Type,
			Role:         a.Role,
			Who:          a.Who,
			AltId:        optString(a.AltID),
			Name:         optString(a.Name),
			Requestor:    Boolean(a.Requestor),
			PurposeOfUse: a.PurposeOfUse,
		}
		for _, p := range a.Policy {
			ag.Policy = append(ag.Policy, URI(p))
		}
		if n := a.Network; n != nil {
			c.text(f+".network.address", n.Address)
			nv, ok := n.Type.proto()
			c.status(f+".network.type", n.Type == "", ok)
			ag.Network = &aepb.AuditEvent_Agent_Network{
				Address: optString(n.Address),
				Type:    &aepb.AuditEvent_Agent_Network_TypeCode{Value: nv},
			}
		}
		ae.Agent = append(ae.Agent, ag)
	}
	for i, e := range s.Entity {
		f := specIndex("entity", i)
		c.ref(f+".what", e.What, false)
		c.coding(f+".type", e.Type, false)
		c.coding(f+".role", e.Role, false)
		c.codings(f+".securityLabel", e.SecurityLabel)
		if e.Name != "" && len(e.Query) > 0 {
			c.fail(f, "name or query, not both (sev-1)")
		}
		en := &aepb.AuditEvent_Entity{
			What:          e.What,
			Type:          e.Type,
			Role:          e.Role,
			SecurityLabel: e.SecurityLabel,
			Name:          optString(e.Name),
			Description:   optString(e.Description),
		}
		if len(e.Query) > 0 {
			en.Query = &dpb.Base64Binary{Value: e.Query}
		}
		for j, d := range e.Detail {
			df := specIndex(f+".detail", j)
			c.text(df+".type", d.Type)
			c.text(df+".value[x]", d.Value)
			en.Detail = append(en.Detail, &aepb.AuditEvent_Entity_Detail{
				Type: optString(d.Type),
				Value: &aepb.AuditEvent_Entity_Detail_ValueX{
					Choice: &aepb.AuditEvent_Entity_Detail_ValueX_StringValue{StringValue: String(d.Value)},
				},
			})
		}
		ae.Entity = append(ae.Entity, en)
	}
	return specFinish(c, ae)
}

// ProvenanceSpec describes a Provenance: where resources came from and who
// made them (the source record a bundle was mapped from, a redaction).
type ProvenanceSpec struct {
	// ID is the logical id.
	ID string
	// Profile lists meta.profile canonicals.
	Profile []string
	// Security lists meta.security labels.
	Security []*dpb.Coding
	// Target lists the resources this provenance is about: at least one.
	Target []*Reference
	// Occurred is when the activity happened (occurredDateTime).
	Occurred time.Time
	// Recorded is when the provenance was recorded. Required.
	Recorded time.Time
	// Policy lists the policies the activity followed (URIs).
	Policy []string
	// Reason lists why (PurposeOfUse codings in concepts).
	Reason []*CodeableConcept
	// Activity is what was done (SystemDataOperation CREATE, UPDATE...).
	Activity *CodeableConcept
	// Agent lists who took part: at least one.
	Agent []ProvenanceAgent
	// Entity lists what was used.
	Entity []ProvenanceEntity
	// Signature lists real signatures only; each needs its data. Pathway's
	// tamper evidence is the audit log, so this is usually empty.
	Signature []Signature
}

// ProvenanceAgent is one actor of a Provenance.
type ProvenanceAgent struct {
	// Type is how the agent took part (SystemProvenanceParticipantType author, assembler...).
	Type *CodeableConcept
	// Role lists the agent's roles.
	Role []*CodeableConcept
	// Who is the agent. Required.
	Who *Reference
	// OnBehalfOf is whom the agent acted for.
	OnBehalfOf *Reference
}

// ProvenanceEntity is one thing used in the activity.
type ProvenanceEntity struct {
	// Role is how it was used. Required.
	Role ProvenanceEntityRole
	// What is the thing used (a resource, or a reference with an identifier
	// or display for a source record that is not FHIR). Required.
	What *Reference
}

// Signature is a digital signature over a resource.
type Signature struct {
	// Type lists why it was signed (urn:iso-astm:E1762-95:2013 codes). At least one.
	Type []*dpb.Coding
	// When is when it was signed. Required.
	When time.Time
	// Who signed. Required.
	Who *Reference
	// OnBehalfOf is whom the signer signed for.
	OnBehalfOf *Reference
	// TargetFormat is the media type of what was signed.
	TargetFormat string
	// SigFormat is the media type of the signature (application/jose).
	SigFormat string
	// Data is the signature itself. Required: no placeholder signatures.
	Data []byte
}

// build checks and converts a signature.
func (sg Signature) build(c *specCheck, field string) *dpb.Signature {
	c.require(field+".type", len(sg.Type) > 0)
	c.codings(field+".type", sg.Type)
	c.require(field+".when", !sg.When.IsZero())
	c.ref(field+".who", sg.Who, true)
	c.ref(field+".onBehalfOf", sg.OnBehalfOf, false)
	c.require(field+".data", len(sg.Data) > 0)
	out := &dpb.Signature{Type: sg.Type, When: Instant(sg.When), Who: sg.Who, OnBehalfOf: sg.OnBehalfOf}
	if sg.TargetFormat != "" {
		out.TargetFormat = &dpb.Signature_TargetFormatCode{Value: sg.TargetFormat}
	}
	if sg.SigFormat != "" {
		out.SigFormat = &dpb.Signature_SigFormatCode{Value: sg.SigFormat}
	}
	if len(sg.Data) > 0 {
		out.Data = &dpb.Base64Binary{Value: sg.Data}
	}
	return out
}

// Build checks the spec and returns the Provenance.
func (s ProvenanceSpec) Build() (*provpb.Provenance, error) {
	c := &specCheck{typ: "Provenance"}
	c.common(s.ID, s.Profile, s.Security)
	c.require("target", len(s.Target) > 0)
	c.refs("target", s.Target)
	c.require("recorded", !s.Recorded.IsZero())
	c.nonEmpty("policy", s.Policy)
	c.concepts("reason", s.Reason)
	c.concept("activity", s.Activity, false)
	c.require("agent", len(s.Agent) > 0)
	p := &provpb.Provenance{
		Id:       optID(s.ID),
		Meta:     buildMeta(s.Profile, s.Security),
		Target:   s.Target,
		Recorded: Instant(s.Recorded),
		Reason:   s.Reason,
		Activity: s.Activity,
	}
	if !s.Occurred.IsZero() {
		p.Occurred = &provpb.Provenance_OccurredX{
			Choice: &provpb.Provenance_OccurredX_DateTime{DateTime: DateTime(s.Occurred, PrecisionAuto)},
		}
	}
	for _, u := range s.Policy {
		p.Policy = append(p.Policy, URI(u))
	}
	for i, a := range s.Agent {
		p.Agent = append(p.Agent, a.build(c, specIndex("agent", i)))
	}
	for i, e := range s.Entity {
		f := specIndex("entity", i)
		rv, ok := e.Role.proto()
		c.status(f+".role", e.Role == "", ok)
		c.ref(f+".what", e.What, true)
		p.Entity = append(p.Entity, &provpb.Provenance_Entity{
			Role: &provpb.Provenance_Entity_RoleCode{Value: rv},
			What: e.What,
		})
	}
	for i, sg := range s.Signature {
		p.Signature = append(p.Signature, sg.build(c, specIndex("signature", i)))
	}
	return specFinish(c, p)
}

// build checks and converts an agent.
func (a ProvenanceAgent) build(c *specCheck, field string) *provpb.Provenance_Agent {
	c.concept(field+".type", a.Type, false)
	c.concepts(field+".role", a.Role)
	c.ref(field+".who", a.Who, true)
	c.ref(field+".onBehalfOf", a.OnBehalfOf, false)
	return &provpb.Provenance_Agent{Type: a.Type, Role: a.Role, Who: a.Who, OnBehalfOf: a.OnBehalfOf}
}
