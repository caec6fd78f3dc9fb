// Package mappings turns source records (NGO case exports, KoboToolbox
// submissions, clinic FHIR documents and HL7 v2 messages) into FHIR
// referral bundles. It is the second step of a referral's flow, after
// package connectors has read the records.
//
// A Mapping is a YAML file (the language is in docs/mappings.md): Load or
// LoadFile reads and lints it, reporting every problem at file:line:col;
// Builtin loads one of the mappings shipped inside Pathway (Builtins lists
// them: ngo-referral-csv, kobo-json, fhir-referral, hl7v2-ref-i12).
// Mapping.Apply reads one record through the Fields interface (MapFields
// for a CSV row, JSONFields for a JSON object, FHIRFields for a referral
// of a FHIR document, which FHIRRecords splits per ServiceRequest) and
// returns a Referral, or a *RecordError naming every problem and never a
// value. Build (or Encode) turns the Referral into one deterministic,
// validated FHIR R4 transaction Bundle.
//
//	m, err := mappings.Builtin("kobo-json")
//	if err != nil {
//		return err
//	}
//	r, err := m.Apply(mappings.JSONFields(submission))
//	if err != nil {
//		return err // *RecordError: every reason, safe to log
//	}
//	bundle, err := mappings.Encode(r) // FHIR JSON, the same bytes for the same record
//
// The package knows nothing of files or connectors: cmd/pathway adapts
// connector records (an HL7 v2 message, say) to Fields.
package mappings
