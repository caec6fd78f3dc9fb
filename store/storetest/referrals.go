package storetest

import (
	"reflect"
	"testing"
	"time"

	"github.com/pathway-fhir/pathway/store"
)

func init() {
	cases = append(cases, []struct {
		name string
		run  func(t *testing.T, newURL NewURL)
	}{
		{"RoutingsRecordAndReplace", testRoutings},
		{"OpenReferralsByOwner", testOpenReferrals},
	}...)
}

func testRoutings(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	put := func(rs ...store.Routing) {
		t.Helper()
		err := s.WithTx(t.Context(), func(tx *store.Tx) error {
			for _, r := range rs {
				if err := tx.PutRouting(t.Context(), r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("PutRouting: %v", err)
		}
	}
	put(
		store.Routing{ServiceRequest: "ServiceRequest/a", Source: "ngo-a", Risk: "high", Targets: []string{"clinic-b", "community-e"}},
		store.Routing{ServiceRequest: "ServiceRequest/b", Source: "ngo-a", Risk: "imminent", Unroutable: true, Reason: "imminent risk needs a specialist clinic"},
	)
	all, err := s.Routings(t.Context(), false, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || !reflect.DeepEqual(all[0].Targets, []string{"clinic-b", "community-e"}) || !all[1].Unroutable || all[1].Reason == "" || all[0].UpdatedAt.IsZero() {
		t.Fatalf("Routings = %+v", all)
	}
	held, err := s.Routings(t.Context(), true, "", 0)
	if err != nil || len(held) != 1 || held[0].ServiceRequest != "ServiceRequest/b" {
		t.Fatalf("unroutable = %+v %v", held, err)
	}
	// The same routing again (a re-ingest) leaves the record as it was.
	clock.Advance(time.Hour)
	put(store.Routing{ServiceRequest: "ServiceRequest/a", Source: "ngo-a", Risk: "high", Targets: []string{"clinic-b", "community-e"}})
	if again, err := s.Routings(t.Context(), false, "", 1); err != nil || len(again) != 1 || !again[0].UpdatedAt.Equal(all[0].UpdatedAt) {
		t.Errorf("after an unchanged PutRouting = %+v %v, want updated at %v still", again, err, all[0].UpdatedAt)
	}
	// Re-routing replaces: b finds a partner after a new one joins.
	put(store.Routing{ServiceRequest: "ServiceRequest/b", Source: "ngo-a", Risk: "imminent", Targets: []string{"clinic-f"}})
	if b, err := s.Routings(t.Context(), false, "ServiceRequest/a", 1); err != nil || len(b) != 1 || !b[0].UpdatedAt.Equal(clock.Now().Truncate(time.Microsecond)) {
		t.Errorf("after re-routing = %+v %v, want updated at %v", b, err, clock.Now())
	}
	held, err = s.Routings(t.Context(), true, "", 0)
	if err != nil || len(held) != 0 {
		t.Fatalf("after re-routing, unroutable = %+v %v", held, err)
	}
	page, err := s.Routings(t.Context(), false, "ServiceRequest/a", 0)
	if err != nil || len(page) != 1 || page[0].Reason != "" || page[0].Targets[0] != "clinic-f" {
		t.Fatalf("page after a = %+v %v", page, err)
	}
	err = s.WithTx(t.Context(), func(tx *store.Tx) error {
		return tx.PutRouting(t.Context(), store.Routing{ServiceRequest: "Task/x", Risk: "low"})
	})
	if err == nil {
		t.Error("PutRouting of a non-ServiceRequest succeeded")
	}
}

func testOpenReferrals(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	for i, st := range []string{"requested", "accepted", "completed", "in-progress", "cancelled"} {
		r := task(string(rune('a'+i)), 1)
		r.Status = st
		mustPut(t, s, r)
	}
	other := task("z", 1)
	other.Owner = "Organization/ngo-d"
	mustPut(t, s, other)
	got, err := s.OpenReferrals(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"Organization/clinic-a": 3, "Organization/ngo-d": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("OpenReferrals = %v, want %v", got, want)
	}
	// A referral's own Tasks can be left out (its re-ingest).
	got, err = s.OpenReferrals(t.Context(), "a", "z", "no-such-task")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"Organization/clinic-a": 2}; !reflect.DeepEqual(got, want) {
		t.Errorf("OpenReferrals except a and z = %v, want %v", got, want)
	}
}
