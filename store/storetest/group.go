package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pathway-fhir/pathway/store"
)

func init() {
	cases = append(cases, []struct {
		name string
		run  func(t *testing.T, newURL NewURL)
	}{
		{"GroupTxSharesAndIsolates", testGroupTx},
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
