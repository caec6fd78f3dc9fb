// Package connectors will hold the sources and sinks that move records in
// and out of Pathway: files (CSV, NDJSON), FHIR REST, HL7 v2 and HTTP intake.
// Nothing is implemented here yet.
package connectors
