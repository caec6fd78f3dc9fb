package exchange

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"google.golang.org/protobuf/proto"
	"slices"
	"strings"
	"testing"
	"time"

	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/store"
)

// batchInputs are referrals that exercise what IngestBatch must keep as
// one-by-one ingests have it: two referrals of each of twelve clients (the
// second reads the first's consent), two of them next to each other, a
// record sent twice in the batch, and more referrals than the clinic's
// capacity.
func batchInputs(t *testing.T) []*rpb.Bundle {
	br := newBenchRecords(t)
	var out []*rpb.Bundle
	for i := range 24 {
		out = append(out, br.convertAs(t, i, fmt.Sprintf("BT-%d", i), fmt.Sprintf("CT-%d", i%12)))
	}
	out = append(out, br.convertAs(t, 30, "BT-30", "CT-30"), br.convertAs(t, 31, "BT-31", "CT-30"))
	// Two referrals of one Patient (as a clinic's FHIR intake sends them):
	// the second decides with the first's consent too.
	first := br.convertAs(t, 40, "BT-40", "CT-40")
	out = append(out, first, samePatient(t, br.convertAs(t, 41, "BT-41", "CT-40"), first))
	// The same record again, in the same batch: a re-ingest; and a record
	// changed since it was sent: new versions of its resources and of its
	// decided bundles.
	out = append(out, br.convertAs(t, 5, "BT-5", "CT-5"), br.convertAs(t, 6, "BT-6", "CT-6", "notes", "Seen again: the notes changed."))
	for i := 24; i < 30; i++ {
		out = append(out, br.convertAs(t, i, fmt.Sprintf("BT-%d", i), fmt.Sprintf("CT-%d", i)))
	}
	return out
}

// verifyLog checkpoints the store's audit log and verifies it, with every
// decision re-derived.
func verifyLog(t *testing.T, st *store.Store) *audit.Report {
	t.Helper()
	return logVerifier(t, st)()
}

// logVerifier returns a function that checkpoints the store's audit log
// with one key, made here, and verifies it with every decision re-derived.
func logVerifier(t *testing.T, st *store.Store) func() *audit.Report {
	t.Helper()
	skey, vkey, err := audit.GenerateKey("test.pathway/audit")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := audit.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := audit.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return func() *audit.Report {
		t.Helper()
		if _, _, err := audit.New(st).Checkpoint(t.Context(), signer); err != nil {
			t.Fatalf("checkpoint: %v", err)
		}
		rep, err := audit.Verify(t.Context(), st, audit.VerifyOptions{Verifier: verifier, Rederiver: NewRederiver()})
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		return rep
	}
}

// samePatient returns b with its Patient's id (and every reference to
// it) that of other's Patient.
func samePatient(t *testing.T, b, other *rpb.Bundle) *rpb.Bundle {
	t.Helper()
	from, to := strings.TrimPrefix(patientRef(b), "Patient/"), strings.TrimPrefix(patientRef(other), "Patient/")
	data, err := fhir.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	r := fhir.Parse([]byte(strings.ReplaceAll(string(data), from, to)))
	if !r.Valid() {
		t.Fatalf("bundle with the other Patient: %v", r.Issues.Errors())
	}
	if patientRef(r.Resource.GetBundle()) != patientRef(other) {
		t.Fatal("the Patient was not replaced")
	}
	return r.Resource.GetBundle()
}

// storeState is everything an ingest leaves in a store, without the
// outbox ids and times (which only depend on the order of writes).
func storeState(t *testing.T, s *store.Store) []string {
	t.Helper()
	ctx := t.Context()
	var out []string
	n, err := s.Count(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, fmt.Sprintf("%d resources", n))
	for _, typ := range []string{"Patient", "ServiceRequest", "Consent", "Task", "Observation", "Flag", "QuestionnaireResponse", "RelatedPerson", "Bundle", "Basic", "Communication", "Practitioner", "Organization"} {
		rs, err := s.Search(ctx, store.Query{Type: typ, Limit: store.MaxSearchLimit})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			out = append(out, fmt.Sprintf("%s v%d %x source=%s status=%s owner=%s requester=%s patient=%s", r.Ref(), r.Version, r.Hash[:6], r.Source, r.Status, r.Owner, r.Requester, r.Patient))
		}
	}
	ms, err := s.Messages(ctx, store.MessageQuery{Limit: store.MaxSearchLimit, WithPayload: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		out = append(out, fmt.Sprintf("message %s to %s for %s (%s) %x", m.Key, m.Partner, m.Purpose, m.Kind, sha256.Sum256(m.Payload)))
	}
	rts, err := s.Routings(ctx, false, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	un, err := s.Routings(ctx, true, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range append(rts, un...) {
		out = append(out, fmt.Sprintf("routing %s risk=%s targets=%v unroutable=%v %s", r.ServiceRequest, r.Risk, r.Targets, r.Unroutable, r.Reason))
	}
	var entries []string
	if err := s.ScanAudit(ctx, store.AuditScan{}, func(r store.AuditRecord) error {
		entries = append(entries, fmt.Sprintf("audit %s %s %x", r.EntryID, r.Kind, sha256.Sum256(r.Data)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The log's order follows the order of the writes, which is the same;
	// its entries are compared as a set and its size is checked.
	slices.Sort(entries)
	out = append(out, entries...)
	slices.Sort(out)
	return out
}

func resultLine(r IngestResult) string {
	var parts []string
	for _, rt := range r.Routes {
		parts = append(parts, fmt.Sprintf("%s urgent=%v", rt.Partner, rt.Urgent))
	}
	var decs []string
	for p, d := range r.Decisions {
		decs = append(decs, p+"="+string(d.Effect))
	}
	slices.Sort(decs)
	return fmt.Sprintf("%s risk=%s routes=[%s] unroutable=%q decisions=%v enqueued=%d unchanged=%d",
		r.ServiceRequest, r.Risk, strings.Join(parts, ", "), r.Unroutable, decs, r.Enqueued, r.Unchanged)
}

// TestIngestBatchMatchesOneByOne: IngestBatch leaves the store (resources
// with their versions, outbox, routings, audit log) and returns the
// results exactly as ingesting the same bundles one by one does, with the
// clinic's capacity counted across the batch, with groups cut by shared
// clients only and with groups of three (most of them prepared while the
// one before is written).
func TestIngestBatchMatchesOneByOne(t *testing.T) {
	for name, newURL := range storeURLs(t) {
		// With a capacity, each group is placed after the one before is
		// committed; without, groups of three are prepared while the one
		// before is written.
		for _, c := range []struct{ size, capacity int }{{0, 5}, {3, 5}, {3, 0}} {
			t.Run(fmt.Sprintf("%s/group=%d/capacity=%d", name, c.size, c.capacity), func(t *testing.T) {
				testIngestBatchMatches(t, newURL, c.size, c.capacity)
			})
		}
	}
}

func testIngestBatchMatches(t *testing.T, newURL func(t *testing.T) string, size, capacity int) {
	// Writes are slow, so that a group prepared before the one it depends
	// on is committed would read too early, and differ.
	testHookWriteGroup = func() { time.Sleep(20 * time.Millisecond) }
	t.Cleanup(func() { testHookWriteGroup = nil })
	bundles := batchInputs(t)
	run := func(batch bool) ([]string, []string) {
		ph := newPipelineHarness(t, newURL(t))
		for id, l := range ph.cfg.Partners {
			l.Services.Capacity = 0
			if id == "clinic-riverside" {
				l.Services.Capacity = capacity
			}
		}
		ph.pipe.Audit = &Auditor{Config: ph.cfg.Raw}
		ph.pipe.GroupSize = size
		var lines []string
		if batch {
			// As pathway ingest hands them over: bundles of its own, which
			// the pipeline labels in place.
			ph.pipe.TakeBundles = true
			given := make([]*rpb.Bundle, len(bundles))
			for i, b := range bundles {
				given[i] = proto.Clone(b).(*rpb.Bundle)
			}
			results, errs := ph.pipe.IngestBatch(t.Context(), "ngo-harbour", given)
			for i, err := range errs {
				if err != nil {
					t.Fatalf("bundle %d: %v", i, err)
				}
				lines = append(lines, resultLine(results[i]))
			}
		} else {
			for _, b := range bundles {
				res, err := ph.pipe.Ingest(t.Context(), "ngo-harbour", b)
				if err != nil {
					t.Fatal(err)
				}
				lines = append(lines, resultLine(res))
			}
		}
		// Every decision's kept inputs are where the log says, at the
		// versions it names, and re-derive.
		rep := verifyLog(t, ph.store)
		if !rep.OK() || rep.Rederived == 0 {
			t.Errorf("verify after ingest (batch %v): rederived %d, problems %+v", batch, rep.Rederived, rep.Problems)
		}
		return lines, storeState(t, ph.store)
	}
	oneResults, oneState := run(false)
	batchResults, batchState := run(true)
	if d := diffLines(oneResults, batchResults); d != "" {
		t.Errorf("results differ (one by one -, batch +):\n%s", d)
	}
	if d := diffLines(oneState, batchState); d != "" {
		t.Errorf("store differs (one by one -, batch +):\n%s", d)
	}
	// The inputs did exercise what they are meant to.
	full, reingest := 0, false
	for _, l := range oneResults {
		if strings.Contains(l, "unchanged=") && !strings.Contains(l, "unchanged=0") {
			reingest = true
		}
		if strings.Contains(l, "is at capacity") {
			full++
		}
	}
	if !reingest || (capacity > 0) != (full > 0) {
		t.Errorf("inputs did not exercise a re-ingest (%v) and, with a capacity, a full clinic (%d referrals found it full):\n%s", reingest, full, strings.Join(oneResults, "\n"))
	}
}

// diffLines returns the lines only in a (-) and only in b (+).
func diffLines(a, b []string) string {
	var sb strings.Builder
	for _, l := range a {
		if !slices.Contains(b, l) {
			sb.WriteString("- " + l + "\n")
		}
	}
	for _, l := range b {
		if !slices.Contains(a, l) {
			sb.WriteString("+ " + l + "\n")
		}
	}
	if len(a) != len(b) && sb.Len() == 0 {
		fmt.Fprintf(&sb, "%d lines against %d\n", len(a), len(b))
	}
	return sb.String()
}

// TestIngestBatchRefusesOneAndGoesOn: a referral whose ids are another
// source's is refused in the batch, with nothing of it written, and the
// referrals around it are ingested.
func TestIngestBatchRefusesOneAndGoesOn(t *testing.T) {
	for name, newURL := range storeURLs(t) {
		t.Run(name, func(t *testing.T) {
			ph := newPipelineHarness(t, newURL(t))
			br := newBenchRecords(t)
			theirs := br.convertAs(t, 0, "BF-1", "CF-1")
			if _, err := ph.pipe.Ingest(t.Context(), "community-garden", theirs); err != nil {
				t.Fatal(err)
			}
			before := storeState(t, ph.store)
			bundles := []*rpb.Bundle{br.convertAs(t, 1, "BF-2", "CF-2"), theirs, br.convertAs(t, 2, "BF-3", "CF-3")}
			results, errs := ph.pipe.IngestBatch(t.Context(), "ngo-harbour", bundles)
			if !errors.Is(errs[1], ErrForeignReferral) {
				t.Errorf("the other source's referral: %v, want ErrForeignReferral", errs[1])
			}
			for _, i := range []int{0, 2} {
				if errs[i] != nil || len(results[i].Routes) == 0 || results[i].Enqueued == 0 {
					t.Errorf("bundle %d: %v, %s; want ingested and enqueued", i, errs[i], resultLine(results[i]))
				}
			}
			after := storeState(t, ph.store)
			for _, l := range strings.Split(diffLines(before, after), "\n") {
				if strings.HasPrefix(l, "- ") && !strings.HasSuffix(l, " resources") {
					t.Errorf("the refused referral changed what was stored: %s", l)
				}
				if strings.Contains(l, "CF-1") {
					t.Errorf("the refused referral wrote: %s", l)
				}
			}
		})
	}
}

// TestIngestBatchAfterCancel: a batch whose context is cancelled writes
// nothing and says so for every referral.
func TestIngestBatchAfterCancel(t *testing.T) {
	ph := newPipelineHarness(t, sqliteURL(t))
	br := newBenchRecords(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	bundles := []*rpb.Bundle{br.convertAs(t, 1, "BC-1", "CC-1"), br.convertAs(t, 2, "BC-2", "CC-2")}
	_, errs := ph.pipe.IngestBatch(ctx, "ngo-harbour", bundles)
	for i, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("bundle %d: %v, want context.Canceled", i, err)
		}
	}
	if n, err := ph.store.Count(t.Context(), ""); err != nil || n != 0 {
		t.Errorf("%d resources stored (%v), want none", n, err)
	}
}

// TestChangedReferralWaitsForItsOlderVersion: a changed record makes a new
// message in the same stream as the first (same referral and partner), and
// it is not claimed while the first still waits to be sent, so a partner
// never gets the older version after the newer.
func TestChangedReferralWaitsForItsOlderVersion(t *testing.T) {
	ph := newPipelineHarness(t, sqliteURL(t))
	br := newBenchRecords(t)
	if _, err := ph.pipe.Ingest(t.Context(), "ngo-harbour", br.convertAs(t, 0, "BS-1", "CS-1")); err != nil {
		t.Fatal(err)
	}
	changed, err := ph.pipe.Ingest(t.Context(), "ngo-harbour", br.convertAs(t, 0, "BS-1", "CS-1", "notes", "Changed since."))
	if err != nil || changed.Enqueued != 1 {
		t.Fatalf("changed record: %v, %s", err, resultLine(changed))
	}
	ms, err := ph.store.Messages(t.Context(), store.MessageQuery{})
	if err != nil || len(ms) != 2 {
		t.Fatalf("messages %+v, %v", ms, err)
	}
	if ms[0].Stream == "" || ms[0].Stream != ms[1].Stream || !strings.Contains(ms[0].Stream, "ServiceRequest/") {
		t.Fatalf("streams %q and %q, want one stream naming the referral", ms[0].Stream, ms[1].Stream)
	}
	claimed, err := ph.store.Claim(t.Context(), "w1", 10, time.Minute)
	if err != nil || len(claimed) != 1 || claimed[0].ID != ms[0].ID {
		t.Fatalf("claimed %+v (%v), want the older message alone", claimed, err)
	}
}

// TestIngestBatchFailedHoldsNoCapacity: a referral that fails after it
// was placed (an entry without an id) holds no place at a full clinic in
// the batch: the high-risk referral after it is placed as one-by-one
// ingests place it.
func TestIngestBatchFailedHoldsNoCapacity(t *testing.T) {
	br := newBenchRecords(t)
	broken := br.convertAs(t, 2, "BR-1", "CR-1")
	for _, e := range broken.GetEntry() {
		if o := e.GetResource().GetObservation(); o != nil {
			o.Id = nil
			break
		}
	}
	high := br.convertAs(t, 2, "BR-2", "CR-2")
	run := func(batch bool) string {
		ph := newPipelineHarness(t, sqliteURL(t))
		ph.cfg.Partners["clinic-riverside"].Services.Capacity = 1
		if batch {
			results, errs := ph.pipe.IngestBatch(t.Context(), "ngo-harbour", []*rpb.Bundle{broken, high})
			if errs[0] == nil || errs[1] != nil {
				t.Fatalf("batch: %v, %v; want the first to fail alone", errs[0], errs[1])
			}
			return resultLine(results[1])
		}
		if _, err := ph.pipe.Ingest(t.Context(), "ngo-harbour", broken); err == nil {
			t.Fatal("one by one: the broken referral was ingested")
		}
		res, err := ph.pipe.Ingest(t.Context(), "ngo-harbour", high)
		if err != nil {
			t.Fatal(err)
		}
		return resultLine(res)
	}
	one, batch := run(false), run(true)
	if one != batch {
		t.Errorf("the high-risk referral:\none by one: %s\nbatch:      %s", one, batch)
	}
	if !strings.Contains(one, "clinic-riverside") {
		t.Errorf("one by one it went elsewhere (%s): the test does not use the clinic's last place", one)
	}
}

// TestIngestBatchStopsAtAFailedPatient: a referral after a failed one of
// the same Patient is not ingested (ErrEarlierFailed, nothing written),
// while one of another patient goes on.
func TestIngestBatchStopsAtAFailedPatient(t *testing.T) {
	ph := newPipelineHarness(t, sqliteURL(t))
	br := newBenchRecords(t)
	broken := br.convertAs(t, 1, "BP-1", "CP-1")
	for _, e := range broken.GetEntry() {
		if o := e.GetResource().GetObservation(); o != nil {
			o.Id = nil
			break
		}
	}
	same := samePatient(t, br.convertAs(t, 1, "BP-2", "CP-1"), broken)
	other := br.convertAs(t, 1, "BP-3", "CP-3")
	results, errs := ph.pipe.IngestBatch(t.Context(), "ngo-harbour", []*rpb.Bundle{broken, same, other})
	if errs[0] == nil || !errors.Is(errs[1], ErrEarlierFailed) || errs[2] != nil {
		t.Fatalf("errors %v; %v; %v: want the first to fail, the second not ingested, the third ingested", errs[0], errs[1], errs[2])
	}
	if len(results[2].Routes) == 0 {
		t.Errorf("the other patient's referral: %s", resultLine(results[2]))
	}
	if _, err := ph.store.Get(t.Context(), "ServiceRequest", strings.TrimPrefix(results[1].ServiceRequest, "ServiceRequest/")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the referral after the failed one was written: %v", err)
	}
}

// TestTaskChangeJoinsItsReferralsStream: a change of a referral's Task
// flowing to the partner that received the referral is in the referral's
// stream to that partner, after the referral itself.
func TestTaskChangeJoinsItsReferralsStream(t *testing.T) {
	ph := newPipelineHarness(t, sqliteURL(t))
	br := newBenchRecords(t)
	res, err := ph.pipe.Ingest(t.Context(), "ngo-harbour", br.convertAs(t, 2, "BJ-1", "CJ-1"))
	if err != nil || len(res.Routes) == 0 || res.Routes[0].Partner != "clinic-riverside" {
		t.Fatalf("ingest: %v, %s", err, resultLine(res))
	}
	tasks, err := ph.store.Search(t.Context(), store.Query{Type: "Task", Owner: "Organization/clinic-riverside"})
	if err != nil || len(tasks) != 1 {
		t.Fatalf("tasks %v, %v", tasks, err)
	}
	// The referrer's change (as the API writes it) flows to the clinic.
	err = ph.store.WithTx(t.Context(), func(tx *store.Tx) error {
		created, err := ph.pipe.FlowBack(t.Context(), tx, tasks[0], "ngo-harbour")
		if err == nil && !created {
			err = errors.New("no message to the clinic")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := ph.store.Messages(t.Context(), store.MessageQuery{Partner: "clinic-riverside"})
	if err != nil || len(ms) != 2 {
		t.Fatalf("messages to the clinic %+v, %v", ms, err)
	}
	want := referralStream(res.ServiceRequest, "clinic-riverside")
	if ms[0].Stream != want || ms[1].Stream != want {
		t.Errorf("streams %q and %q, want both %q", ms[0].Stream, ms[1].Stream, want)
	}
}
