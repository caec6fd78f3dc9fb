package store

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// AuditBatchSize is the most records ScanAuditBatches hands over at once.
const AuditBatchSize = 1024

// auditBatchPage is how many records ScanAuditBatches reads per query.
const auditBatchPage = 8 * AuditBatchSize

// ScanAuditBatches calls fn with every record of the log from sequence
// number from on, with its node hashes, in sequence order, in batches of
// at most AuditBatchSize records: what ScanAudit(AuditScan{From: from,
// Nodes: true}) reads, read for a verifier that reads everything. The
// records of one batch share a few allocations instead of a dozen each.
// fn may keep the batch and its records: the store never writes to their
// memory again (the verifier relies on it). It stops at the first error fn
// returns and returns it unchanged.
func (s *Store) ScanAuditBatches(ctx context.Context, from int64, fn func([]AuditRecord) error) error {
	if err := s.checkOpen(); err != nil {
		return fmt.Errorf("reading audit log: %w", err)
	}
	query := rebind(s.dialect, `SELECT seq, entry_id, exchange, kind, recorded_at, data, nodes FROM audit_entries WHERE seq >= ? ORDER BY seq LIMIT ?`)
	next := from
	var prev auditBatchSizes // of the last batch, to size the next one
	for {
		n, last, err := s.scanAuditPage(ctx, query, next, &prev, fn)
		if err != nil {
			return err
		}
		if n < auditBatchPage {
			return nil
		}
		next = last + 1
	}
}

// auditBatch collects the records of one batch in shared memory: the bytes
// of their data and node hashes in one buffer, their strings in one string.
type auditBatch struct {
	recs  []AuditRecord
	bytes []byte   // data and nodes, one after the other, record by record
	text  []byte   // entry id, exchange and kind, record by record
	offs  [][5]int // per record: ends of its entry id, exchange, kind in text; of its data, nodes in bytes
}

// auditBatchSizes is what the records of a batch took.
type auditBatchSizes struct{ recs, bytes, text int }

// newAuditBatch returns an empty batch with room for AuditBatchSize
// records like those of prev, or of typical size.
func newAuditBatch(prev auditBatchSizes) *auditBatch {
	nb, nt := AuditBatchSize*640, AuditBatchSize*48
	if prev.recs > 0 {
		// The buffers grow by copying, which the records' slices into
		// them, made at the end, do not mind: ask for a little more than
		// the previous records took.
		per := func(n int) int { return (n/prev.recs + 1) * 9 / 8 * AuditBatchSize }
		nb, nt = per(prev.bytes), per(prev.text)
	}
	return &auditBatch{
		recs:  make([]AuditRecord, 0, AuditBatchSize),
		bytes: make([]byte, 0, nb),
		text:  make([]byte, 0, nt),
		offs:  make([][5]int, 0, AuditBatchSize),
	}
}

// add appends a record whose columns are only valid until the next row.
func (b *auditBatch) add(seq int64, id, exchange, kind []byte, t time.Time, data, nodes []byte) error {
	if len(nodes)%AuditHashSize != 0 {
		return fmt.Errorf("reading audit entry %d: node hashes take %d bytes, not a multiple of %d", seq, len(nodes), AuditHashSize)
	}
	var o [5]int
	b.text = append(b.text, id...)
	o[0] = len(b.text)
	b.text = append(b.text, exchange...)
	o[1] = len(b.text)
	b.text = append(b.text, kind...)
	o[2] = len(b.text)
	b.bytes = append(b.bytes, data...)
	o[3] = len(b.bytes)
	b.bytes = append(b.bytes, nodes...)
	o[4] = len(b.bytes)
	b.offs = append(b.offs, o)
	b.recs = append(b.recs, AuditRecord{Seq: seq, Time: t})
	return nil
}

// records returns the batch's records, their slices and strings filled in.
func (b *auditBatch) records() []AuditRecord {
	text := string(b.text)
	n := 0
	for _, o := range b.offs {
		n += (o[4] - o[3]) / AuditHashSize
	}
	nodes := make([][]byte, n)
	var t, d int // ends of the previous record in text and bytes
	for i := range b.recs {
		r, o := &b.recs[i], b.offs[i]
		r.EntryID, r.Exchange, r.Kind = text[t:o[0]], text[o[0]:o[1]], text[o[1]:o[2]]
		if o[3] > d {
			r.Data = b.bytes[d:o[3]:o[3]]
		}
		if o[4] > o[3] {
			k := (o[4] - o[3]) / AuditHashSize
			r.Nodes, nodes = nodes[:k:k], nodes[k:]
			for l := range r.Nodes {
				at := o[3] + l*AuditHashSize
				r.Nodes[l] = b.bytes[at : at+AuditHashSize : at+AuditHashSize]
			}
		}
		t, d = o[2], o[4]
	}
	return b.recs
}

// scanAuditPage reads one page of records from seq from on and hands them
// to fn in batches. It returns how many it read and the last one's seq.
func (s *Store) scanAuditPage(ctx context.Context, query string, from int64, prev *auditBatchSizes, fn func([]AuditRecord) error) (int, int64, error) {
	fail := func(err error) (int, int64, error) {
		return 0, 0, fmt.Errorf("reading audit log from entry %d: %w", from, err)
	}
	rs, err := s.be.reader().query(ctx, query, from, auditBatchPage)
	if err != nil {
		return fail(err)
	}
	defer rs.Close()
	var (
		row  = rowReader(rs)
		b    = newAuditBatch(*prev)
		n    int
		last int64
	)
	for rs.Next() {
		seq, err := row(b)
		if err != nil {
			return fail(err)
		}
		n, last = n+1, seq
		if len(b.recs) == AuditBatchSize {
			if err := fn(b.records()); err != nil {
				return 0, 0, err
			}
			*prev = auditBatchSizes{len(b.recs), len(b.bytes), len(b.text)}
			b = newAuditBatch(*prev)
		}
	}
	if err := rs.Err(); err != nil {
		return fail(err)
	}
	rs.Close()
	if len(b.recs) > 0 {
		if err := fn(b.records()); err != nil {
			return 0, 0, err
		}
	}
	return n, last, nil
}

// rowReader returns how to add the current row of rs to a batch: from the
// raw values of PostgreSQL's binary format when rs has them, else by
// scanning into buffers it reuses (sql.RawBytes for database/sql).
func rowReader(rs rows) func(b *auditBatch) (int64, error) {
	if pr, ok := rs.(pgx.Rows); ok {
		return pgRowReader(pr)
	}
	var (
		seq                             int64
		id, exchange, kind, data, nodes sql.RawBytes
		ts                              sql.RawBytes
		dest                            = []any{&seq, &id, &exchange, &kind, &ts, &data, &nodes}
	)
	return func(b *auditBatch) (int64, error) {
		if err := rs.Scan(dest...); err != nil {
			return 0, fmt.Errorf("reading row: %w", err)
		}
		t, err := sqliteTime(ts)
		if err != nil {
			return 0, fmt.Errorf("reading row: %w", err)
		}
		return seq, b.add(seq, id, exchange, kind, t, data, nodes)
	}
}

// sqliteTime reads a timestamp as timeValue does, in the usual layout
// without time.Parse.
func sqliteTime(b []byte) (time.Time, error) {
	if t, ok := parseSQLiteTime(b); ok {
		return t, nil
	}
	var tv timeValue
	err := tv.Scan(b)
	return tv.t, err
}

// parseSQLiteTime reads a time in exactly sqliteTimeLayout, quickly.
// Anything else is left to timeValue.
func parseSQLiteTime(b []byte) (time.Time, bool) {
	// 2006-01-02T15:04:05.000000Z
	if len(b) != len(sqliteTimeLayout) || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[19] != '.' || b[26] != 'Z' {
		return time.Time{}, false
	}
	var v [7]int
	for i, r := range [7][2]int{{0, 4}, {5, 7}, {8, 10}, {11, 13}, {14, 16}, {17, 19}, {20, 26}} {
		for _, c := range b[r[0]:r[1]] {
			if c < '0' || c > '9' {
				return time.Time{}, false
			}
			v[i] = v[i]*10 + int(c-'0')
		}
	}
	t := time.Date(v[0], time.Month(v[1]), v[2], v[3], v[4], v[5], v[6]*1000, time.UTC)
	// time.Parse refuses out-of-range fields that time.Date normalises.
	if t.Year() != v[0] || int(t.Month()) != v[1] || t.Day() != v[2] || t.Hour() != v[3] || t.Minute() != v[4] || t.Second() != v[5] {
		return time.Time{}, false
	}
	return t, true
}

// pgEpochSeconds is PostgreSQL's timestamp epoch, 2000-01-01 UTC, in
// seconds since the Unix epoch.
const pgEpochSeconds = 946_684_800

// pgRowReader reads the raw values of rows in PostgreSQL's binary format
// (int8, text, timestamptz, bytea, as pgx asks for them); a row in another
// format, or a timestamp that is not finite, is scanned as ScanAudit does.
func pgRowReader(rs pgx.Rows) func(b *auditBatch) (int64, error) {
	fds := rs.FieldDescriptions()
	binaryOK := len(fds) == 7 && fds[0].Format == pgtype.BinaryFormatCode && fds[0].DataTypeOID == pgtype.Int8OID &&
		fds[4].Format == pgtype.BinaryFormatCode && fds[4].DataTypeOID == pgtype.TimestamptzOID
	for _, i := range []int{1, 2, 3} {
		binaryOK = binaryOK && len(fds) == 7 && fds[i].DataTypeOID == pgtype.TextOID
	}
	for _, i := range []int{5, 6} {
		binaryOK = binaryOK && len(fds) == 7 && fds[i].Format == pgtype.BinaryFormatCode && fds[i].DataTypeOID == pgtype.ByteaOID
	}
	return func(b *auditBatch) (int64, error) {
		if binaryOK {
			v := rs.RawValues()
			if len(v) == 7 && len(v[0]) == 8 && len(v[4]) == 8 && v[1] != nil && v[2] != nil && v[3] != nil && v[5] != nil && v[6] != nil {
				seq := int64(binary.BigEndian.Uint64(v[0]))
				// Microseconds since 2000-01-01, decoded as pgx decodes
				// them; times pgx would refuse or treat apart (the
				// infinities), and any outside years 1 to 9999, are
				// scanned by pgx below.
				us := int64(binary.BigEndian.Uint64(v[4]))
				t := time.Unix(pgEpochSeconds+us/1_000_000, us%1_000_000*1000).UTC()
				if us != math.MaxInt64 && us != math.MinInt64 && t.Year() >= 1 && t.Year() <= 9999 {
					return seq, b.add(seq, v[1], v[2], v[3], t, v[5], v[6])
				}
			}
		}
		var (
			seq                int64
			id, exchange, kind string
			ts                 timeValue
			data, nodes        []byte
		)
		if err := rs.Scan(&seq, &id, &exchange, &kind, &ts, &data, &nodes); err != nil {
			return 0, fmt.Errorf("reading row: %w", err)
		}
		return seq, b.add(seq, []byte(id), []byte(exchange), []byte(kind), ts.t, data, nodes)
	}
}
