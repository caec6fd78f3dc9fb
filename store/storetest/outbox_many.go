package storetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pathway-fhir/pathway/store"
)

func init() {
	cases = append(cases, []struct {
		name string
		run  func(t *testing.T, newURL NewURL)
	}{
		{"OutboxEnqueueMany", testEnqueueMany},
		{"OutboxPayloadRef", testPayloadRef},
	}...)
}

// testEnqueueMany: EnqueueMany adds what Enqueue would, one message per
// key, in order, and rolls back with its transaction.
func testEnqueueMany(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	ctx := t.Context()
	msg := func(key string) store.Message {
		return store.Message{Key: key, Partner: "clinic-a", Purpose: "COC", Kind: "referrer-update", Payload: []byte(`{"k":"` + key + `"}`)}
	}
	if err := s.WithTx(ctx, func(tx *store.Tx) error {
		_, _, err := tx.Enqueue(ctx, msg("k-000"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var ms []store.Message
	for i := range 250 { // more than one statement
		ms = append(ms, msg(fmt.Sprintf("k-%03d", i)))
	}
	later := msg("k-later")
	later.NextAttemptAt = clock.Now().Add(time.Hour)
	ms = append(ms, msg("k-001"), later) // a repeat in the batch, and one due later
	var created map[string]bool
	err := s.WithTx(ctx, func(tx *store.Tx) (err error) {
		created, err = tx.EnqueueMany(ctx, ms)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(created) != 250 || created["k-000"] || !created["k-001"] || !created["k-later"] {
		t.Errorf("created %d (k-000 %v, k-001 %v), want the 249 new keys and k-later", len(created), created["k-000"], created["k-001"])
	}
	got, err := s.Messages(ctx, store.MessageQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 251 {
		t.Fatalf("%d messages in the outbox, want 251 (each key once)", len(got))
	}
	ids := map[string]int64{}
	for _, m := range got {
		ids[m.Key] = m.ID
		if m.State != store.StatePending || m.Attempts != 0 || m.Partner != "clinic-a" || m.Purpose != "COC" || m.Kind != "referrer-update" {
			t.Errorf("message %s = %+v, want pending as Enqueue makes it", m.Key, m)
		}
		want := clock.Now().Truncate(time.Microsecond)
		if m.Key == "k-later" {
			want = want.Add(time.Hour)
		}
		if !m.NextAttemptAt.Equal(want) {
			t.Errorf("message %s due at %s, want %s", m.Key, m.NextAttemptAt, want)
		}
	}
	if ids["k-001"] > ids["k-002"] || ids["k-100"] > ids["k-101"] {
		t.Error("messages are not numbered in the order given")
	}
	one, err := s.Message(ctx, ids["k-007"])
	if err != nil || string(one.Payload) != `{"k":"k-007"}` {
		t.Errorf("payload of k-007 = %s, %v", one.Payload, err)
	}

	errBoom := errors.New("boom")
	err = s.WithTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.EnqueueMany(ctx, []store.Message{msg("k-rolled-back")}); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatal(err)
	}
	if got, _ := s.Messages(ctx, store.MessageQuery{Limit: 1000}); len(got) != 251 {
		t.Errorf("%d messages after a rollback, want 251", len(got))
	}
	if err := s.WithTx(ctx, func(tx *store.Tx) error {
		_, err := tx.EnqueueMany(ctx, []store.Message{{Key: "k-x", Partner: "p", Kind: "transaction"}})
		return err
	}); err == nil {
		t.Error("a message without a payload was enqueued")
	}
}

// testPayloadRef: a message can name a stored resource version as its
// payload instead of holding the bytes; every read of the message (claim,
// one message, a listing with payloads) gives that version's bytes, also
// after the resource has moved on to a newer version.
func testPayloadRef(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	ctx := t.Context()
	v1 := mustPut(t, s, store.Resource{Type: "Bundle", ID: "b1", Source: "pathway", Format: "json", Data: []byte(`{"resourceType":"Bundle","v":1}`)})
	byRef := store.Message{Key: "k-ref", Partner: "clinic-a", Purpose: "COC", Kind: "transaction", PayloadRef: "Bundle/b1/_history/1"}
	var viaMany store.Message
	err := s.WithTx(ctx, func(tx *store.Tx) error {
		if _, _, err := tx.Enqueue(ctx, byRef); err != nil {
			return err
		}
		viaMany = byRef
		viaMany.Key = "k-ref-many"
		_, err := tx.EnqueueMany(ctx, []store.Message{viaMany})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// The Bundle moves on: version 1 is now in the history.
	mustPut(t, s, store.Resource{Type: "Bundle", ID: "b1", Source: "pathway", Format: "json", Data: []byte(`{"resourceType":"Bundle","v":2}`)})

	claimed, err := s.Claim(ctx, "w1", 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(claimed) != 2 {
		t.Fatalf("claimed %d messages, want 2", len(claimed))
	}
	for _, m := range claimed {
		if string(m.Payload) != string(v1.Data) || m.PayloadRef != "Bundle/b1/_history/1" {
			t.Errorf("claimed %s: payload %q (ref %q), want version 1's bytes %q", m.Key, m.Payload, m.PayloadRef, v1.Data)
		}
	}
	one, err := s.Message(ctx, claimed[0].ID)
	if err != nil || string(one.Payload) != string(v1.Data) {
		t.Errorf("Message: payload %q, err %v; want version 1's bytes", one.Payload, err)
	}
	listed, err := s.Messages(ctx, store.MessageQuery{WithPayload: true})
	if err != nil || len(listed) != 2 || string(listed[1].Payload) != string(v1.Data) {
		t.Errorf("Messages with payloads: %+v, err %v", listed, err)
	}
	listed, err = s.Messages(ctx, store.MessageQuery{})
	if err != nil || len(listed) != 2 || len(listed[0].Payload) != 0 || listed[0].PayloadRef == "" {
		t.Errorf("Messages without payloads: %+v, err %v", listed, err)
	}

	// Messages naming several versions, current and older, of several
	// resources, beside one that holds its bytes, are read in one claim.
	mustPut(t, s, store.Resource{Type: "Bundle", ID: "b2", Source: "pathway", Format: "json", Data: []byte(`{"resourceType":"Bundle","b":2}`)})
	want := map[string]string{
		"k-v1": `{"resourceType":"Bundle","v":1}`, "k-v2": `{"resourceType":"Bundle","v":2}`,
		"k-b2": `{"resourceType":"Bundle","b":2}`, "k-own": `{"own":true}`, "k-v1-again": `{"resourceType":"Bundle","v":1}`,
	}
	refs := map[string]string{"k-v1": "Bundle/b1/_history/1", "k-v2": "Bundle/b1/_history/2", "k-b2": "Bundle/b2/_history/1", "k-v1-again": "Bundle/b1/_history/1"}
	err = s.WithTx(ctx, func(tx *store.Tx) error {
		for _, key := range []string{"k-v1", "k-v2", "k-b2", "k-own", "k-v1-again"} {
			m := store.Message{Key: key, Partner: "clinic-b", Purpose: "COC", Kind: "transaction", PayloadRef: refs[key]}
			if m.PayloadRef == "" {
				m.Payload = []byte(want[key])
			}
			if _, _, err := tx.Enqueue(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	several, err := s.Claim(ctx, "w2", 10, time.Minute)
	if err != nil || len(several) != len(want) {
		t.Fatalf("claim of messages naming several versions: %d, %v", len(several), err)
	}
	for _, m := range several {
		if string(m.Payload) != want[m.Key] {
			t.Errorf("claimed %s: payload %q, want %q", m.Key, m.Payload, want[m.Key])
		}
	}
	err = s.WithTx(ctx, func(tx *store.Tx) error {
		for _, key := range []string{"k-gone-1", "k-gone-2"} {
			m := store.Message{Key: key, Partner: "clinic-c", Kind: "transaction", PayloadRef: "Bundle/b1/_history/7"}
			if key == "k-gone-2" {
				m.PayloadRef = "Bundle/b2/_history/1"
			}
			if _, _, err := tx.Enqueue(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, "w3", 10, time.Minute); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "Bundle/b1/_history/7") {
		t.Errorf("a claim naming a version not stored: %v, want ErrNotFound naming it", err)
	}

	for name, m := range map[string]store.Message{
		"both":    {Key: "k-both", Partner: "clinic-a", Kind: "transaction", Payload: []byte(`{}`), PayloadRef: "Bundle/b1/_history/1"},
		"neither": {Key: "k-neither", Partner: "clinic-a", Kind: "transaction"},
		"bad ref": {Key: "k-bad", Partner: "clinic-a", Kind: "transaction", PayloadRef: "Bundle/b1"},
		"version": {Key: "k-zero", Partner: "clinic-a", Kind: "transaction", PayloadRef: "Bundle/b1/_history/0"},
	} {
		err := s.WithTx(ctx, func(tx *store.Tx) error { _, _, err := tx.Enqueue(ctx, m); return err })
		if err == nil {
			t.Errorf("Enqueue with %s: no error", name)
		}
		err = s.WithTx(ctx, func(tx *store.Tx) error { _, err := tx.EnqueueMany(ctx, []store.Message{m}); return err })
		if err == nil {
			t.Errorf("EnqueueMany with %s: no error", name)
		}
	}
}
