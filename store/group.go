package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// MaxGroupTx is the most functions WithGroupTx runs in one transaction.
// (Each runs under a savepoint, a subtransaction on PostgreSQL, which
// keeps up to 64 of them in shared memory before spilling to disk.)
const MaxGroupTx = 32

// groupTxTimeout bounds a shared transaction: it runs for many callers,
// so no one caller's context may cancel it.
const groupTxTimeout = 30 * time.Second

// WithGroupTx runs fn in a transaction as WithTx does, but shares that
// transaction with the functions other goroutines hand to WithGroupTx at
// the same time: while one shared transaction commits, the functions that
// arrive wait and then run together in the next, each under a savepoint,
// and commit with one durable write. It is group commit for many small
// writes, where the commit's flush (and, with the audit log, the
// sequencer's lock held until the commit) is most of the time of each.
//
// fn must use the ctx and tx it is given: they belong to the shared
// transaction, which no caller's cancellation interrupts. fn sees what the
// functions before it in the transaction wrote. An error of fn rolls back
// what fn wrote, not the others' writes, and is returned to its caller
// only; a failed commit is returned to every caller of the transaction.
// A caller whose ctx is done before its turn gets ctx's error and fn is
// not run. Functions run one after the other, in arrival order; fn must
// not itself call WithGroupTx or WithTx (it would wait for itself).
func (s *Store) WithGroupTx(ctx context.Context, fn func(ctx context.Context, tx *Tx) error) error {
	if err := s.checkOpen(); err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	req := &groupReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	g := &s.group
	g.mu.Lock()
	g.queue = append(g.queue, req)
	if !g.running {
		g.running = true
		go s.runGroups()
	}
	g.mu.Unlock()
	// Wait for the outcome even when ctx is done: fn may be running in
	// the shared transaction, and the caller must know whether it
	// committed.
	return <-req.done
}

// groupTx is the queue of WithGroupTx.
type groupTx struct {
	mu      sync.Mutex
	queue   []*groupReq
	running bool // a goroutine is running the queue's transactions
}

type groupReq struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *Tx) error
	done chan error
	// retried: the function was chosen as a deadlock's victim once, and
	// run again in the next transaction.
	retried bool
}

// runGroups runs the queue's transactions until the queue is empty.
func (s *Store) runGroups() {
	g := &s.group
	for {
		g.mu.Lock()
		n := min(len(g.queue), MaxGroupTx)
		if n == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		reqs := make([]*groupReq, n)
		copy(reqs, g.queue)
		g.queue = append(g.queue[:0], g.queue[n:]...)
		g.mu.Unlock()
		s.runGroup(reqs)
	}
}

// runGroup runs reqs in one transaction and tells each its outcome.
//
// Each function runs under a savepoint, made with a statement of its own
// (on PostgreSQL a statement may be sent later, with the next one: the
// next function's savepoint sends what the one before left, so that an
// error of it is charged to that function, whose writes are rolled back,
// and never to the next). What a function handed to Tx.AtEnd is dropped
// with its writes.
func (s *Store) runGroup(reqs []*groupReq) {
	errs := make([]error, len(reqs))
	ctx, cancel := context.WithTimeout(context.Background(), groupTxTimeout)
	defer cancel()
	err := s.WithTx(ctx, func(tx *Tx) error {
		for i := range errs {
			errs[i] = nil
		}
		if len(reqs) == 1 {
			// Alone: no savepoint; its error rolls the transaction back.
			if errs[0] = reqs[0].ctx.Err(); errs[0] == nil {
				errs[0] = s.runGroupFn(ctx, tx, reqs[0])
			}
			if errs[0] != nil {
				return errGroupFnFailed
			}
			return nil
		}
		last, lastEnd := -1, 0 // the function whose statements may be unsent, and its AtEnd mark
		made := false          // a savepoint was made
		// settle sends what last left with stmt, charging an error to last.
		settle := func(stmt string) error {
			err := tx.q.exec(ctx, stmt)
			if err == nil || last < 0 {
				return err
			}
			errs[last] = err
			tx.atEnd = tx.atEnd[:lastEnd]
			if err := rollbackTo(ctx, tx); err != nil {
				return err
			}
			last = -1
			return tx.q.exec(ctx, stmt)
		}
		for i, r := range reqs {
			if err := r.ctx.Err(); err != nil {
				errs[i] = err
				continue
			}
			if err := settle("SAVEPOINT pathway_group"); err != nil {
				return err
			}
			made = true
			mark := len(tx.atEnd)
			if errs[i] = s.runGroupFn(ctx, tx, r); errs[i] != nil {
				tx.atEnd = tx.atEnd[:mark]
				last = -1
				if err := rollbackTo(ctx, tx); err != nil {
					return err
				}
				continue
			}
			last, lastEnd = i, mark
		}
		if !made {
			return nil // every caller gave up before its turn
		}
		return settle("RELEASE SAVEPOINT pathway_group")
	})
	var again []*groupReq
	for i, r := range reqs {
		switch {
		case errors.Is(err, errGroupFnFailed):
			// errs[i] holds the one function's error.
		case err != nil && errs[i] == nil:
			errs[i] = err
		}
		// A function the database chose to break a deadlock with (its
		// rows locked in another order than a concurrent transaction's,
		// sync's say) runs once more, in the next transaction; its writes
		// were rolled back with its savepoint.
		if errs[i] != nil && !r.retried && isDeadlock(errs[i]) && r.ctx.Err() == nil {
			r.retried = true
			again = append(again, r)
			continue
		}
		r.done <- errs[i]
	}
	if len(again) > 0 {
		g := &s.group
		g.mu.Lock()
		g.queue = append(again, g.queue...)
		g.mu.Unlock()
	}
}

// isDeadlock reports whether err is PostgreSQL's deadlock_detected.
func isDeadlock(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "40P01"
}

// rollbackTo rolls the shared transaction back to its latest savepoint.
// A statement the failed function left unsent goes first, and its own
// error (the transaction is then aborted, and the rollback not run) is
// followed by a second try, which nothing precedes.
func rollbackTo(ctx context.Context, tx *Tx) error {
	if err := tx.q.exec(ctx, "ROLLBACK TO SAVEPOINT pathway_group"); err == nil {
		return nil
	}
	if err := tx.q.exec(ctx, "ROLLBACK TO SAVEPOINT pathway_group"); err != nil {
		return fmt.Errorf("rolling back one write of a shared transaction: %w", err)
	}
	return nil
}

// runGroupFn runs r's function; a panic in it is its error (the
// goroutine running the queue serves every caller).
func (s *Store) runGroupFn(ctx context.Context, tx *Tx, r *groupReq) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.logger.LogAttrs(ctx, slog.LevelError, "panic in a function of a shared transaction", slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			err = fmt.Errorf("internal error: a function of a shared transaction panicked: %v", p)
		}
	}()
	return r.fn(ctx, tx)
}

// errGroupFnFailed rolls back a shared transaction of one function that
// failed; its caller gets the function's own error.
var errGroupFnFailed = errors.New("the transaction's one write failed")
