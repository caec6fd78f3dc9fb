package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// SyncState is how far Pathway has pulled referrals from one partner's
// FHIR server (pathway sync).
type SyncState struct {
	Partner string
	// Watermark is the largest meta.lastUpdated of the referrals pulled
	// and ingested so far; zero before the first page.
	Watermark time.Time
	// AtWatermark lists the partner's ids ("ServiceRequest/id") already
	// pulled whose meta.lastUpdated is exactly Watermark: the next search
	// starts at the watermark inclusive and skips these, so records that
	// share an instant across a page boundary are neither lost nor
	// ingested twice.
	AtWatermark []string
	UpdatedAt   time.Time // set by the store
}

// SyncState returns the partner's sync state; a partner never synced has
// a zero Watermark and no error.
func (s *Store) SyncState(ctx context.Context, partner string) (SyncState, error) {
	st := SyncState{Partner: partner}
	if err := s.checkOpen(); err != nil {
		return st, fmt.Errorf("reading sync state of %s: %w", partner, err)
	}
	return s.syncState(ctx, s.be.reader(), partner)
}

func (s *Store) syncState(ctx context.Context, q querier, partner string) (SyncState, error) {
	st := SyncState{Partner: partner}
	state := statement{sql: rebind(s.dialect, `SELECT watermark, updated_at FROM sync_state WHERE partner = ?`), args: []any{partner},
		scan: func(rs rows) error {
			if !rs.Next() {
				return nil
			}
			var wm, at timeValue
			if err := rs.Scan(&wm, &at); err != nil {
				return err
			}
			st.Watermark, st.UpdatedAt = wm.t, at.t
			return nil
		}}
	// Both in one round trip (PostgreSQL); in id order, as they were kept.
	rs, err := q.queryAfter(ctx, []statement{state}, rebind(s.dialect, `SELECT id FROM sync_at_watermark WHERE partner = ? ORDER BY id`), partner)
	if err != nil {
		return SyncState{Partner: partner}, fmt.Errorf("reading sync state of %s: %w", partner, err)
	}
	defer rs.Close()
	for rs.Next() {
		var id string
		if err := rs.Scan(&id); err != nil {
			return SyncState{Partner: partner}, fmt.Errorf("reading sync state of %s: %w", partner, err)
		}
		st.AtWatermark = append(st.AtWatermark, id)
	}
	if err := rs.Err(); err != nil {
		return SyncState{Partner: partner}, fmt.Errorf("reading sync state of %s: %w", partner, err)
	}
	return st, nil
}

// AdvanceSync records that the partner's referrals up to watermark were
// pulled, ids being those pulled at exactly watermark. The watermark only
// moves forward: an older one changes nothing, the same one adds ids to
// those already recorded, a newer one replaces them. Times are kept to the
// microsecond.
func (s *Store) AdvanceSync(ctx context.Context, partner string, watermark time.Time, ids []string) error {
	return s.WithTx(ctx, func(tx *Tx) error { return tx.AdvanceSync(ctx, partner, watermark, ids) })
}

// SyncReject is a referral pulled from a partner that could not be
// converted, kept with the reasons (elements and rules, never values).
type SyncReject struct {
	Partner string
	// Resource is the partner's "ServiceRequest/id" (or the entry's
	// fullUrl when it has no id).
	Resource string
	// LastUpdated is the version's meta.lastUpdated at the partner.
	LastUpdated time.Time
	Reasons     []string
	CreatedAt   time.Time // set by the store
}

// PutSyncReject keeps a reject. The same version of the same referral is
// kept once: a second put of it changes nothing.
func (s *Store) PutSyncReject(ctx context.Context, r SyncReject) error {
	if err := s.checkOpen(); err != nil {
		return fmt.Errorf("keeping sync reject: %w", err)
	}
	return s.putSyncReject(ctx, s.be.writer(), r)
}

// putSyncReject writes r through q.
func (s *Store) putSyncReject(ctx context.Context, q querier, r SyncReject) error {
	if r.Partner == "" || r.Resource == "" || len(r.Reasons) == 0 {
		return errors.New("keeping sync reject: a partner, a resource and a reason are required")
	}
	err := q.exec(ctx, rebind(s.dialect, `INSERT INTO sync_rejects (partner, resource, last_updated, reason, created_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (partner, resource, last_updated) DO NOTHING`),
		r.Partner, r.Resource, s.timeArg(normTime(r.LastUpdated)), strings.Join(r.Reasons, "\n"), s.timeArg(s.clock()))
	if err != nil {
		return fmt.Errorf("keeping sync reject of %s from %s: %w", r.Resource, r.Partner, err)
	}
	return nil
}

// SyncRejects lists the partner's rejects, oldest version first, at most
// limit (0: DefaultSearchLimit).
func (s *Store) SyncRejects(ctx context.Context, partner string, limit int) ([]SyncReject, error) {
	if err := s.checkOpen(); err != nil {
		return nil, fmt.Errorf("listing sync rejects: %w", err)
	}
	if limit <= 0 || limit > MaxSearchLimit {
		limit = DefaultSearchLimit
	}
	rs, err := s.be.reader().query(ctx, rebind(s.dialect, `SELECT resource, last_updated, reason, created_at FROM sync_rejects
WHERE partner = ? ORDER BY last_updated, resource LIMIT ?`), partner, limit)
	if err != nil {
		return nil, fmt.Errorf("listing sync rejects of %s: %w", partner, err)
	}
	defer rs.Close()
	var out []SyncReject
	for rs.Next() {
		var (
			r       = SyncReject{Partner: partner}
			lu, at  timeValue
			reasons string
		)
		if err := rs.Scan(&r.Resource, &lu, &reasons, &at); err != nil {
			return nil, fmt.Errorf("listing sync rejects of %s: %w", partner, err)
		}
		r.LastUpdated, r.CreatedAt, r.Reasons = lu.t, at.t, strings.Split(reasons, "\n")
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("listing sync rejects of %s: %w", partner, err)
	}
	return out, nil
}
