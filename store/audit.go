package store

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// The audit log's storage: the rows of package audit's Merkle log and its
// signed checkpoints. The store keeps bytes and hashes and hands out
// sequence numbers without gaps; what the bytes mean, how they are hashed
// and how proofs are built is package audit's business (docs/audit.md).

// ErrAuditDuplicate is returned (wrapped) by AppendAudit when an entry id is
// already in the log or appears twice in one append. The transaction is
// still usable: nothing was written.
var ErrAuditDuplicate = errors.New("audit entry id already logged")

// AuditHashSize is the size of every hash the audit log stores (SHA-256).
const AuditHashSize = 32

// AuditRecord is one leaf of the audit log as the store keeps it.
type AuditRecord struct {
	// Seq is the leaf index: 0 for the first entry, one more for each
	// entry after it, without gaps.
	Seq int64
	// EntryID is the entry's unique id.
	EntryID string
	// Exchange groups the entries of one exchange (a decision and its
	// disclosure); may be empty.
	Exchange string
	// Kind is the entry's kind (decision, disclosure, access).
	Kind string
	// Time is when the entry was recorded, in UTC to the microsecond.
	Time time.Time
	// Data is the entry's canonical bytes: the Merkle leaf.
	Data []byte
	// Nodes are the hashes of the Merkle tree nodes this leaf completes:
	// Nodes[l] is node (level l, index Seq>>l), for l from 0 (the leaf
	// hash) to trailing_zeros(Seq+1). AuditNodeCount gives their number.
	// Reads fill Nodes only when asked to.
	Nodes [][]byte
}

// AuditNodeCount returns how many node hashes the leaf at seq completes,
// and so stores: 1 + the number of trailing zero bits of seq+1.
func AuditNodeCount(seq int64) int { return 1 + bits.TrailingZeros64(uint64(seq)+1) }

// AuditNodeID names a node of the audit log's Merkle tree: Level 0 are the
// leaves; node (l, k) covers leaves k*2^l to (k+1)*2^l - 1.
type AuditNodeID struct {
	Level uint
	Index uint64
}

// row returns the seq of the record that stores the node: the last leaf it
// covers.
func (id AuditNodeID) row() (int64, bool) {
	if id.Level >= 63 || id.Index >= (1<<(63-id.Level))-1 {
		return 0, false
	}
	return int64((id.Index+1)<<id.Level) - 1, true
}

// AuditCheckpoint is a signed statement of the log's size and root hash.
type AuditCheckpoint struct {
	// Size is the number of entries the checkpoint covers.
	Size int64
	// Root is the Merkle root hash of those entries.
	Root []byte
	// Note is the signed note, byte for byte as signed.
	Note []byte
	// CreatedAt is when it was stored, from the store's clock.
	CreatedAt time.Time
}

// auditBatchRows is the number of rows in one multi-row audit insert.
const auditBatchRows = 500

// auditLockSQL takes the sequencer lock of the schema's audit log for the
// rest of the transaction. The key is derived from the schema name, so logs
// in other schemas of the same database do not wait for each other.
const auditLockSQL = `SELECT pg_advisory_xact_lock(hashtextextended('pathway audit sequencer ' || current_schema(), 0))`

const auditSizeSQL = `SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_entries`

// auditHeadSQL reads the log's size (the first column of one row) and, on
// PostgreSQL, the seq and nodes of the rows holding the roots of the
// perfect subtrees covering it (the second and third columns of one row
// each); rows of entry ids already logged can follow in the fourth. Each
// root row is looked up by its seq, in a LATERAL subquery the planner
// cannot turn into a scan of the growing table (OFFSET 0 keeps it apart).
func auditHeadSQL(d Dialect) string {
	if d == DialectPostgres {
		return `WITH size AS (SELECT COALESCE(MAX(seq) + 1, 0) AS n FROM audit_entries)
SELECT n, NULL::bigint, NULL::bytea, NULL::text FROM size
UNION ALL
SELECT NULL, e.seq, e.nodes, NULL FROM size, generate_series(0, 62) AS b,
	LATERAL (SELECT seq, nodes FROM audit_entries WHERE seq = ((size.n >> b) << b) - 1 OFFSET 0) AS e
WHERE (size.n >> b) & 1 = 1`
	}
	// SQLite: the size only; AuditHead reads the roots after it.
	return `SELECT COALESCE(MAX(seq) + 1, 0), NULL, NULL, NULL FROM audit_entries`
}

// AuditHead is what appending needs to know of the log: its size, and the
// hashes of the perfect subtrees that cover it.
type AuditHead struct {
	// Size is the number of entries: the sequence number of the next one.
	Size int64
	// Range holds the root hashes of the perfect subtrees covering entries
	// 0 to Size-1, left to right (largest first): one per bit set in Size.
	Range [][]byte
}

// AuditHead makes the transaction the log's only sequencer until it ends,
// checks that none of newIDs is logged yet, and returns the log's head.
// On PostgreSQL it takes a transaction-level advisory lock, so appends from
// several processes queue instead of failing; on SQLite the transaction
// already holds the database's single write lock. An id already logged
// fails with ErrAuditDuplicate, and the transaction stays usable.
func (tx *Tx) AuditHead(ctx context.Context, newIDs []string) (AuditHead, error) {
	head, logged, err := tx.auditHead(ctx, newIDs)
	if err == nil && len(logged) > 0 {
		for _, id := range newIDs { // the first in newIDs, for a stable message
			if logged[id] {
				return AuditHead{}, fmt.Errorf("appending audit entries: entry id %q: %w", id, ErrAuditDuplicate)
			}
		}
	}
	return head, err
}

// AuditHeadLogged is AuditHead for an append that leaves out the entries
// already logged: instead of failing on them, it returns which of ids are
// in the log, read with the head (one statement on PostgreSQL, with the
// lock).
func (tx *Tx) AuditHeadLogged(ctx context.Context, ids []string) (AuditHead, map[string]bool, error) {
	head, logged, err := tx.auditHead(ctx, ids)
	if logged == nil && err == nil {
		logged = map[string]bool{}
	}
	return head, logged, err
}

// auditHead reads the head and which of newIDs are logged (nil if none).
func (tx *Tx) auditHead(ctx context.Context, newIDs []string) (AuditHead, map[string]bool, error) {
	s := tx.s
	var lock []statement
	if s.dialect == DialectPostgres {
		lock = []statement{{sql: auditLockSQL}}
	}
	// One statement reads the size, the rows holding the roots of the
	// perfect subtrees covering [0, n) (for each bit b set in n, the
	// subtree ending at leaf ((n >> b) << b) - 1, whose root is that row's
	// node at level b) and which of the new ids are logged already (one
	// list argument, however many); on PostgreSQL it goes with the lock in
	// one round trip, and runs after it. The transaction is the sequencer,
	// so nothing appends in between (nor between the two statements SQLite
	// runs).
	query := s.sql.auditHead
	var args []any
	if len(newIDs) > 0 {
		cond, arg := inList(s.dialect, "entry_id", newIDs)
		query += "\nUNION ALL SELECT NULL, NULL, NULL, entry_id FROM audit_entries WHERE " + cond
		args = append(args, arg)
	}
	head := AuditHead{Size: -1}
	var logged map[string]bool
	nodesOf := map[int64][]byte{}
	read := func(rs rows) error {
		defer rs.Close()
		for rs.Next() {
			var (
				n, seq *int64
				nodes  []byte
				id     *string
			)
			if err := rs.Scan(&n, &seq, &nodes, &id); err != nil {
				return err
			}
			switch {
			case id != nil:
				if logged == nil {
					logged = map[string]bool{}
				}
				logged[*id] = true
			case seq != nil:
				nodesOf[*seq] = nodes
			case n != nil:
				head.Size = *n
			}
		}
		return rs.Err()
	}
	rs, err := tx.q.queryAfter(ctx, lock, rebind(s.dialect, query), args...)
	if err == nil {
		err = read(rs)
	}
	if err == nil && s.dialect == DialectSQLite && head.Size > 0 {
		// SQLite, in process, reads the roots with a second statement
		// after the size: cheaper than its plan of the single one.
		var seqs []int64
		for b := 62; b >= 0; b-- {
			if head.Size>>b&1 == 1 {
				seqs = append(seqs, (head.Size>>b)<<b-1)
			}
		}
		cond, arg := inInts(s.dialect, "seq", seqs)
		rs, err = tx.q.query(ctx, `SELECT NULL, seq, nodes, NULL FROM audit_entries WHERE `+cond, arg)
		if err == nil {
			err = read(rs)
		}
	}
	if err != nil {
		return AuditHead{}, nil, fmt.Errorf("reading audit log head: %w", err)
	}
	if head.Size < 0 {
		return AuditHead{}, nil, errors.New("reading audit log head: no size returned")
	}
	for b := 62; b >= 0; b-- { // set bits of the size, largest first
		if head.Size>>b&1 == 0 {
			continue
		}
		last := (head.Size>>b)<<b - 1
		nodes := nodesOf[last]
		off := b * AuditHashSize
		if off+AuditHashSize > len(nodes) {
			return AuditHead{}, nil, fmt.Errorf("reading audit log head: entry %d lacks the node hash at level %d: %w", last, b, ErrNotFound)
		}
		head.Range = append(head.Range, nodes[off:off+AuditHashSize:off+AuditHashSize])
	}
	return head, logged, nil
}

// AuditSize returns the number of entries in the log, as the transaction
// sees it.
func (tx *Tx) AuditSize(ctx context.Context) (int64, error) { return auditSize(ctx, tx.q) }

// AuditSize returns the number of entries in the log.
func (s *Store) AuditSize(ctx context.Context) (int64, error) {
	if err := s.checkOpen(); err != nil {
		return 0, fmt.Errorf("reading audit log size: %w", err)
	}
	return auditSize(ctx, s.be.reader())
}

func auditSize(ctx context.Context, q querier) (int64, error) {
	rs, err := q.query(ctx, auditSizeSQL)
	if err != nil {
		return 0, fmt.Errorf("reading audit log size: %w", err)
	}
	n, _, err := scanID(rs)
	if err != nil {
		return 0, fmt.Errorf("reading audit log size: %w", err)
	}
	return n, nil
}

// AppendAudit writes recs at the end of the log, inside the transaction,
// after AuditHead (which hands out their sequence numbers and checked their
// ids). recs[i].Seq must be the log's size plus i: each insert statement
// writes only if the log still ends where its first record begins, so the
// sequence stays gapless whatever happens. Every record needs an entry id,
// a kind, data, a time, and exactly AuditNodeCount(Seq) node hashes of
// AuditHashSize bytes. An entry id twice in recs fails with
// ErrAuditDuplicate before anything is written. On PostgreSQL the rows go
// with the transaction's next statement or its commit (one round trip
// less), so a log that does not continue fails that statement or the
// commit, with the same message.
func (tx *Tx) AppendAudit(ctx context.Context, recs []AuditRecord) error {
	if len(recs) == 0 {
		return nil
	}
	s := tx.s
	seen := make(map[string]bool, len(recs))
	for i := range recs {
		r := &recs[i]
		if i > 0 && r.Seq != recs[0].Seq+int64(i) {
			return fmt.Errorf("appending audit entries: record %d has sequence number %d, want %d", i, r.Seq, recs[0].Seq+int64(i))
		}
		if err := checkAuditRecord(r); err != nil {
			return fmt.Errorf("appending audit entry %d: %w", r.Seq, err)
		}
		if seen[r.EntryID] {
			return fmt.Errorf("appending audit entry %d: entry id %q appears twice: %w", r.Seq, r.EntryID, ErrAuditDuplicate)
		}
		seen[r.EntryID] = true
	}
	for start := 0; start < len(recs); start += auditBatchRows {
		chunk := recs[start:min(start+auditBatchRows, len(recs))]
		var (
			n   int
			err error
		)
		switch s.dialect {
		case DialectSQLite:
			n, err = s.sqliteInsertAudit(ctx, tx.q, chunk)
		case DialectPostgres:
			// Sent with the transaction's next statement or its commit
			// (the entries are mostly the last write of a transaction):
			// one round trip less. It fails there if the log does not
			// end where the chunk begins.
			err = tx.q.execLater(ctx, postgresInsertAudit(chunk))
			n = len(chunk)
		default:
			err = fmt.Errorf("unhandled dialect %q", s.dialect)
		}
		if err != nil {
			return fmt.Errorf("appending audit entries %d to %d: %w", chunk[0].Seq, chunk[len(chunk)-1].Seq, err)
		}
		if n != len(chunk) {
			size, _ := auditSize(ctx, tx.q)
			return fmt.Errorf("appending audit entries: entry %d does not continue the log, which has %d entries", chunk[0].Seq, size)
		}
	}
	return nil
}

// checkAuditRecord validates what the store needs of a record. Messages
// name the entry by sequence number and id only.
func checkAuditRecord(r *AuditRecord) error {
	switch {
	case r.Seq < 0:
		return errors.New("negative sequence number")
	case r.EntryID == "" || len(r.EntryID) > 256:
		return errors.New("entry id must be 1 to 256 bytes")
	case r.Kind == "":
		return errors.New("kind is required")
	case len(r.Data) == 0:
		return errors.New("data is required")
	case r.Time.IsZero():
		return errors.New("time is required")
	}
	if want := AuditNodeCount(r.Seq); len(r.Nodes) != want {
		return fmt.Errorf("%d node hashes, want %d", len(r.Nodes), want)
	}
	for l, h := range r.Nodes {
		if len(h) != AuditHashSize {
			return fmt.Errorf("node hash at level %d has %d bytes, want %d", l, len(h), AuditHashSize)
		}
	}
	return nil
}

// countRows counts the rows of rs and closes it.
func countRows(rs rows) (int, error) {
	defer rs.Close()
	n := 0
	for rs.Next() {
		n++
	}
	return n, rs.Err()
}

// sqliteInsertAudit inserts recs if the log ends just before recs[0], and
// returns how many rows it inserted.
func (s *Store) sqliteInsertAudit(ctx context.Context, q querier, recs []AuditRecord) (int, error) {
	var b strings.Builder
	b.WriteString(`INSERT INTO audit_entries (seq, entry_id, exchange, kind, recorded_at, data, nodes) SELECT * FROM (VALUES `)
	args := make([]any, 0, len(recs)*7+1)
	for i := range recs {
		r := &recs[i]
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`(?, ?, ?, ?, ?, ?, ?)`)
		args = append(args, r.Seq, r.EntryID, r.Exchange, r.Kind, s.timeArg(normTime(r.Time)), r.Data, bytes.Join(r.Nodes, nil))
	}
	b.WriteString(`) WHERE (` + auditSizeSQL + `) = ? RETURNING seq`)
	args = append(args, recs[0].Seq)
	rs, err := q.query(ctx, b.String(), args...)
	if err != nil {
		return 0, err
	}
	return countRows(rs)
}

// postgresInsertAudit is the statement inserting recs if the log ends just
// before recs[0]. Otherwise it fails: the first sequence number becomes -1,
// which the table's check on seq refuses (the statement may run after the
// call that made it, so it cannot report a count to check).
func postgresInsertAudit(recs []AuditRecord) statement {
	const query = `INSERT INTO audit_entries (seq, entry_id, exchange, kind, recorded_at, data, nodes)
SELECT CASE WHEN (` + auditSizeSQL + `) = $8 THEN t.seq ELSE -1 END, t.entry_id, t.exchange, t.kind, t.recorded_at, t.data, t.nodes
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::bytea[], $7::bytea[])
	AS t(seq, entry_id, exchange, kind, recorded_at, data, nodes)`
	n := len(recs)
	seqs, times := make([]int64, n), make([]time.Time, n)
	ids, exchanges, kinds := make([]string, n), make([]string, n), make([]string, n)
	data, nodes := make([][]byte, n), make([][]byte, n)
	for i := range recs {
		r := &recs[i]
		seqs[i], ids[i], exchanges[i], kinds[i], times[i] = r.Seq, r.EntryID, r.Exchange, r.Kind, normTime(r.Time)
		data[i], nodes[i] = r.Data, bytes.Join(r.Nodes, nil)
	}
	first, last := recs[0].Seq, recs[n-1].Seq
	return statement{sql: query, args: []any{seqs, ids, exchanges, kinds, times, data, nodes, first}, fail: func(err error) error {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.ConstraintName == "audit_entries_seq_check" {
			return fmt.Errorf("appending audit entries: entry %d does not continue the log", first)
		}
		return fmt.Errorf("appending audit entries %d to %d: %w", first, last, err)
	}}
}

// AuditNodes returns the stored hashes of the nodes ids, in order, as the
// transaction sees them.
func (tx *Tx) AuditNodes(ctx context.Context, ids []AuditNodeID) ([][]byte, error) {
	return auditNodes(ctx, tx.s.dialect, tx.q, ids)
}

// AuditNodes returns the stored hashes of the nodes ids, in order. A node
// not stored (beyond the log, or not a completed subtree) is an error
// wrapping ErrNotFound.
func (s *Store) AuditNodes(ctx context.Context, ids []AuditNodeID) ([][]byte, error) {
	if err := s.checkOpen(); err != nil {
		return nil, fmt.Errorf("reading audit nodes: %w", err)
	}
	return auditNodes(ctx, s.dialect, s.be.reader(), ids)
}

func auditNodes(ctx context.Context, d Dialect, q querier, ids []AuditNodeID) ([][]byte, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rowsWanted := make(map[int64]bool, len(ids))
	var seqs []int64
	for _, id := range ids {
		seq, ok := id.row()
		if !ok {
			return nil, fmt.Errorf("reading audit node (%d, %d): %w", id.Level, id.Index, ErrNotFound)
		}
		if !rowsWanted[seq] {
			rowsWanted[seq] = true
			seqs = append(seqs, seq)
		}
	}
	blobs := make(map[int64][]byte, len(seqs))
	cond, arg := inInts(d, "seq", seqs)
	rs, err := q.query(ctx, rebind(d, `SELECT seq, nodes FROM audit_entries WHERE `+cond), arg)
	if err != nil {
		return nil, fmt.Errorf("reading audit nodes: %w", err)
	}
	defer rs.Close()
	for rs.Next() {
		var (
			seq  int64
			blob []byte
		)
		if err := rs.Scan(&seq, &blob); err != nil {
			return nil, fmt.Errorf("reading audit nodes: %w", err)
		}
		blobs[seq] = blob
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("reading audit nodes: %w", err)
	}
	out := make([][]byte, len(ids))
	for i, id := range ids {
		seq, _ := id.row()
		blob := blobs[seq]
		off := int(id.Level) * AuditHashSize
		if off+AuditHashSize > len(blob) {
			return nil, fmt.Errorf("reading audit node (%d, %d): %w", id.Level, id.Index, ErrNotFound)
		}
		out[i] = blob[off : off+AuditHashSize : off+AuditHashSize]
	}
	return out, nil
}

// AuditScan selects the records ScanAudit reads.
type AuditScan struct {
	// From is the first sequence number read.
	From int64
	// Since keeps records whose Time is at or after it, when not zero.
	Since time.Time
	// Nodes reads each record's node hashes too.
	Nodes bool
}

// auditPage is how many records ScanAudit reads per query.
const auditPage = 5000

// ScanAudit calls fn with every record that sc selects, in sequence order,
// reading in pages. It stops at the first error fn returns and returns it
// unchanged. fn may keep the records it is given.
func (s *Store) ScanAudit(ctx context.Context, sc AuditScan, fn func(AuditRecord) error) error {
	if err := s.checkOpen(); err != nil {
		return fmt.Errorf("reading audit log: %w", err)
	}
	nodes := "NULL"
	if sc.Nodes {
		nodes = "nodes"
	}
	query := `SELECT seq, entry_id, exchange, kind, recorded_at, data, ` + nodes + ` FROM audit_entries WHERE seq >= ?`
	if !sc.Since.IsZero() {
		query += ` AND recorded_at >= ?`
	}
	query = rebind(s.dialect, query+` ORDER BY seq LIMIT ?`)
	next := sc.From
	for {
		args := []any{next}
		if !sc.Since.IsZero() {
			args = append(args, s.timeArg(normTime(sc.Since)))
		}
		args = append(args, auditPage)
		recs, err := scanAuditRecords(ctx, s.be.reader(), query, args...)
		if err != nil {
			return fmt.Errorf("reading audit log from entry %d: %w", next, err)
		}
		for _, r := range recs {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(recs) < auditPage {
			return nil
		}
		next = recs[len(recs)-1].Seq + 1
	}
}

// AuditRecordsFor returns the records whose entry id or exchange is id, in
// sequence order, without node hashes (at most MaxSearchLimit).
func (s *Store) AuditRecordsFor(ctx context.Context, id string) ([]AuditRecord, error) {
	if err := s.checkOpen(); err != nil {
		return nil, fmt.Errorf("finding audit entries: %w", err)
	}
	if id == "" {
		return nil, errors.New("finding audit entries: empty id")
	}
	// Two index lookups: an OR of two columns can make the planner scan
	// the whole table.
	const cols = `SELECT seq, entry_id, exchange, kind, recorded_at, data, NULL FROM audit_entries `
	byID, err := scanAuditRecords(ctx, s.be.reader(), rebind(s.dialect, cols+`WHERE entry_id = ?`), id)
	if err != nil {
		return nil, fmt.Errorf("finding audit entries: %w", err)
	}
	recs, err := scanAuditRecords(ctx, s.be.reader(), rebind(s.dialect, cols+`WHERE exchange = ? ORDER BY seq LIMIT ?`), id, MaxSearchLimit)
	if err != nil {
		return nil, fmt.Errorf("finding audit entries: %w", err)
	}
	for _, r := range byID {
		if i, found := slices.BinarySearchFunc(recs, r.Seq, func(a AuditRecord, seq int64) int { return cmp.Compare(a.Seq, seq) }); !found {
			recs = slices.Insert(recs, i, r)
		}
	}
	return recs, nil
}

func scanAuditRecords(ctx context.Context, q querier, query string, args ...any) ([]AuditRecord, error) {
	rs, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []AuditRecord
	for rs.Next() {
		var (
			r     AuditRecord
			ts    timeValue
			nodes []byte
		)
		if err := rs.Scan(&r.Seq, &r.EntryID, &r.Exchange, &r.Kind, &ts, &r.Data, &nodes); err != nil {
			return nil, fmt.Errorf("reading row: %w", err)
		}
		r.Time = ts.t
		if nodes != nil {
			if len(nodes)%AuditHashSize != 0 {
				return nil, fmt.Errorf("reading audit entry %d: node hashes take %d bytes, not a multiple of %d", r.Seq, len(nodes), AuditHashSize)
			}
			r.Nodes = make([][]byte, len(nodes)/AuditHashSize)
			for l := range r.Nodes {
				r.Nodes[l] = nodes[l*AuditHashSize : (l+1)*AuditHashSize : (l+1)*AuditHashSize]
			}
		}
		out = append(out, r)
	}
	return out, rs.Err()
}

// PutAuditCheckpoint stores a checkpoint, stamped with the store's clock.
// It returns false, and changes nothing, when a checkpoint of that size is
// already stored.
func (s *Store) PutAuditCheckpoint(ctx context.Context, c AuditCheckpoint) (bool, error) {
	if err := s.checkOpen(); err != nil {
		return false, fmt.Errorf("storing audit checkpoint: %w", err)
	}
	if c.Size < 1 || len(c.Root) != AuditHashSize || len(c.Note) == 0 {
		return false, fmt.Errorf("storing audit checkpoint of size %d: a positive size, a %d-byte root and a note are required", c.Size, AuditHashSize)
	}
	rs, err := s.be.writer().query(ctx, rebind(s.dialect, `INSERT INTO audit_checkpoints (size, root, note, created_at)
VALUES (?, ?, ?, ?) ON CONFLICT (size) DO NOTHING RETURNING size`), c.Size, c.Root, c.Note, s.timeArg(s.clock()))
	if err != nil {
		return false, fmt.Errorf("storing audit checkpoint of size %d: %w", c.Size, err)
	}
	_, created, err := scanID(rs)
	if err != nil {
		return false, fmt.Errorf("storing audit checkpoint of size %d: %w", c.Size, err)
	}
	return created, nil
}

const checkpointColumns = "size, root, note, created_at"

// AuditCheckpoints returns up to limit stored checkpoints with a size
// greater than afterSize, smallest first. limit 0 means MaxSearchLimit.
func (s *Store) AuditCheckpoints(ctx context.Context, afterSize int64, limit int) ([]AuditCheckpoint, error) {
	if err := s.checkOpen(); err != nil {
		return nil, fmt.Errorf("listing audit checkpoints: %w", err)
	}
	if limit <= 0 || limit > MaxSearchLimit {
		limit = MaxSearchLimit
	}
	cps, err := s.queryCheckpoints(ctx, `SELECT `+checkpointColumns+` FROM audit_checkpoints WHERE size > ? ORDER BY size LIMIT ?`, afterSize, limit)
	if err != nil {
		return nil, fmt.Errorf("listing audit checkpoints: %w", err)
	}
	return cps, nil
}

// LatestAuditCheckpoint returns the checkpoint of the largest size, or an
// error wrapping ErrNotFound when none is stored.
func (s *Store) LatestAuditCheckpoint(ctx context.Context) (AuditCheckpoint, error) {
	if err := s.checkOpen(); err != nil {
		return AuditCheckpoint{}, fmt.Errorf("reading latest audit checkpoint: %w", err)
	}
	cps, err := s.queryCheckpoints(ctx, `SELECT `+checkpointColumns+` FROM audit_checkpoints ORDER BY size DESC LIMIT 1`)
	if err != nil {
		return AuditCheckpoint{}, fmt.Errorf("reading latest audit checkpoint: %w", err)
	}
	if len(cps) == 0 {
		return AuditCheckpoint{}, fmt.Errorf("reading latest audit checkpoint: %w", ErrNotFound)
	}
	return cps[0], nil
}

func (s *Store) queryCheckpoints(ctx context.Context, query string, args ...any) ([]AuditCheckpoint, error) {
	rs, err := s.be.reader().query(ctx, rebind(s.dialect, query), args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []AuditCheckpoint
	for rs.Next() {
		var (
			c  AuditCheckpoint
			ts timeValue
		)
		if err := rs.Scan(&c.Size, &c.Root, &c.Note, &ts); err != nil {
			return nil, fmt.Errorf("reading row: %w", err)
		}
		c.CreatedAt = ts.t
		out = append(out, c)
	}
	return out, rs.Err()
}
