package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pathway-fhir/pathway/store"
)

func init() {
	cases = append(cases, []struct {
		name string
		run  func(t *testing.T, newURL NewURL)
	}{
		{"HeldHoldReleaseUnhold", testHeld},
	}...)
}

func held(key, stream, patient string) store.Held {
	m := message(key, "community-c")
	m.Stream = stream
	return store.Held{Message: m, Patient: patient, Reason: "no-consent: base policy opt-in"}
}

func testHeld(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	ctx := t.Context()
	tx := func(f func(tx *store.Tx) error) {
		t.Helper()
		if err := s.WithTx(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	tx(func(tx *store.Tx) error {
		for _, h := range []store.Held{
			held("k1", "ServiceRequest/a Organization/community-c", "Patient/p1"),
			held("k2", "ServiceRequest/b Organization/community-c", "Patient/p1"),
			held("k3", "ServiceRequest/c Organization/community-c", "Patient/p2"),
		} {
			if err := tx.Hold(ctx, h); err != nil {
				return err
			}
		}
		return nil
	})
	got, err := s.HeldOf(ctx, "Patient/p1")
	if err != nil || len(got) != 2 || got[0].Key != "k1" || got[1].Key != "k2" || string(got[0].Payload) != `{"key":"k1"}` ||
		got[0].Reason == "" || got[0].Partner != "community-c" || got[0].Purpose != "COC" || got[0].CreatedAt.IsZero() {
		t.Fatalf("HeldOf(p1) = %+v, %v", got, err)
	}

	// The same message again changes nothing; a newer version of the
	// referral replaces it in its slot.
	first := got[0].UpdatedAt
	clock.Advance(time.Minute)
	tx(func(tx *store.Tx) error {
		return tx.Hold(ctx, held("k1", "ServiceRequest/a Organization/community-c", "Patient/p1"))
	})
	if again, _ := s.HeldOf(ctx, "Patient/p1"); !again[0].UpdatedAt.Equal(first) {
		t.Errorf("holding the same message again moved its time to %v", again[0].UpdatedAt)
	}
	tx(func(tx *store.Tx) error {
		return tx.Hold(ctx, held("k1b", "ServiceRequest/a Organization/community-c", "Patient/p1"))
	})
	if again, _ := s.HeldOf(ctx, "Patient/p1"); len(again) != 2 || again[0].Key != "k1b" || !again[0].CreatedAt.Equal(got[0].CreatedAt) {
		t.Errorf("after a newer version: %+v", again)
	}

	// Release takes only the message still held.
	tx(func(tx *store.Tx) error {
		if ok, err := tx.Release(ctx, "ServiceRequest/a Organization/community-c", "k1"); ok || err != nil {
			t.Errorf("Release of the superseded k1 = %v, %v", ok, err)
		}
		if ok, err := tx.Release(ctx, "ServiceRequest/a Organization/community-c", "k1b"); !ok || err != nil {
			t.Errorf("Release of k1b = %v, %v", ok, err)
		}
		if ok, err := tx.Release(ctx, "ServiceRequest/a Organization/community-c", "k1b"); ok || err != nil {
			t.Errorf("a second Release of k1b = %v, %v", ok, err)
		}
		return tx.Unhold(ctx, []string{"ServiceRequest/c Organization/community-c", "ServiceRequest/none Organization/x"})
	})
	if p1, _ := s.HeldOf(ctx, "Patient/p1"); len(p1) != 1 || p1[0].Key != "k2" {
		t.Errorf("p1 after the release: %+v", p1)
	}
	if p2, _ := s.HeldOf(ctx, "Patient/p2"); len(p2) != 0 {
		t.Errorf("p2 after Unhold: %+v", p2)
	}
	tx(func(tx *store.Tx) error {
		for _, c := range []struct {
			except []string
			want   string
		}{
			{nil, "[Patient/p1]"},
			{[]string{"ServiceRequest/b Organization/community-c"}, "[]"},
			{[]string{"ServiceRequest/x Organization/community-c"}, "[Patient/p1]"},
		} {
			got, err := tx.HeldPatients(ctx, []string{"Patient/p1", "Patient/p2", "Patient/p9"}, c.except)
			if err != nil || fmt.Sprint(got) != c.want && !(c.want == "[]" && len(got) == 0) {
				t.Errorf("HeldPatients(except %v) = %v, %v; want %s", c.except, got, err, c.want)
			}
		}
		return nil
	})

	// A rolled-back hold leaves nothing; the listing pages without payloads.
	errRollback := errors.New("rollback")
	if err := s.WithTx(ctx, func(tx *store.Tx) error {
		if err := tx.Hold(ctx, held("k9", "ServiceRequest/z Organization/community-c", "Patient/p1")); err != nil {
			return err
		}
		return errRollback
	}); !errors.Is(err, errRollback) {
		t.Fatalf("rolled back hold: %v", err)
	}
	tx(func(tx *store.Tx) error {
		return tx.Hold(ctx, held("k4", "ServiceRequest/d Organization/community-c", "Patient/p3"))
	})
	list, err := s.HeldMessages(ctx, "", 1)
	if err != nil || len(list) != 1 || list[0].Key != "k2" || list[0].Payload != nil {
		t.Fatalf("HeldMessages page 1 = %+v, %v", list, err)
	}
	list, err = s.HeldMessages(ctx, list[0].Stream, 0)
	if err != nil || len(list) != 1 || list[0].Key != "k4" {
		t.Fatalf("HeldMessages page 2 = %+v, %v", list, err)
	}
	if err := s.WithTx(ctx, func(tx *store.Tx) error { return tx.Hold(ctx, store.Held{Message: message("k5", "x")}) }); err == nil {
		t.Error("a held message without stream and patient was accepted")
	}
}
