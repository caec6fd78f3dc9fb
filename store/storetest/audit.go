package storetest

import (
	"bytes"
	"crypto/sha256"
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
		{"AuditAppendAndRead", testAuditAppendAndRead},
		{"AuditAppendChecksSequence", testAuditAppendChecksSequence},
		{"AuditAppendRollsBackGapless", testAuditAppendRollsBack},
		{"AuditDuplicateEntryID", testAuditDuplicate},
		{"AuditHeadRange", testAuditHeadRange},
		{"AuditConcurrentSequencers", testAuditConcurrentSequencers},
		{"AuditScanPagesAndFilters", testAuditScan},
		{"AuditCheckpoints", testAuditCheckpoints},
	}...)
}

// nodeHash is a made-up node hash: the store keeps hashes, it does not
// compute them.
func nodeHash(seq int64, level int) []byte {
	h := sha256.Sum256(fmt.Appendf(nil, "node %d/%d", seq, level))
	return h[:]
}

// auditRecord is a record at seq with the node hashes the store expects.
func auditRecord(seq int64, at time.Time) store.AuditRecord {
	r := store.AuditRecord{
		Seq:      seq,
		EntryID:  fmt.Sprintf("e-%06d", seq),
		Exchange: fmt.Sprintf("x-%d", seq/2),
		Kind:     []string{"decision", "disclosure"}[seq%2],
		Time:     at,
		Data:     fmt.Appendf(nil, `{"entry":%d}`, seq),
	}
	for l := range store.AuditNodeCount(seq) {
		r.Nodes = append(r.Nodes, nodeHash(seq, l))
	}
	return r
}

// appendAudit appends n records after the log's current end in one
// transaction and returns them.
func appendAudit(t *testing.T, s *store.Store, n int, at time.Time) []store.AuditRecord {
	t.Helper()
	var recs []store.AuditRecord
	err := s.WithTx(t.Context(), func(tx *store.Tx) error {
		head, err := tx.AuditHead(t.Context(), nil)
		if err != nil {
			return err
		}
		for i := range n {
			recs = append(recs, auditRecord(head.Size+int64(i), at))
		}
		return tx.AppendAudit(t.Context(), recs)
	})
	if err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	return recs
}

func node(level uint, index uint64) store.AuditNodeID {
	return store.AuditNodeID{Level: level, Index: index}
}

func sameRecord(t *testing.T, got, want store.AuditRecord, withNodes bool) {
	t.Helper()
	if got.Seq != want.Seq || got.EntryID != want.EntryID || got.Exchange != want.Exchange || got.Kind != want.Kind {
		t.Errorf("record = %d %s %s %s, want %d %s %s %s", got.Seq, got.EntryID, got.Exchange, got.Kind, want.Seq, want.EntryID, want.Exchange, want.Kind)
	}
	if !got.Time.Equal(want.Time.UTC().Truncate(time.Microsecond)) || got.Time.Location() != time.UTC {
		t.Errorf("record %d: Time = %v, want %v in UTC", want.Seq, got.Time, want.Time)
	}
	if !bytes.Equal(got.Data, want.Data) {
		t.Errorf("record %d: Data = %q, want %q", want.Seq, got.Data, want.Data)
	}
	if !withNodes {
		if got.Nodes != nil {
			t.Errorf("record %d: Nodes read without asking", want.Seq)
		}
		return
	}
	if len(got.Nodes) != len(want.Nodes) {
		t.Fatalf("record %d: %d nodes, want %d", want.Seq, len(got.Nodes), len(want.Nodes))
	}
	for l := range want.Nodes {
		if !bytes.Equal(got.Nodes[l], want.Nodes[l]) {
			t.Errorf("record %d: node at level %d differs", want.Seq, l)
		}
	}
}

func scanAll(t *testing.T, s *store.Store, sc store.AuditScan) []store.AuditRecord {
	t.Helper()
	var out []store.AuditRecord
	if err := s.ScanAudit(t.Context(), sc, func(r store.AuditRecord) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatalf("ScanAudit: %v", err)
	}
	return out
}

func testAuditAppendAndRead(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	ctx := t.Context()
	if n, err := s.AuditSize(ctx); err != nil || n != 0 {
		t.Fatalf("empty AuditSize = %d, %v; want 0", n, err)
	}
	recs := appendAudit(t, s, 5, clock.Now())
	recs = append(recs, appendAudit(t, s, 3, clock.Now().Add(time.Hour))...)
	if n, err := s.AuditSize(ctx); err != nil || n != 8 {
		t.Fatalf("AuditSize = %d, %v; want 8", n, err)
	}
	got := scanAll(t, s, store.AuditScan{Nodes: true})
	if len(got) != len(recs) {
		t.Fatalf("ScanAudit read %d records, want %d", len(got), len(recs))
	}
	for i := range recs {
		sameRecord(t, got[i], recs[i], true)
	}

	// Node (l, k) lives in the record of the last leaf it covers.
	ids := []store.AuditNodeID{node(0, 0), node(0, 7), node(1, 0), node(1, 3), node(2, 1), node(3, 0), node(1, 2)}
	want := [][]byte{nodeHash(0, 0), nodeHash(7, 0), nodeHash(1, 1), nodeHash(7, 1), nodeHash(7, 2), nodeHash(7, 3), nodeHash(5, 1)}
	hashes, err := s.AuditNodes(ctx, ids)
	if err != nil {
		t.Fatalf("AuditNodes: %v", err)
	}
	for i := range ids {
		if !bytes.Equal(hashes[i], want[i]) {
			t.Errorf("node %+v differs from the hash appended", ids[i])
		}
	}
	err = s.WithTx(ctx, func(tx *store.Tx) error {
		h, err := tx.AuditNodes(ctx, ids[:2])
		if err == nil && (!bytes.Equal(h[0], want[0]) || !bytes.Equal(h[1], want[1])) {
			t.Error("Tx.AuditNodes differs from Store.AuditNodes")
		}
		return err
	})
	if err != nil {
		t.Fatalf("Tx.AuditNodes: %v", err)
	}
	// Beyond the log, or an incomplete subtree (leaves 8 to 15 do not all exist).
	for _, id := range []store.AuditNodeID{node(0, 8), node(4, 0), node(2, 2), node(1, 1<<62), node(70, 0)} {
		if _, err := s.AuditNodes(ctx, []store.AuditNodeID{id}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("AuditNodes(%+v): err = %v, want ErrNotFound", id, err)
		}
	}

	byID, err := s.AuditRecordsFor(ctx, "e-000003")
	if err != nil || len(byID) != 1 {
		t.Fatalf("AuditRecordsFor entry id: %d records, %v", len(byID), err)
	}
	sameRecord(t, byID[0], recs[3], false)
	byExchange, err := s.AuditRecordsFor(ctx, "x-1")
	if err != nil || len(byExchange) != 2 || byExchange[0].Seq != 2 || byExchange[1].Seq != 3 {
		t.Fatalf("AuditRecordsFor exchange: %+v, %v; want entries 2 and 3", byExchange, err)
	}
	if none, err := s.AuditRecordsFor(ctx, "unknown"); err != nil || len(none) != 0 {
		t.Errorf("AuditRecordsFor unknown: %d, %v", len(none), err)
	}
}

func testAuditAppendChecksSequence(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	ctx := t.Context()
	appendAudit(t, s, 2, clock.Now())
	for _, tc := range []struct {
		name   string
		mutate func(r *store.AuditRecord)
	}{
		{"seq taken", func(r *store.AuditRecord) { r.Seq = 1 }},
		{"seq leaves a gap", func(r *store.AuditRecord) { r.Seq = 3 }},
		{"too few nodes", func(r *store.AuditRecord) { r.Nodes = r.Nodes[:len(r.Nodes)-1] }},
		{"too many nodes", func(r *store.AuditRecord) { r.Nodes = append(r.Nodes, nodeHash(0, 9)) }},
		{"short node", func(r *store.AuditRecord) { r.Nodes[0] = r.Nodes[0][:31] }},
		{"no id", func(r *store.AuditRecord) { r.EntryID = "" }},
		{"no kind", func(r *store.AuditRecord) { r.Kind = "" }},
		{"no data", func(r *store.AuditRecord) { r.Data = nil }},
		{"no time", func(r *store.AuditRecord) { r.Time = time.Time{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.WithTx(ctx, func(tx *store.Tx) error {
				r := auditRecord(2, clock.Now())
				r.Nodes = append([][]byte(nil), r.Nodes...)
				tc.mutate(&r)
				return tx.AppendAudit(ctx, []store.AuditRecord{r})
			})
			if err == nil {
				t.Fatal("AppendAudit succeeded, want an error")
			}
		})
	}
	if n, err := s.AuditSize(ctx); err != nil || n != 2 {
		t.Errorf("AuditSize after refused appends = %d, %v; want 2", n, err)
	}
}

func testAuditAppendRollsBack(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	ctx := t.Context()
	appendAudit(t, s, 3, clock.Now())
	boom := errors.New("boom")
	err := s.WithTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Put(ctx, task("t1", 1)); err != nil {
			return err
		}
		if err := tx.AppendAudit(ctx, []store.AuditRecord{auditRecord(3, clock.Now()), auditRecord(4, clock.Now())}); err != nil {
			return err
		}
		if n, err := tx.AuditSize(ctx); err != nil || n != 5 {
			t.Errorf("AuditSize inside the transaction = %d, %v; want 5", n, err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("WithTx = %v, want boom", err)
	}
	if n, err := s.AuditSize(ctx); err != nil || n != 3 {
		t.Fatalf("AuditSize after rollback = %d, %v; want 3", n, err)
	}
	if _, err := s.Get(ctx, "Task", "t1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the state change was not rolled back with its audit entries: %v", err)
	}
	// The numbers the rolled-back entries had are handed out again: no gap.
	recs := appendAudit(t, s, 1, clock.Now())
	if recs[0].Seq != 3 {
		t.Errorf("next entry after rollback got seq %d, want 3", recs[0].Seq)
	}
}

func testAuditDuplicate(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	ctx := t.Context()
	appendAudit(t, s, 2, clock.Now())
	err := s.WithTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.AuditHead(ctx, []string{"new-1", "e-000001"}); !errors.Is(err, store.ErrAuditDuplicate) {
			t.Errorf("AuditHead with a logged id: err = %v, want ErrAuditDuplicate", err)
		}
		// More ids than one query checks.
		many := make([]string, 1200)
		for i := range many {
			many[i] = fmt.Sprintf("new-%d", i)
		}
		many[1100] = "e-000000"
		if _, err := tx.AuditHead(ctx, many); !errors.Is(err, store.ErrAuditDuplicate) {
			t.Errorf("AuditHead with a logged id among 1200: err = %v, want ErrAuditDuplicate", err)
		}
		// AuditHeadLogged says which ids are logged instead of failing.
		head, logged, err := tx.AuditHeadLogged(ctx, many)
		if err != nil || head.Size != 2 || len(logged) != 1 || !logged["e-000000"] {
			t.Errorf("AuditHeadLogged with a logged id among 1200: size %d, logged %v, %v; want 2, e-000000", head.Size, logged, err)
		}
		if head, logged, err := tx.AuditHeadLogged(ctx, []string{"new-1"}); err != nil || head.Size != 2 || len(logged) != 0 {
			t.Errorf("AuditHeadLogged with a new id: size %d, logged %v, %v; want 2, none", head.Size, logged, err)
		}
		twice := []store.AuditRecord{auditRecord(2, clock.Now()), auditRecord(3, clock.Now())}
		twice[1].EntryID = twice[0].EntryID
		if err := tx.AppendAudit(ctx, twice); !errors.Is(err, store.ErrAuditDuplicate) {
			t.Errorf("AppendAudit of one id twice: err = %v, want ErrAuditDuplicate", err)
		}
		// The transaction is still usable (on PostgreSQL too: nothing failed
		// inside the database).
		if _, err := tx.Put(ctx, task("t1", 1)); err != nil {
			return err
		}
		head, err = tx.AuditHead(ctx, []string{"e-000002"})
		if err != nil || head.Size != 2 {
			return fmt.Errorf("AuditHead = %d, %w", head.Size, err)
		}
		return tx.AppendAudit(ctx, []store.AuditRecord{auditRecord(2, clock.Now())})
	})
	if err != nil {
		t.Fatalf("WithTx after duplicates: %v", err)
	}
	if n, err := s.AuditSize(ctx); err != nil || n != 3 {
		t.Errorf("AuditSize = %d, %v; want 3", n, err)
	}
}

func testAuditHeadRange(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	ctx := t.Context()
	for size := int64(0); size <= 13; size++ {
		err := s.WithTx(ctx, func(tx *store.Tx) error {
			head, err := tx.AuditHead(ctx, nil)
			if err != nil {
				return err
			}
			if head.Size != size {
				t.Errorf("AuditHead.Size = %d, want %d", head.Size, size)
			}
			// The perfect subtrees covering [0, size), largest first: for
			// each bit b set in size, node (b, (size>>b)-1), stored with
			// the last leaf it covers.
			var want [][]byte
			for b := 62; b >= 0; b-- {
				if size>>b&1 == 1 {
					want = append(want, nodeHash((size>>b)<<b-1, b))
				}
			}
			if len(head.Range) != len(want) {
				t.Fatalf("size %d: %d range hashes, want %d", size, len(head.Range), len(want))
			}
			for i := range want {
				if !bytes.Equal(head.Range[i], want[i]) {
					t.Errorf("size %d: range hash %d differs", size, i)
				}
			}
			return tx.AppendAudit(ctx, []store.AuditRecord{auditRecord(size, clock.Now())})
		})
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
	}
}

func testAuditConcurrentSequencers(t *testing.T, newURL NewURL) {
	// Writers on separate stores (as separate processes would be) append at
	// once; the sequencer lock keeps the numbers gapless and unique.
	url := newURL(t)
	clock := NewClock(epoch)
	const writers, rounds, per = 4, 8, 3
	var wg sync.WaitGroup
	for w := range writers {
		s := open(t, url, clock)
		wg.Go(func() {
			for r := range rounds {
				err := s.WithTx(t.Context(), func(tx *store.Tx) error {
					head, err := tx.AuditHead(t.Context(), []string{fmt.Sprintf("w%d-r%d-0", w, r)})
					if err != nil {
						return err
					}
					size := head.Size
					// The state change the entries record, which also
					// widens the window another sequencer would race in.
					if _, err := tx.Put(t.Context(), task(fmt.Sprintf("w%d-r%d", w, r), 1)); err != nil {
						return err
					}
					time.Sleep(time.Millisecond)
					recs := make([]store.AuditRecord, per)
					for i := range recs {
						recs[i] = auditRecord(size+int64(i), clock.Now())
						recs[i].EntryID = fmt.Sprintf("w%d-r%d-%d", w, r, i)
					}
					return tx.AppendAudit(t.Context(), recs)
				})
				if err != nil {
					t.Errorf("writer %d round %d: %v", w, r, err)
					return
				}
			}
		})
	}
	wg.Wait()
	s := open(t, url, clock)
	got := scanAll(t, s, store.AuditScan{})
	if len(got) != writers*rounds*per {
		t.Fatalf("%d records, want %d", len(got), writers*rounds*per)
	}
	for i, r := range got {
		if r.Seq != int64(i) {
			t.Fatalf("record %d has seq %d: the sequence has a gap or a duplicate", i, r.Seq)
		}
	}
	// Each transaction's records are consecutive.
	for i := 0; i < len(got); i += per {
		prefix := got[i].EntryID[:len(got[i].EntryID)-1]
		for j := 1; j < per; j++ {
			if got[i+j].EntryID != fmt.Sprintf("%s%d", prefix, j) {
				t.Errorf("records %d..%d are not one transaction's: %s then %s", i, i+per-1, got[i].EntryID, got[i+j].EntryID)
			}
		}
	}
}

func testAuditScan(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	ctx := t.Context()
	t0 := clock.Now()
	// More than one page of ScanAudit.
	appendAudit(t, s, 5003, t0)
	appendAudit(t, s, 4, t0.Add(time.Hour))
	all := scanAll(t, s, store.AuditScan{})
	if len(all) != 5007 || all[5006].Seq != 5006 {
		t.Fatalf("ScanAudit read %d records", len(all))
	}
	from := scanAll(t, s, store.AuditScan{From: 5001, Nodes: true})
	if len(from) != 6 || from[0].Seq != 5001 || len(from[0].Nodes) != store.AuditNodeCount(5001) {
		t.Errorf("ScanAudit From 5001: %d records, first %d", len(from), from[0].Seq)
	}
	since := scanAll(t, s, store.AuditScan{Since: t0.Add(30 * time.Minute)})
	if len(since) != 4 || since[0].Seq != 5003 {
		t.Errorf("ScanAudit Since: %d records", len(since))
	}
	stop := errors.New("stop")
	n := 0
	err := s.ScanAudit(ctx, store.AuditScan{}, func(store.AuditRecord) error {
		n++
		if n == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 10 {
		t.Errorf("ScanAudit did not stop at fn's error: %v after %d", err, n)
	}
}

func testAuditCheckpoints(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	ctx := t.Context()
	if _, err := s.LatestAuditCheckpoint(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LatestAuditCheckpoint on an empty store: err = %v, want ErrNotFound", err)
	}
	root := func(n int64) []byte { return nodeHash(n, 99) }
	for _, size := range []int64{4, 1, 9} {
		created, err := s.PutAuditCheckpoint(ctx, store.AuditCheckpoint{Size: size, Root: root(size), Note: fmt.Appendf(nil, "note %d\n", size)})
		if err != nil || !created {
			t.Fatalf("PutAuditCheckpoint(%d) = %v, %v", size, created, err)
		}
		clock.Advance(time.Minute)
	}
	created, err := s.PutAuditCheckpoint(ctx, store.AuditCheckpoint{Size: 4, Root: root(5), Note: []byte("other")})
	if err != nil || created {
		t.Errorf("second checkpoint of size 4: created %v, %v; want false, nil", created, err)
	}
	for _, bad := range []store.AuditCheckpoint{
		{Size: 0, Root: root(0), Note: []byte("n")},
		{Size: 2, Root: root(2)[:31], Note: []byte("n")},
		{Size: 2, Root: root(2)},
	} {
		if _, err := s.PutAuditCheckpoint(ctx, bad); err == nil {
			t.Errorf("PutAuditCheckpoint(size %d, %d-byte root, %d-byte note) succeeded", bad.Size, len(bad.Root), len(bad.Note))
		}
	}
	cps, err := s.AuditCheckpoints(ctx, 0, 0)
	if err != nil || len(cps) != 3 || cps[0].Size != 1 || cps[1].Size != 4 || cps[2].Size != 9 {
		t.Fatalf("AuditCheckpoints = %+v, %v", cps, err)
	}
	if string(cps[1].Note) != "note 4\n" || !bytes.Equal(cps[1].Root, root(4)) {
		t.Errorf("checkpoint 4 = %q %x: the first one stored must stay", cps[1].Note, cps[1].Root)
	}
	if !cps[0].CreatedAt.Equal(epoch.Add(time.Minute).Truncate(time.Microsecond)) {
		t.Errorf("checkpoint 1 CreatedAt = %v, want the store's clock", cps[0].CreatedAt)
	}
	after, err := s.AuditCheckpoints(ctx, 1, 1)
	if err != nil || len(after) != 1 || after[0].Size != 4 {
		t.Errorf("AuditCheckpoints(after 1, limit 1) = %+v, %v", after, err)
	}
	latest, err := s.LatestAuditCheckpoint(ctx)
	if err != nil || latest.Size != 9 {
		t.Errorf("LatestAuditCheckpoint = %d, %v; want 9", latest.Size, err)
	}
}
