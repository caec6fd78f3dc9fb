package store

import (
	"context"
	"encoding/json"
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
	query, args := s.selectInSQL(resourceType, col, vals, tail)
	rs, err := q.query(ctx, query, args...)
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

// selectInSQL is selectIn's statement and its arguments, for a valid
// type and at least one value.
func (s *Store) selectInSQL(resourceType, col string, vals []string, tail string) (string, []any) {
	vals = slices.Compact(slices.Sorted(slices.Values(vals)))
	if col == "id" {
		query, args := s.idLookup(resourceColumns, resourceType, vals, false)
		return query + tail, args
	}
	cond, arg := inList(s.dialect, col, vals)
	// The condition of col's index, if any: the statement is planned
	// with it only when it says so.
	for _, c := range indexCond(nil, col, resourceType, vals...) {
		cond += " AND " + c
	}
	return rebind(s.dialect, `SELECT `+resourceColumns+` FROM resources WHERE resource_type = ? AND `+cond+tail), []any{resourceType, arg}
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
	// The partner's row is locked (PostgreSQL) until the transaction ends,
	// so that two syncs of one partner add their ids in turn.
	var cur time.Time
	rs, err := tx.q.query(ctx, rebind(s.dialect, `SELECT watermark FROM sync_state WHERE partner = ?`+lockTail(s.dialect)), partner)
	if err != nil {
		return fmt.Errorf("advancing sync state of %s: %w", partner, err)
	}
	if rs.Next() {
		var wm timeValue
		err = rs.Scan(&wm)
		cur = wm.t
	}
	rs.Close()
	if err == nil {
		err = rs.Err()
	}
	if err != nil {
		return fmt.Errorf("advancing sync state of %s: %w", partner, err)
	}
	if !cur.IsZero() && watermark.Before(cur) {
		return nil
	}
	// The same watermark adds its ids to those kept; a newer one replaces
	// them. Only this page's ids are written, not all those of the instant.
	var stmts []statement
	if !watermark.Equal(cur) {
		stmts = append(stmts, statement{sql: rebind(s.dialect, `DELETE FROM sync_at_watermark WHERE partner = ?`), args: []any{partner}})
	}
	if len(ids) > 0 {
		cond, arg := s.valuesOf(ids)
		stmts = append(stmts, statement{sql: rebind(s.dialect, `INSERT INTO sync_at_watermark (partner, id) SELECT DISTINCT ?, `+cond+` ON CONFLICT DO NOTHING`), args: []any{partner, arg}})
	}
	stmts = append(stmts, statement{sql: rebind(s.dialect, `INSERT INTO sync_state (partner, watermark, updated_at) VALUES (?, ?, ?)
ON CONFLICT (partner) DO UPDATE SET watermark = excluded.watermark, updated_at = excluded.updated_at
WHERE excluded.watermark >= sync_state.watermark`), args: []any{partner, s.timeArg(watermark), s.timeArg(s.clock())}})
	if err := execAll(ctx, tx.q, stmts); err != nil {
		return fmt.Errorf("advancing sync state of %s: %w", partner, err)
	}
	return nil
}

// valuesOf returns the select list and FROM clause yielding vals as rows
// of one column, with ? for its one argument, and that argument.
func (s *Store) valuesOf(vals []string) (string, any) {
	if s.dialect == DialectPostgres {
		return "v FROM unnest(?::text[]) AS v", vals
	}
	b, _ := json.Marshal(vals)
	return "value FROM json_each(?) WHERE true", string(b)
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
	out := make(map[string]Head, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	// Sorted, so that two transactions lock shared rows in one order.
	vals := slices.Compact(slices.Sorted(slices.Values(ids)))
	query, args := s.idLookup("id, source, status, version, hash", resourceType, vals, true)
	rs, err := tx.q.query(ctx, query, args...)
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

// idLookup returns the statement and arguments reading cols of the
// resources of one type with the given ids (lock: and locking their rows
// on PostgreSQL, in the order of ids).
//
// On PostgreSQL the ids are one array, each id looked up through the
// primary key in a LATERAL subquery that the planner cannot fold into a
// join (FOR UPDATE, or OFFSET 0, keeps it apart). Written as id IN (...)
// or as a join on unnest, the planner may read every row of the type
// through resources_last_updated_idx instead and filter (it does on a
// table loaded since its statistics were gathered, as a sync's first
// pages are): 8.5 ms instead of 0.3 ms for 100 Tasks among 10,000, and
// growing with the table. SQLite probes the key for each id of the list.
func (s *Store) idLookup(cols, resourceType string, ids []string, lock bool) (string, []any) {
	if s.dialect == DialectPostgres {
		fence := " OFFSET 0"
		if lock {
			fence = " FOR UPDATE"
		}
		return `SELECT r.* FROM unnest($2::text[]) AS k(id), LATERAL (SELECT ` + cols +
			` FROM resources WHERE resource_type = $1 AND id = k.id` + fence + `) AS r`, []any{resourceType, ids}
	}
	cond, arg := inList(s.dialect, "id", ids)
	return `SELECT ` + cols + ` FROM resources WHERE resource_type = ? AND ` + cond, []any{resourceType, arg}
}
