package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/transparency-dev/merkle/compact"

	aepb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/audit_event_go_proto"

	"github.com/pathway-fhir/pathway/store"
)

// Append logs entries at the end of the audit log inside the caller's
// transaction, so they are committed, or rolled back, with the state change
// they record. It returns each entry's sequence number (its leaf index).
//
// Each entry is normalized (Entry.Normalized) and must be valid. Append
// takes the log's sequencer lock for the rest of the transaction (on
// PostgreSQL a transaction-level advisory lock: one sequencer at a time
// across processes; on SQLite the transaction already is the only writer),
// reads the log's size and the roots of the perfect subtrees covering it
// (store.Tx.AuditHead), and stores with each entry the hashes of the
// Merkle nodes it completes, so proofs and roots never need more than a
// few dozen stored hashes. An entry id already
// logged fails with an error wrapping store.ErrAuditDuplicate, and the
// transaction stays usable.
//
// Keep the transaction short after Append: on PostgreSQL other sequencers
// wait for it to end.
func Append(ctx context.Context, tx *store.Tx, entries ...Entry) ([]int64, error) {
	return appendEntries(ctx, tx, false, entries)
}

// AppendNew logs, as Append does, those of entries that are not logged
// yet, leaving out an entry whose id is in the log already (a decision
// logged before: the same record ingested again) or earlier in entries.
// The log's head and the ids already logged are read together. It
// returns the sequence numbers of the entries it appended, in order.
func AppendNew(ctx context.Context, tx *store.Tx, entries ...Entry) ([]int64, error) {
	return appendEntries(ctx, tx, true, entries)
}

// appendEntries is Append, or AppendNew when onlyNew is set.
func appendEntries(ctx context.Context, tx *store.Tx, onlyNew bool, entries []Entry) ([]int64, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	datas := make([][]byte, len(entries))
	for i, e := range entries {
		e = e.Normalized()
		data, err := e.Canonical()
		if err != nil {
			return nil, fmt.Errorf("appending audit entry %d: %w", i, err)
		}
		entries[i] = e
		datas[i] = data
	}
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.ID
	}
	var head store.AuditHead
	var err error
	if onlyNew {
		var logged map[string]bool
		if head, logged, err = tx.AuditHeadLogged(ctx, ids); err != nil {
			return nil, fmt.Errorf("appending audit entries: %w", err)
		}
		var fresh []Entry
		var freshData [][]byte
		for i, e := range entries {
			if !logged[e.ID] {
				logged[e.ID] = true // twice in entries: logged once
				fresh, freshData = append(fresh, e), append(freshData, datas[i])
			}
		}
		entries, datas = fresh, freshData
	} else if head, err = tx.AuditHead(ctx, ids); err != nil {
		return nil, fmt.Errorf("appending audit entries: %w", err)
	}
	size := head.Size
	rng, err := rangeFactory.NewRange(0, uint64(size), head.Range)
	if err != nil {
		return nil, fmt.Errorf("appending audit entries: %w", err)
	}
	lh := newLeafHasher()
	recs := make([]store.AuditRecord, len(entries))
	seqs := make([]int64, len(entries))
	for i, e := range entries {
		seq := size + int64(i)
		nodes := make([][]byte, 0, store.AuditNodeCount(seq))
		if err := rng.Append(lh.sum(datas[i]), func(_ compact.NodeID, h []byte) {
			nodes = append(nodes, h)
		}); err != nil {
			return nil, fmt.Errorf("appending audit entry %s: %w", e.ID, err)
		}
		recs[i] = store.AuditRecord{
			Seq: seq, EntryID: e.ID, Exchange: e.Exchange, Kind: string(e.Kind), Time: e.Time,
			Data: datas[i], Nodes: nodes,
		}
		seqs[i] = seq
	}
	if err := tx.AppendAudit(ctx, recs); err != nil {
		return nil, err
	}
	return seqs, nil
}

// Log reads the audit log a store keeps: its size and root, proofs,
// checkpoints, receipts and AuditEvents. Entries are written with Append,
// inside the transaction of the state change they record. A Log is safe
// for concurrent use.
type Log struct {
	st *store.Store
}

// New returns the log kept in st.
func New(st *store.Store) *Log { return &Log{st: st} }

// Size returns the number of entries in the log.
func (l *Log) Size(ctx context.Context) (uint64, error) {
	n, err := l.st.AuditSize(ctx)
	return uint64(n), err
}

// Root returns the root hash of the tree of the first size entries, from
// the stored node hashes.
func (l *Log) Root(ctx context.Context, size uint64) ([]byte, error) {
	return rootAt(ctx, storeNodes(l.st), size)
}

// InclusionProof returns the proof that entry index is in the tree of the
// first size entries.
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	return inclusionProof(ctx, storeNodes(l.st), index, size)
}

// ConsistencyProof returns the proof that the tree of size1 entries is a
// prefix of the tree of size2 entries.
func (l *Log) ConsistencyProof(ctx context.Context, size1, size2 uint64) ([][]byte, error) {
	return consistencyProof(ctx, storeNodes(l.st), size1, size2)
}

// Record is one logged entry with its place in the log.
type Record struct {
	// Seq is the entry's leaf index.
	Seq int64
	// Data is its canonical bytes, as stored.
	Data []byte
	// Entry is Data parsed.
	Entry Entry
}

// Entries returns the entries whose id or exchange is id, in log order.
// An entry whose stored bytes no longer parse is an error (run Verify).
func (l *Log) Entries(ctx context.Context, id string) ([]Record, error) {
	recs, err := l.st.AuditRecordsFor(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]Record, 0, len(recs))
	for _, r := range recs {
		e, err := ParseEntry(r.Data)
		if err != nil {
			return nil, fmt.Errorf("reading audit entry %d: %w", r.Seq, err)
		}
		out = append(out, Record{Seq: r.Seq, Data: r.Data, Entry: e})
	}
	return out, nil
}

// Events calls fn with the AuditEvent of every entry recorded at or after
// since (every entry when since is zero), in log order. It stops at the
// first error, fn's included. An entry whose stored bytes no longer parse
// is an error naming it (run Verify).
func (l *Log) Events(ctx context.Context, since time.Time, fn func(seq int64, ev *aepb.AuditEvent) error) error {
	return l.st.ScanAudit(ctx, store.AuditScan{Since: since}, func(r store.AuditRecord) error {
		e, err := ParseEntry(r.Data)
		if err != nil {
			return fmt.Errorf("reading audit entry %d: %w", r.Seq, err)
		}
		ev, err := e.AuditEvent()
		if err != nil {
			return fmt.Errorf("building the AuditEvent of audit entry %d: %w", r.Seq, err)
		}
		return fn(r.Seq, ev)
	})
}

// ErrNotCheckpointed is returned (wrapped) by Prove when no stored
// checkpoint covers an entry yet.
var ErrNotCheckpointed = errors.New("not covered by a checkpoint yet")

// Prove returns a receipt for the entries whose id or exchange is id: each
// entry's bytes and its inclusion proof in the tree of the latest stored
// checkpoint, with that signed checkpoint. An id with no entry is an error
// wrapping store.ErrNotFound; entries beyond the latest checkpoint give
// ErrNotCheckpointed (sign a checkpoint first).
//
// Prove checks each proof against the checkpoint's root before it returns,
// so it never hands out a receipt that cannot verify.
func (l *Log) Prove(ctx context.Context, id string) (*Receipt, error) {
	recs, err := l.Entries(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("proving %q: %w", id, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("proving %q: no audit entry has this id or exchange: %w", id, store.ErrNotFound)
	}
	cp, err := l.st.LatestAuditCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("proving %q: entry %d is %w (no checkpoint is stored)", id, recs[0].Seq, ErrNotCheckpointed)
	}
	if err != nil {
		return nil, fmt.Errorf("proving %q: %w", id, err)
	}
	body, err := checkpointBody(cp.Note)
	if err != nil {
		return nil, fmt.Errorf("proving %q: latest checkpoint: %w", id, err)
	}
	rc := &Receipt{Format: ReceiptFormat, Checkpoint: string(cp.Note)}
	for _, r := range recs {
		if uint64(r.Seq) >= body.Size {
			return nil, fmt.Errorf("proving %q: entry %d is %w (the latest covers %d entries)", id, r.Seq, ErrNotCheckpointed, body.Size)
		}
		p, err := l.InclusionProof(ctx, uint64(r.Seq), body.Size)
		if err != nil {
			return nil, fmt.Errorf("proving %q: entry %d: %w", id, r.Seq, err)
		}
		if err := VerifyInclusion(r.Data, uint64(r.Seq), body.Size, p, body.Hash); err != nil {
			return nil, fmt.Errorf("proving %q: entry %d does not verify against the latest checkpoint (run pathway audit verify): %w", id, r.Seq, err)
		}
		rc.Entries = append(rc.Entries, ReceiptEntry{Index: uint64(r.Seq), Leaf: r.Data, Proof: p, Entry: r.Data})
	}
	return rc, nil
}
