package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/exchange"
	"github.com/pathway-fhir/pathway/policy"
	"github.com/pathway-fhir/pathway/store"
)

// inputOf names a stored version as an audit input.
func inputOf(r store.Resource) audit.Input {
	return audit.Input{Ref: audit.Ref(r.Type, r.ID, r.Version), Hash: r.Hash}
}

// accessEntry is the audit entry of one API access: who, which
// interaction, permitted or not, and the exact versions read or written.
func (s *Server) accessEntry(c *caller, interaction string, effect policy.Effect, inputs []audit.Input) audit.Entry {
	var id [16]byte
	rand.Read(id[:])
	e := audit.Entry{
		ID: "a-" + hex.EncodeToString(id[:]), Kind: audit.KindAccess, Time: s.o.Now(),
		Actor: c.ref, Effect: audit.EffectDeny, Interaction: interaction, Observer: exchange.DefaultObserver,
	}
	if s.o.Audit != nil {
		e.Observer, e.Site = s.o.Audit.Observer, s.o.Audit.Site
		if e.Observer == "" {
			e.Observer = exchange.DefaultObserver
		}
	}
	if effect == policy.Permit {
		e.Effect = audit.EffectPermit
	}
	seen := map[string]bool{}
	for _, in := range inputs {
		if !seen[in.Ref] {
			seen[in.Ref] = true
			e.Inputs = append(e.Inputs, in)
		}
	}
	slices.SortFunc(e.Inputs, func(a, b audit.Input) int { return strings.Compare(a.Ref, b.Ref) })
	return e
}

// logAccess records a read (or a refused request) in the audit log, in the
// next batch.
func (s *Server) logAccess(ctx context.Context, c *caller, interaction string, effect policy.Effect, inputs ...audit.Input) {
	if m, ok := ctx.Value(markKey{}).(*accessMark); ok {
		m.done = true
	}
	if s.access == nil {
		return
	}
	s.access.add(ctx, s.accessEntry(c, interaction, effect, inputs))
}

// logAccessTx records a change in the transaction that makes it.
// The caller marks the access logged (markLogged) once the transaction
// commits: a rolled-back change is logged as refused instead.
func (s *Server) logAccessTx(ctx context.Context, tx *store.Tx, c *caller, interaction string, effect policy.Effect, inputs ...audit.Input) error {
	if s.access == nil {
		return nil
	}
	_, err := audit.Append(ctx, tx, s.accessEntry(c, interaction, effect, inputs))
	if err == nil && s.o.Audit.Notify != nil {
		s.o.Audit.Notify()
	}
	return err
}

// markLogged records that the request's access entry is written.
func markLogged(ctx context.Context) {
	if m, ok := ctx.Value(markKey{}).(*accessMark); ok {
		m.done = true
	}
}

// accessLog appends read accesses in batches (a transaction per batch,
// not per read); nothing is dropped: a full queue makes readers wait.
type accessLog struct {
	st     *store.Store
	notify func()
	logger *slog.Logger
	queue  chan audit.Entry
	done   chan struct{}
	mu     sync.RWMutex // held for reading while adding, for writing to close
	closed bool
}

const (
	accessBatch = 256
	accessEvery = 200 * time.Millisecond
)

func newAccessLog(st *store.Store, a *exchange.Auditor, logger *slog.Logger) *accessLog {
	l := &accessLog{st: st, notify: a.Notify, logger: logger, queue: make(chan audit.Entry, 4*accessBatch), done: make(chan struct{})}
	go l.run()
	return l
}

func (l *accessLog) add(_ context.Context, e audit.Entry) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		// A request that outlived the shutdown: logged, not lost.
		l.logger.LogAttrs(context.Background(), slog.LevelError, "API access after the access log closed", slog.String("entry", e.ID), slog.String("actor", e.Actor))
		return
	}
	l.queue <- e // blocks when the queue is full: readers wait for the log
}

func (l *accessLog) run() {
	defer close(l.done)
	var batch []audit.Entry
	tick := time.NewTicker(accessEvery)
	defer tick.Stop()
	flush := func() bool {
		if len(batch) == 0 {
			return true
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := l.st.WithTx(ctx, func(tx *store.Tx) error {
			_, err := audit.Append(ctx, tx, batch...)
			return err
		})
		if err != nil {
			l.logger.LogAttrs(ctx, slog.LevelError, "appending API access entries", slog.Int("entries", len(batch)), slog.String("error", err.Error()))
			return false // kept in batch: tried again at the next flush
		}
		batch = batch[:0]
		if l.notify != nil {
			l.notify()
		}
		return true
	}
	for {
		select {
		case e, ok := <-l.queue:
			if !ok {
				flush()
				return
			}
			batch = append(batch, e)
			if len(batch) >= accessBatch {
				// Fail closed: while the log cannot be written, stop taking
				// entries, so that the queue fills and readers wait.
				for !flush() && len(batch) >= 4*accessBatch {
					time.Sleep(time.Second)
				}
			}
		case <-tick.C:
			flush()
		}
	}
}

// close flushes what is queued and stops.
func (l *accessLog) close(ctx context.Context) error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.queue)
	}
	l.mu.Unlock()
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
