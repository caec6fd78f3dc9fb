package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Held is an outbox message a referral's decision did not permit when it
// was made: it waits, one per stream (a referral and a partner), until a
// later decision permits it. Message holds what Enqueue would take (Key,
// Partner, Purpose, Kind, Payload or PayloadRef, Stream) and, read back,
// CreatedAt and UpdatedAt.
type Held struct {
	Message
	// Patient is the reference of the referral's patient, whose consents
	// decide: recording one of them re-decides the patient's held messages.
	Patient string
	// Reason says why it is held (the decision's trail: partners, codes
	// and resource references, never personal data).
	Reason string
}

const heldColumns = "stream, idempotency_key, partner, purpose, kind, payload, payload_ref, patient, reason, created_at, updated_at"

// Hold puts h in its stream's slot, replacing a message held there before
// (an older version of the same referral). Holding the message already
// held there (the same Key: a re-ingest of the same record) changes
// nothing, its times included.
func (tx *Tx) Hold(ctx context.Context, h Held) error {
	s := tx.s
	payload, err := h.payloadArg()
	if err != nil {
		return err
	}
	if h.Stream == "" || h.Patient == "" {
		return errors.New("holding message: a stream and a patient are required")
	}
	now := s.timeArg(s.clock())
	err = tx.q.exec(ctx, rebind(s.dialect, `INSERT INTO held_messages (`+heldColumns+`)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (stream) DO UPDATE SET idempotency_key = excluded.idempotency_key, partner = excluded.partner,
	purpose = excluded.purpose, kind = excluded.kind, payload = excluded.payload, payload_ref = excluded.payload_ref,
	patient = excluded.patient, reason = excluded.reason, updated_at = excluded.updated_at
WHERE held_messages.idempotency_key <> excluded.idempotency_key OR held_messages.reason <> excluded.reason`),
		h.Stream, h.Key, h.Partner, h.Purpose, h.Kind, payload, h.PayloadRef, h.Patient, h.Reason, now, now)
	if err != nil {
		return fmt.Errorf("holding message for %s: %w", h.Partner, err)
	}
	return nil
}

// Unhold empties the slots of streams: a newer version of those referrals
// was permitted and queued, so what they held is superseded.
func (tx *Tx) Unhold(ctx context.Context, streams []string) error {
	if len(streams) == 0 {
		return nil
	}
	cond, arg := inList(tx.s.dialect, "stream", streams)
	if err := tx.q.exec(ctx, rebind(tx.s.dialect, "DELETE FROM held_messages WHERE "+cond), arg); err != nil {
		return fmt.Errorf("releasing held messages: %w", err)
	}
	return nil
}

// Release empties the slot of stream if it still holds the message key,
// and reports whether it did: a caller moving that message to the outbox
// enqueues it only then (a newer version held since is not released on an
// older decision, and of two releases of the same message one enqueues).
func (tx *Tx) Release(ctx context.Context, stream, key string) (bool, error) {
	rs, err := tx.q.query(ctx, rebind(tx.s.dialect, "DELETE FROM held_messages WHERE stream = ? AND idempotency_key = ? RETURNING stream"), stream, key)
	if err != nil {
		return false, fmt.Errorf("releasing a held message: %w", err)
	}
	defer rs.Close()
	found := rs.Next()
	if err := rs.Err(); err != nil {
		return false, fmt.Errorf("releasing a held message: %w", err)
	}
	return found, nil
}

// HeldOf returns the messages held for patient, by stream, with their
// payloads.
func (s *Store) HeldOf(ctx context.Context, patient string) ([]Held, error) {
	if err := s.checkOpen(); err != nil {
		return nil, fmt.Errorf("reading held messages: %w", err)
	}
	rs, err := s.be.reader().query(ctx, rebind(s.dialect, "SELECT "+heldColumns+" FROM held_messages WHERE patient = ? ORDER BY stream"), patient)
	if err != nil {
		return nil, fmt.Errorf("reading held messages: %w", err)
	}
	hs, err := scanHeld(rs)
	if err != nil {
		return nil, fmt.Errorf("reading held messages: %w", err)
	}
	ms := make([]Message, len(hs))
	for i := range hs {
		ms[i] = hs[i].Message
	}
	if err := s.fillPayloads(ctx, s.be.reader(), ms); err != nil {
		return nil, fmt.Errorf("reading held messages: %w", err)
	}
	for i := range hs {
		hs[i].Payload = ms[i].Payload
	}
	return hs, nil
}

// HeldMessages lists held messages by stream after the stream after (for
// paging), at most limit (0: all), without their payloads: for operators.
func (s *Store) HeldMessages(ctx context.Context, after string, limit int) ([]Held, error) {
	if err := s.checkOpen(); err != nil {
		return nil, fmt.Errorf("listing held messages: %w", err)
	}
	q := "SELECT stream, idempotency_key, partner, purpose, kind, x'', payload_ref, patient, reason, created_at, updated_at FROM held_messages WHERE stream > ? ORDER BY stream"
	if s.dialect == DialectPostgres {
		q = "SELECT stream, idempotency_key, partner, purpose, kind, ''::bytea, payload_ref, patient, reason, created_at, updated_at FROM held_messages WHERE stream > ? ORDER BY stream"
	}
	args := []any{after}
	if limit > 0 {
		q += " LIMIT ?"
		args = append(args, limit)
	}
	rs, err := s.be.reader().query(ctx, rebind(s.dialect, q), args...)
	if err != nil {
		return nil, fmt.Errorf("listing held messages: %w", err)
	}
	hs, err := scanHeld(rs)
	if err != nil {
		return nil, fmt.Errorf("listing held messages: %w", err)
	}
	return hs, nil
}

func scanHeld(rs rows) ([]Held, error) {
	defer rs.Close()
	var out []Held
	for rs.Next() {
		var (
			h                Held
			payload          []byte
			created, updated timeValue
		)
		if err := rs.Scan(&h.Stream, &h.Key, &h.Partner, &h.Purpose, &h.Kind, &payload, &h.PayloadRef, &h.Patient, &h.Reason, &created, &updated); err != nil {
			return nil, fmt.Errorf("reading row: %w", err)
		}
		h.Payload = payload
		if len(h.Payload) == 0 {
			h.Payload = nil
		}
		h.CreatedAt, h.UpdatedAt = created.t, updated.t
		out = append(out, h)
	}
	return out, rs.Err()
}

// HeldPatients returns which of patients have messages held, leaving out
// the streams of except (what the caller has just held itself).
func (tx *Tx) HeldPatients(ctx context.Context, patients, except []string) ([]string, error) {
	if len(patients) == 0 {
		return nil, nil
	}
	if except == nil {
		except = []string{} // an array, not NULL, on PostgreSQL
	}
	d := tx.s.dialect
	in, inArg := inList(d, "patient", patients)
	out, outArg := inList(d, "stream", except)
	rs, err := tx.q.query(ctx, rebind(d, "SELECT DISTINCT patient FROM held_messages WHERE "+in+" AND NOT ("+out+") ORDER BY patient"), inArg, outArg)
	if err != nil {
		return nil, fmt.Errorf("reading held messages: %w", err)
	}
	defer rs.Close()
	var found []string
	for rs.Next() {
		var p string
		if err := rs.Scan(&p); err != nil {
			return nil, fmt.Errorf("reading held messages: %w", err)
		}
		found = append(found, p)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("reading held messages: %w", err)
	}
	return found, nil
}

// RequeueWithheld makes the withheld message id pending again, due at
// once, unless a newer message of its stream is queued or delivered (it
// would send an older version after a newer one), and reports whether it
// did and, when it did not, the message's state: a send withheld for a
// consent revoked before it went, released by a consent recorded since.
func (tx *Tx) RequeueWithheld(ctx context.Context, id int64) (bool, MessageState, error) {
	s := tx.s
	now := s.timeArg(s.clock())
	rs, err := tx.q.query(ctx, rebind(s.dialect, `UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ?, last_error = ''
WHERE id = ? AND state = 'withheld' AND NOT EXISTS (SELECT 1 FROM outbox n WHERE n.stream = outbox.stream AND outbox.stream <> ''
	AND n.id > outbox.id AND n.state IN ('pending', 'inflight', 'delivered'))
RETURNING id`), now, now, id)
	if err != nil {
		return false, "", fmt.Errorf("requeueing message %d: %w", id, err)
	}
	_, found, err := scanID(rs)
	if err != nil {
		return false, "", fmt.Errorf("requeueing message %d: %w", id, err)
	}
	if found {
		return true, StatePending, nil
	}
	rs, err = tx.q.query(ctx, rebind(s.dialect, `SELECT state FROM outbox WHERE id = ?`), id)
	if err != nil {
		return false, "", fmt.Errorf("requeueing message %d: %w", id, err)
	}
	defer rs.Close()
	var state string
	if rs.Next() {
		if err := rs.Scan(&state); err != nil {
			return false, "", fmt.Errorf("requeueing message %d: %w", id, err)
		}
	}
	return false, MessageState(state), rs.Err()
}

// heldRecheckMargin is how much earlier than a held message a Consent of
// its patient may have been stamped and still count as written after it:
// a row is stamped when its statement runs, not when it commits, so a
// consent stamped at t1 and committed at t3 may see a message held at t2
// (t1 < t2 < t3) by an ingest that decided before t3; clocks of several
// processes differ too. A consent that recent makes the sweep decide a
// message again a few times more, no more.
const heldRecheckMargin = 2 * time.Minute

// HeldToRecheck returns, at most limit, the patients with a message held
// since before one of their Consents was last written (within
// heldRecheckMargin): a consent recorded that did not get to re-decide
// them (the process stopped first, or an ingest held a message while the
// consent was being recorded), or a message marked to be decided again
// (RecheckSoon).
func (s *Store) HeldToRecheck(ctx context.Context, limit int) ([]string, error) {
	if err := s.checkOpen(); err != nil {
		return nil, fmt.Errorf("reading held messages: %w", err)
	}
	// The condition of the patient index, word for word, for its planner.
	rs, err := s.be.reader().query(ctx, `SELECT h.patient, h.updated_at,
	(SELECT max(r.last_updated) FROM resources r WHERE r.resource_type IN ('Consent', 'Task') AND r.resource_type = 'Consent' AND r.patient = h.patient)
FROM held_messages h ORDER BY h.patient`)
	if err != nil {
		return nil, fmt.Errorf("reading held messages: %w", err)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var (
			p       string
			held    timeValue
			consent nullTime
		)
		if err := rs.Scan(&p, &held, &consent); err != nil {
			return nil, fmt.Errorf("reading held messages: %w", err)
		}
		due := held.t.IsZero() || held.t.Equal(recheckSoon) || !consent.t.IsZero() && !consent.t.Add(heldRecheckMargin).Before(held.t)
		if due && (len(out) == 0 || out[len(out)-1] != p) {
			out = append(out, p)
			if len(out) == limit {
				break
			}
		}
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("reading held messages: %w", err)
	}
	return out, nil
}

// recheckSoon is the time RecheckSoon stamps: before any consent.
var recheckSoon = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// RecheckSoon marks the message key held in stream to be decided again at
// the next sweep (HeldToRecheck), whenever its patient's consents were
// written: its release could not finish (a worker held its queued copy).
func (s *Store) RecheckSoon(ctx context.Context, stream, key string) error {
	return s.WithTx(ctx, func(tx *Tx) error {
		if err := tx.q.exec(ctx, rebind(s.dialect, "UPDATE held_messages SET updated_at = ? WHERE stream = ? AND idempotency_key = ?"), s.timeArg(recheckSoon), stream, key); err != nil {
			return fmt.Errorf("marking a held message for a recheck: %w", err)
		}
		return nil
	})
}

// Rechecked records that the message key held in stream was decided again
// now and is still held, so that HeldToRecheck leaves it until a consent
// of its patient is written again.
func (s *Store) Rechecked(ctx context.Context, stream, key string) error {
	return s.WithTx(ctx, func(tx *Tx) error {
		now := s.timeArg(s.clock())
		if err := tx.q.exec(ctx, rebind(s.dialect, "UPDATE held_messages SET updated_at = ? WHERE stream = ? AND idempotency_key = ?"), now, stream, key); err != nil {
			return fmt.Errorf("marking a held message rechecked: %w", err)
		}
		return nil
	})
}

// EverStatus reports whether a version of the resource before its current
// one had status (a Consent active once, say), from its history.
func (tx *Tx) EverStatus(ctx context.Context, resourceType, id, status string) (bool, error) {
	rs, err := tx.q.query(ctx, rebind(tx.s.dialect, "SELECT 1 FROM resource_history WHERE resource_type = ? AND id = ? AND status = ? LIMIT 1"), resourceType, id, status)
	if err != nil {
		return false, fmt.Errorf("reading the history of %s/%s: %w", resourceType, id, err)
	}
	defer rs.Close()
	found := rs.Next()
	return found, rs.Err()
}
