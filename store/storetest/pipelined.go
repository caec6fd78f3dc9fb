package storetest

import (
	"errors"
	"fmt"
	"strings"
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
		{"TxUpdate", testTxUpdate},
		{"TxUpdateConcurrent", testTxUpdateConcurrent},
		{"GetAndSearch", testGetAndSearch},
		{"AuditAppendNotContinuing", testAuditAppendNotContinuing},
	}...)
}

// update runs Tx.Update in a transaction of its own, which rolls back on
// an error.
func update(t *testing.T, s *store.Store, r store.Resource, version int64) (store.Resource, error) {
	t.Helper()
	var got store.Resource
	err := s.WithTx(t.Context(), func(tx *store.Tx) error {
		var err error
		got, err = tx.Update(t.Context(), r, version)
		return err
	})
	return got, err
}

func testTxUpdate(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	ctx := t.Context()
	v1 := mustPut(t, s, task("t1", 1))
	clock.Advance(time.Second)

	// At the version given: a new version, the one before kept.
	in := task("t1", 2)
	in.Status, in.Owner = "accepted", "Organization/clinic-b"
	v2, err := update(t, s, in, 1)
	if err != nil {
		t.Fatalf("Update at the current version: %v", err)
	}
	if v2.Version != 2 || !v2.LastUpdated.Equal(clock.Now().UTC().Truncate(time.Microsecond)) || v2.Status != "accepted" {
		t.Errorf("Update returned %+v, want version 2 stamped now", v2)
	}
	cur, err := s.Get(ctx, "Task", "t1")
	if err != nil {
		t.Fatal(err)
	}
	same(t, "current after Update", cur, v2)
	old, err := s.GetVersion(ctx, "Task", "t1", 1)
	if err != nil {
		t.Fatalf("version 1 after Update: %v", err)
	}
	same(t, "version 1 after Update", old, v1)

	// At another version: a conflict, nothing written.
	if _, err := update(t, s, task("t1", 3), 1); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Update at a stale version: %v, want ErrConflict", err)
	}
	if cur, _ := s.Get(ctx, "Task", "t1"); cur.Version != 2 {
		t.Errorf("after a conflict the Task is at version %d, want 2", cur.Version)
	}

	// The same content: no new version, the stored one returned.
	clock.Advance(time.Second)
	same2, err := update(t, s, in, 2)
	if err != nil {
		t.Fatalf("Update with the same content: %v", err)
	}
	same(t, "Update with the same content", same2, v2)

	// Not stored.
	if _, err := update(t, s, task("missing", 1), 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Update of a resource not stored: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "Task", "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Update created the resource it did not find: %v", err)
	}
	bad := task("t1", 4)
	bad.Data = nil
	if _, err := update(t, s, bad, 2); err == nil {
		t.Error("Update accepted a resource without data")
	}
}

// Writers that each read the current version and update from it: every
// update lands on the version it read or fails with ErrConflict, so no
// version is handed out twice and none is lost.
func testTxUpdateConcurrent(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	ctx := t.Context()
	mustPut(t, s, task("shared", 0))
	const writers, each = 4, 10
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		versions = map[int64]bool{}
	)
	for w := range writers {
		wg.Go(func() {
			for i := 0; i < each; {
				cur, err := s.Get(ctx, "Task", "shared")
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				got, err := update(t, s, task("shared", 1+w*100+i), cur.Version)
				if errors.Is(err, store.ErrConflict) {
					continue // another writer was first: read again
				}
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				mu.Lock()
				if got.Version != cur.Version+1 || versions[got.Version] {
					t.Errorf("writer %d updated version %d to %d (handed out before: %v)", w, cur.Version, got.Version, versions[got.Version])
				}
				versions[got.Version] = true
				mu.Unlock()
				i++
			}
		})
	}
	wg.Wait()
	cur, err := s.Get(ctx, "Task", "shared")
	if err != nil {
		t.Fatal(err)
	}
	if cur.Version != 1+writers*each {
		t.Errorf("final version %d, want %d", cur.Version, 1+writers*each)
	}
}

// GetAndSearch returns what Get and Search return.
func testGetAndSearch(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	ctx := t.Context()
	for i := range 3 {
		mustPut(t, s, task(fmt.Sprint("t", i), 1))
	}
	pt := mustPut(t, s, store.Resource{Type: "Patient", ID: "p-t1", Source: "ngo-a", Format: "json", Data: []byte(`{"resourceType":"Patient"}`), Patient: "Patient/p-t1"})
	q := store.Query{Type: "Task", Patient: "Patient/p-t1"}
	want, err := s.Search(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	r, found, rs, err := s.GetAndSearch(ctx, "Patient", "p-t1", q)
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatal("GetAndSearch did not find the Patient")
	}
	same(t, "GetAndSearch's resource", r, pt)
	if len(rs) != len(want) || len(rs) != 1 {
		t.Fatalf("GetAndSearch found %d, Search %d, want 1", len(rs), len(want))
	}
	same(t, "GetAndSearch's search", rs[0], want[0])

	r, found, rs, err = s.GetAndSearch(ctx, "Patient", "missing", store.Query{Type: "Task"})
	if err != nil || found || len(rs) != 3 {
		t.Errorf("GetAndSearch of a missing resource = %+v, %v, %d results, %v; want not found, 3 results", r, found, len(rs), err)
	}
	if _, _, _, err := s.GetAndSearch(ctx, "Patient", "p-t1", store.Query{Type: "Task", Limit: store.MaxSearchLimit + 1}); err == nil {
		t.Error("GetAndSearch accepted a limit over the maximum")
	}
	if _, _, _, err := s.GetAndSearch(ctx, "not a type", "p-t1", q); err == nil {
		t.Error("GetAndSearch accepted an invalid type")
	}
}

// An append that does not continue the log fails its transaction, with
// what the transaction wrote, also where the rows go with the commit
// (PostgreSQL).
func testAuditAppendNotContinuing(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	ctx := t.Context()
	appendAudit(t, s, 2, clock.Now())
	for _, seq := range []int64{1, 3} { // taken; leaving a gap
		err := s.WithTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.Put(ctx, task("t1", 1)); err != nil {
				return err
			}
			return tx.AppendAudit(ctx, []store.AuditRecord{auditRecord(seq, clock.Now())})
		})
		if err == nil || !strings.Contains(err.Error(), "does not continue the log") {
			t.Errorf("appending entry %d to a log of 2: %v, want an error saying it does not continue the log", seq, err)
		}
	}
	if n, err := s.AuditSize(ctx); err != nil || n != 2 {
		t.Errorf("AuditSize = %d, %v; want 2", n, err)
	}
	if _, err := s.Get(ctx, "Task", "t1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the transaction's write was kept: %v", err)
	}
}
