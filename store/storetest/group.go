package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pathway-fhir/pathway/store"
)

func init() {
	cases = append(cases, []struct {
		name string
		run  func(t *testing.T, newURL NewURL)
	}{
		{"GroupTxSharesAndIsolates", testGroupTx},
		{"GroupTxChargesEachItsOwnFailure", testGroupTxFailures},
		{"GroupTxRetriesADeadlockVictimOnce", testGroupTxDeadlock},
		{"PutBatchTakesACallersHash", testPutBatchHash},
	}...)
}

// testGroupTx: functions handed to WithGroupTx at once share transactions;
// one that fails loses only its own writes, one whose context is done
// before its turn does not run, and each sees the writes before it.
func testGroupTx(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	ctx := t.Context()
	boom := errors.New("boom")

	// The first function holds its transaction until the others queue
	// behind it, so that they run together in the next one.
	release := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- s.WithGroupTx(ctx, func(ctx context.Context, tx *store.Tx) error {
			<-release
			_, err := tx.Put(ctx, task("g-first", 1))
			return err
		})
	}()

	const n = 12
	errs := make([]error, n)
	var wg sync.WaitGroup
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	ranCanceled := false
	for i := range n {
		wg.Go(func() {
			c := ctx
			if i == 5 {
				c = canceled
			}
			errs[i] = s.WithGroupTx(c, func(ctx context.Context, tx *store.Tx) error {
				if i == 5 {
					ranCanceled = true
				}
				if _, err := tx.Put(ctx, task(fmt.Sprintf("g-%d", i), 1)); err != nil {
					return err
				}
				if i == 7 {
					return boom // its Put is rolled back, no one else's
				}
				return nil
			})
		})
	}
	time.Sleep(50 * time.Millisecond) // let them queue (the outcome is the same if some do not)
	close(release)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatalf("first: %v", err)
	}
	for i, err := range errs {
		_, gerr := s.Get(ctx, "Task", fmt.Sprintf("g-%d", i))
		switch i {
		case 5:
			if !errors.Is(err, context.Canceled) || ranCanceled || !errors.Is(gerr, store.ErrNotFound) {
				t.Errorf("canceled caller: %v, ran %v, stored %v", err, ranCanceled, gerr)
			}
		case 7:
			if !errors.Is(err, boom) || !errors.Is(gerr, store.ErrNotFound) {
				t.Errorf("failing caller: %v, stored %v", err, gerr)
			}
		default:
			if err != nil || gerr != nil {
				t.Errorf("caller %d: %v, stored %v", i, err, gerr)
			}
		}
	}

	// A function sees the writes before it in the shared transaction; a
	// lone failing one rolls back and returns its own error.
	var seen []bool
	var mu sync.Mutex
	var wg2 sync.WaitGroup
	for range 4 {
		wg2.Go(func() {
			err := s.WithGroupTx(ctx, func(ctx context.Context, tx *store.Tx) error {
				cur, err := tx.Get(ctx, "Task", "g-counter")
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
				r := task("g-counter", int(cur.Version)+1)
				if errors.Is(err, store.ErrNotFound) {
					_, err = tx.Put(ctx, r)
				} else {
					_, err = tx.Update(ctx, r, cur.Version)
				}
				mu.Lock()
				seen = append(seen, err == nil)
				mu.Unlock()
				return err
			})
			if err != nil {
				t.Errorf("counter: %v", err)
			}
		})
	}
	wg2.Wait()
	if r, err := s.Get(ctx, "Task", "g-counter"); err != nil || r.Version != 4 {
		t.Errorf("counter after 4 updates: v%d, %v (each saw %v)", r.Version, err, seen)
	}
	if err := s.WithGroupTx(ctx, func(ctx context.Context, tx *store.Tx) error {
		if _, err := tx.Put(ctx, task("g-alone", 1)); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Errorf("a lone failing function: %v", err)
	}
	if _, err := s.Get(ctx, "Task", "g-alone"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a lone failing function's write: %v", err)
	}
}

// testGroupTxFailures: in a shared transaction, a function's failure is
// its own whatever it is (a statement failing when it is sent, later on
// PostgreSQL; an error; a panic), takes its writes and what it left for
// the end (Tx.AtEnd) with it, and leaves the others'.
func testGroupTxFailures(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	ctx := t.Context()
	boom := errors.New("boom")
	release := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- s.WithGroupTx(ctx, func(ctx context.Context, tx *store.Tx) error { <-release; return nil })
	}()
	put := func(ctx context.Context, tx *store.Tx, id string) error {
		_, err := tx.Put(ctx, task(id, 1))
		return err
	}
	fns := map[string]func(ctx context.Context, tx *store.Tx) error{
		// An audit entry that does not continue the log: refused by the
		// database (on PostgreSQL when sent, with what comes next).
		"gap": func(ctx context.Context, tx *store.Tx) error {
			if err := put(ctx, tx, "gap"); err != nil {
				return err
			}
			head, err := tx.AuditHead(ctx, nil)
			if err != nil {
				return err
			}
			return tx.AppendAudit(ctx, []store.AuditRecord{auditRecord(head.Size+5, epoch)})
		},
		"ok": func(ctx context.Context, tx *store.Tx) error {
			if err := put(ctx, tx, "ok"); err != nil {
				return err
			}
			tx.AtEnd(func(ctx context.Context, tx *store.Tx) error { return put(ctx, tx, "ok-end") })
			return nil
		},
		"error": func(ctx context.Context, tx *store.Tx) error {
			if err := put(ctx, tx, "error"); err != nil {
				return err
			}
			tx.AtEnd(func(ctx context.Context, tx *store.Tx) error { return put(ctx, tx, "error-end") })
			return boom
		},
		"panic": func(ctx context.Context, tx *store.Tx) error {
			if err := put(ctx, tx, "panic"); err != nil {
				return err
			}
			panic("a bug")
		},
		"ok2": func(ctx context.Context, tx *store.Tx) error { return put(ctx, tx, "ok2") },
	}
	errs := map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, fn := range fns {
		wg.Go(func() {
			err := s.WithGroupTx(ctx, fn)
			mu.Lock()
			errs[name] = err
			mu.Unlock()
		})
	}
	time.Sleep(50 * time.Millisecond) // let them queue behind the first
	close(release)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	stored := func(id string) bool {
		_, err := s.Get(ctx, "Task", id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	for name, wantErr := range map[string]bool{"gap": true, "ok": false, "error": true, "panic": true, "ok2": false} {
		if (errs[name] != nil) != wantErr || stored(name) == wantErr {
			t.Errorf("%s: error %v, stored %v", name, errs[name], stored(name))
		}
	}
	if !errors.Is(errs["error"], boom) || !stored("ok-end") || stored("error-end") {
		t.Errorf("error: %v; ok's AtEnd write stored %v, error's %v", errs["error"], stored("ok-end"), stored("error-end"))
	}
	if size, err := s.AuditSize(ctx); err != nil || size != 0 {
		t.Errorf("audit log after the refused entry: %d, %v", size, err)
	}
}

// testPutBatchHash: PutBatch writes a new resource with the hash its
// caller computed, and hashes one read from the store (whose Hash is of
// the data read, not of the data changed since) itself.
func testPutBatchHash(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	ctx := t.Context()
	r := task("h1", 1)
	r.Hash = sha256.Sum256(r.Data)
	if err := s.PutBatch(ctx, []store.Resource{r}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "Task", "h1")
	if err != nil || got.Hash != r.Hash || got.Version != 1 {
		t.Fatalf("put with its hash: v%d %x, %v; want v1 %x", got.Version, got.Hash, err, r.Hash)
	}
	clock.Advance(time.Second)
	got.Data = task("h1", 2).Data // changed; got.Hash is still the old data's
	if err := s.PutBatch(ctx, []store.Resource{got}); err != nil {
		t.Fatal(err)
	}
	again, err := s.Get(ctx, "Task", "h1")
	if err != nil || again.Version != 2 || again.Hash != sha256.Sum256(again.Data) {
		t.Errorf("a read resource changed and put again: v%d, hash of its data %v, %v", again.Version, again.Hash == sha256.Sum256(again.Data), err)
	}
}

// testGroupTxDeadlock: a function that fails as a deadlock's victim runs
// once more, in the next transaction (its first writes rolled back); a
// second deadlock is its caller's error.
func testGroupTxDeadlock(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	ctx := t.Context()
	deadlock := &pgconn.PgError{Code: "40P01", Message: "deadlock detected"}
	calls := 0
	err := s.WithGroupTx(ctx, func(ctx context.Context, tx *store.Tx) error {
		calls++
		if _, err := tx.Put(ctx, task(fmt.Sprintf("d-%d", calls), 1)); err != nil {
			return err
		}
		if calls == 1 {
			return deadlock
		}
		return nil
	})
	if err != nil || calls != 2 {
		t.Fatalf("a deadlock's victim: %v after %d calls, want success on the second", err, calls)
	}
	if _, err := s.Get(ctx, "Task", "d-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the first call's write: %v, want rolled back", err)
	}
	if _, err := s.Get(ctx, "Task", "d-2"); err != nil {
		t.Errorf("the second call's write: %v", err)
	}
	always := 0
	err = s.WithGroupTx(ctx, func(ctx context.Context, tx *store.Tx) error { always++; return deadlock })
	if !errors.As(err, new(*pgconn.PgError)) || always != 2 {
		t.Errorf("always a victim: %v after %d calls, want the deadlock after 2", err, always)
	}
}
