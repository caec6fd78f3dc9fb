package storetest

import (
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
		{"SyncStateUnknownPartner", testSyncStateUnknown},
		{"SyncWatermarkOnlyForward", testSyncWatermarkForward},
		{"SyncWatermarkPerPartnerAndReopen", testSyncWatermarkReopen},
		{"SyncWatermarkInvalid", testSyncWatermarkInvalid},
		{"SyncRejectsKeptOnce", testSyncRejects},
	}...)
}

func syncState(t *testing.T, s *store.Store, partner string) store.SyncState {
	t.Helper()
	st, err := s.SyncState(t.Context(), partner)
	if err != nil {
		t.Fatalf("SyncState(%s): %v", partner, err)
	}
	return st
}

func advance(t *testing.T, s *store.Store, partner string, wm time.Time, ids ...string) {
	t.Helper()
	if err := s.AdvanceSync(t.Context(), partner, wm, ids); err != nil {
		t.Fatalf("AdvanceSync(%s, %s): %v", partner, wm, err)
	}
}

func testSyncStateUnknown(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	st := syncState(t, s, "clinic-a")
	if !st.Watermark.IsZero() || len(st.AtWatermark) != 0 || st.Partner != "clinic-a" {
		t.Errorf("state of a partner never synced = %+v, want a zero watermark", st)
	}
}

func testSyncWatermarkForward(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	// Nanoseconds are dropped: the store keeps microseconds.
	w1 := time.Date(2026, 11, 20, 8, 0, 0, 123456789, time.UTC)
	advance(t, s, "clinic-a", w1, "ServiceRequest/b", "ServiceRequest/a")
	st := syncState(t, s, "clinic-a")
	if want := w1.Truncate(time.Microsecond); !st.Watermark.Equal(want) {
		t.Errorf("watermark = %s, want %s", st.Watermark, want)
	}
	if !slices.Equal(st.AtWatermark, []string{"ServiceRequest/a", "ServiceRequest/b"}) {
		t.Errorf("at watermark = %v, want a and b, sorted", st.AtWatermark)
	}
	if !st.UpdatedAt.Equal(clock.Now().Truncate(time.Microsecond)) {
		t.Errorf("updated at = %s, want the store's clock %s", st.UpdatedAt, clock.Now())
	}

	// The same instant adds ids, without duplicates.
	advance(t, s, "clinic-a", w1, "ServiceRequest/a", "ServiceRequest/c")
	if st := syncState(t, s, "clinic-a"); !slices.Equal(st.AtWatermark, []string{"ServiceRequest/a", "ServiceRequest/b", "ServiceRequest/c"}) {
		t.Errorf("at watermark after the same instant = %v, want a, b, c", st.AtWatermark)
	}

	// An older watermark changes nothing.
	advance(t, s, "clinic-a", w1.Add(-time.Hour), "ServiceRequest/old")
	if st := syncState(t, s, "clinic-a"); !st.Watermark.Equal(w1.Truncate(time.Microsecond)) || slices.Contains(st.AtWatermark, "ServiceRequest/old") {
		t.Errorf("an older watermark moved the state back: %+v", st)
	}

	// A newer one replaces the ids.
	w2 := w1.Add(time.Microsecond)
	advance(t, s, "clinic-a", w2, "ServiceRequest/d")
	st = syncState(t, s, "clinic-a")
	if !st.Watermark.Equal(w2.Truncate(time.Microsecond)) || !slices.Equal(st.AtWatermark, []string{"ServiceRequest/d"}) {
		t.Errorf("state after a newer watermark = %+v, want %s with d only", st, w2)
	}

	// A page with no referral at the watermark itself keeps no ids.
	w3 := w2.Add(time.Second)
	advance(t, s, "clinic-a", w3)
	if st := syncState(t, s, "clinic-a"); len(st.AtWatermark) != 0 {
		t.Errorf("at watermark = %v, want none", st.AtWatermark)
	}
}

func testSyncWatermarkReopen(t *testing.T, newURL NewURL) {
	url := newURL(t)
	clock := NewClock(epoch)
	s := open(t, url, clock)
	wa := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	advance(t, s, "clinic-a", wa, "ServiceRequest/x")
	advance(t, s, "clinic-b", wa.Add(time.Hour))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, url, clock)
	if st := syncState(t, s2, "clinic-a"); !st.Watermark.Equal(wa) || !slices.Equal(st.AtWatermark, []string{"ServiceRequest/x"}) {
		t.Errorf("clinic-a after reopening = %+v", st)
	}
	if st := syncState(t, s2, "clinic-b"); !st.Watermark.Equal(wa.Add(time.Hour)) || len(st.AtWatermark) != 0 {
		t.Errorf("clinic-b after reopening = %+v", st)
	}
	if st := syncState(t, s2, "clinic-c"); !st.Watermark.IsZero() {
		t.Errorf("clinic-c has a watermark of another partner: %+v", st)
	}
}

func testSyncWatermarkInvalid(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for name, call := range map[string]func() error{
		"no partner":    func() error { return s.AdvanceSync(t.Context(), "", at, nil) },
		"no watermark":  func() error { return s.AdvanceSync(t.Context(), "clinic-a", time.Time{}, nil) },
		"id with space": func() error { return s.AdvanceSync(t.Context(), "clinic-a", at, []string{"ServiceRequest/a b"}) },
		"empty id":      func() error { return s.AdvanceSync(t.Context(), "clinic-a", at, []string{""}) },
	} {
		if err := call(); err == nil {
			t.Errorf("%s: AdvanceSync accepted it", name)
		}
	}
	if st := syncState(t, s, "clinic-a"); !st.Watermark.IsZero() {
		t.Errorf("a refused advance was written: %+v", st)
	}
}

func testSyncRejects(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	ctx := t.Context()
	lu := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	r := store.SyncReject{Partner: "clinic-a", Resource: "ServiceRequest/sr-1", LastUpdated: lu, Reasons: []string{"ServiceRequest.status is not active", "second reason"}}
	for range 2 {
		if err := s.PutSyncReject(ctx, r); err != nil {
			t.Fatalf("PutSyncReject: %v", err)
		}
	}
	// A later version of the same referral is a reject of its own.
	r2 := r
	r2.LastUpdated, r2.Reasons = lu.Add(time.Minute), []string{"other"}
	if err := s.PutSyncReject(ctx, r2); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSyncReject(ctx, store.SyncReject{Partner: "clinic-b", Resource: "ServiceRequest/sr-9", LastUpdated: lu, Reasons: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSyncReject(ctx, store.SyncReject{Partner: "clinic-a", Resource: "ServiceRequest/sr-2", LastUpdated: lu}); err == nil {
		t.Error("a reject without a reason was kept")
	}
	got, err := s.SyncRejects(ctx, "clinic-a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("clinic-a has %d rejects, want 2: %+v", len(got), got)
	}
	if !got[0].LastUpdated.Equal(lu) || !slices.Equal(got[0].Reasons, r.Reasons) || got[0].Resource != r.Resource {
		t.Errorf("first reject = %+v, want %+v", got[0], r)
	}
	if !got[1].LastUpdated.Equal(r2.LastUpdated) || !slices.Equal(got[1].Reasons, []string{"other"}) {
		t.Errorf("second reject = %+v", got[1])
	}
}
