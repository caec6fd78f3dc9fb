package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// This file holds what pathway sync needs to take one page of a partner's
// changes in one transaction: reading the page's resources in one query,
// and keeping rejects and the watermark inside the page's transaction.

// GetMany reads the current versions of the resources of one type with the
// given ids, in one query, by id; ids not stored are left out.
func (s *Store) GetMany(ctx context.Context, resourceType string, ids []string) (map[string]Resource, error) {
	if err := s.checkOpen(); err != nil {
		return nil, fmt.Errorf("getting resources: %w", err)
	}
	return s.getMany(ctx, s.be.reader(), resourceType, ids)
}

// GetMany reads current versions as Store.GetMany does, inside the
// transaction.
func (tx *Tx) GetMany(ctx context.Context, resourceType string, ids []string) (map[string]Resource, error) {
	return tx.s.getMany(ctx, tx.q, resourceType, ids)
}

func (s *Store) getMany(ctx context.Context, q querier, resourceType string, ids []string) (map[string]Resource, error) {
	out := make(map[string]Resource, len(ids))
	err := s.selectIn(ctx, q, resourceType, "id", ids, "", func(r Resource) { out[r.ID] = r })
	if err != nil {
		return nil, fmt.Errorf("getting %s resources: %w", resourceType, err)
	}
	return out, nil
}

// CurrentOfPatients returns the current resources of one type about each
// of the given patients ("Patient/id"), by patient, each patient's sorted
// by id and at most MaxSearchLimit of them: for each patient, what
// Search{Type, Patient, Limit: MaxSearchLimit} returns, in one query.
func (s *Store) CurrentOfPatients(ctx context.Context, resourceType string, patients []string) (map[string][]Resource, error) {
	if err := s.checkOpen(); err != nil {
		return nil, fmt.Errorf("searching resources: %w", err)
	}
	out := make(map[string][]Resource, len(patients))
	err := s.selectIn(ctx, s.be.reader(), resourceType, "patient", patients, " ORDER BY patient, id", func(r Resource) {
		if len(out[r.Patient]) < MaxSearchLimit {
			out[r.Patient] = append(out[r.Patient], r)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("searching %s resources by patient: %w", resourceType, err)
	}
	return out, nil
}

// selectIn runs SELECT resourceColumns FROM resources WHERE resource_type
// = ? AND col is one of vals (in one statement whatever their number),
// giving each row to fn.
func (s *Store) selectIn(ctx context.Context, q querier, resourceType, col string, vals []string, tail string, fn func(Resource)) error {
	if !validTypeName(resourceType) {
		return errors.New("type is not a FHIR resource type name")
	}
	if len(vals) == 0 {
		return nil
	}
	vals = slices.Compact(slices.Sorted(slices.Values(vals)))
	cond, arg := inList(s.dialect, col, vals)
	rs, err := q.query(ctx, rebind(s.dialect, `SELECT `+resourceColumns+` FROM resources WHERE resource_type = ? AND `+cond+tail), resourceType, arg)
	if err != nil {
		return err
	}
	defer rs.Close()
	for rs.Next() {
		r, err := scanResource(rs)
		if err != nil {
			return err
		}
		fn(r)
	}
	return rs.Err()
}

// TaskSyncPartner is the key under which SyncState keeps how far the
// Tasks a partner hosts were polled (the partner's own key keeps its
// ServiceRequest pull). A partner id is a FHIR id, so it never holds '/'.
func TaskSyncPartner(partner string) string { return partner + "/Task" }

// AdvanceSync records, inside the transaction, what Store.AdvanceSync
// records (Store.AdvanceSync is this in a transaction of its own): with
// the changes the watermark covers, so that both are kept or neither.
func (tx *Tx) AdvanceSync(ctx context.Context, partner string, watermark time.Time, ids []string) error {
	s := tx.s
	if partner == "" || watermark.IsZero() {
		return errors.New("advancing sync state: a partner and a watermark are required")
	}
	for _, id := range ids {
		if id == "" || strings.ContainsAny(id, " \t\n") {
			return fmt.Errorf("advancing sync state of %s: an id is empty or has white space", partner)
		}
	}
	watermark = normTime(watermark)
	cur, err := s.syncState(ctx, tx.q, partner)
	if err != nil {
		return err
	}
	if !cur.Watermark.IsZero() && watermark.Before(cur.Watermark) {
		return nil
	}
	var all []string
	if watermark.Equal(cur.Watermark) {
		all = slices.Clone(cur.AtWatermark)
	}
	// A set: thousands of ids can share one instant (a batch the
	// partner wrote at once).
	have := make(map[string]bool, len(all)+len(ids))
	for _, id := range all {
		have[id] = true
	}
	for _, id := range ids {
		if !have[id] {
			have[id] = true
			all = append(all, id)
		}
	}
	slices.Sort(all)
	err = tx.q.exec(ctx, rebind(s.dialect, `INSERT INTO sync_state (partner, watermark, at_watermark, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (partner) DO UPDATE SET watermark = excluded.watermark, at_watermark = excluded.at_watermark, updated_at = excluded.updated_at
WHERE excluded.watermark >= sync_state.watermark`),
		partner, s.timeArg(watermark), strings.Join(all, " "), s.timeArg(s.clock()))
	if err != nil {
		return fmt.Errorf("advancing sync state of %s: %w", partner, err)
	}
	return nil
}

// SyncState reads a partner's sync state inside the transaction.
func (tx *Tx) SyncState(ctx context.Context, partner string) (SyncState, error) {
	return tx.s.syncState(ctx, tx.q, partner)
}

// PutSyncReject keeps a reject as Store.PutSyncReject does, inside the
// transaction.
func (tx *Tx) PutSyncReject(ctx context.Context, r SyncReject) error {
	return tx.s.putSyncReject(ctx, tx.q, r)
}

// LockHeads returns the heads of the resources of one type with the given
// ids, as Heads does, in one query, and on PostgreSQL locks
// their rows until the transaction ends (SQLite's transaction holds the
// database's write lock already): what is checked stays so until the
// transaction writes.
func (tx *Tx) LockHeads(ctx context.Context, resourceType string, ids []string) (map[string]Head, error) {
	s := tx.s
	if !validTypeName(resourceType) {
		return nil, errors.New("heads: type is not a FHIR resource type name")
	}
	tail := ""
	if s.dialect == DialectPostgres {
		tail = " FOR UPDATE"
	}
	out := make(map[string]Head, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	// Sorted, so that two transactions lock shared rows in one order.
	vals := slices.Compact(slices.Sorted(slices.Values(ids)))
	cond, arg := inList(s.dialect, "id", vals)
	rs, err := tx.q.query(ctx, rebind(s.dialect, `SELECT id, source, status, version, hash FROM resources WHERE resource_type = ? AND `+cond+tail), resourceType, arg)
	if err != nil {
		return nil, fmt.Errorf("heads: %w", err)
	}
	defer rs.Close()
	for rs.Next() {
		var id string
		var h Head
		var hash []byte
		if err := rs.Scan(&id, &h.Source, &h.Status, &h.Version, &hash); err != nil {
			return nil, fmt.Errorf("heads: %w", err)
		}
		copy(h.Hash[:], hash)
		out[id] = h
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("heads: %w", err)
	}
	return out, nil
}
