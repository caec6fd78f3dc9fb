// Package audit keeps Pathway's tamper-evident audit log: every decision,
// disclosure and API access as an Entry, appended in the same database
// transaction as the state change it records, as a leaf of an append-only
// Merkle tree (RFC 6962, transparency-dev merkle) with signed checkpoints
// (transparency-dev checkpoint format in a golang.org/x/mod signed note,
// Ed25519). Each entry is also an IHE BALP AuditEvent (Entry.AuditEvent).
//
// Auditors check the log without trusting the operator: Verify recomputes
// every leaf and the tree, checks every checkpoint's signature and root and
// the consistency between checkpoints, checks that every input a decision
// read still hashes to what was logged, and re-derives each decision with
// a Rederiver. A Receipt proves, offline, that entries are in the log.
// docs/audit.md describes the bytes precisely enough to write an
// independent verifier.
//
// # Writing
//
// The exchange pipeline logs a decision with its state change:
//
//	err := st.WithTx(ctx, func(tx *store.Tx) error {
//		consent, err := tx.Get(ctx, "Consent", "c1")
//		...
//		_, err = audit.Append(ctx, tx, audit.Entry{
//			ID: decisionID, Kind: audit.KindDecision, Time: now,
//			Exchange: exchangeID, Actor: "Organization/clinic-a", Patient: "Patient/p1",
//			Purpose: "COC", Effect: audit.EffectPermit, Obligations: []string{"NORDSCLCD"},
//			Trail:  []string{"Consent/c1/_history/3#provision"},
//			Inputs: []audit.Input{{Ref: audit.Ref("Consent", "c1", consent.Version), Hash: consent.Hash}},
//			Bundle: &audit.Input{Ref: "Bundle/" + bundleID, Hash: audit.HashBytes(body)},
//			Observer: "Device/pathway",
//		})
//		return err // with the resources and the outbox message, in the same transaction
//	})
//	checkpointer.Notify()
//
// A Checkpointer (one per server or worker process) signs checkpoints at
// least every N entries or T seconds; entries committed before a crash are
// covered by the next checkpoint.
//
// # Reading
//
//	log := audit.New(st)
//	receipt, err := log.Prove(ctx, exchangeID)            // entries + inclusion proofs + checkpoint
//	check, err := audit.CheckReceipt(data, verifier, body) // offline
//	report, err := audit.Verify(ctx, st, audit.VerifyOptions{Verifier: verifier, Rederiver: engine})
package audit
