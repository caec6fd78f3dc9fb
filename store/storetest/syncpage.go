package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pathway-fhir/pathway/store"
)

func init() {
	cases = append(cases, []struct {
		name string
		run  func(t *testing.T, newURL NewURL)
	}{
		{"GetMany", testGetMany},
		{"CurrentOfPatients", testCurrentOfPatients},
		{"SyncInTxKeptWithTheChanges", testSyncInTx},
	}...)
}

func testGetMany(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	ctx := t.Context()
	var ids []string
	for i := range 450 { // more than one IN list
		id := fmt.Sprintf("t-%03d", i)
		ids = append(ids, id)
		mustPut(t, s, task(id, 1))
	}
	mustPut(t, s, task("t-007", 2))
	got, err := s.GetMany(ctx, "Task", append(slices.Clone(ids), "t-missing", "t-007"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 450 {
		t.Fatalf("GetMany returned %d, want 450 (the missing id left out)", len(got))
	}
	for _, id := range []string{"t-000", "t-007", "t-449"} {
		want, err := s.Get(ctx, "Task", id)
		if err != nil {
			t.Fatal(err)
		}
		g := got[id]
		if g.Version != want.Version || g.Hash != want.Hash || string(g.Data) != string(want.Data) || g.Owner != want.Owner || !g.LastUpdated.Equal(want.LastUpdated) {
			t.Errorf("GetMany[%s] = %+v, want %+v", id, g, want)
		}
	}
	if got["t-007"].Version != 2 {
		t.Errorf("t-007 at version %d, want the current 2", got["t-007"].Version)
	}
	err = s.WithTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Put(ctx, task("t-001", 2)); err != nil {
			return err
		}
		in, err := tx.GetMany(ctx, "Task", []string{"t-001"})
		if err != nil {
			return err
		}
		if in["t-001"].Version != 2 {
			t.Errorf("inside the transaction t-001 is at version %d, want its own write (2)", in["t-001"].Version)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// LockHeads reports what Heads does, by id.
	err = s.WithTx(ctx, func(tx *store.Tx) error {
		locked, err := tx.LockHeads(ctx, "Task", []string{"t-001", "t-007", "t-missing"})
		if err != nil {
			return err
		}
		heads, err := tx.Heads(ctx, []string{"Task/t-001", "Task/t-007"})
		if err != nil {
			return err
		}
		if len(locked) != 2 || locked["t-001"] != heads["Task/t-001"] || locked["t-007"] != heads["Task/t-007"] {
			t.Errorf("LockHeads = %+v, Heads = %+v", locked, heads)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetMany(ctx, "not a type", ids); err == nil {
		t.Error("GetMany accepted an invalid type")
	}
}

func testCurrentOfPatients(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	ctx := t.Context()
	consent := func(id, patient string, rev int) store.Resource {
		return store.Resource{Type: "Consent", ID: id, Source: "ngo-a", Format: "json", Patient: patient, Status: "active",
			Data: fmt.Appendf(nil, `{"resourceType":"Consent","id":%q,"rev":%d}`, id, rev)}
	}
	mustPut(t, s, consent("c-b", "Patient/p1", 1))
	mustPut(t, s, consent("c-a", "Patient/p1", 1))
	mustPut(t, s, consent("c-a", "Patient/p1", 2))
	mustPut(t, s, consent("c-c", "Patient/p2", 1))
	mustPut(t, s, consent("c-d", "Patient/p3", 1))
	mustPut(t, s, task("c-e", 1)) // another type, not a consent
	got, err := s.CurrentOfPatients(ctx, "Consent", []string{"Patient/p1", "Patient/p2", "Patient/none", "Patient/p1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"Patient/p1", "Patient/p2", "Patient/none"} {
		want, err := s.Search(ctx, store.Query{Type: "Consent", Patient: p, Limit: store.MaxSearchLimit})
		if err != nil {
			t.Fatal(err)
		}
		var g, w []string
		for _, r := range got[p] {
			g = append(g, fmt.Sprintf("%s v%d %x", r.ID, r.Version, r.Hash[:4]))
		}
		for _, r := range want {
			w = append(w, fmt.Sprintf("%s v%d %x", r.ID, r.Version, r.Hash[:4]))
		}
		if !slices.Equal(g, w) {
			t.Errorf("%s: CurrentOfPatients = %v, Search = %v", p, g, w)
		}
	}
	if _, ok := got["Patient/p3"]; ok {
		t.Error("a patient not asked for is in the result")
	}
}

// testSyncInTx: the watermark and the rejects written in a transaction
// are kept with it, or, when it rolls back, not at all.
func testSyncInTx(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	ctx := t.Context()
	key := store.TaskSyncPartner("clinic-a")
	w1 := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	errBoom := errors.New("boom")
	err := s.WithTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Put(ctx, task("t-1", 1)); err != nil {
			return err
		}
		if err := tx.AdvanceSync(ctx, key, w1, []string{"Task/t-1"}); err != nil {
			return err
		}
		if err := tx.PutSyncReject(ctx, store.SyncReject{Partner: "clinic-a", Resource: "Task/t-2", LastUpdated: w1, Reasons: []string{"refused"}}); err != nil {
			return err
		}
		if st, err := tx.SyncState(ctx, key); err != nil || !st.Watermark.Equal(w1) {
			t.Errorf("inside the transaction the state is %+v, %v; want its own watermark", st, err)
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("WithTx = %v", err)
	}
	if st := syncState(t, s, key); !st.Watermark.IsZero() {
		t.Errorf("rolled back, the watermark is still %s", st.Watermark)
	}
	if rs, err := s.SyncRejects(ctx, "clinic-a", 0); err != nil || len(rs) != 0 {
		t.Errorf("rolled back, rejects = %+v, %v", rs, err)
	}
	if _, err := s.Get(ctx, "Task", "t-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("rolled back, the Task is there: %v", err)
	}

	commit := func(fn func(tx *store.Tx) error) {
		t.Helper()
		if err := s.WithTx(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	commit(func(tx *store.Tx) error {
		if err := tx.AdvanceSync(ctx, key, w1, []string{"Task/b"}); err != nil {
			return err
		}
		return tx.PutSyncReject(ctx, store.SyncReject{Partner: "clinic-a", Resource: "Task/t-2", LastUpdated: w1, Reasons: []string{"refused"}})
	})
	// The same instant adds ids, an older one changes nothing, the same
	// reject is kept once: as the Store's own methods do.
	commit(func(tx *store.Tx) error {
		if err := tx.AdvanceSync(ctx, key, w1, []string{"Task/a"}); err != nil {
			return err
		}
		if err := tx.AdvanceSync(ctx, key, w1.Add(-time.Second), []string{"Task/z"}); err != nil {
			return err
		}
		return tx.PutSyncReject(ctx, store.SyncReject{Partner: "clinic-a", Resource: "Task/t-2", LastUpdated: w1, Reasons: []string{"other"}})
	})
	st := syncState(t, s, key)
	if !st.Watermark.Equal(w1) || !slices.Equal(st.AtWatermark, []string{"Task/a", "Task/b"}) {
		t.Errorf("state = %+v, want w1 with a and b", st)
	}
	if own := syncState(t, s, "clinic-a"); !own.Watermark.IsZero() {
		t.Errorf("the partner's own (ServiceRequest) watermark moved: %+v", own)
	}
	rs, err := s.SyncRejects(ctx, "clinic-a", 0)
	if err != nil || len(rs) != 1 || rs[0].Reasons[0] != "refused" {
		t.Errorf("rejects = %+v, %v; want the first kept once", rs, err)
	}
	for name, fn := range map[string]func(tx *store.Tx) error{
		"no watermark":  func(tx *store.Tx) error { return tx.AdvanceSync(ctx, key, time.Time{}, nil) },
		"id with space": func(tx *store.Tx) error { return tx.AdvanceSync(ctx, key, w1, []string{"Task/a b"}) },
		"no reason": func(tx *store.Tx) error {
			return tx.PutSyncReject(ctx, store.SyncReject{Partner: "clinic-a", Resource: "Task/x"})
		},
	} {
		if err := s.WithTx(ctx, fn); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
