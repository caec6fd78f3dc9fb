package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrLeaseLost is returned (wrapped) when a worker acks, retries,
// dead-letters, withholds or releases a message it no longer holds: its
// lease ran out and another worker may have claimed the message since.
// The worker must drop the message without further effect.
var ErrLeaseLost = errors.New("outbox lease lost")

// ErrSuperseded is returned (wrapped) by Requeue for a message a newer
// message of its stream follows: sending it again would deliver an older
// version after a newer one. Retry the newer one instead.
var ErrSuperseded = errors.New("a newer message of the same stream follows it")

// MessageState is where an outbox message is in its life.
type MessageState string

const (
	// StatePending waits for its NextAttemptAt.
	StatePending MessageState = "pending"
	// StateInflight is claimed by a worker until LeaseUntil. A message
	// whose lease ran out is due again.
	StateInflight MessageState = "inflight"
	// StateDelivered was accepted by the partner.
	StateDelivered MessageState = "delivered"
	// StateDead gave up: the attempts ran out, or the partner refused it
	// for good. An operator can Requeue it.
	StateDead MessageState = "dead"
	// StateWithheld was not sent because the decision no longer allowed
	// it when it was due (a consent revoked after enqueue).
	StateWithheld MessageState = "withheld"
)

func (s MessageState) valid() bool {
	switch s {
	case StatePending, StateInflight, StateDelivered, StateDead, StateWithheld:
		return true
	}
	return false
}

// Message is one outbox message: something to deliver to a partner.
//
// Payload is opaque to the store (package exchange decides what it holds);
// it may hold personal data, and LastError and Response never should:
// they are for operators and logs (a partner's OperationOutcome is kept
// in Response as the partner sent it, for operators only).
type Message struct {
	ID int64
	// Key makes enqueueing idempotent: a second Enqueue with the same key
	// changes nothing.
	Key     string
	Partner string
	Purpose string
	// Kind says what Payload is, such as "transaction".
	Kind    string
	Payload []byte
	// PayloadRef, when set at enqueue instead of Payload, names the
	// stored resource version ("Type/id/_history/N") whose bytes are the
	// payload: the message keeps no copy of its own. A message read back
	// has Payload filled from it (when payloads are read).
	PayloadRef string
	// Stream orders delivery: a message is not claimed while an older
	// message of the same stream is pending or inflight, and a dead or
	// withheld one is not requeued once a newer one is queued or
	// delivered, so that a partner never receives an older version of a
	// referral after a newer one. Empty: no order. It holds ids only.
	Stream string

	State         MessageState
	Attempts      int // claims so far
	NextAttemptAt time.Time
	LeaseOwner    string
	LeaseUntil    time.Time // zero unless inflight
	LastError     string
	Response      []byte
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// LogValue logs a message by id, partner and state only.
func (m Message) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("id", m.ID), slog.String("partner", m.Partner), slog.String("state", string(m.State)))
}

const messageColumns = "id, idempotency_key, partner, purpose, kind, payload, state, attempts, next_attempt_at, lease_owner, lease_until, last_error, response, created_at, updated_at, stream, payload_ref"

// streamFree is the condition, on a candidate row o of the outbox, that no
// older message of its stream is still to be sent.
const streamFree = `(o.stream = '' OR NOT EXISTS (SELECT 1 FROM outbox e WHERE e.stream = o.stream AND e.id < o.id AND e.state IN ('pending', 'inflight')))`

// Enqueue adds m to the outbox as pending, due at once (or at
// m.NextAttemptAt when it is later than now). It returns the message's
// id and whether it was new: a message with the same Key already in the
// outbox, in whatever state, is left as it is.
func (tx *Tx) Enqueue(ctx context.Context, m Message) (id int64, created bool, err error) {
	s := tx.s
	payload, err := m.payloadArg()
	if err != nil {
		return 0, false, err
	}
	now := s.clock()
	due := now
	if m.NextAttemptAt.After(now) {
		due = normTime(m.NextAttemptAt)
	}
	rs, err := tx.q.query(ctx, rebind(s.dialect, `INSERT INTO outbox
(idempotency_key, partner, purpose, kind, payload, state, attempts, next_attempt_at, created_at, updated_at, stream, payload_ref)
VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?, ?)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id`), m.Key, m.Partner, m.Purpose, m.Kind, payload, s.timeArg(due), s.timeArg(now), s.timeArg(now), m.Stream, m.PayloadRef)
	if err != nil {
		return 0, false, fmt.Errorf("enqueueing message for %s: %w", m.Partner, err)
	}
	id, created, err = scanID(rs)
	if err != nil {
		return 0, false, fmt.Errorf("enqueueing message for %s: %w", m.Partner, err)
	}
	if created {
		return id, true, nil
	}
	rs, err = tx.q.query(ctx, rebind(s.dialect, `SELECT id FROM outbox WHERE idempotency_key = ?`), m.Key)
	if err != nil {
		return 0, false, fmt.Errorf("enqueueing message for %s: %w", m.Partner, err)
	}
	id, _, err = scanID(rs)
	if err != nil {
		return 0, false, fmt.Errorf("enqueueing message for %s: %w", m.Partner, err)
	}
	return id, false, nil
}

// scanID reads one int64 from rs, if there is a row, and closes rs.
func scanID(rs rows) (int64, bool, error) {
	defer rs.Close()
	var id int64
	found := false
	if rs.Next() {
		if err := rs.Scan(&id); err != nil {
			return 0, false, err
		}
		found = true
	}
	return id, found, rs.Err()
}

// Claim leases up to n due messages to owner for lease: pending messages
// whose NextAttemptAt has come, and inflight messages whose lease ran out
// (their worker died). Each claim counts as an attempt. The longest due
// are claimed first; they are returned in id order. Concurrent claimers never get the same message:
// PostgreSQL skips rows another transaction has locked (FOR UPDATE SKIP
// LOCKED), SQLite has one writer at a time.
func (s *Store) Claim(ctx context.Context, owner string, n int, lease time.Duration) ([]Message, error) {
	if err := s.checkOpen(); err != nil {
		return nil, fmt.Errorf("claiming messages: %w", err)
	}
	if owner == "" || n < 1 || lease <= 0 {
		return nil, errors.New("claiming messages: owner, a positive count and a positive lease are required")
	}
	now := s.clock()
	until := normTime(now.Add(lease))
	lock := ""
	if s.dialect == DialectPostgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	// The two kinds of due message are picked by two index range scans.
	query := `UPDATE outbox SET state = 'inflight', lease_owner = ?, lease_until = ?, attempts = attempts + 1, updated_at = ?
WHERE id IN (
	SELECT id FROM (
		SELECT id, next_attempt_at AS due FROM outbox o WHERE state = 'pending' AND next_attempt_at <= ? AND ` + streamFree + `
		UNION ALL
		SELECT id, lease_until AS due FROM outbox o WHERE state = 'inflight' AND lease_until <= ? AND ` + streamFree + `
	) AS d ORDER BY due, id LIMIT ?
)
RETURNING ` + messageColumns
	if lock != "" {
		// PostgreSQL cannot lock through UNION: lock in the outer select.
		query = `UPDATE outbox SET state = 'inflight', lease_owner = ?, lease_until = ?, attempts = attempts + 1, updated_at = ?
WHERE id IN (
	SELECT id FROM outbox o
	WHERE ((state = 'pending' AND next_attempt_at <= ?) OR (state = 'inflight' AND lease_until <= ?)) AND ` + streamFree + `
	ORDER BY CASE WHEN state = 'pending' THEN next_attempt_at ELSE lease_until END, id
	LIMIT ?` + lock + `
)
RETURNING ` + messageColumns
	}
	// One statement: atomic on its own in both databases.
	rs, err := s.be.writer().query(ctx, rebind(s.dialect, query),
		owner, s.timeArg(until), s.timeArg(now), s.timeArg(now), s.timeArg(now), n)
	if err != nil {
		return nil, fmt.Errorf("claiming messages: %w", err)
	}
	out, err := scanMessages(rs)
	if err != nil {
		return nil, fmt.Errorf("claiming messages: %w", err)
	}
	// The versions named were committed with their messages: the read
	// pool sees them, and the writer stays free.
	if err := s.fillPayloads(ctx, s.be.reader(), out); err != nil {
		return nil, fmt.Errorf("claiming messages: %w", err)
	}
	// RETURNING gives no order.
	slices.SortFunc(out, func(a, b Message) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// Extend renews owner's lease on a claimed message: it lasts lease from
// now. A worker extends each message of its batch just before sending it,
// so that a batch longer than the lease never lets another worker claim
// and send a message this one is about to send. It returns ErrLeaseLost
// (wrapped) when owner no longer holds the message (another worker
// claimed it after the lease ran out, or it was settled): the worker must
// not send it. A lease that ran out but that nobody claimed since is
// still owner's and is renewed. Extending does not count as an attempt.
func (s *Store) Extend(ctx context.Context, id int64, owner string, lease time.Duration) error {
	if err := s.checkOpen(); err != nil {
		return fmt.Errorf("extending the lease of message %d: %w", id, err)
	}
	if owner == "" || lease <= 0 {
		return fmt.Errorf("extending the lease of message %d: an owner and a positive lease are required", id)
	}
	now := s.clock()
	return s.settleOn(ctx, s.be.writer(), "extending the lease of", id, owner, `lease_until = ?, updated_at = ?`,
		[]any{s.timeArg(normTime(now.Add(lease)))})
}

// The SET clauses of settling a message (the last placeholder is updated_at).
const (
	ackSet      = `state = 'delivered', lease_owner = '', lease_until = NULL, last_error = '', updated_at = ?`
	withholdSet = `state = 'withheld', lease_owner = '', lease_until = NULL, last_error = ?, updated_at = ?`
)

// Ack marks a claimed message delivered.
func (s *Store) Ack(ctx context.Context, id int64, owner string) error {
	return s.settle(ctx, "acking", id, owner, ackSet, nil)
}

// Retry puts a claimed message back to pending, due at at, with the
// reason of the failed attempt (no personal data: it is shown to
// operators and logged) and the partner's last response (its
// OperationOutcome, for operators), kept so that a message that runs out
// of attempts is dead-lettered with it. A nil response keeps the one
// kept before.
func (s *Store) Retry(ctx context.Context, id int64, owner string, at time.Time, reason string, response []byte) error {
	return s.settle(ctx, "retrying", id, owner, `state = 'pending', lease_owner = '', lease_until = NULL, next_attempt_at = ?, last_error = ?, response = COALESCE(?, response), updated_at = ?`,
		[]any{s.timeArg(normTime(at)), reason, response})
}

// DeadLetter gives up on a claimed message, with the reason and the
// partner's response (an OperationOutcome, kept for operators).
func (s *Store) DeadLetter(ctx context.Context, id int64, owner, reason string, response []byte) error {
	return s.settle(ctx, "dead-lettering", id, owner, `state = 'dead', lease_owner = '', lease_until = NULL, last_error = ?, response = ?, updated_at = ?`,
		[]any{reason, response})
}

// Withhold stops a claimed message for good because the decision no
// longer allows it, with the reason.
func (s *Store) Withhold(ctx context.Context, id int64, owner, reason string) error {
	return s.settle(ctx, "withholding", id, owner, withholdSet, []any{reason})
}

// Release gives a claimed message back unsent (a worker shutting down):
// pending, due at once, and the claim does not count as an attempt.
func (s *Store) Release(ctx context.Context, id int64, owner string) error {
	return s.settle(ctx, "releasing", id, owner, `state = 'pending', lease_owner = '', lease_until = NULL, attempts = attempts - 1, next_attempt_at = ?, updated_at = ?`,
		[]any{nil})
}

// settle applies set to message id if owner still holds its lease. The
// last placeholder of set is updated_at; a nil in args stands for now.
func (s *Store) settle(ctx context.Context, verb string, id int64, owner, set string, args []any) error {
	if err := s.checkOpen(); err != nil {
		return fmt.Errorf("%s message %d: %w", verb, id, err)
	}
	return s.settleOn(ctx, s.be.writer(), verb, id, owner, set, args)
}

// Ack marks a claimed message delivered inside the transaction, so that
// what records the delivery (the audit log's disclosure) commits with it.
func (tx *Tx) Ack(ctx context.Context, id int64, owner string) error {
	return tx.s.settleOn(ctx, tx.q, "acking", id, owner, ackSet, nil)
}

// Withhold stops a claimed message for good inside the transaction, as
// Store.Withhold does.
func (tx *Tx) Withhold(ctx context.Context, id int64, owner, reason string) error {
	return tx.s.settleOn(ctx, tx.q, "withholding", id, owner, withholdSet, []any{reason})
}

// settleOn is settle on the querier q (the store's writer or a transaction).
func (s *Store) settleOn(ctx context.Context, q querier, verb string, id int64, owner, set string, args []any) error {
	now := s.timeArg(s.clock())
	for i, a := range args {
		if a == nil {
			args[i] = now
		}
	}
	args = append(args, now, id, owner)
	rs, err := q.query(ctx, rebind(s.dialect, `UPDATE outbox SET `+set+`
WHERE id = ? AND state = 'inflight' AND lease_owner = ? RETURNING id`), args...)
	if err != nil {
		return fmt.Errorf("%s message %d: %w", verb, id, err)
	}
	_, found, err := scanID(rs)
	if err != nil {
		return fmt.Errorf("%s message %d: %w", verb, id, err)
	}
	if !found {
		return fmt.Errorf("%s message %d: %w", verb, id, ErrLeaseLost)
	}
	return nil
}

// Requeue makes a dead or withheld message pending again, due at once,
// with its attempts reset (an operator's retry). It returns ErrNotFound
// when no dead or withheld message has that id.
func (s *Store) Requeue(ctx context.Context, id int64) error {
	if err := s.checkOpen(); err != nil {
		return fmt.Errorf("requeueing message %d: %w", id, err)
	}
	now := s.timeArg(s.clock())
	// Not when a newer message of its stream is queued or delivered: it
	// would send an older version after a newer one.
	rs, err := s.be.reader().query(ctx, rebind(s.dialect, `SELECT n.id FROM outbox o JOIN outbox n ON n.stream = o.stream AND n.id > o.id
WHERE o.id = ? AND o.stream <> '' AND n.state IN ('pending', 'inflight', 'delivered') ORDER BY n.id LIMIT 1`), id)
	if err != nil {
		return fmt.Errorf("requeueing message %d: %w", id, err)
	}
	newer, found, err := scanID(rs)
	if err != nil {
		return fmt.Errorf("requeueing message %d: %w", id, err)
	}
	if found {
		return fmt.Errorf("requeueing message %d: message %d of the same referral and partner is newer and queued or delivered: %w", id, newer, ErrSuperseded)
	}
	rs, err = s.be.writer().query(ctx, rebind(s.dialect, `UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ?
WHERE id = ? AND state IN ('dead', 'withheld') RETURNING id`), now, now, id)
	if err != nil {
		return fmt.Errorf("requeueing message %d: %w", id, err)
	}
	_, found, err = scanID(rs)
	if err != nil {
		return fmt.Errorf("requeueing message %d: %w", id, err)
	}
	if !found {
		return fmt.Errorf("requeueing message %d: no dead or withheld message with this id: %w", id, ErrNotFound)
	}
	return nil
}

// Message returns one outbox message by id, or an error wrapping
// ErrNotFound.
func (s *Store) Message(ctx context.Context, id int64) (Message, error) {
	if err := s.checkOpen(); err != nil {
		return Message{}, fmt.Errorf("reading message %d: %w", id, err)
	}
	rs, err := s.be.reader().query(ctx, rebind(s.dialect, `SELECT `+messageColumns+` FROM outbox WHERE id = ?`), id)
	if err != nil {
		return Message{}, fmt.Errorf("reading message %d: %w", id, err)
	}
	ms, err := scanMessages(rs)
	if err == nil {
		err = s.fillPayloads(ctx, s.be.reader(), ms)
	}
	if err != nil {
		return Message{}, fmt.Errorf("reading message %d: %w", id, err)
	}
	if len(ms) == 0 {
		return Message{}, fmt.Errorf("reading message %d: %w", id, ErrNotFound)
	}
	return ms[0], nil
}

// MessageQuery selects outbox messages. Zero fields select everything.
type MessageQuery struct {
	State   MessageState
	Partner string
	AfterID int64 // for paging: only messages with a larger id
	Limit   int   // default DefaultSearchLimit, at most MaxSearchLimit
	// WithPayload reads the payloads too; listings usually leave them out.
	WithPayload bool
}

// Messages lists outbox messages by id.
func (s *Store) Messages(ctx context.Context, q MessageQuery) ([]Message, error) {
	if err := s.checkOpen(); err != nil {
		return nil, fmt.Errorf("listing messages: %w", err)
	}
	limit := q.Limit
	switch {
	case limit == 0:
		limit = DefaultSearchLimit
	case limit < 0 || limit > MaxSearchLimit:
		return nil, fmt.Errorf("listing messages: limit %d is outside 1 to %d", q.Limit, MaxSearchLimit)
	}
	if q.State != "" && !q.State.valid() {
		return nil, fmt.Errorf("listing messages: unknown state %q", q.State)
	}
	cols := messageColumns
	if !q.WithPayload {
		cols = strings.Replace(cols, "payload", "NULL AS payload", 1)
	}
	query := `SELECT ` + cols + ` FROM outbox WHERE id > ?`
	args := []any{q.AfterID}
	if q.State != "" {
		query += ` AND state = ?`
		args = append(args, string(q.State))
	}
	if q.Partner != "" {
		query += ` AND partner = ?`
		args = append(args, q.Partner)
	}
	query += ` ORDER BY id LIMIT ?`
	args = append(args, limit)
	rs, err := s.be.reader().query(ctx, rebind(s.dialect, query), args...)
	if err != nil {
		return nil, fmt.Errorf("listing messages: %w", err)
	}
	ms, err := scanMessages(rs)
	if err == nil && q.WithPayload {
		err = s.fillPayloads(ctx, s.be.reader(), ms)
	}
	if err != nil {
		return nil, fmt.Errorf("listing messages: %w", err)
	}
	return ms, nil
}

// OutboxStats counts messages by state, with the age of the oldest
// pending or inflight one (the outbox's lag).
type OutboxStats struct {
	Counts        map[MessageState]int64
	OldestWaiting time.Duration
	// Held counts the sends held for want of a permitting decision
	// (Tx.Hold), which are not in the outbox yet.
	Held int64
}

// OutboxStats reports the outbox's depth by state and its lag.
func (s *Store) OutboxStats(ctx context.Context) (OutboxStats, error) {
	st := OutboxStats{Counts: map[MessageState]int64{}}
	if err := s.checkOpen(); err != nil {
		return st, fmt.Errorf("reading outbox stats: %w", err)
	}
	rs, err := s.be.reader().query(ctx, `SELECT state, count(*), min(created_at) FROM outbox GROUP BY state`)
	if err != nil {
		return st, fmt.Errorf("reading outbox stats: %w", err)
	}
	defer rs.Close()
	now := s.clock()
	for rs.Next() {
		var (
			state  string
			n      int64
			oldest timeValue
		)
		if err := rs.Scan(&state, &n, &oldest); err != nil {
			return st, fmt.Errorf("reading outbox stats: %w", err)
		}
		st.Counts[MessageState(state)] = n
		if state == string(StatePending) || state == string(StateInflight) {
			st.OldestWaiting = max(st.OldestWaiting, now.Sub(oldest.t))
		}
	}
	if err := rs.Err(); err != nil {
		return st, fmt.Errorf("reading outbox stats: %w", err)
	}
	rs.Close()
	held, err := s.be.reader().query(ctx, `SELECT count(*) FROM held_messages`)
	if err != nil {
		return st, fmt.Errorf("reading outbox stats: %w", err)
	}
	defer held.Close()
	if held.Next() {
		if err := held.Scan(&st.Held); err != nil {
			return st, fmt.Errorf("reading outbox stats: %w", err)
		}
	}
	if err := held.Err(); err != nil {
		return st, fmt.Errorf("reading outbox stats: %w", err)
	}
	return st, nil
}

// nullTime scans a timestamp that may be NULL (or empty text in SQLite).
type nullTime struct{ t time.Time }

func (v *nullTime) Scan(src any) error {
	switch x := src.(type) {
	case nil:
		v.t = time.Time{}
		return nil
	case string:
		if x == "" {
			v.t = time.Time{}
			return nil
		}
	case []byte:
		if len(x) == 0 {
			v.t = time.Time{}
			return nil
		}
	}
	var tv timeValue
	if err := tv.Scan(src); err != nil {
		return err
	}
	v.t = tv.t
	return nil
}

// payloadArg checks that m has what Enqueue requires and returns the
// payload column's value: the bytes, or none when PayloadRef names them.
func (m *Message) payloadArg() ([]byte, error) {
	if m.Key == "" || m.Partner == "" || m.Kind == "" || len(m.Payload) == 0 && m.PayloadRef == "" {
		return nil, errors.New("enqueueing message: key, partner, kind and a payload (or a payload reference) are required")
	}
	if m.PayloadRef == "" {
		return m.Payload, nil
	}
	if len(m.Payload) != 0 {
		return nil, errors.New("enqueueing message: a payload and a payload reference are exclusive")
	}
	if _, _, _, err := parseVersionRef(m.PayloadRef); err != nil {
		return nil, fmt.Errorf("enqueueing message: %w", err)
	}
	return []byte{}, nil
}

// parseVersionRef reads "Type/id/_history/N".
func parseVersionRef(ref string) (typ, id string, version int64, err error) {
	parts := strings.Split(ref, "/")
	if len(parts) == 4 && parts[2] == "_history" {
		v, perr := strconv.ParseInt(parts[3], 10, 64)
		if perr == nil && v >= 1 && checkKey(parts[0], parts[1]) == nil {
			return parts[0], parts[1], v, nil
		}
	}
	return "", "", 0, fmt.Errorf("payload reference %q is not Type/id/_history/N", ref)
}

// fillPayloads reads the payload of each message of ms that names a stored
// version, through q: one query for all the versions named (a claimed
// batch of deliveries), one read each for a version named once.
func (s *Store) fillPayloads(ctx context.Context, q querier, ms []Message) error {
	type version struct {
		typ, id string
		v       int64
	}
	index := map[string]int{} // ref -> position in vs
	var vs []version
	for i := range ms {
		m := &ms[i]
		if m.PayloadRef == "" {
			continue
		}
		if _, ok := index[m.PayloadRef]; ok {
			continue
		}
		typ, id, v, err := parseVersionRef(m.PayloadRef)
		if err != nil {
			return fmt.Errorf("message %d: %w", m.ID, err)
		}
		index[m.PayloadRef] = len(vs)
		vs = append(vs, version{typ, id, v})
	}
	if len(vs) == 0 {
		return nil
	}
	data := make([][]byte, len(vs))
	if len(vs) == 1 {
		r, err := s.getVersion(ctx, q, vs[0].typ, vs[0].id, vs[0].v)
		if err != nil {
			return s.payloadMissing(ms, err)
		}
		data[0] = r.Data
	} else {
		types, ids, nums := make([]string, len(vs)), make([]string, len(vs)), make([]int64, len(vs))
		for i, v := range vs {
			types[i], ids[i], nums[i] = v.typ, v.id, v.v
		}
		query, args := s.versionsQuery(types, ids, nums)
		rs, err := q.query(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("reading the payloads of %d messages: %w", len(ms), err)
		}
		defer rs.Close()
		for rs.Next() {
			var (
				n int64
				b []byte
			)
			if err := rs.Scan(&n, &b); err != nil {
				return fmt.Errorf("reading the payloads of %d messages: %w", len(ms), err)
			}
			if n >= 0 && n < int64(len(data)) {
				data[n] = b
			}
		}
		if err := rs.Err(); err != nil {
			return fmt.Errorf("reading the payloads of %d messages: %w", len(ms), err)
		}
	}
	for i := range ms {
		m := &ms[i]
		if m.PayloadRef == "" {
			continue
		}
		b := data[index[m.PayloadRef]]
		if b == nil {
			return fmt.Errorf("message %d: reading its payload %s: %w", m.ID, m.PayloadRef, ErrNotFound)
		}
		m.Payload = b
	}
	return nil
}

// payloadMissing is the error of the one version ms name, for the first
// message naming it.
func (s *Store) payloadMissing(ms []Message, err error) error {
	for _, m := range ms {
		if m.PayloadRef != "" {
			return fmt.Errorf("message %d: reading its payload %s: %w", m.ID, m.PayloadRef, err)
		}
	}
	return err
}

// versionsQuery returns a query for the data of the stored versions
// (types[i], ids[i], nums[i]), each row its position (from 0) and its
// bytes, through the primary keys of resources and resource_history (a
// version is in exactly one of them), and its arguments.
func (s *Store) versionsQuery(types, ids []string, nums []int64) (string, []any) {
	if s.dialect == DialectPostgres {
		const one = `SELECT k.n - 1, x.data FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY AS k(t, i, v, n),
	LATERAL (SELECT data FROM %s WHERE resource_type = k.t AND id = k.i AND version = k.v OFFSET 0) AS x`
		return fmt.Sprintf(one, "resources") + "\nUNION ALL\n" + fmt.Sprintf(one, "resource_history"), []any{types, ids, nums}
	}
	const one = `SELECT k.key, x.data FROM json_each(?%d) AS k CROSS JOIN %s x
	ON x.resource_type = k.value ->> 0 AND x.id = k.value ->> 1 AND x.version = k.value ->> 2`
	return fmt.Sprintf(one, 1, "resources") + "\nUNION ALL\n" + fmt.Sprintf(one, 1, "resource_history"), []any{jsonKeys(types, ids, nums)}
}

func scanMessages(rs rows) ([]Message, error) {
	defer rs.Close()
	var out []Message
	for rs.Next() {
		var (
			m                      Message
			state                  string
			next, created, updated timeValue
			lease                  nullTime
			payload, response      []byte
		)
		if err := rs.Scan(&m.ID, &m.Key, &m.Partner, &m.Purpose, &m.Kind, &payload, &state, &m.Attempts,
			&next, &m.LeaseOwner, &lease, &m.LastError, &response, &created, &updated, &m.Stream, &m.PayloadRef); err != nil {
			return nil, fmt.Errorf("reading row: %w", err)
		}
		m.State = MessageState(state)
		m.Payload, m.Response = payload, response
		m.NextAttemptAt, m.LeaseUntil, m.CreatedAt, m.UpdatedAt = next.t, lease.t, created.t, updated.t
		out = append(out, m)
	}
	return out, rs.Err()
}
