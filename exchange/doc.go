// Package exchange will hold routing, the ingest pipeline, the outbox
// dispatcher and the referral Task state machine. Nothing is implemented here yet.
package exchange
