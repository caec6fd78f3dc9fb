// Package server will hold the FHIR R4 REST API that partners and auditors
// call. Nothing is implemented here yet.
package server
