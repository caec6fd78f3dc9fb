package store

import (
	"context"
	"fmt"
	"strings"
)

// enqueueChunk bounds the messages of one multi-row insert.
const enqueueChunk = 100

// EnqueueMany adds each of ms to the outbox as Enqueue does (pending,
// due at once or at its NextAttemptAt when later; a message whose Key is
// already in the outbox, or earlier in ms, is left as it is), in one
// statement per 100 messages. It returns the keys of the messages it
// added.
func (tx *Tx) EnqueueMany(ctx context.Context, ms []Message) (created map[string]bool, err error) {
	s := tx.s
	created = make(map[string]bool, len(ms))
	seen := make(map[string]bool, len(ms))
	batch := make([]Message, 0, len(ms))
	for _, m := range ms {
		payload, err := m.payloadArg()
		if err != nil {
			return nil, err
		}
		if !seen[m.Key] {
			seen[m.Key] = true
			m.Payload = payload
			batch = append(batch, m)
		}
	}
	now := s.clock()
	for len(batch) > 0 {
		n := min(len(batch), enqueueChunk)
		chunk := batch[:n]
		batch = batch[n:]
		var sb strings.Builder
		sb.WriteString(`INSERT INTO outbox
(idempotency_key, partner, purpose, kind, payload, state, attempts, next_attempt_at, created_at, updated_at, stream, payload_ref) VALUES `)
		args := make([]any, 0, 10*n)
		for i, m := range chunk {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString("(?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?, ?)")
			due := now
			if m.NextAttemptAt.After(now) {
				due = normTime(m.NextAttemptAt)
			}
			args = append(args, m.Key, m.Partner, m.Purpose, m.Kind, m.Payload, s.timeArg(due), s.timeArg(now), s.timeArg(now), m.Stream, m.PayloadRef)
		}
		sb.WriteString(" ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key")
		rs, err := tx.q.query(ctx, rebind(s.dialect, sb.String()), args...)
		if err != nil {
			return nil, fmt.Errorf("enqueueing %d messages: %w", n, err)
		}
		for rs.Next() {
			var key string
			if err := rs.Scan(&key); err != nil {
				rs.Close()
				return nil, fmt.Errorf("enqueueing %d messages: %w", n, err)
			}
			created[key] = true
		}
		err = rs.Err()
		rs.Close()
		if err != nil {
			return nil, fmt.Errorf("enqueueing %d messages: %w", n, err)
		}
	}
	return created, nil
}
