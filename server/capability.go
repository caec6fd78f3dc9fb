package server

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/pathway-fhir/pathway/fhir"
)

// capabilityStatement says what this server does, and only that.
func capabilityStatement(now time.Time, tokenURL string) ([]byte, error) {
	type param struct {
		Name string `json:"name"`
		Type string `json:"type"`
		Doc  string `json:"documentation,omitempty"`
	}
	type interaction struct {
		Code string `json:"code"`
		Doc  string `json:"documentation,omitempty"`
	}
	type resource struct {
		Type              string        `json:"type"`
		Doc               string        `json:"documentation,omitempty"`
		Interaction       []interaction `json:"interaction"`
		Versioning        string        `json:"versioning"`
		ReadHistory       bool          `json:"readHistory"`
		UpdateCreate      bool          `json:"updateCreate"`
		ConditionalCreate bool          `json:"conditionalCreate"`
		ConditionalUpdate bool          `json:"conditionalUpdate"`
		ConditionalDelete string        `json:"conditionalDelete"`
		SearchInclude     []string      `json:"searchInclude,omitempty"`
		SearchParam       []param       `json:"searchParam,omitempty"`
	}
	read := []interaction{{Code: "read", Doc: "Only when one of your Tasks is about it; filtered under the patient's consent and your agreement."}}
	res := []resource{{
		Type: "Task", Doc: "The referral Tasks you own or requested. Changes follow the referral state machine: the owner accepts, rejects, progresses and completes; the requester cancels; rejected, cancelled, on-hold and failed need statusReason.text. Only status, statusReason, businessStatus, note and output change.",
		Interaction: []interaction{{Code: "read"}, {Code: "vread"}, {Code: "search-type", Doc: "Without owner or requester: the Tasks you own."},
			{Code: "update", Doc: "If-Match is honoured; Prefer return=minimal or representation."}, {Code: "patch", Doc: "JSON Patch (application/json-patch+json)."}},
		Versioning: "versioned-update", ReadHistory: true, ConditionalDelete: "not-supported",
		SearchInclude: []string{"Task:focus", "Task:patient"},
		SearchParam: []param{{Name: "owner", Type: "reference"}, {Name: "requester", Type: "reference"}, {Name: "status", Type: "token"},
			{Name: "patient", Type: "reference"}, {Name: "focus", Type: "reference"}, {Name: "_lastUpdated", Type: "date", Doc: "ge and gt only."},
			{Name: "_count", Type: "number"}},
	}}
	for _, typ := range readableTypes {
		r := resource{Type: typ, Interaction: read, Versioning: "versioned", ConditionalDelete: "not-supported"}
		if typ == "Consent" {
			r.Interaction = append(r.Interaction, interaction{Code: "update", Doc: "By the partner that referred the patient; a revocation takes effect for every later exchange."})
		}
		res = append(res, r)
	}
	res = append(res, resource{Type: "AuditEvent", Doc: "For auditors only: the audit log, as IHE Basic Audit Log Patterns AuditEvents.",
		Interaction: []interaction{{Code: "search-type"}}, Versioning: "no-version", ConditionalDelete: "not-supported",
		SearchParam: []param{{Name: "_since", Type: "date"}, {Name: "_count", Type: "number"}}})
	doc := map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         now.UTC().Format("2006-01-02"),
		"publisher":    "Pathway",
		"kind":         "instance",
		"software":     map[string]any{"name": "Pathway"},
		"implementation": map[string]any{
			"description": "Pathway's FHIR API for the partners of a referral network: Tasks addressed to you or sent by you, and what they point to, filtered under each patient's consent and your data-sharing agreement.",
		},
		"fhirVersion": "4.0.1",
		"format":      []string{"application/fhir+json"},
		"patchFormat": []string{"application/json-patch+json"},
		"rest": []map[string]any{{
			"mode": "server",
			"security": map[string]any{
				"extension": []map[string]any{{
					"url":       "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
					"extension": []map[string]any{{"url": "token", "valueUri": tokenURL}},
				}},
				"service": []map[string]any{{
					"coding": []map[string]any{{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}},
					"text":   "SMART Backend Services: client_credentials with a private_key_jwt client assertion (RS384, ES384); see /.well-known/smart-configuration",
				}},
				"description": "Every request but metadata needs Authorization: Bearer with an access token from the token endpoint (SMART Backend Services, system scopes such as system/Task.rs system/Task.u system/ServiceRequest.r) or the partner's static API token (every scope its role allows). A partner sees only what was routed to it or sent by it; no chained search, no _has, no _revinclude, no totals.",
			},
			"resource": res,
			"interaction": []map[string]any{
				{"code": "transaction", "documentation": "Referral intake: each ServiceRequest of the Bundle, with its Patient, becomes one referral from you (the fhir-referral mapping), routed and decided; all or nothing."},
				{"code": "batch", "documentation": "As transaction."},
			},
		}},
	}
	data, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	p := fhir.Parse(data)
	if !p.Valid() {
		return nil, fmt.Errorf("server: the CapabilityStatement is not valid FHIR: %v", p.Err())
	}
	return fhir.Marshal(p.Resource)
}
