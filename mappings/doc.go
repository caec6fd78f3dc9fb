// Package mappings will hold the declarative mapping language and engine
// that turn NGO case records and clinic messages into FHIR referral bundles.
// Nothing is implemented here yet: see the Mappings and inbound connectors issue.
package mappings
