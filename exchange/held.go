package exchange

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/store"
)

// ReleaseReport says what ReleaseHeld did with a patient's held messages.
type ReleaseReport struct {
	// Released are the partners whose messages were queued (or a withheld
	// copy of them queued again), one per message; Held counts the
	// messages still held; Dropped those no longer to send (their Task
	// was cancelled, or ended, while they were held).
	Released      []string
	Held, Dropped int
}

// ReleaseHeld re-decides the messages held for patient (a reference,
// "Patient/id") under the consents as they are now, as a worker decides at
// send time, and moves those now permitted to the outbox, one transaction
// each; the worker decides them once more when it sends them. Call it once
// a Consent of the patient is recorded: a referral held for want of
// consent then goes without being sent again. What is still not permitted
// stays held as it was; a message whose Task has ended since (cancelled by
// the referrer, say) is dropped, never sent. A message that fails is left
// held and the others go on; the first failure is returned.
//
// With an audit log, each release logs its decision (prefixed "r") in the
// transaction that queues the message.
func (p *Pipeline) ReleaseHeld(ctx context.Context, patient string) (ReleaseReport, error) {
	var rep ReleaseReport
	hs, err := p.Store.HeldOf(ctx, patient)
	if err != nil {
		return rep, err
	}
	var first error
	for _, h := range hs {
		out, err := p.releaseOne(ctx, h)
		switch {
		case err != nil:
			p.logger().LogAttrs(ctx, slog.LevelError, "releasing a held referral", slog.String("stream", h.Stream), slog.String("error", err.Error()))
			if first == nil {
				first = fmt.Errorf("releasing the held message for %s: %w", h.Partner, err)
			}
		case out == releaseQueued:
			rep.Released = append(rep.Released, h.Partner)
			p.logger().LogAttrs(ctx, slog.LevelInfo, "released held referral", slog.String("stream", h.Stream))
		case out == releaseDropped:
			rep.Dropped++
		case out == releaseHeld:
			rep.Held++
			if err := p.Store.Rechecked(ctx, h.Stream, h.Key); err != nil && first == nil {
				first = err
			}
		case out == releaseLater:
			rep.Held++
			if err := p.Store.RecheckSoon(ctx, h.Stream, h.Key); err != nil && first == nil {
				first = err
			}
		}
	}
	if len(rep.Released) > 0 && p.Audit != nil && p.Audit.Notify != nil {
		p.Audit.Notify()
	}
	return rep, first
}

type releaseOutcome int

const (
	releaseHeld    releaseOutcome = iota // still not permitted
	releaseQueued                        // queued, or its withheld copy queued again
	releaseDropped                       // its Task ended: nothing to send
	releaseGone                          // superseded or released since: its slot holds something else
	releaseLater                         // a worker holds its queued copy: decided again at the next sweep
)

// errNotHeld rolls back a release whose slot no longer holds the message;
// errInflight one whose queued copy a worker holds.
var (
	errNotHeld  = errors.New("the held message was superseded or released since")
	errInflight = errors.New("the held message's queued copy is being sent")
)

// releaseOne re-decides h and, when permitted, queues it. It takes the
// rows in the order an ingest takes them (the kept decided bundle, the
// held slot, the outbox, the configuration, then the audit log), so that
// the two never wait for each other.
func (p *Pipeline) releaseOne(ctx context.Context, h store.Held) (releaseOutcome, error) {
	ended, err := p.endedTask(ctx, h.Payload)
	if err != nil {
		return 0, err
	}
	if ended {
		err := p.Store.WithTx(ctx, func(tx *store.Tx) error {
			_, err := tx.Release(ctx, h.Stream, h.Key)
			return err
		})
		return releaseDropped, err
	}
	prep, err := p.Prepare(ctx, h.Message)
	if err != nil {
		return 0, err
	}
	if prep.Withhold != "" {
		return releaseHeld, nil
	}
	m := h.Message
	if m.PayloadRef != "" {
		m.Payload = nil
	}
	out := releaseGone
	err = p.Store.WithTx(ctx, func(tx *store.Tx) error {
		out = releaseGone
		var rec DecisionRecord
		var bundleIn audit.Input
		audited := p.Audit != nil && prep.Decision != nil
		if audited {
			rec = *prep.Decision
			rec.Disclosed = nil // nothing is disclosed until it is sent
			rec.Attempt = "release"
			var err error
			if bundleIn, err = keep(ctx, tx, "Bundle", rec.DecidedID, FormatJSON, rec.Patient, rec.Decided); err != nil {
				return err
			}
		}
		ok, err := tx.Release(ctx, h.Stream, h.Key)
		if err != nil {
			return err
		}
		if !ok {
			return errNotHeld
		}
		id, created, err := tx.Enqueue(ctx, m)
		if err != nil {
			return err
		}
		if !created {
			// Queued before: a copy withheld at send time (a consent
			// revoked then) goes again; one pending or delivered needs
			// nothing more. One a worker holds now may yet be withheld
			// (decided before this consent): it stays held, for the next
			// sweep to decide again once the worker has settled it.
			again, state, err := tx.RequeueWithheld(ctx, id)
			switch {
			case err != nil:
				return err
			case state == store.StateInflight:
				return errInflight
			case !again && state == store.StateWithheld:
				// A newer version of the referral is queued or delivered:
				// this one is superseded.
				p.logger().LogAttrs(ctx, slog.LevelInfo, "held referral superseded by a newer version", slog.String("stream", h.Stream))
				return nil
			case !again:
				return nil
			}
		}
		out = releaseQueued
		if !audited {
			return nil
		}
		cfgIn, err := p.Audit.keepConfig(ctx, tx)
		if err != nil {
			return err
		}
		_, err = audit.AppendNew(ctx, tx, p.Audit.entryOf(rec, "r", cfgIn, bundleIn)) // not again if logged already
		return err
	})
	switch {
	case errors.Is(err, errNotHeld):
		return releaseGone, nil
	case errors.Is(err, errInflight):
		return releaseLater, nil
	}
	return out, err
}

// endedTaskStatuses are the Task statuses a referral does not leave.
var endedTaskStatuses = map[string]bool{"cancelled": true, "rejected": true, "completed": true, "failed": true, "entered-in-error": true}

// endedTask reports whether a Task of the held bundle (the one addressed
// to its partner) is stored in a state that has ended (cancelled by the
// referrer while the send was held, say): what is held for it is no
// longer to send.
func (p *Pipeline) endedTask(ctx context.Context, payload []byte) (bool, error) {
	r := fhir.Parse(payload)
	if !r.Valid() || r.Resource.GetBundle() == nil {
		return false, errors.New("the held message does not hold a valid Bundle")
	}
	for _, e := range r.Resource.GetBundle().GetEntry() {
		t := e.GetResource().GetTask()
		if t == nil {
			continue
		}
		cur, err := p.Store.Get(ctx, "Task", t.GetId().GetValue())
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		if endedTaskStatuses[cur.Status] {
			return true, nil
		}
	}
	return false, nil
}

// SweepHeld re-decides the held messages of every patient with a Consent
// written since their messages were held or last re-decided (the API
// releases at once; this catches what that missed: a process stopped
// between the consent's commit and the release, a release that failed, an
// ingest that held a message while the consent was being recorded), up to
// limit patients. The worker runs it now and then.
func (p *Pipeline) SweepHeld(ctx context.Context, limit int) (ReleaseReport, error) {
	var rep ReleaseReport
	patients, err := p.Store.HeldToRecheck(ctx, limit)
	if err != nil {
		return rep, err
	}
	var first error
	for _, patient := range patients {
		r, err := p.ReleaseHeld(ctx, patient)
		rep.Released = append(rep.Released, r.Released...)
		rep.Held += r.Held
		rep.Dropped += r.Dropped
		if err != nil && first == nil {
			first = err
		}
	}
	return rep, first
}
