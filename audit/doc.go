// Package audit will hold AuditEvent and Provenance building and the
// tamper-evident Merkle log with signed checkpoints. Nothing is implemented here yet.
package audit
