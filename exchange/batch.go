package exchange

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"

	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"

	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/store"
)

// MaxGroup is the most referrals IngestBatch commits in one transaction.
const MaxGroup = 256

// ErrEarlierFailed is IngestBatch's error for a referral that shares its
// patient or a resource with an earlier one of the batch that failed:
// nothing of it is written. Ingest it again once the earlier one is.
var ErrEarlierFailed = errors.New("an earlier referral of the same patient or resources failed, so this one was not ingested")

// IngestBatch ingests bundles, all from source, as Ingest ingests each of
// them in order, with the same results, but in far fewer transactions
// (group commit): referrals are taken in groups of up to MaxGroup that
// share no resource and no patient, the work that needs no lock
// (labelling, routing, deciding, encoding) is done for a whole group on
// every core, and the group is written in one transaction, while the next
// group is being prepared.
//
// Why the results are those of one-by-one ingests: what Ingest reads
// before its transaction (the patient's consents, the stored Tasks) is
// only ever written by a referral with the same patient or the same
// resources. A group holds no two such referrals: the one that would join
// a group holding its patient or one of its resources starts the next
// group. And a group is prepared while the one before it is written only
// when the two share nothing either; otherwise it waits for that commit.
// Open referrals, when a candidate has a capacity, are counted as Ingest
// counts them, after the group before is committed, plus the new Tasks
// of the group's earlier referrals. The guard still runs in the
// transaction, for each referral.
//
// results[i] and errs[i] are bundle i's. A referral that cannot be
// ingested (an invalid bundle, ErrForeignReferral) fails alone, with the
// later referrals that share its patient or a resource (ErrEarlierFailed);
// the rest go on. When a group's transaction fails, its referrals are written again
// one transaction each, so that a failure takes only its own referral with
// it. Nothing of a failed referral is written.
func (p *Pipeline) IngestBatch(ctx context.Context, source string, bundles []*rpb.Bundle) ([]IngestResult, []error) {
	results := make([]IngestResult, len(bundles))
	errs := make([]error, len(bundles))
	fps := make([][]string, len(bundles))
	for i, b := range bundles {
		fps[i] = footprint(b)
	}
	var (
		group    []int
		seen     = map[string]bool{} // the footprint of group
		prevSeen = map[string]bool{} // and of the group before it
		after    bool                // group shares something with the group before it
		writing  chan struct{}       // closed when the group before is committed
	)
	// A referral after one that failed, sharing its patient or one of its
	// resources, is not ingested: one by one, it would not be decided as
	// if the failed one had been.
	failed := map[string]bool{}
	var inflight []int // the group being written
	wait := func() {
		if writing != nil {
			<-writing
			writing = nil
			for _, i := range inflight {
				if errs[i] != nil {
					for _, k := range fps[i] {
						failed[k] = true
					}
				}
			}
			inflight = nil
		}
	}
	flush := func() {
		if len(group) > 0 {
			idx := slices.Clone(group)
			if after {
				wait()
			}
			for _, i := range idx {
				if fp := fps[i]; overlaps(failed, fp) {
					errs[i] = ErrEarlierFailed
					for _, k := range fp {
						failed[k] = true
					}
				}
			}
			plans := p.prepareGroup(ctx, source, bundles, idx, errs, wait)
			wait()
			done := make(chan struct{})
			go func() {
				defer close(done)
				p.writeGroup(ctx, source, idx, plans, results, errs)
			}()
			writing, inflight = done, idx
		}
		group = group[:0]
		seen, prevSeen = prevSeen, seen
		clear(seen)
		after = false
	}
	for i := range bundles {
		fp := fps[i]
		if len(group) == p.groupSize() || overlaps(seen, fp) {
			flush()
		}
		for _, k := range fp {
			seen[k] = true
		}
		after = after || overlaps(prevSeen, fp)
		group = append(group, i)
	}
	flush()
	wait()
	return results, errs
}

// testHookWriteGroup, when set by a test, runs before each group's write:
// a slow write shows whether the next group waits for it when it must.
var testHookWriteGroup func()

func (p *Pipeline) groupSize() int {
	if p.GroupSize > 0 {
		return p.GroupSize
	}
	return MaxGroup
}

// footprint is what a referral's ingest reads or writes that another
// referral's could too: its resources (by Type/id) and its patient, and
// the patient a Consent of it names by a literal reference (its stored
// consents are read by patient).
func footprint(b *rpb.Bundle) []string {
	keys := make([]string, 0, len(b.GetEntry())+1)
	for _, e := range b.GetEntry() {
		r := e.GetResource()
		if r == nil {
			continue
		}
		keys = append(keys, fhir.TypeOf(r)+"/"+fhir.IDOf(r))
		if c := r.GetConsent(); c != nil {
			if pt := fhir.RefString(c.GetPatient()); strings.HasPrefix(pt, "Patient/") {
				keys = append(keys, "patient "+pt)
			}
		}
	}
	if pt := patientRef(b); pt != "" {
		keys = append(keys, "patient "+pt)
	}
	return keys
}

func overlaps(seen map[string]bool, keys []string) bool {
	for _, k := range keys {
		if seen[k] {
			return true
		}
	}
	return false
}

// prepareGroup labels, places and decides the bundles at idx, which
// share no resource and no patient, without writing. committed waits for
// the group before to be committed: placing with capacities counts open
// referrals in the store.
func (p *Pipeline) prepareGroup(ctx context.Context, source string, bundles []*rpb.Bundle, idx []int, errs []error, committed func()) []*ingestPlan {
	plans := make([]*ingestPlan, len(idx))
	parallel(len(idx), func(j int) {
		pl, err := p.label(source, bundles[idx[j]])
		plans[j] = pl
		if err != nil {
			errs[idx[j]] = err
		}
	})
	// Placing is done in order: with capacities, each referral counts the
	// open referrals the group's earlier ones add. The store's count is
	// read once for the group (after the group before is committed), and
	// each referral's own stored Tasks are taken out of it, as
	// OpenReferrals(ownTasks...) would count for it alone.
	counting := p.anyCapacity()
	var stored map[string]int
	p.placeGroup(ctx, plans, idx, errs, committed, counting, &stored)
	p.readGroupConsents(ctx, plans, idx, errs)
	parallel(len(idx), func(j int) {
		if errs[idx[j]] != nil {
			return
		}
		if err := p.decide(ctx, plans[j], p.now()); err != nil {
			errs[idx[j]] = err
		}
	})
	// A referral that failed after it was counted holds no capacity: place
	// the others again without it, and decide again those that go
	// elsewhere now (until none that counted fails).
	for counting {
		redo := false
		for j, pl := range plans {
			if errs[idx[j]] != nil && pl.counted {
				pl.counted, redo = false, true
			}
		}
		if !redo {
			break
		}
		for _, j := range p.placeGroup(ctx, plans, idx, errs, committed, counting, &stored) {
			pl := plans[j]
			pl.sends, pl.rows, pl.storedIn = nil, nil, nil
			if err := p.decide(ctx, pl, p.now()); err != nil {
				errs[idx[j]] = err
			}
		}
	}
	return plans
}

// readGroupConsents reads the stored consents of the group's patients in
// one query, for decide, instead of one query a referral. When it fails,
// each referral reads its own (and meets the failure itself).
func (p *Pipeline) readGroupConsents(ctx context.Context, plans []*ingestPlan, idx []int, errs []error) {
	var patients []string
	for j, pl := range plans {
		if errs[idx[j]] == nil && pl.patient != "" {
			patients = append(patients, pl.patient)
		}
	}
	if len(patients) == 0 {
		return
	}
	byPatient, err := p.Store.CurrentOfPatients(ctx, "Consent", patients)
	if err != nil {
		return
	}
	for j, pl := range plans {
		if errs[idx[j]] == nil && pl.patient != "" {
			pl.consentRows, pl.consentsRead = byPatient[pl.patient], true
		}
	}
}

// writeGroup writes the prepared plans of the bundles at idx in one
// transaction, or, when it fails, one transaction each.
func (p *Pipeline) writeGroup(ctx context.Context, source string, idx []int, plans []*ingestPlan, results []IngestResult, errs []error) {
	if testHookWriteGroup != nil {
		testHookWriteGroup()
	}
	// A failed referral's result says what was known of it (as Ingest's).
	defer func() {
		for j, pl := range plans {
			if errs[idx[j]] != nil && pl != nil {
				results[idx[j]] = pl.res
			}
		}
	}()
	var done []int // the plans written by the transaction
	err := p.Store.WithTx(ctx, func(tx *store.Tx) error {
		done = done[:0]
		// The group's referrals share no resource, so one read of the
		// heads guards them all, and their rows go in one batch.
		var keys []string
		for j, pl := range plans {
			if errs[idx[j]] == nil {
				for _, r := range pl.rows {
					keys = append(keys, r.Ref())
				}
			}
		}
		heads, err := tx.Heads(ctx, keys)
		if err != nil {
			return err
		}

		var rows []store.Resource
		for j, pl := range plans {
			if errs[idx[j]] != nil {
				continue
			}
			paused, err := pausedConsents(ctx, tx, heads, pl.rows)
			if err != nil {
				return err
			}
			kept, err := guardHeads(heads, pl.rows, source, paused)
			if err != nil {
				// Refused before anything of it was written: the rest go on.
				errs[idx[j]] = fmt.Errorf("ingesting %s: %w", pl.facts.ServiceRequest, err)
				continue
			}
			rows = append(rows, kept...)
			done = append(done, j)
		}
		if err := tx.PutBatch(ctx, rows); err != nil {
			return err
		}
		written := make([]*ingestPlan, len(done))
		for i, j := range done {
			written[i] = plans[j]
		}
		return p.write(ctx, tx, written)
	})
	if err != nil {
		// One transaction each, so that the failure stays with its referral.
		for j, pl := range plans {
			if errs[idx[j]] != nil {
				continue
			}
			errs[idx[j]] = p.Store.WithTx(ctx, func(tx *store.Tx) error { return p.writeOne(ctx, tx, pl) })
			results[idx[j]] = pl.res
			if errs[idx[j]] != nil {
				errs[idx[j]] = fmt.Errorf("ingesting %s: %w", pl.facts.ServiceRequest, errs[idx[j]])
				continue
			}
			p.ingested(ctx, pl)
		}
		return
	}
	for _, j := range done {
		results[idx[j]] = plans[j].res
		p.ingested(ctx, plans[j])
	}
}

// placeGroup places the group's referrals in order, counting (when
// counting) the open referrals each adds for the ones after it, and
// returns those whose routes changed since they were last placed. A
// referral the guard will refuse (another source's ids) adds nothing.
func (p *Pipeline) placeGroup(ctx context.Context, plans []*ingestPlan, idx []int, errs []error, committed func(), counting bool, stored *map[string]int) []int {
	added := map[string]int{}
	var changed []int
	for j, pl := range plans {
		if errs[idx[j]] != nil {
			continue
		}
		before := routesKey(pl.placed)
		if pl.capacity() {
			if *stored == nil {
				committed()
				all, err := p.Store.OpenReferrals(ctx)
				if err != nil {
					errs[idx[j]] = err
					continue
				}
				*stored = all
			}
			open, err := p.openWithout(ctx, *stored, pl.ownTasks())
			if err != nil {
				errs[idx[j]] = err
				continue
			}
			for owner, n := range added {
				open[owner] += n
			}
			pl.place(p.Config.Routing, open)
		} else if !pl.placedOnce {
			pl.place(p.Config.Routing, nil)
		}
		if pl.placedOnce && routesKey(pl.placed) != before {
			changed = append(changed, j)
		}
		pl.placedOnce = true
		if !counting {
			continue
		}
		// Its new Tasks count, also when no candidate of its own has a
		// capacity (its Task may be owned by a partner the source named).
		refused, err := p.refusedAsForeign(ctx, pl)
		if err != nil {
			errs[idx[j]] = err
			continue
		}
		if refused {
			continue
		}
		pl.counted = true
		if err := p.countNewTasks(ctx, pl, added); err != nil {
			errs[idx[j]] = err
		}
	}
	return changed
}

// routesKey names where a placement sends a referral.
func routesKey(d Decision) string {
	var sb strings.Builder
	sb.WriteString(d.Unroutable)
	for _, r := range d.Routes {
		fmt.Fprintf(&sb, "|%s %v", r.Partner, r.Urgent)
	}
	if sb.Len() == 0 {
		return "-"
	}
	return sb.String()
}

// refusedAsForeign reports whether the guard will refuse the referral:
// one of its resources (not a Task) is stored from another source.
func (p *Pipeline) refusedAsForeign(ctx context.Context, pl *ingestPlan) (bool, error) {
	byType := map[string][]string{}
	for _, e := range pl.labelled.GetEntry() {
		r := e.GetResource()
		if r == nil || r.GetTask() != nil {
			continue
		}
		byType[fhir.TypeOf(r)] = append(byType[fhir.TypeOf(r)], fhir.IDOf(r))
	}
	for typ, ids := range byType {
		got, err := p.Store.GetMany(ctx, typ, ids)
		if err != nil {
			return false, err
		}
		for _, r := range got {
			if r.Source != pl.source {
				return true, nil
			}
		}
	}
	return false, nil
}

// anyCapacity reports whether a partner of the configuration has a
// capacity, so that open referrals must be counted.
func (p *Pipeline) anyCapacity() bool {
	for _, l := range p.Config.Partners {
		if l.Services.Capacity > 0 {
			return true
		}
	}
	return false
}

// openWithout is counts (open referrals by owner) without the stored
// open Tasks among ids.
func (p *Pipeline) openWithout(ctx context.Context, counts map[string]int, ids []string) (map[string]int, error) {
	open := maps.Clone(counts)
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		t, err := p.Store.Get(ctx, "Task", id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if t.Owner != "" && store.IsOpenTaskStatus(t.Status) {
			open[t.Owner]--
		}
	}
	return open, nil
}

// countNewTasks adds to added, by owner reference, the open Tasks the
// placed referral will write that are not stored yet: once written they
// count against the capacity of their owners for the referrals after it,
// as OpenReferrals counts them. (A stored Task is kept as it is, and is
// counted already.)
func (p *Pipeline) countNewTasks(ctx context.Context, pl *ingestPlan, added map[string]int) error {
	for _, e := range pl.labelled.GetEntry() {
		t := e.GetResource().GetTask()
		if t == nil || t.GetId().GetValue() == "" {
			continue
		}
		sf := fhir.SearchFieldsOf(t)
		if !store.IsOpenTaskStatus(sf.Status) {
			continue
		}
		// What retarget makes of it: the first target's Task is this one,
		// owned by the target; a later target gets one of its own. An
		// unroutable referral keeps its Task as the source sent it.
		type task struct{ id, owner string }
		tasks := []task{{t.GetId().GetValue(), sf.Owner}}
		if len(pl.placed.Routes) > 0 {
			tasks = tasks[:0]
			for i, r := range pl.placed.Routes {
				id := t.GetId().GetValue()
				if i > 0 {
					id = fhir.NewID("pathway-route", id, r.Partner)
				}
				tasks = append(tasks, task{id, "Organization/" + r.Partner})
			}
		}
		for _, tk := range tasks {
			if tk.owner == "" {
				continue
			}
			_, err := p.Store.Get(ctx, "Task", tk.id)
			if errors.Is(err, store.ErrNotFound) {
				added[tk.owner]++
				continue
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// parallel calls fn(0) to fn(n-1) on as many goroutines as there are
// cores, and returns when all have returned.
func parallel(n int, fn func(i int)) {
	workers := min(n, runtime.GOMAXPROCS(0))
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
