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

// More code systems, used by the builders (build*.go) and Pathway's own CodeSystem.
const (
	// SystemPathway is the canonical URL of Pathway's own CodeSystem
	// (codesystem-pathway.json): immigration and legal status, migrant type,
	// migration history, and the IMMIG sensitivity label, for which no
	// standard code exists.
	SystemPathway = "https://pathway-fhir.org/fhir/CodeSystem/pathway"
	// PathwaySensitivityImmigration is the security label, in SystemPathway,
	// for immigration, asylum and legal-status data, country of birth and
	// migration history. Data so labelled never leaves without a consent
	// provision that names the partner and the purpose.
	PathwaySensitivityImmigration = "IMMIG"
	// SystemUCUM is UCUM, the units of Quantity values.
	SystemUCUM = "http://unitsofmeasure.org"
	// SystemResourceTypes holds FHIR resource type names, the codes of Consent provision.class.
	SystemResourceTypes = "http://hl7.org/fhir/resource-types"
	// SystemParticipationType holds v3 participation types, the roles of Consent
	// provision actors (IRCP information recipient, PRCP primary recipient, AUT author...).
	SystemParticipationType = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	// SystemAuditEventType holds AuditEvent types (rest: a RESTful operation).
	SystemAuditEventType = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	// SystemRestfulInteraction holds AuditEvent subtypes for RESTful operations
	// (create, read, update, search-type, transaction...).
	SystemRestfulInteraction = "http://hl7.org/fhir/restful-interaction"
	// SystemDICOM holds the DICOM codes IHE BALP uses for event types and agent
	// roles (110106 Export, 110107 Import, 110153 Source Role ID, 110152 Destination Role ID).
	SystemDICOM = "http://dicom.nema.org/resources/ontology/DCM"
	// SystemAuditEntityType holds AuditEvent entity types (1 person, 2 system object).
	SystemAuditEntityType = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	// SystemObjectRole holds AuditEvent entity roles (1 patient, 4 domain resource, 24 query).
	SystemObjectRole = "http://terminology.hl7.org/CodeSystem/object-role"
	// SystemSecuritySourceType holds AuditEvent source types (4 application server).
	SystemSecuritySourceType = "http://terminology.hl7.org/CodeSystem/security-source-type"
	// SystemProvenanceParticipantType holds Provenance agent types (author, performer, assembler, custodian...).
	SystemProvenanceParticipantType = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
	// SystemDataOperation holds v3 data operations, the Provenance activity (CREATE, UPDATE, DELETE...).
	SystemDataOperation = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
	// SystemEndpointConnectionType holds Endpoint connection types (hl7-fhir-rest).
	SystemEndpointConnectionType = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
	// SystemEndpointPayloadType holds Endpoint payload types (any, none).
	SystemEndpointPayloadType = "http://terminology.hl7.org/CodeSystem/endpoint-payload-type"
	// SystemOrganizationType holds Organization types (prov healthcare provider, cg community group, govt...).
	SystemOrganizationType = "http://terminology.hl7.org/CodeSystem/organization-type"
	// SystemObservationCategory holds Observation categories (social-history, survey...).
	SystemObservationCategory = "http://terminology.hl7.org/CodeSystem/observation-category"
)
