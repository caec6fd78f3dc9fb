package exchange

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	tpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/task_go_proto"

	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/store"
)

// TaskPolling is how PollTasks reads the Tasks a partner hosts.
type TaskPolling string

const (
	// TaskPollingAuto searches, and falls back to TaskPollingRead for
	// the Syncer's life when the partner answers the search with 400 (its
	// server does not take _lastUpdated, owner or _sort on Task).
	TaskPollingAuto TaskPolling = ""
	// TaskPollingSearch searches the Tasks the partner changed since the
	// stored watermark: GET [base]/Task?_lastUpdated=ge<watermark>&owner=
	// Organization/<partner>&_sort=_lastUpdated&_count=N, every page.
	TaskPollingSearch TaskPolling = "search"
	// TaskPollingRead reads each open Task with a GET of its own.
	TaskPollingRead TaskPolling = "read"
)

// DefaultTaskCount is the Task page size PollTasks asks for, and the Tasks
// one transaction takes.
const DefaultTaskCount = 100

// openTaskStatuses are the statuses a partner may still move a Task from.
var openTaskStatuses = []string{"draft", "requested", "received", "accepted", "in-progress", "on-hold"}

func (s *Syncer) taskCount() int {
	if s.TaskCount > 0 {
		return s.TaskCount
	}
	return DefaultTaskCount
}

// PollTasks takes what the partner changed in the open Tasks Pathway holds
// with the partner as their owner (Tasks Pathway sent it, which it
// hosts): status, statusReason, businessStatus, notes and outputs added,
// as the owner. Each move is checked against the referral state machine;
// a refused one is reported (SyncReport.Refusals), kept with its reasons
// (store.SyncReject, "Task/id") and not stored. Each change stored is sent
// back to the referrer through the outbox, filtered for it, and logged in
// the audit log (the decision of that flow back) when the pipeline audits.
//
// Tasks are read a page at a time (TaskPolling: a search from the stored
// watermark, or a GET each) and one page's changes, refusals and the
// watermark after it are written in one transaction: all of them or, when
// anything fails, none (the page is read again next cycle).
func (s *Syncer) PollTasks(ctx context.Context, rep *SyncReport) error {
	open, err := s.holdsOpenTasks(ctx)
	if err != nil || !open {
		return err // nothing to poll: the partner's server is not asked
	}
	mode := s.TaskPolling
	if mode == TaskPollingAuto && s.taskSearchRefused {
		mode = TaskPollingRead
	}
	if mode != TaskPollingRead {
		rep.TaskPolling = TaskPollingSearch
		refused, err := s.searchTasks(ctx, rep)
		if !refused || s.TaskPolling != TaskPollingAuto {
			s.tasksDone(rep)
			return err
		}
		s.taskSearchRefused = true
		s.progress("%s: the partner's server refuses the Task search (HTTP 400): each Task is read with a GET from now on", s.Partner)
	}
	rep.TaskPolling = TaskPollingRead
	err = s.readTasks(ctx, rep)
	s.tasksDone(rep)
	return err
}

func (s *Syncer) tasksDone(rep *SyncReport) {
	if rep.TasksPolled > 0 || rep.TasksRefused > 0 {
		s.progress("%s: %d Tasks polled, %d updated, %d refused, %d sent back", s.Partner, rep.TasksPolled, rep.TasksUpdated, rep.TasksRefused, rep.TasksSentBack)
	}
}

// holdsOpenTasks reports whether Pathway holds an open Task the partner
// owns: without one there is nothing to take.
func (s *Syncer) holdsOpenTasks(ctx context.Context) (bool, error) {
	owner := "Organization/" + s.Partner
	for _, st := range openTaskStatuses {
		rs, err := s.Pipeline.Store.Search(ctx, store.Query{Type: "Task", Owner: owner, Status: st, Limit: 1})
		if err != nil {
			return false, err
		}
		if len(rs) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// searchTasks polls by search, page by page from the stored watermark
// (_lastUpdated=ge, skipping the ids already taken at that instant, as
// Pull does). refused reports that the partner answered the first request
// with 400: its server does not take the search.
//
// Pages are pipelined: while one page's transaction is written, the next
// page is read and decided (reads only); transactions are written one
// after the other, in page order, and none is begun after one failed.
func (s *Syncer) searchTasks(ctx context.Context, rep *SyncReport) (refused bool, err error) {
	st := s.Pipeline.Store
	key := store.TaskSyncPartner(s.Partner)
	state, err := st.SyncState(ctx, key)
	if err != nil {
		return false, err
	}
	rep.TaskWatermark = state.Watermark
	// The page being written, if any: its batch and, when it is done,
	// its error.
	var (
		writing *taskBatch
		written chan error
		wmAfter time.Time
	)
	wait := func() error {
		if writing == nil {
			return nil
		}
		err := <-written
		if err == nil {
			s.reportTasks(rep, writing)
			rep.TaskWatermark = wmAfter
		}
		writing = nil
		return err
	}
	refused, err = s.searchPages(ctx, rep, state, func(b *taskBatch, wm time.Time) error {
		if err := wait(); err != nil {
			return err
		}
		writing, written, wmAfter = b, make(chan error, 1), wm
		go func() { written <- s.commitTasks(ctx, b) }()
		return nil
	})
	if werr := wait(); err == nil {
		err = werr
	}
	return refused, err
}

// searchPages reads the search's pages and decides each, then hands it to
// write with the watermark it leaves (the write advances the stored one
// in the page's transaction). state is the stored watermark at the start,
// moved forward page by page as the store would.
func (s *Syncer) searchPages(ctx context.Context, rep *SyncReport, state store.SyncState, write func(*taskBatch, time.Time) error) (refused bool, err error) {
	key := store.TaskSyncPartner(s.Partner)
	// The ids at the watermark, as a set: thousands can share an instant.
	atWM := make(map[string]bool, len(state.AtWatermark))
	for _, id := range state.AtWatermark {
		atWM[id] = true
	}
	q := url.Values{}
	if !state.Watermark.IsZero() {
		q.Set("_lastUpdated", "ge"+state.Watermark.UTC().Format(time.RFC3339Nano))
	}
	q.Set("owner", "Organization/"+s.Partner)
	q.Set("_sort", "_lastUpdated")
	q.Set("_count", strconv.Itoa(s.taskCount()))
	next := s.base() + "/Task?" + q.Encode()
	visited := map[string]bool{}
	for next != "" {
		if visited[next] || len(visited) >= maxSyncPages {
			return false, &SyncError{Partner: s.Partner, Method: "GET", Path: "/Task", Reason: fmt.Sprintf("the server's next links repeat or run past %d pages in one cycle: stopped (the watermark keeps what was taken)", maxSyncPages)}
		}
		first := len(visited) == 0
		visited[next] = true
		body, err := s.get(ctx, next, rep)
		if err != nil {
			var se *SyncError
			return first && errors.As(err, &se) && se.Status == http.StatusBadRequest, err
		}
		rep.TaskPages++
		pg, err := readTaskPage(body)
		if err != nil {
			return false, &SyncError{Partner: s.Partner, Method: "GET", Path: "/Task", Reason: err.Error()}
		}
		// The page's watermark: its largest lastUpdated, and the Tasks at
		// exactly that instant (taken, refused or not ours alike).
		var pageMax time.Time
		var atMax []string
		items := make([]taskItem, 0, len(pg.tasks))
		for _, it := range pg.tasks {
			lu := it.lastUpdated
			if !lu.IsZero() {
				switch {
				case lu.After(pageMax):
					pageMax, atMax = lu, []string{it.ref()}
				case lu.Equal(pageMax):
					atMax = append(atMax, it.ref())
				}
				if lu.Equal(state.Watermark) && atWM[it.ref()] {
					continue // taken before, at the watermark
				}
				if !state.Watermark.IsZero() && lu.Before(state.Watermark) {
					continue // older than asked: taken before
				}
			}
			items = append(items, it)
		}
		b, err := s.prepareTasks(ctx, items)
		if err != nil {
			return false, err
		}
		// The watermark after the page, as AdvanceSync moves it: only
		// forward; at the same instant, the ids add up.
		if !pageMax.IsZero() && !pageMax.Before(state.Watermark) {
			b.inTx = func(ctx context.Context, tx *store.Tx) error { return tx.AdvanceSync(ctx, key, pageMax, atMax) }
			if !pageMax.Equal(state.Watermark) {
				state.Watermark = pageMax
				clear(atWM)
			}
			for _, id := range atMax {
				atWM[id] = true
			}
		}
		if len(b.changes) > 0 || b.inTx != nil || b.polled > 0 {
			if err := write(b, state.Watermark); err != nil {
				return false, err
			}
		}
		// As the pull does: the page is taken, then a next link to
		// another server stops the cycle.
		if pg.next != "" {
			if err := s.sameServer(pg.next, "/Task"); err != nil {
				return false, err
			}
		}
		next = pg.next
	}
	return false, nil
}

// readTasks polls each open Task the partner owns with a GET of its own,
// taking them a page (TaskCount) at a time. A 404 or 410 means the Task
// is not at the partner (yet: the outbox delivers it).
func (s *Syncer) readTasks(ctx context.Context, rep *SyncReport) error {
	st := s.Pipeline.Store
	owner := "Organization/" + s.Partner
	var batch []taskItem
	flush := func() error {
		err := s.applyTasks(ctx, batch, rep, nil)
		batch = batch[:0]
		return err
	}
	after := ""
	for {
		page, err := st.Search(ctx, store.Query{Type: "Task", Owner: owner, AfterID: after, Limit: store.MaxSearchLimit})
		if err != nil {
			return err
		}
		for _, t := range page {
			after = t.ID
			if !slices.Contains(openTaskStatuses, t.Status) || t.Format != FormatJSON {
				continue
			}
			body, err := s.get(ctx, s.base()+"/Task/"+url.PathEscape(t.ID), rep)
			var se *SyncError
			if errors.As(err, &se) && (se.Status == http.StatusNotFound || se.Status == http.StatusGone) {
				continue
			}
			if err != nil {
				// What was read is still taken; the cycle ends here.
				return errors.Join(err, flush())
			}
			it := taskItem{id: t.ID, raw: body}
			var h taskHeader
			if json.Unmarshal(body, &h) == nil {
				it.lastUpdated = parseInstant(h.Meta.LastUpdated)
			}
			batch = append(batch, it)
			if len(batch) >= s.taskCount() {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if len(page) < store.MaxSearchLimit {
			break
		}
	}
	return flush()
}

// taskItem is one Task read from the partner: its id (ours), its
// meta.lastUpdated there, and the partner's copy as it came.
type taskItem struct {
	id          string
	lastUpdated time.Time
	raw         []byte
}

func (it taskItem) ref() string { return "Task/" + it.id }

type taskHeader struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Meta         struct {
		LastUpdated string `json:"lastUpdated"`
	} `json:"meta"`
}

// parseInstant reads a meta.lastUpdated to the microsecond, as the store
// keeps the watermark: a partner's nanoseconds would otherwise never equal
// the stored watermark, and its Tasks at that instant would be taken again.
func parseInstant(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

type taskPage struct {
	tasks []taskItem
	next  string
}

// readTaskPage splits a searchset page into its Tasks, each kept as the
// partner sent it: each is parsed and validated on its own, so that one
// invalid Task is refused and the rest of the page goes on.
func readTaskPage(body []byte) (taskPage, error) {
	var pg taskPage
	var b struct {
		ResourceType string `json:"resourceType"`
		Link         []struct {
			Relation string `json:"relation"`
			URL      string `json:"url"`
		} `json:"link"`
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
			Search   struct {
				Mode string `json:"mode"`
			} `json:"search"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.ResourceType != "Bundle" {
		return pg, errors.New("the answer is not a FHIR Bundle")
	}
	for _, e := range b.Entry {
		if e.Search.Mode != "" && e.Search.Mode != "match" || len(e.Resource) == 0 {
			continue
		}
		var h taskHeader
		if json.Unmarshal(e.Resource, &h) != nil || h.ResourceType != "Task" || h.ID == "" {
			continue
		}
		pg.tasks = append(pg.tasks, taskItem{id: h.ID, lastUpdated: parseInstant(h.Meta.LastUpdated), raw: e.Resource})
	}
	for _, l := range b.Link {
		if l.Relation == "next" {
			pg.next = l.URL
			break
		}
	}
	return pg, nil
}

// taskChange is what one Task read from the partner comes to.
type taskChange struct {
	stored store.Resource
	// itemRead is what the partner sent.
	itemRead taskItem
	from, to string
	// refusal, when set, says why the change is refused (reasons are kept
	// with it); nothing is stored.
	refusal string
	reasons []string
	// row is the new version (saved as it will be stored, its version
	// one past stored's), next its Task, fb its flow back and rec the
	// decision to log.
	row, saved store.Resource
	next       *tpb.Task
	fb         flowBack
	rec        *DecisionRecord
}

// applyTasks takes one page of Tasks read from the partner in one
// transaction (with inTx, the page's watermark): the new versions, their
// flow-back messages and audit entries, and the refusals. The report
// counts them once the transaction has committed.
func (s *Syncer) applyTasks(ctx context.Context, items []taskItem, rep *SyncReport, inTx func(context.Context, *store.Tx) error) error {
	if len(items) == 0 && inTx == nil {
		return nil
	}
	b, err := s.prepareTasks(ctx, items)
	if err != nil {
		return err
	}
	b.inTx = inTx
	if err := s.commitTasks(ctx, b); err != nil {
		return err
	}
	s.reportTasks(rep, b)
	return nil
}

// taskBatch is one page of Tasks decided (prepareTasks), then written
// (commitTasks).
type taskBatch struct {
	// polled counts the page's Tasks that are the partner's open Tasks.
	polled  int
	changes []*taskChange
	pv      *pageViews
	// inTx, when set, writes more in the page's transaction (its
	// watermark).
	inTx func(context.Context, *store.Tx) error
	// sent holds the keys of the messages the transaction added.
	sent map[string]bool
}

// prepareTasks decides what a page of Tasks read from the partner
// changes, writing nothing: only reads of the store.
func (s *Syncer) prepareTasks(ctx context.Context, items []taskItem) (*taskBatch, error) {
	st := s.Pipeline.Store
	// A Task twice on a page (a server's paging gone wrong) is taken once,
	// as its later copy.
	last := make(map[string]int, len(items))
	for i, it := range items {
		last[it.id] = i
	}
	if len(last) < len(items) {
		kept := make([]taskItem, 0, len(last))
		for i, it := range items {
			if last[it.id] == i {
				kept = append(kept, it)
			}
		}
		items = kept
	}
	owner := "Organization/" + s.Partner
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.id
	}
	stored, err := st.GetMany(ctx, "Task", ids)
	if err != nil {
		return nil, err
	}
	// Only open Tasks Pathway holds, owned by this partner, are taken: a
	// partner's server answering with others' Tasks changes nothing.
	type pending struct {
		it     taskItem
		stored store.Resource
	}
	var todo []pending
	var patients []string
	for _, it := range items {
		t, ok := stored[it.id]
		if !ok || t.Owner != owner || t.Format != FormatJSON || !slices.Contains(openTaskStatuses, t.Status) {
			continue
		}
		todo = append(todo, pending{it, t})
		if t.Patient != "" {
			patients = append(patients, t.Patient)
		}
	}
	pv, err := s.Pipeline.loadPageViews(ctx, patients)
	if err != nil {
		return nil, err
	}
	// Each Task is decided on its own (parsed, checked, filtered for the
	// referrer): on as many cores as there are, in page order.
	decided := make([]*taskChange, len(todo))
	errs := make([]error, len(todo))
	parallel(len(todo), func(i int) {
		if ctx.Err() == nil {
			decided[i], errs[i] = s.taskChange(ctx, pv, todo[i].stored, todo[i].it)
		}
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b := &taskBatch{polled: len(todo), pv: pv, changes: make([]*taskChange, 0, len(todo))}
	for i, c := range decided {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if c != nil {
			b.changes = append(b.changes, c)
		}
	}
	return b, nil
}

// commitTasks writes a page decided by prepareTasks in one transaction.
func (s *Syncer) commitTasks(ctx context.Context, b *taskBatch) error {
	st := s.Pipeline.Store
	owner := "Organization/" + s.Partner
	changes, pv, inTx := b.changes, b.pv, b.inTx
	var logged bool
	var sent map[string]bool
	err := st.WithTx(ctx, func(tx *store.Tx) error {
		logged = false
		keys := make([]string, 0, len(changes))
		for _, c := range changes {
			if c.refusal == "" {
				keys = append(keys, c.stored.ID)
			}
		}
		heads, err := tx.LockHeads(ctx, "Task", keys)
		if err != nil {
			return err
		}
		var rows []store.Resource
		for i, c := range changes {
			if c.refusal != "" {
				continue
			}
			if h := heads[c.stored.ID]; h.Version != c.stored.Version {
				// Changed here since it was read: decide again from the
				// version as it is now.
				cur, err := tx.Get(ctx, "Task", c.stored.ID)
				if err != nil {
					return err
				}
				nc := &taskChange{stored: cur}
				if cur.Owner == owner && cur.Format == FormatJSON && slices.Contains(openTaskStatuses, cur.Status) {
					if nc, err = s.taskChange(ctx, pv, cur, c.item()); err != nil {
						return err
					}
				}
				if nc == nil {
					nc = &taskChange{stored: cur} // nothing to take any more
				}
				changes[i] = nc
				if nc.refusal != "" || nc.next == nil {
					continue
				}
				c = nc
			}
			rows = append(rows, c.row)
		}
		if err := tx.PutBatch(ctx, rows); err != nil {
			return err
		}
		keys = keys[:0]
		for _, r := range rows {
			keys = append(keys, r.ID)
		}
		after, err := tx.LockHeads(ctx, "Task", keys)
		if err != nil {
			return err
		}
		var msgs []store.Message
		var recs []DecisionRecord
		for _, c := range changes {
			switch {
			case c.refusal != "":
				if err := tx.PutSyncReject(ctx, store.SyncReject{Partner: s.Partner, Resource: c.stored.Ref(), LastUpdated: c.lastUpdated(), Reasons: c.reasons}); err != nil {
					return err
				}
				continue
			case c.next == nil:
				continue
			}
			if h := after[c.stored.ID]; h.Version != c.saved.Version || h.Hash != c.saved.Hash {
				return fmt.Errorf("%s: stored at version %d, not the %d it was decided for", c.stored.Ref(), h.Version, c.saved.Version)
			}
			if c.fb.Message != nil {
				msgs = append(msgs, *c.fb.Message)
			}
			if c.rec != nil {
				recs = append(recs, *c.rec)
			}
		}
		if err := s.logDecisions(ctx, tx, recs); err != nil {
			return err
		}
		logged = len(recs) > 0
		if sent, err = tx.EnqueueMany(ctx, msgs); err != nil {
			return err
		}
		if inTx != nil {
			if err := inTx(ctx, tx); err != nil {
				return err
			}
		}
		if s.beforeCommit != nil {
			return s.beforeCommit(tx)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storing Tasks from partner %s: %w", s.Partner, err)
	}
	if logged && s.Pipeline.Audit.Notify != nil {
		s.Pipeline.Audit.Notify()
	}
	b.sent = sent
	return nil
}

// reportTasks counts a page written by commitTasks in the report, and
// tells Progress of each change and refusal.
func (s *Syncer) reportTasks(rep *SyncReport, b *taskBatch) {
	rep.TasksPolled += b.polled
	for _, c := range b.changes {
		switch {
		case c.refusal != "":
			rep.TasksRefused++
			rep.Refusals = append(rep.Refusals, c.stored.Ref()+": "+c.refusal)
			s.progress("%s from %s: change refused: %s", c.stored.Ref(), s.Partner, c.refusal)
		case c.next != nil:
			rep.TasksUpdated++
			if c.fb.Message != nil && b.sent[c.fb.Message.Key] {
				rep.TasksSentBack++
			}
			s.progress("%s from %s: %s -> %s", c.stored.Ref(), s.Partner, c.from, c.to)
		}
	}
}

// logDecisions logs the flow-back decisions of a page in its transaction,
// as Auditor.DecidedAll logs a group of ingest decisions: the
// configuration kept once and the decided bundles in one batch write (not
// one upsert, and one for the configuration, per change), one sequencing
// of the log for the page, and a decision already logged (the same
// decision, with the same inputs, taken again) left out.
func (s *Syncer) logDecisions(ctx context.Context, tx *store.Tx, recs []DecisionRecord) error {
	a := s.Pipeline.Audit
	if a == nil || len(recs) == 0 {
		return nil
	}
	return a.DecidedAll(ctx, tx, recs)
}

// item and lastUpdated carry what the change was read from, for a
// decision taken again and for the reject kept.
func (c *taskChange) item() taskItem { return c.itemRead }

func (c *taskChange) lastUpdated() time.Time { return c.itemRead.lastUpdated }

// taskChange decides what one Task read from the partner changes in the
// stored one: nil when nothing, a refusal, or the new version with its
// flow back.
func (s *Syncer) taskChange(ctx context.Context, pv *pageViews, t store.Resource, it taskItem) (*taskChange, error) {
	refuse := func(why string, reasons ...string) *taskChange {
		return &taskChange{stored: t, itemRead: it, refusal: why, reasons: append([]string{why}, reasons...)}
	}
	p := fhir.Parse(it.raw)
	in := p.Resource.GetTask()
	if !p.Valid() || in == nil || in.GetId().GetValue() != t.ID {
		var reasons []string
		for _, is := range p.Issues.Errors() {
			reasons = append(reasons, "invalid at the partner: "+is.String())
		}
		return refuse("the partner's answer is not a valid Task with this id", reasons...), nil
	}
	cached, err := ParseStored(t) // shared: cloned below before it changes
	if err != nil {
		return nil, err
	}
	stored := cached.GetTask()
	if stored == nil {
		return nil, fmt.Errorf("stored %s is not a Task", t.Ref())
	}
	from := TaskStatus(stored)
	to := ImpliedStatus(from, in)
	// What is new is judged against what the partner was shown (its copy
	// is filtered), so that a masked or withheld note does not come back
	// as an addition. A stored Task without notes and outputs shows the
	// partner none either way: its view need not be decided.
	base := stored
	if len(stored.GetNote()) > 0 || len(stored.GetOutput()) > 0 {
		v, _, err := s.Pipeline.viewFrom(ctx, pv, s.Partner, t.Patient, []store.Resource{t}, false)
		if err != nil {
			return nil, err
		}
		if cr := v.Resources[t.Ref()]; cr != nil {
			base = cr.GetTask()
		}
	}
	notes := addedNotes(base.GetNote(), in.GetNote())
	outputs := added(base.GetOutput(), in.GetOutput())
	if to == from && proto.Equal(stored.GetBusinessStatus(), in.GetBusinessStatus()) && len(notes) == 0 && len(outputs) == 0 {
		return nil, nil // nothing changed (statusReason changes only with a move)
	}
	if err := CheckTransition(from, to, RoleOwner, in.GetStatusReason().GetText().GetValue()); err != nil {
		return refuse(err.Error()), nil
	}
	now := s.now().UTC()
	next := proto.Clone(stored).(*tpb.Task)
	next.BusinessStatus = in.GetBusinessStatus()
	if to != from {
		next.Status = TaskStatusCode(to)
		next.StatusReason = in.GetStatusReason()
	}
	AddToTask(next, notes, outputs, s.Partner, now)
	if iv := fhir.Validate(next); iv.HasErrors() {
		return refuse("the changed Task is not valid: " + iv.Errors()[0].String()), nil
	}
	data, err := fhir.Marshal(next)
	if err != nil {
		return nil, err
	}
	sf := fhir.SearchFieldsOf(next)
	c := &taskChange{stored: t, itemRead: it, from: from, to: to, next: next,
		row: store.Resource{Type: "Task", ID: t.ID, Source: s.Partner, Format: FormatJSON, Data: data,
			Patient: sf.Patient, Status: sf.Status, Owner: sf.Owner, Requester: sf.Requester}}
	c.saved = c.row
	c.saved.Version, c.saved.Hash = t.Version+1, sha256.Sum256(data)
	// The new version is not parsed again to be filtered for the referrer.
	RememberParsed(c.saved, &rpb.ContainedResource{OneofResource: &rpb.ContainedResource_Task{Task: next}})
	audited := s.Pipeline.Audit != nil
	if c.fb, err = s.Pipeline.planFlowBack(ctx, pv, c.saved, s.Partner, audited); err != nil {
		return nil, err
	}
	if audited && c.fb.Viewed.Bundle != nil {
		if c.rec, err = flowBackRecord(c.saved, next, c.fb); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// flowBackRecord is the audit record of the decision a Task change's flow
// back made for the other party: the bundle decided on, its consents and
// the outcome, under the exchange of its outbox message (so that the
// decision at send time and the disclosure join it). A decision that
// sends nothing (denied, or the other party works on Pathway's API) is
// logged too: every change taken from a partner is in the log.
func flowBackRecord(saved store.Resource, next *tpb.Task, fb flowBack) (*DecisionRecord, error) {
	decided, err := fhir.Marshal(fb.Viewed.Bundle)
	if err != nil {
		return nil, fmt.Errorf("encoding the bundle decided for %s: %w", fb.Other, err)
	}
	key := ""
	if fb.Message != nil {
		key = fb.Message.Key
	} else {
		sum := sha256.Sum256(append([]byte(fb.Other+"\x00"+fb.View.Purpose+"\x00task-update-decided\x00"), decided...))
		key = hex.EncodeToString(sum[:])
	}
	focus := fhir.RefString(next.GetFocus())
	return &DecisionRecord{
		Exchange: exchangeID(key), ServiceRequest: focus, Patient: saved.Patient, Partner: fb.Other, Purpose: fb.View.Purpose,
		At: fb.Viewed.At, Decision: fb.View.Decision, Decided: decided, DecidedID: decidedID(focus, fb.Other, fb.View.Purpose),
		Consents: fb.Viewed.Consents, Referrer: fb.Referrer,
	}, nil
}

// added returns the items of in that are not in have: notes and outputs
// are added to, never rewritten.
func added[T proto.Message](have, in []T) []T {
	var out []T
	for _, x := range in {
		if !slices.ContainsFunc(have, func(h T) bool { return proto.Equal(h, x) }) {
			out = append(out, x)
		}
	}
	return out
}

// addedNotes returns the notes of in whose text none of have has: Pathway
// signs notes itself (author, time), so a note comes back from the
// partner's copy with those changed, and is still the same note.
func addedNotes(have, in []*dpb.Annotation) []*dpb.Annotation {
	var out []*dpb.Annotation
	for _, x := range in {
		if !slices.ContainsFunc(have, func(h *dpb.Annotation) bool { return h.GetText().GetValue() == x.GetText().GetValue() }) {
			out = append(out, x)
		}
	}
	return out
}
