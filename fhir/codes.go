package fhir

// Code systems Pathway uses (DESIGN.md, "Codes we use").
const (
	// SystemActReason holds purposes of use (TREAT, COC, ETREAT, BTG, CAREMGT, HOPERAT, PUBHLTH, HRESCH).
	SystemActReason = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	// SystemActCode holds sensitivity, obligation and refrain codes (PSY, MH, BH, SDV, SUD, REDACT, MASK, NORDSCLCD...).
	SystemActCode = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	// SystemConfidentiality holds confidentiality codes (N, R, V).
	SystemConfidentiality = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
	// SystemObservationValue holds the transformed-data marks REDACTED and MASKED.
	SystemObservationValue = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
	// SystemConsentScope holds the consent scope patient-privacy.
	SystemConsentScope = "http://terminology.hl7.org/CodeSystem/consentscope"
	// SystemConsentAction holds consent actions (access, collect, use, disclose, correct).
	SystemConsentAction = "http://terminology.hl7.org/CodeSystem/consentaction"
	// SystemLOINC is LOINC (consent category 59284-0, screening instruments).
	SystemLOINC = "http://loinc.org"
	// SystemSNOMED is SNOMED CT.
	SystemSNOMED = "http://snomed.info/sct"
	// SystemTaskCode holds Task codes (fulfill).
	SystemTaskCode = "http://hl7.org/fhir/CodeSystem/task-code"
	// SystemLanguage is BCP-47 language tags.
	SystemLanguage = "urn:ietf:bcp:47"
	// SystemUUID is the system of urn:uuid identifiers.
	SystemUUID = "urn:ietf:rfc:3986"
)
