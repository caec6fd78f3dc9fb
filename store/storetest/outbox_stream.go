package storetest

import (
	"errors"
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
		{"OutboxStreamOrder", testStreamOrder},
		{"OutboxStreamRequeue", testStreamRequeue},
		{"OutboxStreamEnqueueMany", testStreamEnqueueMany},
	}...)
}

func streamed(key, stream string) store.Message {
	m := message(key, "clinic-a")
	m.Stream = stream
	return m
}

func claimedIDs(ms []store.Message) []int64 {
	var ids []int64
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	return ids
}

// testStreamOrder: a message is not claimed while an older one of its
// stream is pending or inflight (also with its lease run out, or waiting
// for a retry); other streams and messages without one are not held up;
// a dead older message lets the next one go.
func testStreamOrder(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	ids := enqueue(t, s, streamed("a1", "S"), streamed("a2", "S"), streamed("a3", "S"), streamed("b1", "T"), message("c1", "clinic-a"))
	if got := mustMessage(t, s, ids[0]).Stream; got != "S" {
		t.Fatalf("stream read back as %q", got)
	}
	check := func(step string, got []store.Message, want ...int64) {
		t.Helper()
		if ids := claimedIDs(got); !slices.Equal(ids, want) {
			t.Errorf("%s: claimed %v, want %v", step, ids, want)
		}
	}
	first := claim(t, s, "w1", 10, time.Minute)
	check("first claim", first, ids[0], ids[3], ids[4])
	check("while a1 is inflight", claim(t, s, "w2", 10, time.Minute))
	// a1's lease runs out: a1 is claimed again, a2 still waits.
	clock.Advance(2 * time.Minute)
	check("a1's lease ran out", claim(t, s, "w2", 10, time.Minute), ids[0], ids[3], ids[4])
	// a1 waits for a retry: a2 still waits.
	if err := s.Retry(t.Context(), ids[0], "w2", clock.Now().Add(time.Hour), "partner down", nil); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[3:] {
		if err := s.Ack(t.Context(), id, "w2"); err != nil {
			t.Fatal(err)
		}
	}
	check("a1 waits for its retry", claim(t, s, "w1", 10, time.Minute))
	clock.Advance(time.Hour)
	check("a1 due again", claim(t, s, "w1", 10, time.Minute), ids[0])
	if err := s.Ack(t.Context(), ids[0], "w1"); err != nil {
		t.Fatal(err)
	}
	check("a1 delivered", claim(t, s, "w1", 10, time.Minute), ids[1])
	if err := s.DeadLetter(t.Context(), ids[1], "w1", "refused", nil); err != nil {
		t.Fatal(err)
	}
	check("a2 dead", claim(t, s, "w1", 10, time.Minute), ids[2])
}

// testStreamRequeue: a dead or withheld message is not requeued once a
// newer one of its stream is queued or delivered (ErrSuperseded); it is
// when the newer ones are dead too, and a message without a stream always
// is.
func testStreamRequeue(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	ids := enqueue(t, s, streamed("a1", "S"), streamed("a2", "S"), message("c1", "clinic-a"))
	claim(t, s, "w1", 10, time.Minute)
	if err := s.DeadLetter(t.Context(), ids[0], "w1", "refused", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.DeadLetter(t.Context(), ids[2], "w1", "refused", nil); err != nil {
		t.Fatal(err)
	}
	// a2 is pending (it was not claimable while a1 was inflight).
	if err := s.Requeue(t.Context(), ids[0]); !errors.Is(err, store.ErrSuperseded) {
		t.Errorf("requeue of a1 with a2 pending: %v, want ErrSuperseded", err)
	}
	ms := claim(t, s, "w1", 10, time.Minute)
	if got := claimedIDs(ms); !slices.Equal(got, ids[1:2]) {
		t.Fatalf("claimed %v, want a2 (%d)", got, ids[1])
	}
	if err := s.Ack(t.Context(), ids[1], "w1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Requeue(t.Context(), ids[0]); !errors.Is(err, store.ErrSuperseded) {
		t.Errorf("requeue of a1 with a2 delivered: %v, want ErrSuperseded", err)
	}
	if got := mustMessage(t, s, ids[0]).State; got != store.StateDead {
		t.Errorf("a1 is %s after the refused requeue, want dead", got)
	}
	if err := s.Requeue(t.Context(), ids[2]); err != nil {
		t.Errorf("requeue of a message without a stream: %v", err)
	}
}

// testStreamEnqueueMany: EnqueueMany keeps each message's stream, and its
// messages are held in order like Enqueue's.
func testStreamEnqueueMany(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	err := s.WithTx(t.Context(), func(tx *store.Tx) error {
		_, err := tx.EnqueueMany(t.Context(), []store.Message{streamed("m1", "S"), streamed("m2", "S"), message("m3", "clinic-a")})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := s.Messages(t.Context(), store.MessageQuery{})
	if err != nil || len(ms) != 3 {
		t.Fatalf("messages %v, %v", ms, err)
	}
	if ms[0].Stream != "S" || ms[1].Stream != "S" || ms[2].Stream != "" {
		t.Errorf("streams %q %q %q, want S S and none", ms[0].Stream, ms[1].Stream, ms[2].Stream)
	}
	if got := claimedIDs(claim(t, s, "w1", 10, time.Minute)); !slices.Equal(got, []int64{ms[0].ID, ms[2].ID}) {
		t.Errorf("claimed %v, want m1 and m3", got)
	}
}
