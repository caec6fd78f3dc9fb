package audit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/store"
)

// TestVerifyManyBatches: a log of many of the verifier's batches (read
// ahead, parsed in parallel, their buffers reused) verifies with the root
// of the reference tree, hands every decision to the Rederiver once, with
// its own entry, and a change in a late batch is found where it is.
func TestVerifyManyBatches(t *testing.T) {
	n := 12*store.AuditBatchSize + 77
	if testing.Short() {
		n = 6*store.AuditBatchSize + 5
	}
	eachStore(t, func(t *testing.T, db *testDB) {
		buildBenchLog(t, db, n)
		var all [][]byte
		err := db.st.ScanAudit(context.Background(), store.AuditScan{}, func(r store.AuditRecord) error {
			all = append(all, r.Data)
			return nil
		})
		if err != nil || len(all) != n {
			t.Fatalf("reading the log: %d entries, %v", len(all), err)
		}
		var (
			mu   sync.Mutex
			seen = map[int64]string{}
		)
		rederive := audit.RederiverFunc(func(_ context.Context, d audit.Decision) (audit.Outcome, error) {
			mu.Lock()
			defer mu.Unlock()
			if _, dup := seen[d.Seq]; dup {
				t.Errorf("entry %d re-derived twice", d.Seq)
			}
			seen[d.Seq] = d.Entry.ID
			return audit.Outcome{Effect: d.Entry.Effect, Obligations: d.Entry.Obligations, Trail: d.Entry.Trail}, nil
		})
		rep := verify(t, db.st, audit.VerifyOptions{Rederiver: rederive})
		if !rep.OK() || rep.Entries != uint64(n) || rep.Covered != uint64(n) || rep.Decisions != (n+1)/2 || rep.Rederived != (n+1)/2 {
			t.Fatalf("verify: %+v", rep)
		}
		if want := refMTH(all); !bytes.Equal(rep.Root, want) {
			t.Fatalf("root %x, want %x", rep.Root, want)
		}
		for seq, id := range seen {
			e, err := audit.ParseEntry(all[seq])
			if err != nil || e.ID != id {
				t.Fatalf("entry %d re-derived as %s, it is %s (%v)", seq, id, e.ID, err)
			}
		}

		// One byte of a late entry, still a canonical entry.
		seq := n - 5
		i := strings.Index(string(all[seq]), `"purpose":"COC"`) + len(`"purpose":"CO`)
		changed := bytes.Clone(all[seq])
		changed[i] = 'D'
		db.execArgs(t, "", nil)
		db.execArgs(t, fmt.Sprintf("UPDATE audit_entries SET data = ? WHERE seq = %d", seq), []any{changed})
		seen = map[int64]string{}
		rep = verify(t, db.st, audit.VerifyOptions{Rederiver: rederive})
		id := fmt.Sprintf("(id %s-%08d)", map[bool]string{true: "d", false: "s"}[seq%2 == 0], seq/2)
		wantFirst(t, rep, audit.ProblemAltered, int64(seq), 0, id)
	})
}

// TestVerifyCancelled: a verification cancelled half way stops with the
// context's error, wherever its stages are.
func TestVerifyCancelled(t *testing.T) {
	db := openDB(t, "sqlite")
	n := 4*store.AuditBatchSize + 11
	buildBenchLog(t, db, n)
	for _, at := range []int64{0, 1500, int64(n) - 1} {
		ctx, cancel := context.WithCancel(context.Background())
		rederive := audit.RederiverFunc(func(_ context.Context, d audit.Decision) (audit.Outcome, error) {
			if d.Seq >= at {
				cancel()
			}
			return audit.Outcome{Effect: d.Entry.Effect, Obligations: d.Entry.Obligations, Trail: d.Entry.Trail}, nil
		})
		rep, err := audit.Verify(ctx, db.st, audit.VerifyOptions{Verifier: testVerifier(t), Rederiver: rederive})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled at entry %d: Verify = %+v, %v; want context.Canceled", at, rep, err)
		}
	}
}
