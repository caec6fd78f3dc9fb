package exchange

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/store"
)

// taskSync is a sync harness whose store holds n open Tasks the clinic's
// community partner hosts (requested, referred by clinic-riverside, which
// has an endpoint: changes flow back to it), and the partner's server.
type taskSync struct {
	*syncHarness
	clinic *clinicServer
	srv    *httptest.Server
	ids    []string
}

func newTaskSync(t *testing.T, url string, n int) *taskSync {
	t.Helper()
	h := newSyncHarness(t, url)
	_, srv := newClinic(t, nil, nil)
	ts := &taskSync{syncHarness: h, clinic: srv.Config.Handler.(*clinicServer), srv: srv}
	h.cfg.Partners["clinic-riverside"].Endpoint = "http://127.0.0.1:1/fhir"
	ctx := t.Context()
	if _, err := h.store.Put(ctx, store.Resource{Type: "Patient", ID: ptID, Source: "clinic-riverside", Format: FormatJSON,
		Data: []byte(`{"resourceType":"Patient","id":"` + ptID + `","name":[{"family":"Example"}]}`), Patient: "Patient/" + ptID}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		id := fhir.NewID("task-sync", fmt.Sprint(i))
		ts.ids = append(ts.ids, id)
		ts.putTask(t, id, "Organization/community-garden")
	}
	return ts
}

// putTask stores a requested Task with the given owner.
func (ts *taskSync) putTask(t *testing.T, id, owner string) {
	t.Helper()
	if _, err := ts.store.Put(t.Context(), store.Resource{Type: "Task", ID: id, Source: "clinic-riverside", Format: FormatJSON,
		Data: []byte(taskJSON(id, "requested", "")), Patient: "Patient/" + ptID, Status: "requested",
		Owner: owner, Requester: "Organization/clinic-riverside"}); err != nil {
		t.Fatal(err)
	}
}

// set changes Tasks at the partner, all at one new instant (one EHR
// transaction).
func (ts *taskSync) set(tasks map[string]string) {
	ts.clinic.mu.Lock()
	defer ts.clinic.mu.Unlock()
	for id, body := range tasks {
		ts.clinic.setTask(id, body)
	}
	ts.clinic.refreshTasks()
}

// accept has the partner accept Tasks ids[from:to] with a note.
func (ts *taskSync) accept(from, to int) {
	m := map[string]string{}
	for _, id := range ts.ids[from:to] {
		m[id] = taskJSON(id, "accepted", "", "first session on Monday")
	}
	ts.set(m)
}

func (ts *taskSync) syncer(t *testing.T) *Syncer {
	s := ts.syncHarness.syncer(t, "community-garden", ts.srv.URL+"/fhir")
	s.TaskCount = 3
	return s
}

func (ts *taskSync) poll(t *testing.T, s *Syncer) (SyncReport, error) {
	t.Helper()
	rep := SyncReport{Partner: s.Partner}
	err := s.PollTasks(t.Context(), &rep)
	return rep, err
}

// versions lists each Task's stored status and version.
func (ts *taskSync) versions(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, id := range ts.ids {
		r, err := ts.store.Get(t.Context(), "Task", id)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s v%d", r.Status, r.Version))
	}
	return out
}

// messages counts the outbox's messages, failing on a key twice or on a
// message for any other Task version than the stored one.
func (ts *taskSync) messages(t *testing.T) int {
	t.Helper()
	msgs, err := ts.store.Messages(t.Context(), store.MessageQuery{Limit: store.MaxSearchLimit, WithPayload: true})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		if seen[m.Key] {
			t.Errorf("message %s enqueued twice", m.Key)
		}
		seen[m.Key] = true
		if m.Partner != "clinic-riverside" || m.Kind != KindReferrerUpdate || !strings.Contains(string(m.Payload), `"accepted"`) {
			t.Errorf("message %d = %s/%s, want the accepted Task back to clinic-riverside", m.ID, m.Partner, m.Kind)
		}
	}
	return len(msgs)
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestSyncTaskSearchPagesFromTheWatermark(t *testing.T) {
	for name, newURL := range syncStores(t) {
		t.Run(name, func(t *testing.T) {
			ts := newTaskSync(t, newURL(t), 7)
			ts.accept(0, 7) // seven at one instant: across three pages
			s := ts.syncer(t)
			rep, err := ts.poll(t, s)
			if err != nil {
				t.Fatal(err)
			}
			if rep.TaskPolling != TaskPollingSearch || rep.TaskPages != 3 || rep.TasksPolled != 7 || rep.TasksUpdated != 7 || rep.TasksSentBack != 7 || rep.TasksRefused != 0 {
				t.Errorf("report = %+v, want 3 pages, 7 polled, updated and sent back", rep)
			}
			if got := ts.versions(t); !slices.Equal(got, repeat("accepted v2", 7)) {
				t.Errorf("stored = %q, want each accepted once", got)
			}
			if n := ts.messages(t); n != 7 {
				t.Errorf("%d messages, want 7", n)
			}
			at := ts.clinic.taskClock
			if !rep.TaskWatermark.Equal(at) {
				t.Errorf("watermark = %s, want the partner's instant %s", rep.TaskWatermark, at)
			}
			q := ts.clinic.taskQueries
			if len(q) != 3 || strings.Contains(q[0], "_lastUpdated=") || !strings.Contains(q[0], "owner=Organization%2Fcommunity-garden") || !strings.Contains(q[0], "_count=3") {
				t.Errorf("queries = %q, want 3, the first by owner without a watermark", q)
			}
			if ts.clinic.taskReads != 0 {
				t.Errorf("%d Tasks read one by one, want none", ts.clinic.taskReads)
			}

			// Nothing new: asked from the watermark, every Task at it is
			// skipped, nothing is taken again.
			rep, err = ts.poll(t, s)
			if err != nil || rep.TasksPolled != 0 || rep.TasksUpdated != 0 || rep.TaskPages != 3 {
				t.Errorf("second poll = %+v, %v; want the 3 pages at the watermark, nothing taken", rep, err)
			}
			if last := ts.clinic.taskQueries[len(ts.clinic.taskQueries)-3]; !strings.Contains(last, "_lastUpdated=ge"+strings.ReplaceAll(at.Format(time.RFC3339Nano), ":", "%3A")) {
				t.Errorf("second poll asked %q, not from the watermark", last)
			}

			// Two Tasks move on: the next poll takes those two only.
			ts.set(map[string]string{
				ts.ids[1]: taskJSON(ts.ids[1], "in-progress", "", "first session on Monday"),
				ts.ids[5]: taskJSON(ts.ids[5], "completed", "", "first session on Monday", "all sessions attended"),
			})
			rep, err = ts.poll(t, s)
			if err != nil || rep.TasksPolled != 2 || rep.TasksUpdated != 2 || rep.TasksSentBack != 2 || !rep.TaskWatermark.Equal(ts.clinic.taskClock) {
				t.Errorf("third poll = %+v, %v; want the 2 changed Tasks", rep, err)
			}
			want := repeat("accepted v2", 7)
			want[1], want[5] = "in-progress v3", "completed v3"
			if got := ts.versions(t); !slices.Equal(got, want) {
				t.Errorf("stored = %q, want %q", got, want)
			}
			if r, _ := ts.store.Get(t.Context(), "Task", ts.ids[5]); strings.Count(string(r.Data), `"text"`) != 2 {
				t.Errorf("the completed Task's notes: %s", r.Data)
			}
		})
	}
}

// TestSyncTaskSearchRestartResumes: a cycle that fails between pages
// keeps what its pages took; the next process resumes from the stored
// watermark and takes each of the rest once.
func TestSyncTaskSearchRestartResumes(t *testing.T) {
	for name, newURL := range syncStores(t) {
		t.Run(name, func(t *testing.T) {
			url := newURL(t)
			ts := newTaskSync(t, url, 8)
			ts.accept(0, 2) // two instants: the first page ends inside the second
			ts.accept(2, 8)
			first := ts.clinic.taskClock.Add(-time.Second)
			// Page 2 fails every attempt of the first run.
			ts.clinic.taskFail = map[int]clinicFault{2: {status: 500}, 3: {status: 500}, 4: {status: 500}}
			rep, err := ts.poll(t, ts.syncer(t))
			var se *SyncError
			if !errors.As(err, &se) || se.Partner != "community-garden" || se.Path != "/Task" || se.Status != 500 {
				t.Fatalf("first run error = %v, want a SyncError naming the partner and /Task", err)
			}
			if msg := err.Error(); strings.Contains(msg, "SECRET") || strings.Contains(msg, "MRN") || strings.Contains(msg, "owner") || strings.Contains(msg, "_lastUpdated") {
				t.Errorf("the error quotes the body or the query: %s", msg)
			}
			if rep.TasksUpdated != 3 || !rep.TaskWatermark.Equal(first.Add(time.Second)) {
				t.Fatalf("first run = %+v, want page 1 (3 Tasks) taken, the watermark at the second instant", rep)
			}
			st, err := ts.store.SyncState(t.Context(), store.TaskSyncPartner("community-garden"))
			if err != nil || len(st.AtWatermark) != 1 || st.AtWatermark[0] != "Task/"+ts.clinic.taskOrder[2] {
				t.Errorf("stored state = %+v, %v; want the one Task taken at the watermark", st, err)
			}

			// A restart: a new store handle and Syncer on the same database.
			ts2 := &taskSync{syncHarness: newSyncHarness(t, url), clinic: ts.clinic, srv: ts.srv, ids: ts.ids}
			ts2.cfg.Partners["clinic-riverside"].Endpoint = "http://127.0.0.1:1/fhir"
			ts.clinic.taskFail = map[int]clinicFault{}
			rep, err = ts2.poll(t, ts2.syncer(t))
			if err != nil {
				t.Fatal(err)
			}
			// Asked ge the watermark: the Task taken at it is skipped.
			if rep.TasksUpdated != 5 || rep.TasksPolled != 5 {
				t.Errorf("second run = %+v, want the other 5 taken", rep)
			}
			if got := ts2.versions(t); !slices.Equal(got, repeat("accepted v2", 8)) {
				t.Errorf("stored = %q, want each accepted once", got)
			}
			if n := ts2.messages(t); n != 8 {
				t.Errorf("%d messages, want one for each of the 8", n)
			}
		})
	}
}

// TestSyncTaskPageIsAllOrNothing: a page that fails while it is read, or
// while its transaction is written, leaves nothing of it stored (no Task
// version, message, audit entry, reject or watermark); the next cycle
// takes it whole, once.
func TestSyncTaskPageIsAllOrNothing(t *testing.T) {
	for name, newURL := range syncStores(t) {
		t.Run(name, func(t *testing.T) {
			ts := newTaskSync(t, newURL(t), 7)
			ts.pipe.Audit = &Auditor{Config: ts.cfg.Raw}
			ts.accept(0, 7)
			// The Task at the middle of page 2 is moved where the state
			// machine does not allow: a reject, in the page's transaction.
			order := ts.clinic.taskOrder
			ts.set(map[string]string{order[4]: taskJSON(order[4], "completed", "")})
			order = ts.clinic.taskOrder // ids[4] now sorts last
			s := ts.syncer(t)
			ctx := t.Context()

			// The server drops the connection in the middle of page 2, at
			// every attempt.
			ts.clinic.taskCut = map[int]bool{2: true, 3: true, 4: true}
			rep, err := ts.poll(t, s)
			var se *SyncError
			if !errors.As(err, &se) || se.Path != "/Task" || rep.TasksUpdated != 3 {
				t.Fatalf("cut page: %+v, %v; want page 1 taken and a SyncError", rep, err)
			}
			taken := func() (updated int) {
				for _, v := range ts.versions(t) {
					if v == "accepted v2" {
						updated++
					}
				}
				return updated
			}
			if n := taken(); n != 3 {
				t.Errorf("%d Tasks stored as accepted, want page 1's 3", n)
			}
			if n := ts.messages(t); n != 3 {
				t.Errorf("%d messages, want page 1's 3", n)
			}
			if k := kinds(t, ts.store); k[audit.KindDecision] != 3 {
				t.Errorf("audit entries = %v, want page 1's 3 decisions", k)
			}

			// The store fails at the end of page 2's transaction (page 1
			// is the three taken already, skipped at the watermark).
			ts.clinic.taskCut = map[int]bool{}
			errBoom := errors.New("the database went away")
			commits := 0
			s.beforeCommit = func(tx *store.Tx) error {
				if commits++; commits == 2 {
					return errBoom
				}
				return nil
			}
			rep, err = ts.poll(t, s)
			if !errors.Is(err, errBoom) || rep.TasksUpdated != 0 || rep.TasksRefused != 0 || len(rep.Refusals) != 0 || commits != 2 {
				t.Fatalf("failed transaction: %+v, %v after %d transactions; want the error at the second, nothing counted and no third", rep, err, commits)
			}
			if n := taken(); n != 3 {
				t.Errorf("%d Tasks stored as accepted after the failed page, want 3", n)
			}
			if n := ts.messages(t); n != 3 {
				t.Errorf("%d messages after the failed page, want 3", n)
			}
			if k := kinds(t, ts.store); k[audit.KindDecision] != 3 {
				t.Errorf("audit entries after the failed page = %v, want 3 decisions", k)
			}
			if rs, err := ts.store.SyncRejects(ctx, "community-garden", 0); err != nil || len(rs) != 0 {
				t.Errorf("rejects after the failed page = %+v, %v; want none", rs, err)
			}
			if st, _ := ts.store.SyncState(ctx, store.TaskSyncPartner("community-garden")); len(st.AtWatermark) != 3 {
				t.Errorf("watermark after the failed page = %+v, want page 1's", st)
			}

			// The next cycle takes the rest, once.
			s.beforeCommit = nil
			rep, err = ts.poll(t, s)
			if err != nil || rep.TasksUpdated != 3 || rep.TasksRefused != 1 {
				t.Fatalf("next cycle: %+v, %v; want the other 3 taken and 1 refused", rep, err)
			}
			if n := taken(); n != 6 {
				t.Errorf("%d accepted, want 6", n)
			}
			if f, _ := ts.store.Get(ctx, "Task", order[6]); f.Status != "requested" || f.Version != 1 {
				t.Errorf("the refused Task is stored as %s v%d", f.Status, f.Version)
			}
			if n := ts.messages(t); n != 6 {
				t.Errorf("%d messages, want 6", n)
			}
			if k := kinds(t, ts.store); k[audit.KindDecision] != 6 {
				t.Errorf("audit entries = %v, want one decision for each of the 6 changes", k)
			}
			if rs, err := ts.store.SyncRejects(ctx, "community-garden", 0); err != nil || len(rs) != 1 || rs[0].Resource != "Task/"+order[6] {
				t.Errorf("rejects = %+v, %v; want the refused Task", rs, err)
			}
		})
	}
}

// TestSyncTaskRefusedInThePage: Tasks the state machine refuses, or that
// are not valid, in the middle of a page are refused and kept with their
// reasons; the rest of the page is taken; the watermark passes them all.
func TestSyncTaskRefusedInThePage(t *testing.T) {
	for name, newURL := range syncStores(t) {
		t.Run(name, func(t *testing.T) {
			ts := newTaskSync(t, newURL(t), 5)
			ctx := t.Context()
			ids := ts.ids
			ts.set(map[string]string{
				ids[0]: taskJSON(ids[0], "accepted", ""),
				ids[1]: strings.Replace(taskJSON(ids[1], "accepted", ""), `"accepted"`, `"accepted-ish"`, 1), // not a Task status
				ids[2]: taskJSON(ids[2], "completed", ""),                                                    // requested -> completed
				ids[3]: taskJSON(ids[3], "rejected", ""),                                                     // needs statusReason.text
				ids[4]: taskJSON(ids[4], "rejected", "no capacity until spring"),
			})
			s := ts.syncer(t)
			s.TaskCount = 10 // one page
			rep, err := ts.poll(t, s)
			if err != nil {
				t.Fatal(err)
			}
			if rep.TaskPages != 1 || rep.TasksPolled != 5 || rep.TasksUpdated != 2 || rep.TasksRefused != 3 || len(rep.Refusals) != 3 {
				t.Fatalf("report = %+v, want 2 taken and 3 refused", rep)
			}
			joined := strings.Join(rep.Refusals, "\n")
			for _, want := range []string{"Task/" + ids[1] + ": the partner's answer is not a valid Task", "Task/" + ids[2] + ": a Task cannot move from requested to completed", "Task/" + ids[3] + ": status rejected needs statusReason.text"} {
				if !strings.Contains(joined, want) {
					t.Errorf("refusals %q lack %q", rep.Refusals, want)
				}
			}
			if strings.Contains(joined, "accepted-ish") {
				t.Errorf("a refusal quotes the partner's value: %q", rep.Refusals)
			}
			if got := ts.versions(t); !slices.Equal(got, []string{"accepted v2", "requested v1", "requested v1", "requested v1", "rejected v2"}) {
				t.Errorf("stored = %q", got)
			}
			rejects, err := ts.store.SyncRejects(ctx, "community-garden", 0)
			if err != nil || len(rejects) != 3 {
				t.Fatalf("rejects = %+v, %v; want 3", rejects, err)
			}
			for _, r := range rejects {
				if !r.LastUpdated.Equal(ts.clinic.taskClock) || len(r.Reasons) == 0 {
					t.Errorf("reject %+v, want the partner's lastUpdated and the reasons", r)
				}
				if reasons := strings.Join(r.Reasons, " "); strings.Contains(reasons, "accepted-ish") {
					t.Errorf("a kept reason quotes the partner's value: %q", r.Reasons)
				}
				if r.Resource == "Task/"+ids[1] && !strings.Contains(strings.Join(r.Reasons, " "), "Task.status") {
					t.Errorf("the invalid Task's reasons do not name the element: %q", r.Reasons)
				}
			}
			// The watermark is past them: they are not refused again until
			// the partner changes them.
			rep, err = ts.poll(t, s)
			if err != nil || rep.TasksPolled != 0 || rep.TasksRefused != 0 {
				t.Errorf("second poll = %+v, %v; want nothing polled", rep, err)
			}
			ts.set(map[string]string{ids[3]: taskJSON(ids[3], "rejected", "no interpreter available")})
			if rep, err = ts.poll(t, s); err != nil || rep.TasksUpdated != 1 || rep.TasksRefused != 0 {
				t.Errorf("after the partner gave a reason: %+v, %v", rep, err)
			}
		})
	}
}

// TestSyncTaskFallsBackToReads: a partner whose server refuses the Task
// search (400) has each Task read with a GET, from then on; configured,
// either way is used as told.
func TestSyncTaskFallsBackToReads(t *testing.T) {
	for name, newURL := range syncStores(t) {
		t.Run(name, func(t *testing.T) {
			ts := newTaskSync(t, newURL(t), 5)
			ts.clinic.noTaskSearch = true
			ts.accept(0, 5)
			var lines []string
			s := ts.syncer(t)
			s.Progress = func(msg string) { lines = append(lines, msg) }
			rep, err := ts.poll(t, s)
			if err != nil {
				t.Fatal(err)
			}
			if rep.TaskPolling != TaskPollingRead || rep.TasksPolled != 5 || rep.TasksUpdated != 5 || rep.TasksSentBack != 5 {
				t.Errorf("report = %+v, want 5 read and taken", rep)
			}
			if len(ts.clinic.taskQueries) != 1 || ts.clinic.taskReads != 5 {
				t.Errorf("%d searches and %d reads, want 1 and 5", len(ts.clinic.taskQueries), ts.clinic.taskReads)
			}
			if !strings.Contains(strings.Join(lines, "\n"), "refuses the Task search (HTTP 400)") {
				t.Errorf("progress does not say the search was refused: %q", lines)
			}
			if got := ts.versions(t); !slices.Equal(got, repeat("accepted v2", 5)) {
				t.Errorf("stored = %q", got)
			}
			// The next cycle reads at once, without searching again.
			ts.set(map[string]string{ts.ids[0]: taskJSON(ts.ids[0], "in-progress", "", "first session on Monday")})
			if rep, err = ts.poll(t, s); err != nil || rep.TasksUpdated != 1 || len(ts.clinic.taskQueries) != 1 {
				t.Errorf("second cycle = %+v, %v after %d searches; want 1 taken by reads", rep, err, len(ts.clinic.taskQueries))
			}

			// Configured to search, a 400 is an error (no reads).
			s2 := ts.syncer(t)
			s2.TaskPolling = TaskPollingSearch
			reads := ts.clinic.taskReads
			var se *SyncError
			if _, err := ts.poll(t, s2); !errors.As(err, &se) || se.Status != 400 || ts.clinic.taskReads != reads {
				t.Errorf("search configured: %v, %d reads; want the 400", err, ts.clinic.taskReads-reads)
			}
			// Configured to read, no search is made.
			ts.clinic.noTaskSearch = false
			searches := len(ts.clinic.taskQueries)
			s3 := ts.syncer(t)
			s3.TaskPolling = TaskPollingRead
			if rep, err := ts.poll(t, s3); err != nil || rep.TaskPolling != TaskPollingRead || len(ts.clinic.taskQueries) != searches {
				t.Errorf("read configured: %+v, %v, %d searches", rep, err, len(ts.clinic.taskQueries)-searches)
			}
		})
	}
}

// TestSyncTaskTakesOnlyItsOwnTasks: a Task the partner's search returns
// that Pathway holds for another owner, or does not hold, or holds
// closed, changes nothing; with no open Task for the partner, its server
// is not asked at all.
func TestSyncTaskTakesOnlyItsOwnTasks(t *testing.T) {
	ts := newTaskSync(t, sqliteURL(t), 2)
	other := fhir.NewID("task-sync", "other")
	ts.putTask(t, other, "Organization/ngo-harbour")
	// The partner's copy claims it is the partner's.
	ts.set(map[string]string{
		other:            taskJSON(other, "accepted", ""),
		ts.ids[0]:        taskJSON(ts.ids[0], "accepted", ""),
		"not-ours":       taskJSON("not-ours", "accepted", ""),
		"not-ours-valid": strings.ReplaceAll(taskJSON("x", "accepted", ""), `"id":"x"`, `"id":"not-ours-valid"`),
	})
	s := ts.syncer(t)
	rep, err := ts.poll(t, s)
	if err != nil || rep.TasksPolled != 1 || rep.TasksUpdated != 1 {
		t.Errorf("report = %+v, %v; want only the partner's own Task taken", rep, err)
	}
	if r, _ := ts.store.Get(t.Context(), "Task", other); r.Version != 1 {
		t.Errorf("another owner's Task was changed: v%d", r.Version)
	}
	// Closed here: the partner's later changes are not taken.
	ts.set(map[string]string{ts.ids[0]: taskJSON(ts.ids[0], "requested", "")})
	if _, err := ts.store.Put(t.Context(), store.Resource{Type: "Task", ID: ts.ids[1], Source: "clinic-riverside", Format: FormatJSON,
		Data: []byte(taskJSON(ts.ids[1], "cancelled", "withdrawn")), Patient: "Patient/" + ptID, Status: "cancelled",
		Owner: "Organization/community-garden", Requester: "Organization/clinic-riverside"}); err != nil {
		t.Fatal(err)
	}
	ts.set(map[string]string{ts.ids[1]: taskJSON(ts.ids[1], "accepted", "")})
	if rep, err = ts.poll(t, s); err != nil || rep.TasksUpdated != 0 || rep.TasksRefused != 1 {
		t.Errorf("second poll = %+v, %v; want ids[0]'s move back to requested refused and the cancelled one left", rep, err)
	}
	// No open Task for the partner: nothing is asked.
	for _, id := range ts.ids[:1] {
		if _, err := ts.store.Put(t.Context(), store.Resource{Type: "Task", ID: id, Source: "clinic-riverside", Format: FormatJSON,
			Data: []byte(taskJSON(id, "completed", "")), Patient: "Patient/" + ptID, Status: "completed",
			Owner: "Organization/community-garden", Requester: "Organization/clinic-riverside"}); err != nil {
			t.Fatal(err)
		}
	}
	before := ts.clinic.taskReqs
	if rep, err = ts.poll(t, s); err != nil || ts.clinic.taskReqs != before || rep.TaskPolling != "" {
		t.Errorf("with no open Task: %+v, %v, %d requests; want none", rep, err, ts.clinic.taskReqs-before)
	}
}

// TestSyncTaskSearchStopsOnRepeatingNextLinks and refuses next links to
// other servers, as the pull does.
func TestSyncTaskSearchStopsOnRepeatingNextLinks(t *testing.T) {
	ts := newTaskSync(t, sqliteURL(t), 1)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the next link to another server was followed")
	}))
	defer other.Close()
	requests := 0
	next := ""
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","link":[{"relation":"next","url":%q}]}`, next)
	}))
	defer srv.Close()
	next = srv.URL + "/fhir/Task?page=loop"
	s := ts.syncHarness.syncer(t, "community-garden", srv.URL+"/fhir")
	var rep SyncReport
	if err := s.PollTasks(t.Context(), &rep); err == nil || !strings.Contains(err.Error(), "repeat") || requests != 2 {
		t.Errorf("PollTasks = %v after %d requests, want the loop refused after 2", err, requests)
	}
	next = other.URL + "/fhir/Task?page=2"
	if err := s.PollTasks(t.Context(), &SyncReport{}); err == nil || !strings.Contains(err.Error(), "another server") {
		t.Errorf("PollTasks = %v, want the next link refused", err)
	}
}

// TestSyncTaskChangesAreAudited: each change taken is in the audit log,
// as the decision of its flow back to the referrer, and the log's
// verification re-derives each decision; a referrer without an endpoint
// (it reads Pathway's API) gets no message, and the change is logged all
// the same.
func TestSyncTaskChangesAreAudited(t *testing.T) {
	for name, newURL := range syncStores(t) {
		t.Run(name, func(t *testing.T) {
			ts := newTaskSync(t, newURL(t), 4)
			ts.pipe.Audit = &Auditor{Config: ts.cfg.Raw}
			ts.accept(0, 4)
			s := ts.syncer(t)
			if rep, err := ts.poll(t, s); err != nil || rep.TasksUpdated != 4 || rep.TasksSentBack != 4 {
				t.Fatalf("poll = %+v, %v", rep, err)
			}
			ts.cfg.Partners["clinic-riverside"].Endpoint = ""
			ts.set(map[string]string{ts.ids[2]: taskJSON(ts.ids[2], "in-progress", "", "first session on Monday")})
			if rep, err := ts.poll(t, s); err != nil || rep.TasksUpdated != 1 || rep.TasksSentBack != 0 {
				t.Fatalf("poll without the referrer's endpoint = %+v, %v", rep, err)
			}
			if n := ts.messages(t); n != 4 {
				t.Errorf("%d messages, want 4", n)
			}
			var decisions []audit.Entry
			err := ts.store.ScanAudit(t.Context(), store.AuditScan{}, func(r store.AuditRecord) error {
				e, err := audit.ParseEntry(r.Data)
				if err == nil && e.Kind == audit.KindDecision {
					decisions = append(decisions, e)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(decisions) != 5 {
				t.Fatalf("%d decisions logged, want one for each of the 5 changes", len(decisions))
			}
			msgs, _ := ts.store.Messages(t.Context(), store.MessageQuery{})
			exchanges := map[string]bool{}
			for _, m := range msgs {
				exchanges[exchangeID(m.Key)] = true
			}
			for i, e := range decisions {
				if e.Actor != "Organization/clinic-riverside" || e.Purpose == "" || e.Effect != audit.EffectPermit || e.Patient != "Patient/"+ptID {
					t.Errorf("decision %d = %+v, want a permit for the referrer", i, e)
				}
				if i < 4 && !exchanges[e.Exchange] {
					t.Errorf("decision %d's exchange %s is not its message's", i, e.Exchange)
				}
			}
			skey, vkey, err := audit.GenerateKey("test.pathway/audit")
			if err != nil {
				t.Fatal(err)
			}
			signer, _ := audit.NewSigner(skey)
			verifier, _ := audit.NewVerifier(vkey)
			if _, _, err := audit.New(ts.store).Checkpoint(t.Context(), signer); err != nil {
				t.Fatal(err)
			}
			vr, err := audit.Verify(t.Context(), ts.store, audit.VerifyOptions{Verifier: verifier, Rederiver: NewRederiver()})
			if err != nil {
				t.Fatal(err)
			}
			if !vr.OK() || vr.Rederived != 5 {
				t.Errorf("verify: ok=%v, rederived %d, problems %+v; want the 5 decisions re-derived", vr.OK(), vr.Rederived, vr.Problems)
			}
		})
	}
}

// TestSyncTaskSearchHonoursRetryAfter: the Task search waits as the
// partner asks, as the pull does, and a partner asking for longer than a
// cycle waits ends the cycle with the wait to keep.
func TestSyncTaskSearchHonoursRetryAfter(t *testing.T) {
	ts := newTaskSync(t, sqliteURL(t), 4)
	ts.accept(0, 4)
	ts.clinic.taskFail = map[int]clinicFault{1: {status: 429, retry: "7"}, 3: {status: 503, retry: "2"}}
	s := ts.syncer(t)
	rep, err := ts.poll(t, s)
	if err != nil || rep.TasksUpdated != 4 {
		t.Fatalf("poll = %+v, %v; want the 4 taken after the waits", rep, err)
	}
	if !slices.Equal(ts.sleeps, []time.Duration{7 * time.Second, 2 * time.Second}) {
		t.Errorf("waits = %v, want 7s and 2s as Retry-After said", ts.sleeps)
	}
	ts.set(map[string]string{ts.ids[0]: taskJSON(ts.ids[0], "in-progress", "", "first session on Monday")})
	ts.clinic.taskFail = map[int]clinicFault{ts.clinic.taskReqs + 1: {status: 429, retry: "3600"}}
	rep, err = ts.poll(t, s)
	var se *SyncError
	if !errors.As(err, &se) || se.Status != 429 || rep.Wait != time.Hour || rep.TasksUpdated != 0 {
		t.Errorf("poll = %+v, %v; want a 429 error and a wait of 1h", rep, err)
	}
	// A 429 is not a refused search: the next cycle searches again.
	if rep, err = ts.poll(t, s); err != nil || rep.TaskPolling != TaskPollingSearch || rep.TasksUpdated != 1 {
		t.Errorf("next poll = %+v, %v; want the search, and the change taken", rep, err)
	}
}

// TestSyncTaskWatermarkOfNanoseconds: a partner whose lastUpdated has
// nanoseconds (the store keeps microseconds) has its Tasks at the
// watermark skipped all the same: a refused one is not refused again.
func TestSyncTaskWatermarkOfNanoseconds(t *testing.T) {
	ts := newTaskSync(t, sqliteURL(t), 2)
	ts.clinic.taskClock = ts.clinic.taskClock.Add(123456789 * time.Nanosecond)
	ts.set(map[string]string{ts.ids[0]: taskJSON(ts.ids[0], "completed", ""), ts.ids[1]: taskJSON(ts.ids[1], "accepted", "")})
	s := ts.syncer(t)
	if rep, err := ts.poll(t, s); err != nil || rep.TasksRefused != 1 || rep.TasksUpdated != 1 {
		t.Fatalf("poll = %+v, %v", rep, err)
	}
	if rep, err := ts.poll(t, s); err != nil || rep.TasksPolled != 0 || rep.TasksRefused != 0 {
		t.Errorf("second poll = %+v, %v; want the Tasks at the watermark skipped", rep, err)
	}
}

// TestSyncTaskTwiceOnAPage: a server that lists a Task twice on one page
// has it taken once, as its later copy (here a move the state machine
// refuses), and the page goes through.
func TestSyncTaskTwiceOnAPage(t *testing.T) {
	ts := newTaskSync(t, sqliteURL(t), 2)
	id := ts.ids[0]
	page := fmt.Sprintf(`{"resourceType":"Bundle","type":"searchset","entry":[{"resource":%s},{"resource":%s},{"resource":%s}]}`,
		taskJSON(id, "accepted", ""), taskJSON(ts.ids[1], "accepted", ""), taskJSON(id, "in-progress", ""))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(page)) }))
	defer srv.Close()
	s := ts.syncHarness.syncer(t, "community-garden", srv.URL+"/fhir")
	var rep SyncReport
	if err := s.PollTasks(t.Context(), &rep); err != nil || rep.TasksPolled != 2 || rep.TasksUpdated != 1 || rep.TasksRefused != 1 {
		t.Fatalf("PollTasks = %+v, %v; want the twice-listed Task judged once, by its later copy", rep, err)
	}
	if got := ts.versions(t); !slices.Equal(got, []string{"requested v1", "accepted v2"}) {
		t.Errorf("stored = %q", got)
	}
}
