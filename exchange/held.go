package exchange

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/store"
)

// ReleaseReport says what ReleaseHeld did with a patient's held messages.
type ReleaseReport struct {
	// Released are the partners whose messages were queued, one per
	// message; Held counts the messages still held.
	Released []string
	Held     int
}

// ReleaseHeld re-decides the messages held for patient (a reference,
// "Patient/id") under the consents as they are now, as a worker decides at
// send time, and moves those now permitted to the outbox, one transaction
// each; the worker decides them once more when it sends them. Call it once
// a Consent of the patient is recorded: a referral held for want of
// consent then goes without being sent again. What is still not permitted
// stays held as it was.
//
// With an audit log, each release logs its decision (prefixed "r") in the
// transaction that queues the message.
func (p *Pipeline) ReleaseHeld(ctx context.Context, patient string) (ReleaseReport, error) {
	var rep ReleaseReport
	hs, err := p.Store.HeldOf(ctx, patient)
	if err != nil {
		return rep, err
	}
	for _, h := range hs {
		prep, err := p.Prepare(ctx, h.Message)
		if err != nil {
			return rep, fmt.Errorf("re-deciding the held message for %s: %w", h.Partner, err)
		}
		if prep.Withhold != "" {
			rep.Held++
			continue
		}
		m := h.Message
		if m.PayloadRef != "" {
			m.Payload = nil
		}
		released := false
		err = p.Store.WithTx(ctx, func(tx *store.Tx) error {
			ok, err := tx.Release(ctx, h.Stream, h.Key)
			if err != nil || !ok {
				return err // superseded or released since: its newer version decides
			}
			if _, _, err := tx.Enqueue(ctx, m); err != nil {
				return err
			}
			released = true
			if p.Audit == nil || prep.Decision == nil {
				return nil
			}
			rec := *prep.Decision
			rec.Disclosed = nil // nothing is disclosed until it is sent
			rec.Attempt = "release"
			e, err := p.Audit.decisionEntry(ctx, tx, rec, "r")
			if err != nil {
				return err
			}
			_, err = audit.AppendNew(ctx, tx, e) // not again if logged already
			return err
		})
		if err != nil {
			return rep, fmt.Errorf("releasing the held message for %s: %w", h.Partner, err)
		}
		if released {
			rep.Released = append(rep.Released, h.Partner)
			p.logger().LogAttrs(ctx, slog.LevelInfo, "released held referral", slog.String("stream", h.Stream))
		}
	}
	if len(rep.Released) > 0 && p.Audit != nil && p.Audit.Notify != nil {
		p.Audit.Notify()
	}
	return rep, nil
}
