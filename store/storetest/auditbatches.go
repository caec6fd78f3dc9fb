package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/pathway-fhir/pathway/store"
)

func init() {
	cases = append(cases, struct {
		name string
		run  func(t *testing.T, newURL NewURL)
	}{"AuditScanBatchesReadsWhatScanAuditReads", testAuditScanBatches})
}

// testAuditScanBatches: ScanAuditBatches hands over exactly the records
// ScanAudit reads with their nodes, across batches and pages, and the
// records of a batch stay as they were after later ones are read.
func testAuditScanBatches(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	ctx := t.Context()
	t0 := clock.Now()
	// Several batches and more than one page, with times to the
	// microsecond, an empty exchange and years far from now.
	appendAudit(t, s, 2*store.AuditBatchSize+3, t0.Add(123456*time.Microsecond))
	appendAudit(t, s, 5, time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC))
	appendAudit(t, s, 5, time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC))
	err := s.WithTx(ctx, func(tx *store.Tx) error {
		head, err := tx.AuditHead(ctx, nil)
		if err != nil {
			return err
		}
		r := auditRecord(head.Size, t0)
		r.Exchange = ""
		return tx.AppendAudit(ctx, []store.AuditRecord{r})
	})
	if err != nil {
		t.Fatal(err)
	}
	appendAudit(t, s, 8*store.AuditBatchSize-2*store.AuditBatchSize, t0.Add(time.Hour))

	want := scanAll(t, s, store.AuditScan{Nodes: true})
	for _, from := range []int64{0, 1, int64(store.AuditBatchSize), int64(len(want)) - 1, int64(len(want))} {
		var got []store.AuditRecord
		batches := 0
		err := s.ScanAuditBatches(ctx, from, func(b []store.AuditRecord) error {
			if len(b) == 0 || len(b) > store.AuditBatchSize {
				t.Fatalf("a batch of %d records", len(b))
			}
			batches++
			got = append(got, b...)
			return nil
		})
		if err != nil {
			t.Fatalf("ScanAuditBatches from %d: %v", from, err)
		}
		if len(got) != len(want)-int(from) {
			t.Fatalf("ScanAuditBatches from %d read %d records, want %d", from, len(got), len(want)-int(from))
		}
		for i := range got {
			sameRecord(t, got[i], want[int(from)+i], true)
		}
		if from == 0 && batches < 8 {
			t.Errorf("%d batches", batches)
		}
	}

	stop := errors.New("stop")
	n := 0
	err = s.ScanAuditBatches(ctx, 0, func([]store.AuditRecord) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Errorf("ScanAuditBatches did not stop at fn's error: %v after %d", err, n)
	}
}
