package audit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	aepb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/audit_event_go_proto"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/store"
	"github.com/pathway-fhir/pathway/store/storetest"
)

// TestAppendBuildsRFC6962Tree appends entries in batches of varying size
// and checks the stored tree against the RFC's definitions: the root of
// every size, every inclusion proof and every consistency proof.
func TestAppendBuildsRFC6962Tree(t *testing.T) {
	eachStore(t, func(t *testing.T, db *testDB) {
		ctx := t.Context()
		f := &fixture{db: db, log: audit.New(db.st)}
		var leaves [][]byte
		n := 0
		for batch := 1; n < 45; batch = batch%5 + 1 {
			var es []audit.Entry
			for range batch {
				es = append(es, access(n))
				n++
			}
			f.append(t, es...)
			for _, e := range es {
				b, err := e.Normalized().Canonical()
				if err != nil {
					t.Fatal(err)
				}
				leaves = append(leaves, b)
			}
			size := uint64(len(leaves))
			if got, err := f.log.Size(ctx); err != nil || got != size {
				t.Fatalf("Size = %d, %v; want %d", got, err, size)
			}
			root, err := f.log.Root(ctx, size)
			if err != nil {
				t.Fatal(err)
			}
			if want := refMTH(leaves); !bytes.Equal(root, want) {
				t.Fatalf("root of %d entries differs from RFC 6962 MTH", size)
			}
		}
		for size := 1; size <= len(leaves); size++ {
			root := refMTH(leaves[:size])
			for m := range size {
				p, err := f.log.InclusionProof(ctx, uint64(m), uint64(size))
				if err != nil {
					t.Fatal(err)
				}
				if want := refPath(m, leaves[:size]); !equalHashes(p, want) {
					t.Fatalf("inclusion proof of %d in %d differs from RFC 6962 PATH", m, size)
				}
				if err := audit.VerifyInclusion(leaves[m], uint64(m), uint64(size), p, root); err != nil {
					t.Fatalf("inclusion proof of %d in %d: %v", m, size, err)
				}
			}
			for m := 1; m <= size; m++ {
				p, err := f.log.ConsistencyProof(ctx, uint64(m), uint64(size))
				if err != nil {
					t.Fatal(err)
				}
				if want := refProof(m, leaves[:size]); !equalHashes(p, want) {
					t.Fatalf("consistency proof %d..%d differs from RFC 6962 PROOF", m, size)
				}
				if err := audit.VerifyConsistency(uint64(m), uint64(size), p, refMTH(leaves[:m]), root); err != nil {
					t.Fatalf("consistency proof %d..%d: %v", m, size, err)
				}
			}
		}
		// Beyond the log: no proof.
		if _, err := f.log.InclusionProof(ctx, 3, uint64(len(leaves)+1)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("proof in a tree larger than the log: err = %v, want ErrNotFound", err)
		}
	})
}

func TestAppendIsTransactional(t *testing.T) {
	eachStore(t, func(t *testing.T, db *testDB) {
		ctx := t.Context()
		f := newFixture(t, db, 4)
		boom := errors.New("boom")
		err := db.st.WithTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.Put(ctx, store.Resource{Type: "Task", ID: "t1", Format: "text", Data: []byte("t")}); err != nil {
				return err
			}
			seqs, err := audit.Append(ctx, tx, access(100), access(101))
			if err != nil {
				return err
			}
			if seqs[0] != 4 || seqs[1] != 5 {
				t.Errorf("seqs = %v, want [4 5]", seqs)
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("WithTx = %v", err)
		}
		if n, _ := f.log.Size(ctx); n != 4 {
			t.Fatalf("Size after rollback = %d, want 4", n)
		}
		// Gapless: the next append reuses the rolled-back numbers.
		var seqs []int64
		err = db.st.WithTx(ctx, func(tx *store.Tx) (err error) {
			seqs, err = audit.Append(ctx, tx, access(102))
			return err
		})
		if err != nil || seqs[0] != 4 {
			t.Fatalf("Append after rollback: %v, %v; want seq 4", seqs, err)
		}
		// A duplicate id is refused and leaves the transaction usable.
		err = db.st.WithTx(ctx, func(tx *store.Tx) error {
			if _, err := audit.Append(ctx, tx, access(102)); !errors.Is(err, store.ErrAuditDuplicate) {
				t.Errorf("duplicate id: err = %v, want ErrAuditDuplicate", err)
			}
			_, err := audit.Append(ctx, tx, access(103))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		// AppendNew leaves out what is logged, and an id twice.
		err = db.st.WithTx(ctx, func(tx *store.Tx) error {
			seqs, err := audit.AppendNew(ctx, tx, access(102), access(106), access(103), access(106))
			if err == nil && !slices.Equal(seqs, []int64{6}) {
				t.Errorf("AppendNew of one new entry among logged ones: seqs %v, want [6]", seqs)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		// An invalid entry is refused before anything is written.
		bad := access(104)
		bad.Interaction = ""
		err = db.st.WithTx(ctx, func(tx *store.Tx) error {
			_, err := audit.Append(ctx, tx, access(105), bad)
			return err
		})
		if err == nil {
			t.Fatal("Append of an invalid entry succeeded")
		}
		if rep := verify(t, db.st, audit.VerifyOptions{Rederiver: testRederiver}); !rep.OK() || rep.Entries != 7 {
			t.Errorf("Verify: %d entries, problems %v", rep.Entries, rep.Problems)
		}
	})
}

// TestCrashBetweenAppendAndCheckpoint: entries committed, then the process
// dies before any checkpoint; a new process's checkpointer covers them and
// nothing is lost.
func TestCrashBetweenAppendAndCheckpoint(t *testing.T) {
	eachStore(t, func(t *testing.T, db *testDB) {
		ctx := t.Context()
		f := newFixture(t, db, 6, 6)
		// The "crashing" process: its own store, appends, no checkpoint.
		crashing, err := store.Open(ctx, db.url)
		if err != nil {
			t.Fatal(err)
		}
		cp := audit.NewCheckpointer(audit.New(crashing), testSigner(t), audit.CheckpointerConfig{Every: 1000, Interval: time.Hour})
		var appended []audit.Entry
		for i := range 5 {
			e := access(200 + i)
			appended = append(appended, e)
			if err := crashing.WithTx(ctx, func(tx *store.Tx) error {
				_, err := audit.Append(ctx, tx, e)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			cp.Notify()
		}
		crashing.Close() // dies: no Stop, no checkpoint

		rep := verify(t, db.st, audit.VerifyOptions{})
		if !rep.OK() || rep.Entries != 11 || rep.Covered != 6 || rep.Uncovered() != 5 {
			t.Fatalf("after the crash: %d entries, %d covered, problems %v", rep.Entries, rep.Covered, rep.Problems)
		}
		// The restarted process's checkpointer covers every entry.
		next := audit.NewCheckpointer(f.log, testSigner(t), audit.CheckpointerConfig{Every: 1000, Interval: time.Hour})
		if err := next.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		rep = verify(t, db.st, audit.VerifyOptions{Rederiver: testRederiver})
		if !rep.OK() || rep.Entries != 11 || rep.Covered != 11 {
			t.Fatalf("after restart: %d entries, %d covered, problems %v", rep.Entries, rep.Covered, rep.Problems)
		}
		for _, e := range appended {
			rc, err := f.log.Prove(ctx, e.ID)
			if err != nil {
				t.Fatalf("Prove %s: %v", e.ID, err)
			}
			data, err := rc.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := audit.CheckReceipt(data, testVerifier(t), nil); err != nil {
				t.Errorf("receipt of %s: %v", e.ID, err)
			}
		}
	})
}

// TestConcurrentAppenders: several stores (processes) append at once; the
// log stays one tree.
func TestConcurrentAppenders(t *testing.T) {
	eachStore(t, func(t *testing.T, db *testDB) {
		ctx := t.Context()
		const writers, each = 4, 10
		var wg sync.WaitGroup
		for w := range writers {
			st, err := store.Open(ctx, db.url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			wg.Go(func() {
				for i := range each {
					err := st.WithTx(ctx, func(tx *store.Tx) error {
						_, err := audit.Append(ctx, tx, access(1000*w+i))
						return err
					})
					if err != nil {
						t.Errorf("writer %d: %v", w, err)
						return
					}
				}
			})
		}
		wg.Wait()
		if _, _, err := audit.New(db.st).Checkpoint(ctx, testSigner(t)); err != nil {
			t.Fatal(err)
		}
		rep := verify(t, db.st, audit.VerifyOptions{})
		if !rep.OK() || rep.Entries != writers*each || rep.Covered != writers*each {
			t.Fatalf("%d entries, %d covered, problems %v", rep.Entries, rep.Covered, rep.Problems)
		}
	})
}

func TestCheckpointerPolicy(t *testing.T) {
	db := openDB(t, "sqlite")
	ctx := t.Context()
	f := newFixture(t, db, 3)
	clock := storetest.NewClock(t0)
	c := audit.NewCheckpointer(f.log, testSigner(t), audit.CheckpointerConfig{Every: 5, Interval: time.Minute, NowFunc: clock.Now})
	tick := func(want bool, wantSize uint64) {
		t.Helper()
		cp, created, err := c.Tick(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if created != want || (want && cp.Size != wantSize) {
			t.Fatalf("Tick = %v (size %d), want %v (size %d)", created, cp.Size, want, wantSize)
		}
	}
	// No checkpoint yet: the interval since "never" has passed.
	tick(true, 3)
	tick(false, 0) // nothing new
	f.append(t, access(50), access(51))
	tick(false, 0) // 2 new, under Every, interval not over
	clock.Advance(time.Minute)
	tick(true, 5) // interval over
	for i := range 4 {
		f.append(t, access(60+i))
	}
	tick(false, 0)
	f.append(t, access(70))
	tick(true, 10) // 5 new entries: Every reached before the interval
	cps, err := db.st.AuditCheckpoints(ctx, 0, 0)
	if err != nil || len(cps) != 3 {
		t.Fatalf("stored checkpoints: %d, %v", len(cps), err)
	}
	// The explicit call signs whatever is uncovered, regardless of policy.
	f.append(t, access(80))
	if cp, created, err := f.log.Checkpoint(ctx, testSigner(t)); err != nil || !created || cp.Size != 11 {
		t.Fatalf("Log.Checkpoint = %d %v %v", cp.Size, created, err)
	}
	if _, created, err := f.log.Checkpoint(ctx, testSigner(t)); err != nil || created {
		t.Fatalf("Log.Checkpoint with nothing new: created %v, %v", created, err)
	}
}

// TestCheckpointerRuns drives Start, Notify and Stop on a fake clock.
func TestCheckpointerRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		db := openDB(t, "sqlite")
		f := newFixture(t, db, 1)
		c := audit.NewCheckpointer(f.log, testSigner(t), audit.CheckpointerConfig{Every: 3, Interval: 10 * time.Second})
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err == nil {
			t.Error("second Start succeeded")
		}
		latest := func() int64 {
			cp, err := db.st.LatestAuditCheckpoint(ctx)
			if errors.Is(err, store.ErrNotFound) {
				return 0
			}
			if err != nil {
				t.Fatal(err)
			}
			return cp.Size
		}
		time.Sleep(time.Second) // first poll: the first entry is signed at once
		synctest.Wait()
		if got := latest(); got != 1 {
			t.Fatalf("after the first poll latest checkpoint = %d, want 1", got)
		}
		f.append(t, access(10), access(11), access(12))
		c.Notify() // Every reached: signed without waiting for a poll
		synctest.Wait()
		if got := latest(); got != 4 {
			t.Fatalf("after Notify latest checkpoint = %d, want 4", got)
		}
		f.append(t, access(13))
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := latest(); got != 4 {
			t.Fatalf("5s later latest checkpoint = %d, want still 4", got)
		}
		time.Sleep(6 * time.Second)
		synctest.Wait()
		if got := latest(); got != 5 {
			t.Fatalf("after the interval latest checkpoint = %d, want 5", got)
		}
		f.append(t, access(14))
		if err := c.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if got := latest(); got != 6 {
			t.Fatalf("after Stop latest checkpoint = %d, want 6", got)
		}
		if err := c.Stop(ctx); err != nil {
			t.Errorf("second Stop: %v", err)
		}
		db.st.Close()
	})
}

func TestProve(t *testing.T) {
	eachStore(t, func(t *testing.T, db *testDB) {
		ctx := t.Context()
		f := newFixture(t, db, 9, 9)
		rc, err := f.log.Prove(ctx, "x-0000") // decision and disclosure of exchange 0
		if err != nil {
			t.Fatal(err)
		}
		if len(rc.Entries) != 2 || rc.Entries[0].Index != 0 || rc.Entries[1].Index != 1 {
			t.Fatalf("receipt entries %+v", rc.Entries)
		}
		data, err := rc.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		check, err := audit.CheckReceipt(data, testVerifier(t), bundleBytes(0))
		if err != nil {
			t.Fatalf("CheckReceipt: %v", err)
		}
		if !check.BundleMatched || check.Checkpoint.Size != 9 || check.Entries[0].Entry.Kind != audit.KindDecision || check.Entries[1].Entry.ID != "s-0000" {
			t.Errorf("check = %+v", check)
		}
		if _, err := audit.CheckReceipt(data, testVerifier(t), append(bundleBytes(0), '\n')); err == nil {
			t.Error("a bundle with one more byte matched")
		}
		if _, err := audit.CheckReceipt(data, testVerifier(t), bundleBytes(1)); err == nil {
			t.Error("another exchange's bundle matched")
		}
		one, err := f.log.Prove(ctx, "s-0000")
		if err != nil || len(one.Entries) != 1 || one.Entries[0].Index != 1 {
			t.Fatalf("Prove by entry id: %+v, %v", one, err)
		}
		if _, err := f.log.Prove(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Prove unknown: err = %v, want ErrNotFound", err)
		}
		f.append(t, access(500))
		if _, err := f.log.Prove(ctx, "a-0500"); !errors.Is(err, audit.ErrNotCheckpointed) {
			t.Errorf("Prove uncovered: err = %v, want ErrNotCheckpointed", err)
		}
		if _, _, err := f.log.Checkpoint(ctx, testSigner(t)); err != nil {
			t.Fatal(err)
		}
		if _, err := f.log.Prove(ctx, "a-0500"); err != nil {
			t.Errorf("Prove after checkpoint: %v", err)
		}
	})
}

func TestEvents(t *testing.T) {
	db := openDB(t, "sqlite")
	f := newFixture(t, db, 7)
	var seqs []int64
	var ids []string
	err := f.log.Events(t.Context(), f.entries[3].Time, func(seq int64, ev *aepb.AuditEvent) error {
		seqs = append(seqs, seq)
		ids = append(ids, ev.GetId().GetValue())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seqs) != 4 || seqs[0] != 3 || fmt.Sprint(ids) != fmt.Sprint([]string{f.entries[3].ID, f.entries[4].ID, f.entries[5].ID, f.entries[6].ID}) {
		t.Errorf("Events since entry 3: %v %v", seqs, ids)
	}
}
