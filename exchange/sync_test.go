package exchange

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/mappings"
	"github.com/pathway-fhir/pathway/policy"
	"github.com/pathway-fhir/pathway/store"
	"github.com/pathway-fhir/pathway/store/storetest"
)

// clinicServer is a clinic's FHIR server: ServiceRequests with their
// Patients, searched by _lastUpdated (ge, gt), sorted, paged by an offset
// in next links; Tasks read by id; faults injected by request number.
type clinicServer struct {
	t        testing.TB
	mu       sync.Mutex
	srs      []map[string]any // sorted by meta.lastUpdated
	patients map[string]map[string]any
	tasks    map[string]string // id -> Task JSON, changed by setTask
	// fail answers the n-th search request (from 1) with a status, and
	// Retry-After when retry is set.
	fail    map[int]clinicFault
	reqs    int
	queries []string

	// The Tasks as the clinic's server keeps them: each change of tasks
	// (seen at the next Task request) gets a new meta.lastUpdated, the
	// same for all the Tasks changed together (one EHR transaction).
	taskState map[string]*clinicTask
	taskClock time.Time
	// taskFail answers the n-th Task request (search or read, from 1)
	// with a status; taskCut sends half of the n-th answer and drops the
	// connection; noTaskSearch answers every Task search with 400.
	taskFail     map[int]clinicFault
	taskCut      map[int]bool
	noTaskSearch bool
	taskReqs     int
	taskQueries  []string
	taskReads    int
	// taskOrder is the ids sorted by lastUpdated, then id; changed lists
	// the ids set since the last Task request.
	taskOrder []string
	changed   []string
	matches   map[string][]string
}

type clinicTask struct {
	body     string // as the test set it
	rendered []byte // with meta.lastUpdated
	owner    string
	updated  time.Time
}

type clinicFault struct {
	status int
	retry  string
}

// loadTemplate takes one referral of the sample clinic bundle.
func loadTemplate(t testing.TB) (map[string]any, map[string]any) {
	t.Helper()
	data, err := os.ReadFile("../testdata/mappings/fhir-referral-bundle.json")
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		Entry []struct {
			Resource map[string]any `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	var sr, pt map[string]any
	for _, e := range b.Entry {
		switch e.Resource["id"] {
		case "sr-4471-1":
			sr = e.Resource
		case "p-4471":
			pt = e.Resource
		}
	}
	if sr == nil || pt == nil {
		t.Fatal("sample referral sr-4471-1 not found")
	}
	return sr, pt
}

// clone deep-copies a decoded JSON object.
func clone(t testing.TB, m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

var syncEpoch = time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)

// newClinic holds n referrals; lastUpdated[i] gives referral i's instant
// as an offset in seconds from syncEpoch (sorted ascending).
func newClinic(t testing.TB, lastUpdated []int, draft map[int]bool) (*clinicServer, *httptest.Server) {
	srT, ptT := loadTemplate(t)
	c := &clinicServer{t: t, patients: map[string]map[string]any{}, tasks: map[string]string{}, fail: map[int]clinicFault{},
		taskState: map[string]*clinicTask{}, taskClock: syncEpoch.Add(time.Hour), taskFail: map[int]clinicFault{}, taskCut: map[int]bool{}}
	for i, off := range lastUpdated {
		id := fmt.Sprintf("sr-%d", i)
		pid := fmt.Sprintf("p-%d", i)
		sr, pt := clone(t, srT), clone(t, ptT)
		sr["id"] = id
		sr["meta"] = map[string]any{"lastUpdated": syncEpoch.Add(time.Duration(off) * time.Second).Format(time.RFC3339Nano)}
		sr["subject"] = map[string]any{"reference": "Patient/" + pid}
		if ids, ok := sr["identifier"].([]any); ok && len(ids) > 0 {
			ids[0].(map[string]any)["value"] = "REF-" + strconv.Itoa(i)
		}
		delete(sr, "requester")
		delete(sr, "performer")
		if draft[i] {
			sr["status"] = "draft"
		}
		pt["id"] = pid
		if ids, ok := pt["identifier"].([]any); ok && len(ids) > 0 {
			ids[0].(map[string]any)["value"] = "MRN-" + strconv.Itoa(i)
		}
		c.srs = append(c.srs, sr)
		c.patients[pid] = pt
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return c, srv
}

func (c *clinicServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	base := "http://" + r.Host + "/fhir"
	if r.URL.Path == "/fhir/Task" || strings.HasPrefix(r.URL.Path, "/fhir/Task/") {
		c.serveTask(w, r, base)
		return
	}
	if r.URL.Path != "/fhir/ServiceRequest" {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	c.reqs++
	c.queries = append(c.queries, r.URL.RawQuery)
	if f, ok := c.fail[c.reqs]; ok {
		if f.retry != "" {
			w.Header().Set("Retry-After", f.retry)
		}
		w.WriteHeader(f.status)
		w.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"SECRET-BODY MRN-1"}]}`))
		return
	}
	q := r.URL.Query()
	if q.Get("_sort") != "_lastUpdated" || q.Get("_include") != "ServiceRequest:subject" {
		c.t.Errorf("search without _sort=_lastUpdated and _include=ServiceRequest:subject: %s", r.URL.RawQuery)
	}
	var since time.Time
	strict := false
	if v := q.Get("_lastUpdated"); v != "" {
		strict = strings.HasPrefix(v, "gt")
		var err error
		since, err = time.Parse(time.RFC3339Nano, v[2:])
		if err != nil {
			c.t.Errorf("_lastUpdated %q: %v", v, err)
		}
	}
	var match []map[string]any
	for _, sr := range c.srs {
		lu, _ := time.Parse(time.RFC3339Nano, sr["meta"].(map[string]any)["lastUpdated"].(string))
		if since.IsZero() || lu.After(since) || !strict && lu.Equal(since) {
			match = append(match, sr)
		}
	}
	count, _ := strconv.Atoi(q.Get("_count"))
	off, _ := strconv.Atoi(q.Get("_offset"))
	end := min(off+count, len(match))
	var entries []any
	for _, sr := range match[off:end] {
		entries = append(entries, map[string]any{"fullUrl": base + "/ServiceRequest/" + sr["id"].(string), "resource": sr, "search": map[string]any{"mode": "match"}})
		pid := strings.TrimPrefix(sr["subject"].(map[string]any)["reference"].(string), "Patient/")
		entries = append(entries, map[string]any{"fullUrl": base + "/Patient/" + pid, "resource": c.patients[pid], "search": map[string]any{"mode": "include"}})
	}
	links := []any{map[string]any{"relation": "self", "url": base + "/ServiceRequest?" + r.URL.RawQuery}}
	if end < len(match) {
		q.Set("_offset", strconv.Itoa(end))
		links = append(links, map[string]any{"relation": "next", "url": base + "/ServiceRequest?" + q.Encode()})
	}
	b := map[string]any{"resourceType": "Bundle", "type": "searchset", "link": links}
	if len(entries) > 0 {
		b["entry"] = entries
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	json.NewEncoder(w).Encode(b)
}

// setTask changes (or adds) a Task at the clinic; it gets its new
// lastUpdated at the next Task request.
func (c *clinicServer) setTask(id, body string) {
	c.tasks[id] = body
	c.changed = append(c.changed, id)
}

// refreshTasks gives the Tasks changed since the last Task request their
// new lastUpdated: one instant for all of them.
func (c *clinicServer) refreshTasks() {
	if len(c.changed) == 0 {
		return
	}
	c.taskClock = c.taskClock.Add(time.Second)
	for _, id := range c.changed {
		body := c.tasks[id]
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			c.t.Errorf("Task %s: %v", id, err)
			continue
		}
		m["meta"] = map[string]any{"lastUpdated": c.taskClock.Format(time.RFC3339Nano)}
		rendered, _ := json.Marshal(m)
		owner, _ := m["owner"].(map[string]any)["reference"].(string)
		c.taskState[id] = &clinicTask{body: body, rendered: rendered, owner: owner, updated: c.taskClock}
	}
	c.changed = c.changed[:0]
	clear(c.matches)
	c.taskOrder = c.taskOrder[:0]
	for id := range c.taskState {
		c.taskOrder = append(c.taskOrder, id)
	}
	slices.SortFunc(c.taskOrder, func(a, b string) int {
		if d := c.taskState[a].updated.Compare(c.taskState[b].updated); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
}

// serveTask reads a Task by id, or searches them by owner and
// _lastUpdated, sorted by _lastUpdated (then id), paged by an offset.
func (c *clinicServer) serveTask(w http.ResponseWriter, r *http.Request, base string) {
	c.refreshTasks()
	c.taskReqs++
	if f, ok := c.taskFail[c.taskReqs]; ok {
		if f.retry != "" {
			w.Header().Set("Retry-After", f.retry)
		}
		w.WriteHeader(f.status)
		w.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"SECRET-BODY MRN-1"}]}`))
		return
	}
	var body []byte
	if id, ok := strings.CutPrefix(r.URL.Path, "/fhir/Task/"); ok {
		c.taskReads++
		ct, ok := c.taskState[id]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		body = ct.rendered
	} else {
		c.taskQueries = append(c.taskQueries, r.URL.RawQuery)
		if c.noTaskSearch {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-supported","diagnostics":"_lastUpdated"}]}`))
			return
		}
		body = c.taskSearch(r, base)
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	if c.taskCut[c.taskReqs] {
		// Half the answer, then the connection drops.
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		w.Write(body[:len(body)/2])
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
			}
		}
		return
	}
	w.Write(body)
}

func (c *clinicServer) taskSearch(r *http.Request, base string) []byte {
	q := r.URL.Query()
	if q.Get("_sort") != "_lastUpdated" {
		c.t.Errorf("Task search without _sort=_lastUpdated: %s", r.URL.RawQuery)
	}
	var since time.Time
	strict := false
	if v := q.Get("_lastUpdated"); v != "" {
		strict = strings.HasPrefix(v, "gt")
		var err error
		if since, err = time.Parse(time.RFC3339Nano, v[2:]); err != nil {
			c.t.Errorf("_lastUpdated %q: %v", v, err)
		}
	}
	owner := q.Get("owner")
	// The matches of one search, kept for its next pages until a Task
	// changes (the benchmark pages through thousands).
	mkey := fmt.Sprint(owner, strict, since)
	match, ok := c.matches[mkey]
	if !ok {
		for _, id := range c.taskOrder {
			ct := c.taskState[id]
			if owner != "" && ct.owner != owner {
				continue
			}
			if since.IsZero() || ct.updated.After(since) || !strict && ct.updated.Equal(since) {
				match = append(match, id)
			}
		}
		if c.matches == nil {
			c.matches = map[string][]string{}
		}
		c.matches[mkey] = match
	}
	count, _ := strconv.Atoi(q.Get("_count"))
	if count <= 0 {
		count = 10
	}
	off, _ := strconv.Atoi(q.Get("_offset"))
	end := min(off+count, len(match))
	var sb strings.Builder
	sb.WriteString(`{"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":` + strconv.Quote(base+"/Task?"+r.URL.RawQuery) + `}`)
	if end < len(match) {
		q.Set("_offset", strconv.Itoa(end))
		sb.WriteString(`,{"relation":"next","url":` + strconv.Quote(base+"/Task?"+q.Encode()) + `}`)
	}
	sb.WriteString(`]`)
	if off < end {
		sb.WriteString(`,"entry":[`)
		for i, id := range match[off:end] {
			if i > 0 {
				sb.WriteString(",")
			}
			sb.WriteString(`{"fullUrl":` + strconv.Quote(base+"/Task/"+id) + `,"resource":`)
			sb.Write(c.taskState[id].rendered)
			sb.WriteString(`,"search":{"mode":"match"}}`)
		}
		sb.WriteString(`]`)
	}
	sb.WriteString(`}`)
	return []byte(sb.String())
}

// syncHarness is a store, a pipeline and a Syncer for partner.
type syncHarness struct {
	store  *store.Store
	pipe   *Pipeline
	cfg    *Config
	sleeps []time.Duration
}

func newSyncHarness(t testing.TB, url string) *syncHarness {
	t.Helper()
	clock := storetest.NewClock(time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC))
	s, err := store.Open(t.Context(), url, store.WithNowFunc(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	data, err := os.ReadFile("../testdata/exchange/pathway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The clinic refers social prescribing to the community group.
	data = []byte(strings.Replace(string(data), "\nretry:", `
  - name: clinic-social-prescribing
    from: [clinic-riverside]
    services: [social-prescribing]
    to: [community-garden]
    purpose: COC

retry:`, 1))
	cfg, err := ParseConfig("pathway.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	engine, err := policy.NewEngine(cfg.Policy)
	if err != nil {
		t.Fatal(err)
	}
	return &syncHarness{store: s, cfg: cfg, pipe: &Pipeline{Store: s, Config: cfg, Engine: engine, Now: clock.Now}}
}

func (h *syncHarness) syncer(t testing.TB, partner, base string) *Syncer {
	t.Helper()
	m, err := mappings.Builtin("fhir-referral")
	if err != nil {
		t.Fatal(err)
	}
	h.cfg.Partners[partner].Endpoint = base
	return &Syncer{
		Partner: partner, Target: Target{BaseURL: base}, Pipeline: h.pipe, Mapping: m, Count: 3,
		Retry: RetryPolicy{MaxAttempts: 3, Base: 10 * time.Millisecond, Max: 100 * time.Millisecond},
		Sleep: func(_ context.Context, d time.Duration) error { h.sleeps = append(h.sleeps, d); return nil },
		Rand:  func() float64 { return 0 },
	}
}

// routed counts the referrals the pipeline recorded, all sources.
func (h *syncHarness) routed(t testing.TB) int {
	t.Helper()
	rs, err := h.store.Routings(t.Context(), false, "", store.MaxSearchLimit)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Source != "clinic-riverside" {
			t.Errorf("referral %s has source %q, want the partner", r.ServiceRequest, r.Source)
		}
	}
	return len(rs)
}

func syncStores(t testing.TB) map[string]func(t *testing.T) string {
	m := map[string]func(t *testing.T) string{"sqlite": func(t *testing.T) string { return sqliteURL(t) }}
	if storetest.PostgresAvailable() {
		m["postgres"] = func(t *testing.T) string { return storetest.PostgresURL(t) }
	}
	return m
}

// Seven referrals (one a draft, rejected), three a page: 3 pages.
// Referrals 2 and 3 share an instant across the first page boundary.
var syncTimes = []int{0, 10, 20, 20, 30, 40, 50}

func TestSyncPullsEveryPage(t *testing.T) {
	for name, newURL := range syncStores(t) {
		t.Run(name, func(t *testing.T) {
			h := newSyncHarness(t, newURL(t))
			clinic, srv := newClinic(t, syncTimes, map[int]bool{4: true})
			s := h.syncer(t, "clinic-riverside", srv.URL+"/fhir")
			rep, err := s.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if rep.Pages != 3 || rep.Pulled != 7 || rep.Ingested != 6 || rep.Rejected != 1 || rep.Skipped != 0 {
				t.Errorf("report = %+v, want 3 pages, 7 pulled, 6 ingested, 1 rejected", rep)
			}
			if want := syncEpoch.Add(50 * time.Second); !rep.Watermark.Equal(want) {
				t.Errorf("watermark = %s, want %s", rep.Watermark, want)
			}
			if n := h.routed(t); n != 6 {
				t.Errorf("%d referrals recorded, want 6", n)
			}
			rejects, err := h.store.SyncRejects(t.Context(), "clinic-riverside", 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(rejects) != 1 || rejects[0].Resource != "ServiceRequest/sr-4" || !strings.Contains(strings.Join(rejects[0].Reasons, " "), "status") {
				t.Errorf("rejects = %+v, want sr-4 for its status", rejects)
			}
			if len(clinic.queries) != 3 || strings.Contains(clinic.queries[0], "_lastUpdated=") {
				t.Errorf("queries = %q, want 3, the first without a watermark", clinic.queries)
			}

			// Nothing new: the next cycle asks from the watermark and
			// ingests nothing again.
			rep, err = s.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if rep.Ingested != 0 || rep.Rejected != 0 || rep.Pulled != 1 || rep.Skipped != 1 {
				t.Errorf("second cycle = %+v, want the one referral at the watermark skipped", rep)
			}
			if q := clinic.queries[len(clinic.queries)-1]; !strings.Contains(q, "_lastUpdated=ge2026-11-20T08%3A00%3A50Z") {
				t.Errorf("second cycle's query %q does not start at the watermark", q)
			}
		})
	}
}

func TestSyncRestartResumesFromTheWatermark(t *testing.T) {
	for name, newURL := range syncStores(t) {
		t.Run(name, func(t *testing.T) {
			url := newURL(t)
			h := newSyncHarness(t, url)
			clinic, srv := newClinic(t, syncTimes, nil)
			// Page 2 fails every attempt of the first run.
			clinic.fail = map[int]clinicFault{2: {status: 500}, 3: {status: 500}, 4: {status: 500}}
			s := h.syncer(t, "clinic-riverside", srv.URL+"/fhir")
			rep, err := s.Run(t.Context())
			var se *SyncError
			if !errors.As(err, &se) || se.Partner != "clinic-riverside" || se.Path != "/ServiceRequest" || se.Status != 500 {
				t.Fatalf("first run error = %v, want a SyncError naming the partner and /ServiceRequest", err)
			}
			if msg := err.Error(); strings.Contains(msg, "SECRET") || strings.Contains(msg, "MRN") || strings.Contains(msg, "_lastUpdated") {
				t.Errorf("the error quotes the body or the query: %s", msg)
			}
			if rep.Ingested != 3 || !rep.Watermark.Equal(syncEpoch.Add(20*time.Second)) {
				t.Fatalf("first run = %+v, want page 1 (3 referrals) ingested, watermark at +20s", rep)
			}

			// A restart: a new store handle and Syncer on the same database.
			h2 := newSyncHarness(t, url)
			s2 := h2.syncer(t, "clinic-riverside", srv.URL+"/fhir")
			rep, err = s2.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			// sr-3 shares sr-2's instant: asked for again (ge), sr-2 skipped.
			if rep.Ingested != 4 || rep.Skipped != 1 {
				t.Errorf("second run = %+v, want the other 4 ingested and sr-2 skipped", rep)
			}
			if n := h2.routed(t); n != 7 {
				t.Errorf("%d referrals recorded, want each of the 7 once", n)
			}
			msgs, err := h2.store.Messages(t.Context(), store.MessageQuery{})
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, m := range msgs {
				if seen[m.Key] {
					t.Errorf("message %s enqueued twice", m.Key)
				}
				seen[m.Key] = true
			}
		})
	}
}

func TestSyncRetriesErrorsAndHonoursRetryAfter(t *testing.T) {
	h := newSyncHarness(t, sqliteURL(t))
	clinic, srv := newClinic(t, syncTimes[:2], nil)
	clinic.fail = map[int]clinicFault{1: {status: 500}, 2: {status: 429, retry: "7"}, 3: {status: 503, retry: "2"}}
	s := h.syncer(t, "clinic-riverside", srv.URL+"/fhir")
	s.Retry.MaxAttempts = 4
	rep, err := s.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ingested != 2 || clinic.reqs != 4 {
		t.Errorf("report = %+v after %d requests, want 2 ingested after 4", rep, clinic.reqs)
	}
	if len(h.sleeps) != 3 || h.sleeps[0] >= time.Second || h.sleeps[1] != 7*time.Second || h.sleeps[2] != 2*time.Second {
		t.Errorf("waits = %v, want a short backoff, then 7s and 2s as Retry-After said", h.sleeps)
	}

	// A partner asking for longer than one cycle waits ends the cycle,
	// and says how long to stay away.
	clinic.fail = map[int]clinicFault{clinic.reqs + 1: {status: 429, retry: "3600"}}
	rep, err = s.Run(t.Context())
	var se *SyncError
	if !errors.As(err, &se) || se.Status != 429 || rep.Wait != time.Hour {
		t.Errorf("run = %+v, %v; want a 429 error and a wait of 1h", rep, err)
	}

	// Every attempt failing ends the cycle with the partner and the path.
	clinic.fail = map[int]clinicFault{}
	for i := 1; i <= 10; i++ {
		clinic.fail[clinic.reqs+i] = clinicFault{status: 502}
	}
	before := clinic.reqs
	_, err = s.Run(t.Context())
	if !errors.As(err, &se) || se.Status != 502 || clinic.reqs-before != 4 || !strings.Contains(err.Error(), "partner clinic-riverside: GET /ServiceRequest") {
		t.Errorf("error = %v after %d requests, want a 502 after 4 attempts", err, clinic.reqs-before)
	}
	// A 400 is not retried.
	clinic.fail = map[int]clinicFault{clinic.reqs + 1: {status: 400}}
	before = clinic.reqs
	if _, err = s.Run(t.Context()); !errors.As(err, &se) || se.Status != 400 || clinic.reqs-before != 1 {
		t.Errorf("error = %v after %d requests, want a 400 at once", err, clinic.reqs-before)
	}
}

func TestSyncRefusesNextLinksToOtherServers(t *testing.T) {
	h := newSyncHarness(t, sqliteURL(t))
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the next link to another server was followed (Authorization %q)", r.Header.Get("Authorization"))
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","link":[{"relation":"next","url":%q}]}`, other.URL+"/fhir/ServiceRequest?page=2")
	}))
	defer srv.Close()
	s := h.syncer(t, "clinic-riverside", srv.URL+"/fhir")
	if err := s.Pull(t.Context(), &SyncReport{}); err == nil || !strings.Contains(err.Error(), "another server") {
		t.Errorf("Pull = %v, want the next link refused", err)
	}
}

// TestSyncStopsOnRepeatingNextLinks: a server whose next link points back
// to the same page ends the cycle with an error instead of holding it.
func TestSyncStopsOnRepeatingNextLinks(t *testing.T) {
	h := newSyncHarness(t, sqliteURL(t))
	var srv *httptest.Server
	requests := 0
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","link":[{"relation":"next","url":%q}]}`, srv.URL+"/fhir/ServiceRequest?page=loop")
	}))
	defer srv.Close()
	s := h.syncer(t, "clinic-riverside", srv.URL+"/fhir")
	if err := s.Pull(t.Context(), &SyncReport{}); err == nil || !strings.Contains(err.Error(), "repeat") {
		t.Errorf("Pull = %v, want the loop refused", err)
	}
	if requests != 2 {
		t.Errorf("%d requests, want 2 (the first page and the looping one, once)", requests)
	}
}

// ptID is the patient of the Tasks polled.
var ptID = fhir.NewID("test", "pt-1")

// taskJSON is a referral Task of the clinic to the community group.
func taskJSON(id, status, reason string, notes ...string) string {
	t := map[string]any{
		"resourceType": "Task", "id": id, "status": status, "intent": "order",
		"code":      map[string]any{"coding": []any{map[string]any{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}}},
		"for":       map[string]any{"reference": "Patient/" + ptID},
		"owner":     map[string]any{"reference": "Organization/community-garden"},
		"requester": map[string]any{"reference": "Organization/clinic-riverside"},
	}
	if reason != "" {
		t["statusReason"] = map[string]any{"text": reason}
	}
	var ns []any
	for _, n := range notes {
		ns = append(ns, map[string]any{"text": n})
	}
	if ns != nil {
		t["note"] = ns
	}
	b, _ := json.Marshal(t)
	return string(b)
}

// TestSyncPollsPartnerHostedTasks runs with each way of reading the
// partner's Tasks: one GET per Task (as before the search), and the
// search from the watermark, which returns only what the partner changed
// since: a refused Task is then refused (and kept) once, not again at
// every poll while the partner leaves it as it is.
func TestSyncPollsPartnerHostedTasks(t *testing.T) {
	for name, newURL := range syncStores(t) {
		for _, mode := range []TaskPolling{TaskPollingRead, TaskPollingSearch} {
			t.Run(name+"/"+string(mode), func(t *testing.T) { testPollsPartnerHostedTasks(t, newURL, mode) })
		}
	}
}

func testPollsPartnerHostedTasks(t *testing.T, newURL func(t *testing.T) string, mode TaskPolling) {
	h := newSyncHarness(t, newURL(t))
	tid := func(n string) string { return fhir.NewID("test", n) }
	ctx := t.Context()
	_, srv := newClinic(t, nil, nil)
	clinic := srv.Config.Handler.(*clinicServer)
	// The referrer has an endpoint: changes flow back to it.
	h.cfg.Partners["clinic-riverside"].Endpoint = "http://127.0.0.1:1/fhir"
	put := func(typ, id, data string) {
		t.Helper()
		r := store.Resource{Type: typ, ID: id, Source: "clinic-riverside", Format: FormatJSON, Data: []byte(data), Patient: "Patient/" + ptID}
		if typ == "Task" {
			r.Owner, r.Requester = "Organization/community-garden", "Organization/clinic-riverside"
			var v struct{ Status string }
			json.Unmarshal(r.Data, &v)
			r.Status = v.Status
		}
		if _, err := h.store.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	put("Patient", ptID, `{"resourceType":"Patient","id":"`+ptID+`","name":[{"family":"Example"}]}`)
	put("Task", tid("t-accept"), taskJSON(tid("t-accept"), "requested", ""))
	put("Task", tid("t-forbidden"), taskJSON(tid("t-forbidden"), "requested", ""))
	put("Task", tid("t-same"), taskJSON(tid("t-same"), "requested", ""))
	put("Task", tid("t-absent"), taskJSON(tid("t-absent"), "requested", ""))
	put("Task", tid("t-done"), taskJSON(tid("t-done"), "completed", ""))
	// At the partner: one accepted with a note, one moved where the
	// state machine does not allow (requested -> completed), one
	// unchanged; t-absent is not there (yet); t-done is closed and
	// not polled.
	clinic.setTask(tid("t-accept"), taskJSON(tid("t-accept"), "accepted", "", "first session on Monday"))
	clinic.setTask(tid("t-forbidden"), taskJSON(tid("t-forbidden"), "completed", ""))
	clinic.setTask(tid("t-same"), taskJSON(tid("t-same"), "requested", ""))
	clinic.setTask(tid("t-done"), taskJSON(tid("t-done"), "in-progress", ""))

	s := h.syncer(t, "community-garden", srv.URL+"/fhir")
	s.TaskPolling = mode
	var rep SyncReport
	if err := s.PollTasks(ctx, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.TaskPolling != mode {
		t.Errorf("polled by %q, want %q", rep.TaskPolling, mode)
	}
	if rep.TasksPolled != 3 || rep.TasksUpdated != 1 || rep.TasksRefused != 1 || rep.TasksSentBack != 1 {
		t.Errorf("report = %+v, want 3 polled, 1 updated, 1 refused, 1 sent back", rep)
	}
	if len(rep.Refusals) != 1 || !strings.HasPrefix(rep.Refusals[0], "Task/"+tid("t-forbidden")+": ") || !strings.Contains(rep.Refusals[0], "cannot move from requested to completed") {
		t.Errorf("refusals = %q", rep.Refusals)
	}
	got, err := h.store.Get(ctx, "Task", tid("t-accept"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != "accepted" || got.Version != 2 || got.Source != "community-garden" || !strings.Contains(string(got.Data), "first session on Monday") {
		t.Errorf("t-accept stored as %s v%d from %s: %s", got.Status, got.Version, got.Source, got.Data)
	}
	if !strings.Contains(string(got.Data), `"authorReference":{"reference":"Organization/community-garden"}`) {
		t.Errorf("the partner's note is not signed by it: %s", got.Data)
	}
	if f, _ := h.store.Get(ctx, "Task", tid("t-forbidden")); f.Status != "requested" || f.Version != 1 {
		t.Errorf("the refused move was stored: %s v%d", f.Status, f.Version)
	}
	msgs, err := h.store.Messages(ctx, store.MessageQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].Partner != "clinic-riverside" || msgs[0].Kind != KindReferrerUpdate {
		t.Fatalf("outbox = %+v, want one referrer update to clinic-riverside", msgs)
	}
	// In a stream to the referrer, so its changes arrive in order: the
	// referral's, or the Task's when it names no ServiceRequest (as here).
	if got, want := msgs[0].Stream, "Task/"+tid("t-accept")+" Organization/clinic-riverside"; got != want {
		t.Errorf("the referrer update's stream is %q, want %q", got, want)
	}
	if m, err := h.store.Message(ctx, msgs[0].ID); err != nil || !strings.Contains(string(m.Payload), `"accepted"`) || !strings.Contains(string(m.Payload), tid("t-accept")) {
		t.Errorf("the message does not carry the accepted Task: %v %s", err, m.Payload)
	}

	// Polled again with nothing new: nothing changes, nothing is sent.
	rep = SyncReport{}
	if err := s.PollTasks(ctx, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.TasksUpdated != 0 || rep.TasksSentBack != 0 {
		t.Errorf("second poll = %+v, want no update", rep)
	}
	// On hold without a reason is refused; with one it is taken.
	clinic.setTask(tid("t-accept"), taskJSON(tid("t-accept"), "on-hold", "", "first session on Monday"))
	rep = SyncReport{}
	// Read: t-forbidden is read and refused again; searched: only
	// t-accept changed since.
	refusals := map[TaskPolling]int{TaskPollingRead: 2, TaskPollingSearch: 1}[mode]
	if err := s.PollTasks(ctx, &rep); err != nil || rep.TasksRefused != refusals || !strings.Contains(strings.Join(rep.Refusals, " "), "statusReason.text") {
		t.Errorf("on-hold without a reason: %+v, %v", rep, err)
	}
	clinic.setTask(tid("t-accept"), taskJSON(tid("t-accept"), "on-hold", "client travelling", "first session on Monday"))
	rep = SyncReport{}
	if err := s.PollTasks(ctx, &rep); err != nil || rep.TasksUpdated != 1 || rep.TasksSentBack != 1 {
		t.Errorf("on-hold with a reason: %+v, %v", rep, err)
	}
	// Each refusal is kept, once per version of the partner's copy.
	rejects, err := h.store.SyncRejects(ctx, "community-garden", 0)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, r := range rejects {
		kept = append(kept, r.Resource)
	}
	slices.Sort(kept)
	want := []string{"Task/" + tid("t-accept"), "Task/" + tid("t-forbidden")}
	slices.Sort(want)
	if !slices.Equal(kept, want) {
		t.Errorf("rejects kept = %q, want t-forbidden and t-accept's on-hold without a reason", kept)
	}
	if mode == TaskPollingRead && clinic.taskReads == 0 || mode == TaskPollingSearch && clinic.taskReads != 0 {
		t.Errorf("%d Task reads by id in mode %s", clinic.taskReads, mode)
	}
}
