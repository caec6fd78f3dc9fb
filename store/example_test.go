package store_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/pathway-fhir/pathway/store"
)

func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "pathway-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// A fixed clock makes LastUpdated predictable.
	now := func() time.Time { return time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC) }
	s, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "pathway.db"), store.WithNowFunc(now))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	task := store.Resource{
		Type: "Task", ID: "referral-1", Source: "ngo-a", Format: "json",
		Data:    []byte(`{"resourceType":"Task","id":"referral-1","status":"requested"}`),
		Patient: "Patient/p1", Status: "requested", Owner: "Organization/clinic-a",
	}
	// The referral, its decision and its outbox message go in one transaction.
	err = s.WithTx(ctx, func(tx *store.Tx) error {
		_, err := tx.Put(ctx, task)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}

	// Re-ingesting the same bytes changes nothing.
	again, err := s.Put(ctx, task)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(again.Ref(), "version", again.Version, again.LastUpdated.Format(time.RFC3339))

	// The clinic accepts: a new version; the first stays readable.
	task.Data = []byte(`{"resourceType":"Task","id":"referral-1","status":"accepted"}`)
	task.Status = "accepted"
	accepted, err := s.Put(ctx, task)
	if err != nil {
		log.Fatal(err)
	}
	first, err := s.GetVersion(ctx, "Task", "referral-1", 1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("now version", accepted.Version, "; version 1 was", first.Status)

	inbox, err := s.Search(ctx, store.Query{Type: "Task", Owner: "Organization/clinic-a", Status: "accepted"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("accepted tasks for clinic-a:", len(inbox))

	_, err = s.Get(ctx, "Task", "referral-2")
	fmt.Println(errors.Is(err, store.ErrNotFound))
	// Output:
	// Task/referral-1 version 1 2025-05-01T12:00:00Z
	// now version 2 ; version 1 was requested
	// accepted tasks for clinic-a: 1
	// true
}
