package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Routing is where one referral was routed, or why it could not be.
type Routing struct {
	// ServiceRequest is the referral: "ServiceRequest/id".
	ServiceRequest string
	// Source is the partner or connector it came from.
	Source string
	// Risk is its stepped-care level (low, moderate, high, imminent, unknown).
	Risk string
	// Unroutable is true when no partner could take it; Reason says why.
	Unroutable bool
	// Targets lists the partners it was routed to.
	Targets []string
	// Reason explains an unroutable referral (partners, levels and codes;
	// never personal data).
	Reason    string
	UpdatedAt time.Time // set by the store
}

// PutRouting records where a referral went, replacing what was recorded
// for it before (a re-ingest re-routes it). When nothing changed, the
// record, its UpdatedAt included, is left as it was. On PostgreSQL the
// write goes with the transaction's next statement or its commit (an
// ingest group records hundreds, one round trip for all of them), which
// then fails if it does.
func (tx *Tx) PutRouting(ctx context.Context, r Routing) error {
	s := tx.s
	if !strings.HasPrefix(r.ServiceRequest, "ServiceRequest/") || r.Risk == "" {
		return errors.New("putting routing: a ServiceRequest reference and a risk level are required")
	}
	status := "routed"
	if r.Unroutable {
		status = "unroutable"
	}
	fail := func(err error) error { return fmt.Errorf("putting routing of %s: %w", r.ServiceRequest, err) }
	return tx.q.execLater(ctx, statement{sql: rebind(s.dialect, `INSERT INTO referrals (service_request, source, risk, status, targets, reason, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (service_request) DO UPDATE SET source = excluded.source, risk = excluded.risk, status = excluded.status,
	targets = excluded.targets, reason = excluded.reason, updated_at = excluded.updated_at
WHERE referrals.source <> excluded.source OR referrals.risk <> excluded.risk OR referrals.status <> excluded.status
	OR referrals.targets <> excluded.targets OR referrals.reason <> excluded.reason`),
		args: []any{r.ServiceRequest, r.Source, r.Risk, status, strings.Join(r.Targets, ","), r.Reason, s.timeArg(s.clock())},
		fail: fail})
}

// Routings lists recorded routings by ServiceRequest, only the unroutable
// ones when unroutable is true, after the reference after (for paging).
func (s *Store) Routings(ctx context.Context, unroutable bool, after string, limit int) ([]Routing, error) {
	if err := s.checkOpen(); err != nil {
		return nil, fmt.Errorf("listing routings: %w", err)
	}
	if limit <= 0 || limit > MaxSearchLimit {
		limit = DefaultSearchLimit
	}
	q := `SELECT service_request, source, risk, status, targets, reason, updated_at FROM referrals WHERE service_request > ?`
	args := []any{after}
	if unroutable {
		q += ` AND status = 'unroutable'`
	}
	q += ` ORDER BY service_request LIMIT ?`
	args = append(args, limit)
	rs, err := s.be.reader().query(ctx, rebind(s.dialect, q), args...)
	if err != nil {
		return nil, fmt.Errorf("listing routings: %w", err)
	}
	defer rs.Close()
	var out []Routing
	for rs.Next() {
		var (
			r               Routing
			status, targets string
			at              timeValue
		)
		if err := rs.Scan(&r.ServiceRequest, &r.Source, &r.Risk, &status, &targets, &r.Reason, &at); err != nil {
			return nil, fmt.Errorf("listing routings: %w", err)
		}
		r.Unroutable = status == "unroutable"
		if targets != "" {
			r.Targets = strings.Split(targets, ",")
		}
		r.UpdatedAt = at.t
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("listing routings: %w", err)
	}
	return out, nil
}

// openTaskStatuses are the Task statuses OpenReferrals counts as open.
var openTaskStatuses = []string{"requested", "received", "accepted", "in-progress", "on-hold"}

// IsOpenTaskStatus reports whether OpenReferrals counts a Task with this
// status (its store status field) as open.
func IsOpenTaskStatus(status string) bool { return slices.Contains(openTaskStatuses, status) }

// OpenReferrals counts the Tasks owned by each partner that are still
// open, by owner reference ("Organization/id"), leaving out the Tasks
// whose ids are in except (a referral being re-routed does not count
// against the capacity it already holds).
func (s *Store) OpenReferrals(ctx context.Context, except ...string) (map[string]int, error) {
	if err := s.checkOpen(); err != nil {
		return nil, fmt.Errorf("counting open referrals: %w", err)
	}
	q, args := s.openReferralsSQL(except)
	rs, err := s.be.reader().query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("counting open referrals: %w", err)
	}
	defer rs.Close()
	out := map[string]int{}
	for rs.Next() {
		var (
			owner string
			n     int
		)
		if err := rs.Scan(&owner, &n); err != nil {
			return nil, fmt.Errorf("counting open referrals: %w", err)
		}
		out[owner] = n
	}
	return out, rs.Err()
}

// openReferralsSQL is OpenReferrals' statement and its arguments. Its
// conditions on the type and the owner are those of the status and owner
// indexes (searchIndexes), so that either can serve it.
func (s *Store) openReferralsSQL(except []string) (string, []any) {
	q := `SELECT owner, count(*) FROM resources
WHERE resource_type = 'Task' AND owner <> '' AND status IN ('` + strings.Join(openTaskStatuses, "', '") + `')`
	var args []any
	if len(except) > 0 {
		q += ` AND id NOT IN (?` + strings.Repeat(", ?", len(except)-1) + `)`
		for _, id := range except {
			args = append(args, id)
		}
	}
	return rebind(s.dialect, q+`
GROUP BY owner`), args
}
