package storetest

import (
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
		{"OutboxEnqueueIdempotent", testEnqueueIdempotent},
		{"OutboxEnqueueRollsBack", testEnqueueRollsBack},
		{"OutboxClaimDueOnly", testClaimDueOnly},
		{"OutboxLeaseExpiry", testLeaseExpiry},
		{"OutboxExtend", testExtend},
		{"OutboxRetryDeadRequeue", testRetryDeadRequeue},
		{"OutboxRetryKeepsResponse", testRetryKeepsResponse},
		{"OutboxWithholdRelease", testWithholdRelease},
		{"OutboxSettleInTx", testSettleInTx},
		{"OutboxConcurrentClaimers", testConcurrentClaimers},
		{"OutboxListAndStats", testListAndStats},
	}...)
}

func message(key, partner string) store.Message {
	return store.Message{Key: key, Partner: partner, Purpose: "COC", Kind: "transaction", Payload: []byte(`{"key":"` + key + `"}`)}
}

func enqueue(t *testing.T, s *store.Store, ms ...store.Message) []int64 {
	t.Helper()
	var ids []int64
	err := s.WithTx(t.Context(), func(tx *store.Tx) error {
		for _, m := range ms {
			id, created, err := tx.Enqueue(t.Context(), m)
			if err != nil {
				return err
			}
			if !created {
				return fmt.Errorf("message %s was not created", m.Key)
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return ids
}

func claim(t *testing.T, s *store.Store, owner string, n int, lease time.Duration) []store.Message {
	t.Helper()
	ms, err := s.Claim(t.Context(), owner, n, lease)
	if err != nil {
		t.Fatalf("Claim(%s): %v", owner, err)
	}
	return ms
}

func mustMessage(t *testing.T, s *store.Store, id int64) store.Message {
	t.Helper()
	m, err := s.Message(t.Context(), id)
	if err != nil {
		t.Fatalf("Message(%d): %v", id, err)
	}
	return m
}

func testEnqueueIdempotent(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	ids := enqueue(t, s, message("k1", "clinic-a"))
	var again int64
	err := s.WithTx(t.Context(), func(tx *store.Tx) error {
		m := message("k1", "clinic-a")
		m.Payload = []byte("other") // the key decides, not the content
		id, created, err := tx.Enqueue(t.Context(), m)
		if created {
			t.Error("second Enqueue with the same key created a message")
		}
		again = id
		return err
	})
	if err != nil {
		t.Fatalf("Enqueue again: %v", err)
	}
	if again != ids[0] {
		t.Errorf("second Enqueue returned id %d, want %d", again, ids[0])
	}
	m := mustMessage(t, s, ids[0])
	if m.State != store.StatePending || m.Attempts != 0 || string(m.Payload) != `{"key":"k1"}` ||
		m.Partner != "clinic-a" || m.Purpose != "COC" || m.Kind != "transaction" || m.Key != "k1" {
		t.Errorf("stored message = %+v", m)
	}
	if !m.NextAttemptAt.Equal(clock.Now().Truncate(time.Microsecond)) || !m.CreatedAt.Equal(m.NextAttemptAt) {
		t.Errorf("times: next %v created %v, want %v", m.NextAttemptAt, m.CreatedAt, clock.Now())
	}
	err = s.WithTx(t.Context(), func(tx *store.Tx) error {
		_, _, err := tx.Enqueue(t.Context(), store.Message{Key: "k2", Partner: "p", Kind: "transaction"})
		return err
	})
	if err == nil {
		t.Error("Enqueue without a payload succeeded")
	}
}

func testEnqueueRollsBack(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	boom := errors.New("boom")
	err := s.WithTx(t.Context(), func(tx *store.Tx) error {
		if _, err := tx.Put(t.Context(), task("t1", 1)); err != nil {
			return err
		}
		if _, _, err := tx.Enqueue(t.Context(), message("k1", "clinic-a")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("WithTx = %v, want boom", err)
	}
	if ms := claim(t, s, "w1", 10, time.Minute); len(ms) != 0 {
		t.Errorf("a rolled-back message was claimed: %v", ms)
	}
	if _, err := s.Get(t.Context(), "Task", "t1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("rolled-back resource: Get = %v", err)
	}
}

func testClaimDueOnly(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	later := message("later", "clinic-a")
	later.NextAttemptAt = clock.Now().Add(time.Hour)
	ids := enqueue(t, s, message("a", "clinic-a"), message("b", "ngo-b"), later)

	got := claim(t, s, "w1", 10, time.Minute)
	if len(got) != 2 || got[0].ID != ids[0] || got[1].ID != ids[1] {
		t.Fatalf("claimed %v, want ids %v", got, ids[:2])
	}
	for _, m := range got {
		if m.State != store.StateInflight || m.LeaseOwner != "w1" || m.Attempts != 1 ||
			!m.LeaseUntil.Equal(clock.Now().Add(time.Minute).Truncate(time.Microsecond)) || len(m.Payload) == 0 {
			t.Errorf("claimed message = %+v", m)
		}
	}
	if more := claim(t, s, "w2", 10, time.Minute); len(more) != 0 {
		t.Errorf("claimed again before anything was due: %v", more)
	}
	clock.Advance(time.Hour)
	// Now the delayed one is due, and the first two leases ran out too.
	got = claim(t, s, "w2", 1, time.Minute)
	if len(got) != 1 {
		t.Fatalf("claimed %d, want 1 (n=1)", len(got))
	}
	if _, err := s.Claim(t.Context(), "", 1, time.Minute); err == nil {
		t.Error("Claim without an owner succeeded")
	}
}

func testLeaseExpiry(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	ids := enqueue(t, s, message("a", "clinic-a"))
	claim(t, s, "w1", 1, time.Minute)
	clock.Advance(59 * time.Second)
	if ms := claim(t, s, "w2", 1, time.Minute); len(ms) != 0 {
		t.Fatalf("claimed a leased message: %v", ms)
	}
	clock.Advance(time.Second)
	ms := claim(t, s, "w2", 1, time.Minute)
	if len(ms) != 1 || ms[0].ID != ids[0] || ms[0].Attempts != 2 || ms[0].LeaseOwner != "w2" {
		t.Fatalf("after the lease ran out, claimed %+v", ms)
	}
	// The first worker comes back: whatever it tries, its lease is gone.
	for name, err := range map[string]error{
		"Ack":        s.Ack(t.Context(), ids[0], "w1"),
		"Retry":      s.Retry(t.Context(), ids[0], "w1", clock.Now(), "x", nil),
		"DeadLetter": s.DeadLetter(t.Context(), ids[0], "w1", "x", nil),
		"Withhold":   s.Withhold(t.Context(), ids[0], "w1", "x"),
		"Release":    s.Release(t.Context(), ids[0], "w1"),
	} {
		if !errors.Is(err, store.ErrLeaseLost) {
			t.Errorf("%s by the old owner = %v, want ErrLeaseLost", name, err)
		}
	}
	if err := s.Ack(t.Context(), ids[0], "w2"); err != nil {
		t.Fatalf("Ack by the holder: %v", err)
	}
	if err := s.Ack(t.Context(), ids[0], "w2"); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("second Ack = %v, want ErrLeaseLost", err)
	}
	m := mustMessage(t, s, ids[0])
	if m.State != store.StateDelivered || m.LeaseOwner != "" || !m.LeaseUntil.IsZero() {
		t.Errorf("acked message = %+v", m)
	}
	clock.Advance(time.Hour)
	if ms := claim(t, s, "w3", 1, time.Minute); len(ms) != 0 {
		t.Errorf("a delivered message was claimed: %v", ms)
	}
}

func testExtend(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	ids := enqueue(t, s, message("a", "clinic-a"), message("b", "clinic-a"), message("c", "clinic-a"))
	claim(t, s, "w1", 2, time.Minute)
	clock.Advance(50 * time.Second)
	if err := s.Extend(t.Context(), ids[0], "w1", time.Minute); err != nil {
		t.Fatalf("Extend by the holder: %v", err)
	}
	m := mustMessage(t, s, ids[0])
	if want := clock.Now().Add(time.Minute).Truncate(time.Microsecond); m.State != store.StateInflight || m.LeaseOwner != "w1" ||
		!m.LeaseUntil.Equal(want) || m.Attempts != 1 {
		t.Errorf("extended message = %s owner %q until %v after %d attempts, want inflight w1 until %v after 1", m.State, m.LeaseOwner, m.LeaseUntil, m.Attempts, want)
	}
	// Past the first lease: the extended message stays w1's, the other
	// one is claimed by w2, and w1 can no longer extend it.
	clock.Advance(30 * time.Second)
	got := claim(t, s, "w2", 10, time.Minute)
	if len(got) != 2 || got[0].ID != ids[1] || got[1].ID != ids[2] {
		t.Fatalf("w2 claimed %v, want ids %v (not the extended one)", got, ids[1:])
	}
	if err := s.Extend(t.Context(), ids[1], "w1", time.Minute); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("Extend by the old owner = %v, want ErrLeaseLost", err)
	}
	if err := s.Extend(t.Context(), ids[0], "w2", time.Minute); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("Extend by another worker = %v, want ErrLeaseLost", err)
	}
	if m := mustMessage(t, s, ids[1]); m.LeaseOwner != "w2" {
		t.Errorf("a failed Extend changed the owner to %q", m.LeaseOwner)
	}
	// A lease that ran out but nobody claimed is still the owner's.
	clock.Advance(2 * time.Minute)
	if err := s.Extend(t.Context(), ids[0], "w1", time.Minute); err != nil {
		t.Errorf("Extend of an expired, unclaimed lease: %v", err)
	}
	if ms := claim(t, s, "w3", 10, time.Minute); len(ms) != 2 || ms[0].ID != ids[1] {
		t.Errorf("w3 claimed %v, want the two w2 let run out, not the extended one", ms)
	}
	// Settled messages cannot be extended.
	if err := s.Ack(t.Context(), ids[0], "w1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Extend(t.Context(), ids[0], "w1", time.Minute); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("Extend of a delivered message = %v, want ErrLeaseLost", err)
	}
	if m := mustMessage(t, s, ids[0]); m.State != store.StateDelivered || !m.LeaseUntil.IsZero() {
		t.Errorf("Extend changed a delivered message: %+v", m)
	}
	if err := s.Extend(t.Context(), ids[1], "w3", 0); err == nil || errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("Extend with no lease = %v, want an argument error", err)
	}
}

func testRetryDeadRequeue(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	ids := enqueue(t, s, message("a", "clinic-a"))
	claim(t, s, "w1", 1, time.Minute)
	first := []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient"}]}`)
	if err := s.Retry(t.Context(), ids[0], "w1", clock.Now().Add(30*time.Second), "HTTP 503 from the partner", first); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	m := mustMessage(t, s, ids[0])
	if m.State != store.StatePending || m.LastError != "HTTP 503 from the partner" || m.Attempts != 1 || string(m.Response) != string(first) {
		t.Errorf("retried message = %+v, want the partner's response kept", m)
	}
	clock.Advance(29 * time.Second)
	if ms := claim(t, s, "w1", 1, time.Minute); len(ms) != 0 {
		t.Fatalf("claimed before the retry time: %v", ms)
	}
	clock.Advance(time.Second)
	if ms := claim(t, s, "w1", 1, time.Minute); len(ms) != 1 || ms[0].Attempts != 2 {
		t.Fatalf("at the retry time, claimed %+v", ms)
	}
	outcome := []byte(`{"resourceType":"OperationOutcome"}`)
	if err := s.DeadLetter(t.Context(), ids[0], "w1", "HTTP 422 from the partner", outcome); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	m = mustMessage(t, s, ids[0])
	if m.State != store.StateDead || string(m.Response) != string(outcome) || m.LastError != "HTTP 422 from the partner" {
		t.Errorf("dead message = %+v", m)
	}
	clock.Advance(time.Hour)
	if ms := claim(t, s, "w1", 1, time.Minute); len(ms) != 0 {
		t.Fatalf("a dead message was claimed: %v", ms)
	}
	if err := s.Requeue(t.Context(), ids[0]); err != nil {
		t.Fatalf("Requeue: %v", err)
	}
	if err := s.Requeue(t.Context(), ids[0]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Requeue of a pending message = %v, want ErrNotFound", err)
	}
	if ms := claim(t, s, "w1", 1, time.Minute); len(ms) != 1 || ms[0].Attempts != 1 {
		t.Fatalf("after Requeue, claimed %+v (attempts should restart)", ms)
	}
}

// testRetryKeepsResponse: the partner's last response survives retries
// without one (timeouts), so a dead letter after the last attempt has it.
func testRetryKeepsResponse(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	ids := enqueue(t, s, message("a", "clinic-a"))
	first := []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient"}]}`)
	second := []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"throttled"}]}`)
	for i, step := range []struct{ resp, want []byte }{{first, first}, {nil, first}, {second, second}, {nil, second}} {
		if ms := claim(t, s, "w1", 1, time.Minute); len(ms) != 1 {
			t.Fatalf("attempt %d: claimed %d", i+1, len(ms))
		}
		if err := s.Retry(t.Context(), ids[0], "w1", clock.Now(), "x", step.resp); err != nil {
			t.Fatalf("Retry: %v", err)
		}
		if m := mustMessage(t, s, ids[0]); string(m.Response) != string(step.want) {
			t.Errorf("after retry %d (response %q): kept %q, want %q", i+1, step.resp, m.Response, step.want)
		}
	}
	if ms := claim(t, s, "w1", 1, time.Minute); len(ms) != 1 || string(ms[0].Response) != string(second) {
		t.Fatalf("the last claim = %v, want the message with the last response", ms)
	}
	if err := s.DeadLetter(t.Context(), ids[0], "w1", "gave up", second); err != nil {
		t.Fatal(err)
	}
	if m := mustMessage(t, s, ids[0]); m.State != store.StateDead || string(m.Response) != string(second) {
		t.Errorf("dead letter = %s with %q, want dead with the last response", m.State, m.Response)
	}
}

func testWithholdRelease(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	ids := enqueue(t, s, message("a", "clinic-a"), message("b", "clinic-a"))
	claim(t, s, "w1", 2, time.Minute)
	if err := s.Withhold(t.Context(), ids[0], "w1", "consent Consent/c1 no longer permits COC for clinic-a"); err != nil {
		t.Fatalf("Withhold: %v", err)
	}
	if err := s.Release(t.Context(), ids[1], "w1"); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if m := mustMessage(t, s, ids[0]); m.State != store.StateWithheld || m.LastError == "" {
		t.Errorf("withheld message = %+v", m)
	}
	ms := claim(t, s, "w2", 2, time.Minute)
	if len(ms) != 1 || ms[0].ID != ids[1] || ms[0].Attempts != 1 {
		t.Fatalf("after Release, claimed %+v; want only the released one, at attempt 1", ms)
	}
}

// testSettleInTx: Tx.Ack and Tx.Withhold settle with the transaction
// they are part of: nothing on rollback, and only for the lease holder.
func testSettleInTx(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	ids := enqueue(t, s, message("a", "clinic-a"), message("b", "clinic-a"))
	claim(t, s, "w1", 2, time.Minute)
	rollback := errors.New("roll back")
	err := s.WithTx(t.Context(), func(tx *store.Tx) error {
		if err := tx.Ack(t.Context(), ids[0], "w1"); err != nil {
			return err
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatalf("WithTx = %v, want the rollback error", err)
	}
	if m := mustMessage(t, s, ids[0]); m.State != store.StateInflight {
		t.Fatalf("after a rolled-back Ack, state = %s, want inflight", m.State)
	}
	err = s.WithTx(t.Context(), func(tx *store.Tx) error { return tx.Ack(t.Context(), ids[0], "w2") })
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Ack by a worker without the lease = %v, want ErrLeaseLost", err)
	}
	err = s.WithTx(t.Context(), func(tx *store.Tx) error {
		if err := tx.Ack(t.Context(), ids[0], "w1"); err != nil {
			return err
		}
		return tx.Withhold(t.Context(), ids[1], "w1", "no longer permitted")
	})
	if err != nil {
		t.Fatalf("Ack and Withhold in one transaction: %v", err)
	}
	if m := mustMessage(t, s, ids[0]); m.State != store.StateDelivered {
		t.Errorf("acked message state = %s, want delivered", m.State)
	}
	if m := mustMessage(t, s, ids[1]); m.State != store.StateWithheld || m.LastError != "no longer permitted" {
		t.Errorf("withheld message = %s %q, want withheld with its reason", m.State, m.LastError)
	}
}

// testConcurrentClaimers has four workers drain 200 messages: each message
// is claimed exactly once.
func testConcurrentClaimers(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	var ms []store.Message
	for i := range 200 {
		ms = append(ms, message(fmt.Sprintf("m%03d", i), "clinic-a"))
	}
	enqueue(t, s, ms...)
	var (
		mu     sync.Mutex
		claims = map[int64]string{}
		wg     sync.WaitGroup
		errs   = make(chan error, 4)
	)
	for w := range 4 {
		owner := fmt.Sprintf("w%d", w)
		wg.Go(func() {
			for {
				got, err := s.Claim(t.Context(), owner, 7, time.Hour)
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					return
				}
				for _, m := range got {
					mu.Lock()
					if prev, dup := claims[m.ID]; dup {
						errs <- fmt.Errorf("message %d claimed by %s and %s", m.ID, prev, owner)
					}
					claims[m.ID] = owner
					mu.Unlock()
					if err := s.Ack(t.Context(), m.ID, owner); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(claims) != 200 {
		t.Errorf("%d messages claimed, want 200", len(claims))
	}
}

func testListAndStats(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	ids := enqueue(t, s, message("a", "clinic-a"), message("b", "ngo-b"), message("c", "clinic-a"))
	claim(t, s, "w1", 1, time.Minute)
	if err := s.DeadLetter(t.Context(), ids[0], "w1", "gave up", nil); err != nil {
		t.Fatal(err)
	}
	clock.Advance(10 * time.Second)
	st, err := s.OutboxStats(t.Context())
	if err != nil {
		t.Fatalf("OutboxStats: %v", err)
	}
	if st.Counts[store.StateDead] != 1 || st.Counts[store.StatePending] != 2 || st.OldestWaiting != 10*time.Second {
		t.Errorf("stats = %+v", st)
	}
	got, err := s.Messages(t.Context(), store.MessageQuery{Partner: "clinic-a"})
	if err != nil {
		t.Fatalf("Messages: %v", err)
	}
	if len(got) != 2 || got[0].ID != ids[0] || got[1].ID != ids[2] || got[0].Payload != nil {
		t.Errorf("Messages(partner) = %+v", got)
	}
	got, err = s.Messages(t.Context(), store.MessageQuery{State: store.StatePending, AfterID: ids[1], WithPayload: true})
	if err != nil {
		t.Fatalf("Messages: %v", err)
	}
	if len(got) != 1 || got[0].ID != ids[2] || string(got[0].Payload) != `{"key":"c"}` {
		t.Errorf("Messages(pending after) = %+v", got)
	}
	if _, err := s.Messages(t.Context(), store.MessageQuery{State: "lost"}); err == nil {
		t.Error("Messages with an unknown state succeeded")
	}
	if _, err := s.Message(t.Context(), 999999); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Message(missing) = %v, want ErrNotFound", err)
	}
}
