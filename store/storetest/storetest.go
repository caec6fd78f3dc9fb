// Package storetest is the conformance suite every store.Store dialect must
// pass. Run it from a test with a function that returns the URL of a fresh,
// empty store:
//
//	func TestSQLite(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) string {
//			return "sqlite://" + filepath.Join(t.TempDir(), "pathway.db")
//		})
//	}
//
// Each case gets its own store and runs in parallel with the others.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pathway-fhir/pathway/store"
)

// NewURL returns the URL of a fresh, empty store that lives as long as t
// (for example a file in t.TempDir(), or a schema dropped in t.Cleanup).
// Opening it twice must reach the same data.
type NewURL func(t *testing.T) string

// Clock is a settable clock for store.WithNowFunc.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock stopped at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// epoch is the suite's starting time; its nanoseconds check that stores keep
// microseconds and drop the rest.
var epoch = time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC)

// Run runs every conformance case against stores opened from newURL.
func Run(t *testing.T, newURL NewURL) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newURL)
		})
	}
}

var cases = []struct {
	name string
	run  func(t *testing.T, newURL NewURL)
}{
	{"PutGet", testPutGet},
	{"PutIdempotent", testPutIdempotent},
	{"PutChangedKeepsHistory", testPutChanged},
	{"PutFormatChange", testPutFormatChange},
	{"PutInvalid", testPutInvalid},
	{"NotFound", testNotFound},
	{"SearchByIndexedColumn", testSearchByColumn},
	{"SearchKeysetPaging", testKeysetPaging},
	{"SearchUpdatedSince", testUpdatedSince},
	{"SearchInvalid", testSearchInvalid},
	{"Count", testCount},
	{"TxCommit", testTxCommit},
	{"TxRollbackOnError", testTxRollbackOnError},
	{"TxRollbackOnPanic", testTxRollbackOnPanic},
	{"PutBatch1000", testPutBatch},
	{"PutBatchDuplicateKeys", testPutBatchDuplicates},
	{"PutBatchAtomic", testPutBatchAtomic},
	{"ConcurrentWriters", testConcurrentWriters},
	{"ConcurrentUpdatesOfOneResource", testConcurrentUpdates},
	{"Reopen", testReopen},
	{"ConcurrentOpen", testConcurrentOpen},
	{"Close", testClose},
}

// open opens a store from url with the clock, closing it when t ends.
func open(t *testing.T, url string, clock *Clock) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), url, store.WithNowFunc(clock.Now))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// fresh opens a new empty store with a clock at epoch.
func fresh(t *testing.T, newURL NewURL) (*store.Store, *Clock) {
	t.Helper()
	clock := NewClock(epoch)
	return open(t, newURL(t), clock), clock
}

// task builds a Task resource whose data is derived from its id and a
// revision, so different revisions differ.
func task(id string, rev int) store.Resource {
	return store.Resource{
		Type:      "Task",
		ID:        id,
		Source:    "ngo-a",
		Format:    "json",
		Data:      fmt.Appendf(nil, `{"resourceType":"Task","id":%q,"note":"rev %d"}`, id, rev),
		Patient:   "Patient/p-" + id,
		Status:    "requested",
		Owner:     "Organization/clinic-a",
		Requester: "Organization/ngo-a",
	}
}

func mustPut(t *testing.T, s interface {
	Put(context.Context, store.Resource) (store.Resource, error)
}, r store.Resource) store.Resource {
	t.Helper()
	got, err := s.Put(t.Context(), r)
	if err != nil {
		t.Fatalf("Put %s: %v", r.Ref(), err)
	}
	return got
}

// same reports the differences between two resources, field by field.
func same(t *testing.T, what string, got, want store.Resource) {
	t.Helper()
	if got.Type != want.Type || got.ID != want.ID {
		t.Errorf("%s: key = %s, want %s", what, got.Ref(), want.Ref())
	}
	if got.Version != want.Version {
		t.Errorf("%s: Version = %d, want %d", what, got.Version, want.Version)
	}
	if !got.LastUpdated.Equal(want.LastUpdated) || got.LastUpdated.Location() != time.UTC {
		t.Errorf("%s: LastUpdated = %v, want %v (UTC)", what, got.LastUpdated, want.LastUpdated)
	}
	if got.Source != want.Source || got.Format != want.Format {
		t.Errorf("%s: Source, Format = %q, %q, want %q, %q", what, got.Source, got.Format, want.Source, want.Format)
	}
	if !bytes.Equal(got.Data, want.Data) {
		t.Errorf("%s: Data = %q, want %q", what, got.Data, want.Data)
	}
	if got.Hash != want.Hash {
		t.Errorf("%s: Hash = %x, want %x", what, got.Hash, want.Hash)
	}
	if got.Patient != want.Patient || got.Status != want.Status || got.Owner != want.Owner || got.Requester != want.Requester {
		t.Errorf("%s: indexed values = %q %q %q %q, want %q %q %q %q", what,
			got.Patient, got.Status, got.Owner, got.Requester,
			want.Patient, want.Status, want.Owner, want.Requester)
	}
}

// stored is what the store should hold after writing r at time at as
// version v.
func stored(r store.Resource, v int64, at time.Time) store.Resource {
	r.Version = v
	r.LastUpdated = at.UTC().Truncate(time.Microsecond)
	r.Hash = sha256.Sum256(r.Data)
	return r
}

func testPutGet(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	in := task("t1", 1)
	in.Version = 42 // ignored
	in.Hash = [32]byte{1}
	got := mustPut(t, s, in)
	want := stored(task("t1", 1), 1, clock.Now())
	same(t, "Put result", got, want)
	if got.LastUpdated.Nanosecond()%1000 != 0 {
		t.Errorf("LastUpdated %v keeps sub-microsecond digits", got.LastUpdated)
	}

	read, err := s.Get(t.Context(), "Task", "t1")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	same(t, "Get", read, want)

	// Same id, other type: a different resource.
	other := task("t1", 1)
	other.Type = "ServiceRequest"
	if got := mustPut(t, s, other); got.Version != 1 {
		t.Errorf("ServiceRequest/t1 Version = %d, want 1", got.Version)
	}
	if read, err := s.Get(t.Context(), "Task", "t1"); err != nil || read.Version != 1 {
		t.Errorf("Task/t1 after ServiceRequest/t1 put: Version %d, err %v; want 1, nil", read.Version, err)
	}
}

func testPutIdempotent(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	first := mustPut(t, s, task("t1", 1))
	clock.Advance(time.Hour)

	again := task("t1", 1)
	again.Source = "another-connector" // same bytes from elsewhere: still unchanged
	again.Status = "accepted"
	got := mustPut(t, s, again)
	same(t, "re-put of identical data", got, first)

	read, err := s.Get(t.Context(), "Task", "t1")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	same(t, "Get after identical re-put", read, first)
	if _, err := s.GetVersion(t.Context(), "Task", "t1", 2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetVersion 2 after identical re-put: err = %v, want ErrNotFound", err)
	}
	if res, err := s.Search(t.Context(), store.Query{Type: "Task", UpdatedSince: clock.Now()}); err != nil || len(res) != 0 {
		t.Errorf("identical re-put moved LastUpdated: search since re-put found %d, err %v", len(res), err)
	}
}

func testPutChanged(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	v1 := mustPut(t, s, task("t1", 1))
	t1 := clock.Now()
	clock.Advance(time.Minute)

	changed := task("t1", 2)
	changed.Status = "accepted"
	changed.Source = "clinic-a"
	v2 := mustPut(t, s, changed)
	t2 := clock.Now()
	same(t, "changed put", v2, stored(changed, 2, t2))

	cur, err := s.Get(t.Context(), "Task", "t1")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	same(t, "Get after change", cur, v2)

	old, err := s.GetVersion(t.Context(), "Task", "t1", 1)
	if err != nil {
		t.Fatalf("GetVersion 1: %v", err)
	}
	same(t, "GetVersion 1", old, stored(task("t1", 1), 1, t1))
	same(t, "GetVersion 1 equals first put", old, v1)

	curV, err := s.GetVersion(t.Context(), "Task", "t1", 2)
	if err != nil {
		t.Fatalf("GetVersion 2: %v", err)
	}
	same(t, "GetVersion 2", curV, v2)

	// Going back to earlier content is a change too: a new version, not a
	// return to version 1.
	clock.Advance(time.Minute)
	v3 := mustPut(t, s, task("t1", 1))
	if v3.Version != 3 {
		t.Errorf("put of version 1's content again: Version = %d, want 3", v3.Version)
	}
	for v := int64(1); v <= 3; v++ {
		if _, err := s.GetVersion(t.Context(), "Task", "t1", v); err != nil {
			t.Errorf("GetVersion %d: %v", v, err)
		}
	}
	if n, err := s.Count(t.Context(), "Task"); err != nil || n != 1 {
		t.Errorf("Count = %d, %v; want 1 current resource", n, err)
	}
}

func testPutFormatChange(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	mustPut(t, s, task("t1", 1))
	r := task("t1", 1)
	r.Format = "proto"
	if got := mustPut(t, s, r); got.Version != 2 || got.Format != "proto" {
		t.Errorf("same bytes, other format: Version %d Format %q, want 2 proto", got.Version, got.Format)
	}
}

func testPutInvalid(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	secret := "Maria Secret-Name"
	for _, tc := range []struct {
		name   string
		mutate func(*store.Resource)
	}{
		{"no type", func(r *store.Resource) { r.Type = "" }},
		{"lower-case type", func(r *store.Resource) { r.Type = "task" }},
		{"no id", func(r *store.Resource) { r.ID = "" }},
		{"id with a name in it", func(r *store.Resource) { r.ID = secret }},
		{"id too long", func(r *store.Resource) { r.ID = string(bytes.Repeat([]byte("a"), 65)) }},
		{"no format", func(r *store.Resource) { r.Format = "" }},
		{"no data", func(r *store.Resource) { r.Data = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := task("t1", 1)
			r.Patient = secret
			tc.mutate(&r)
			_, err := s.Put(t.Context(), r)
			if err == nil {
				t.Fatal("Put succeeded, want an error")
			}
			if bytes.Contains([]byte(err.Error()), []byte("Secret")) {
				t.Errorf("error %q reveals resource contents", err)
			}
			if err := s.PutBatch(t.Context(), []store.Resource{task("ok", 1), r}); err == nil {
				t.Error("PutBatch succeeded, want an error")
			}
		})
	}
	if n, err := s.Count(t.Context(), ""); err != nil || n != 0 {
		t.Errorf("after invalid puts Count = %d, %v; want 0", n, err)
	}
}

func testNotFound(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	ctx := t.Context()
	if _, err := s.Get(ctx, "Task", "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get missing: err = %v, want ErrNotFound", err)
	}
	mustPut(t, s, task("t1", 1))
	if _, err := s.Get(ctx, "ServiceRequest", "t1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get other type: err = %v, want ErrNotFound", err)
	}
	for _, v := range []int64{0, -1, 2} {
		if _, err := s.GetVersion(ctx, "Task", "t1", v); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetVersion %d: err = %v, want ErrNotFound", v, err)
		}
	}
	if _, err := s.GetVersion(ctx, "Task", "missing", 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetVersion of missing: err = %v, want ErrNotFound", err)
	}
	err := s.WithTx(ctx, func(tx *store.Tx) error {
		_, err := tx.Get(ctx, "Task", "missing")
		return err
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Tx.Get missing: err = %v, want ErrNotFound", err)
	}
}

// ids returns the ids of rs in order.
func ids(rs []store.Resource) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func testSearchByColumn(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	// 12 tasks: patient cycles over 3, status over 2, owner over 4,
	// requester over 6. Plus decoys of another type with the same values.
	var batch []store.Resource
	for i := range 12 {
		r := task(fmt.Sprintf("t%02d", i), 1)
		r.Patient = fmt.Sprintf("Patient/%d", i%3)
		r.Status = []string{"requested", "accepted"}[i%2]
		r.Owner = fmt.Sprintf("Organization/o%d", i%4)
		r.Requester = fmt.Sprintf("Organization/r%d", i%6)
		batch = append(batch, r)
		decoy := r
		decoy.Type = "ServiceRequest"
		batch = append(batch, decoy)
	}
	if err := s.PutBatch(t.Context(), batch); err != nil {
		t.Fatalf("PutBatch: %v", err)
	}
	for _, tc := range []struct {
		name string
		q    store.Query
		want []string
	}{
		{"type only", store.Query{Type: "Task"}, []string{"t00", "t01", "t02", "t03", "t04", "t05", "t06", "t07", "t08", "t09", "t10", "t11"}},
		{"patient", store.Query{Type: "Task", Patient: "Patient/1"}, []string{"t01", "t04", "t07", "t10"}},
		{"status", store.Query{Type: "Task", Status: "accepted"}, []string{"t01", "t03", "t05", "t07", "t09", "t11"}},
		{"owner", store.Query{Type: "Task", Owner: "Organization/o2"}, []string{"t02", "t06", "t10"}},
		{"requester", store.Query{Type: "Task", Requester: "Organization/r5"}, []string{"t05", "t11"}},
		{"patient and status", store.Query{Type: "Task", Patient: "Patient/0", Status: "requested"}, []string{"t00", "t06"}},
		{"owner and requester", store.Query{Type: "Task", Owner: "Organization/o1", Requester: "Organization/r1"}, []string{"t01"}},
		{"no match", store.Query{Type: "Task", Patient: "Patient/9"}, nil},
		{"other type", store.Query{Type: "Consent"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Search(t.Context(), tc.q)
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			if !slices.Equal(ids(got), tc.want) {
				t.Errorf("Search ids = %v, want %v", ids(got), tc.want)
			}
			for _, r := range got {
				if r.Type != tc.q.Type || r.Version != 1 || len(r.Data) == 0 {
					t.Errorf("result %s: Type %q Version %d, %d data bytes", r.Ref(), r.Type, r.Version, len(r.Data))
				}
			}
		})
	}
	// The transaction's view searches the same way.
	err := s.WithTx(t.Context(), func(tx *store.Tx) error {
		got, err := tx.Search(t.Context(), store.Query{Type: "Task", Owner: "Organization/o3"})
		if err != nil {
			return err
		}
		if want := []string{"t03", "t07", "t11"}; !slices.Equal(ids(got), want) {
			t.Errorf("Tx.Search ids = %v, want %v", ids(got), want)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("WithTx: %v", err)
	}
}

func testKeysetPaging(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	// Ids chosen so that bytewise order differs from most locales' order.
	odd := []string{"a", "B", "a-1", "a.1", "A0", "b", "Z", "0", "9z", "a-"}
	var batch []store.Resource
	for i := range 25 {
		batch = append(batch, task(fmt.Sprintf("id%03d", i), 1))
	}
	for _, id := range odd {
		batch = append(batch, task(id, 1))
	}
	if err := s.PutBatch(t.Context(), batch); err != nil {
		t.Fatalf("PutBatch: %v", err)
	}
	want := ids(batch)
	slices.Sort(want) // Go compares strings bytewise

	var got []string
	after := ""
	pages := 0
	for {
		page, err := s.Search(t.Context(), store.Query{Type: "Task", Limit: 10, AfterID: after})
		if err != nil {
			t.Fatalf("Search after %q: %v", after, err)
		}
		pages++
		if len(page) > 10 {
			t.Fatalf("page of %d results, limit 10", len(page))
		}
		if len(page) == 0 {
			break
		}
		got = append(got, ids(page)...)
		after = page[len(page)-1].ID
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("paged ids =\n%v\nwant\n%v", got, want)
	}
	if pages != 5 { // 35 ids: 10, 10, 10, 5, then an empty page
		t.Errorf("took %d pages, want 5", pages)
	}

	// Default limit.
	if err := s.PutBatch(t.Context(), manyTasks("many", 150)); err != nil {
		t.Fatalf("PutBatch: %v", err)
	}
	page, err := s.Search(t.Context(), store.Query{Type: "Task"})
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	if len(page) != store.DefaultSearchLimit {
		t.Errorf("Search without Limit returned %d, want %d", len(page), store.DefaultSearchLimit)
	}
}

func manyTasks(prefix string, n int) []store.Resource {
	rs := make([]store.Resource, n)
	for i := range rs {
		rs[i] = task(fmt.Sprintf("%s-%05d", prefix, i), 1)
	}
	return rs
}

func testUpdatedSince(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	t0 := clock.Now()
	mustPut(t, s, task("a", 1))
	clock.Advance(time.Hour)
	mustPut(t, s, task("b", 1))
	clock.Advance(time.Hour)
	mustPut(t, s, task("a", 2)) // a moves to t0+2h
	clock.Advance(time.Hour)
	mustPut(t, s, task("b", 1)) // unchanged: b stays at t0+1h

	for _, tc := range []struct {
		name  string
		since time.Time
		want  []string
	}{
		{"before all", t0.Add(-time.Hour), []string{"a", "b"}},
		{"at first write, inclusive", t0, []string{"a", "b"}},
		{"at b, inclusive", t0.Add(time.Hour), []string{"a", "b"}},
		{"just after b", t0.Add(time.Hour + time.Microsecond), []string{"a"}},
		{"at a's update", t0.Add(2 * time.Hour), []string{"a"}},
		{"after all", t0.Add(2*time.Hour + time.Second), nil},
		{"in another zone", t0.Add(2 * time.Hour).In(time.FixedZone("UTC+5", 5*3600)), []string{"a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Search(t.Context(), store.Query{Type: "Task", UpdatedSince: tc.since})
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			if !slices.Equal(ids(got), tc.want) {
				t.Errorf("ids = %v, want %v", ids(got), tc.want)
			}
		})
	}
	got, err := s.Search(t.Context(), store.Query{Type: "Task", UpdatedSince: t0.Add(30 * time.Minute), Status: "requested", AfterID: "a"})
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	if want := []string{"b"}; !slices.Equal(ids(got), want) {
		t.Errorf("since + status + after ids = %v, want %v", ids(got), want)
	}
}

func testSearchInvalid(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	for _, q := range []store.Query{
		{},
		{Type: "task"},
		{Type: "Task", Limit: -1},
		{Type: "Task", Limit: store.MaxSearchLimit + 1},
	} {
		if _, err := s.Search(t.Context(), q); err == nil {
			t.Errorf("Search(%+v) succeeded, want an error", q)
		}
	}
	if _, err := s.Search(t.Context(), store.Query{Type: "Task", Limit: store.MaxSearchLimit}); err != nil {
		t.Errorf("Search at MaxSearchLimit: %v", err)
	}
}

func testCount(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	if n, err := s.Count(t.Context(), "Task"); err != nil || n != 0 {
		t.Errorf("empty Count = %d, %v; want 0", n, err)
	}
	batch := manyTasks("t", 7)
	sr := task("s1", 1)
	sr.Type = "ServiceRequest"
	batch = append(batch, sr)
	if err := s.PutBatch(t.Context(), batch); err != nil {
		t.Fatalf("PutBatch: %v", err)
	}
	mustPut(t, s, task("t-00000", 2)) // a new version is not a new resource
	for typ, want := range map[string]int64{"Task": 7, "ServiceRequest": 1, "Consent": 0, "": 8} {
		if n, err := s.Count(t.Context(), typ); err != nil || n != want {
			t.Errorf("Count(%q) = %d, %v; want %d", typ, n, err, want)
		}
	}
	if _, err := s.Count(t.Context(), "not a type"); err == nil {
		t.Error("Count of an invalid type succeeded, want an error")
	}
}

func testTxCommit(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	ctx := t.Context()
	mustPut(t, s, task("existing", 1))
	err := s.WithTx(ctx, func(tx *store.Tx) error {
		a := mustPut(t, tx, task("a", 1))
		if err := tx.PutBatch(ctx, manyTasks("b", 3)); err != nil {
			return err
		}
		changed := mustPut(t, tx, task("existing", 2))
		if a.Version != 1 || changed.Version != 2 {
			t.Errorf("in tx: versions %d, %d, want 1, 2", a.Version, changed.Version)
		}
		// The transaction sees its own writes.
		got, err := tx.Get(ctx, "Task", "a")
		if err != nil {
			return err
		}
		same(t, "Tx.Get of own write", got, a)
		if old, err := tx.GetVersion(ctx, "Task", "existing", 1); err != nil || old.Version != 1 {
			return fmt.Errorf("Tx.GetVersion 1: version %d, %w", old.Version, err)
		}
		if n, err := tx.Count(ctx, "Task"); err != nil || n != 5 {
			t.Errorf("Tx.Count = %d, %v; want 5", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("WithTx: %v", err)
	}
	for _, id := range []string{"a", "b-00000", "b-00001", "b-00002"} {
		if _, err := s.Get(ctx, "Task", id); err != nil {
			t.Errorf("Get %s after commit: %v", id, err)
		}
	}
	if got, err := s.Get(ctx, "Task", "existing"); err != nil || got.Version != 2 {
		t.Errorf("Get existing after commit: Version %d, %v; want 2", got.Version, err)
	}
}

func testTxRollbackOnError(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	ctx := t.Context()
	base := mustPut(t, s, task("existing", 1))
	errBoom := errors.New("boom")
	err := s.WithTx(ctx, func(tx *store.Tx) error {
		mustPut(t, tx, task("a", 1))
		mustPut(t, tx, task("existing", 2))
		if err := tx.PutBatch(ctx, manyTasks("b", 3)); err != nil {
			return err
		}
		return fmt.Errorf("doing the rest: %w", errBoom)
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("WithTx = %v, want an error wrapping errBoom", err)
	}
	assertRolledBack(t, s, base)
}

// assertRolledBack checks that nothing but base is in s and that s still
// takes writes.
func assertRolledBack(t *testing.T, s *store.Store, base store.Resource) {
	t.Helper()
	ctx := t.Context()
	if _, err := s.Get(ctx, "Task", "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get a after rollback: err = %v, want ErrNotFound", err)
	}
	got, err := s.Get(ctx, "Task", "existing")
	if err != nil {
		t.Fatalf("Get existing: %v", err)
	}
	same(t, "existing after rollback", got, base)
	if _, err := s.GetVersion(ctx, "Task", "existing", 2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetVersion 2 after rollback: err = %v, want ErrNotFound", err)
	}
	if n, err := s.Count(ctx, ""); err != nil || n != 1 {
		t.Errorf("Count after rollback = %d, %v; want 1", n, err)
	}
	// The store still works: on SQLite the write connection was released.
	ctx2, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := s.Put(ctx2, task("after", 1)); err != nil {
		t.Errorf("Put after rollback: %v", err)
	}
	if err := s.WithTx(ctx2, func(tx *store.Tx) error {
		_, err := tx.Put(ctx2, task("after-tx", 1))
		return err
	}); err != nil {
		t.Errorf("WithTx after rollback: %v", err)
	}
}

func testTxRollbackOnPanic(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	ctx := t.Context()
	base := mustPut(t, s, task("existing", 1))
	type marker struct{ n int }
	var recovered any
	func() {
		defer func() { recovered = recover() }()
		_ = s.WithTx(ctx, func(tx *store.Tx) error {
			mustPut(t, tx, task("a", 1))
			mustPut(t, tx, task("existing", 2))
			panic(marker{7})
		})
		t.Error("WithTx returned after fn panicked")
	}()
	if m, ok := recovered.(marker); !ok || m.n != 7 {
		t.Fatalf("recovered %v, want the original panic value", recovered)
	}
	assertRolledBack(t, s, base)
}

func testPutBatch(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	ctx := t.Context()
	batch := manyTasks("t", 1000)
	for i := range batch {
		batch[i].Status = []string{"requested", "accepted", "completed"}[i%3]
	}
	if err := s.PutBatch(ctx, batch); err != nil {
		t.Fatalf("PutBatch: %v", err)
	}
	if n, err := s.Count(ctx, "Task"); err != nil || n != 1000 {
		t.Fatalf("Count = %d, %v; want 1000", n, err)
	}
	at := clock.Now()
	for _, i := range []int{0, 1, 499, 500, 998, 999} {
		got, err := s.Get(ctx, "Task", batch[i].ID)
		if err != nil {
			t.Fatalf("Get %s: %v", batch[i].ID, err)
		}
		same(t, "Get after PutBatch", got, stored(batch[i], 1, at))
		if _, err := s.GetVersion(ctx, "Task", batch[i].ID, 1); err != nil {
			t.Errorf("GetVersion 1 of %s: %v", batch[i].ID, err)
		}
	}
	if got, err := s.Search(ctx, store.Query{Type: "Task", Status: "completed", Limit: 1000}); err != nil || len(got) != 333 {
		t.Errorf("Search completed: %d results, %v; want 333", len(got), err)
	}

	// The same batch again changes nothing; a batch with every tenth
	// resource changed makes version 2 of exactly those.
	clock.Advance(time.Hour)
	if err := s.PutBatch(ctx, batch); err != nil {
		t.Fatalf("PutBatch again: %v", err)
	}
	if got, err := s.Search(ctx, store.Query{Type: "Task", UpdatedSince: clock.Now(), Limit: 1000}); err != nil || len(got) != 0 {
		t.Errorf("identical PutBatch touched %d resources (err %v), want 0", len(got), err)
	}
	next := slices.Clone(batch)
	for i := 0; i < len(next); i += 10 {
		next[i].Data = append(slices.Clone(next[i].Data), " changed"...)
	}
	if err := s.PutBatch(ctx, next); err != nil {
		t.Fatalf("PutBatch changed: %v", err)
	}
	changed, err := s.Search(ctx, store.Query{Type: "Task", UpdatedSince: clock.Now(), Limit: 1000})
	if err != nil {
		t.Fatalf("Search changed: %v", err)
	}
	if len(changed) != 100 {
		t.Errorf("changed PutBatch touched %d resources, want 100", len(changed))
	}
	for _, r := range changed {
		if r.Version != 2 {
			t.Errorf("%s: Version %d, want 2", r.Ref(), r.Version)
		}
	}
	if _, err := s.GetVersion(ctx, "Task", batch[1].ID, 2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unchanged %s got a version 2: err = %v", batch[1].ID, err)
	}
	if err := s.PutBatch(ctx, nil); err != nil {
		t.Errorf("PutBatch(nil): %v", err)
	}
}

func testPutBatchDuplicates(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	ctx := t.Context()
	// x is written three times (two changes), y twice with the same bytes.
	batch := []store.Resource{task("x", 1), task("y", 1), task("x", 2), task("y", 1), task("x", 3), task("z", 1)}
	if err := s.PutBatch(ctx, batch); err != nil {
		t.Fatalf("PutBatch: %v", err)
	}
	for id, want := range map[string]struct {
		version int64
		data    []byte
	}{
		"x": {3, task("x", 3).Data},
		"y": {1, task("y", 1).Data},
		"z": {1, task("z", 1).Data},
	} {
		got, err := s.Get(ctx, "Task", id)
		if err != nil {
			t.Fatalf("Get %s: %v", id, err)
		}
		if got.Version != want.version || !bytes.Equal(got.Data, want.data) {
			t.Errorf("%s: Version %d data %q, want %d %q", id, got.Version, got.Data, want.version, want.data)
		}
	}
	for v := int64(1); v <= 3; v++ {
		got, err := s.GetVersion(ctx, "Task", "x", v)
		if err != nil {
			t.Fatalf("GetVersion x %d: %v", v, err)
		}
		if want := task("x", int(v)).Data; !bytes.Equal(got.Data, want) {
			t.Errorf("x version %d data %q, want %q", v, got.Data, want)
		}
	}
}

func testPutBatchAtomic(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	ctx := t.Context()
	// A batch failing partway leaves nothing: the invalid item is found
	// before anything is written, and a failing WithTx rolls back the rest.
	bad := manyTasks("t", 300)
	bad[250].Format = ""
	if err := s.PutBatch(ctx, bad); err == nil {
		t.Fatal("PutBatch with an invalid item succeeded")
	}
	errBoom := errors.New("boom")
	err := s.WithTx(ctx, func(tx *store.Tx) error {
		if err := tx.PutBatch(ctx, manyTasks("u", 300)); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("WithTx = %v, want errBoom", err)
	}
	if n, err := s.Count(ctx, ""); err != nil || n != 0 {
		t.Errorf("Count = %d, %v; want 0", n, err)
	}
}

func testConcurrentWriters(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	ctx := t.Context()
	const writers, each = 4, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers*3)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				r := task(fmt.Sprintf("w%d-%03d", w, i), 1)
				var err error
				switch i % 3 {
				case 0:
					_, err = s.Put(ctx, r)
				case 1:
					err = s.PutBatch(ctx, []store.Resource{r})
				case 2:
					err = s.WithTx(ctx, func(tx *store.Tx) error {
						if _, err := tx.Put(ctx, r); err != nil {
							return err
						}
						_, err := tx.Get(ctx, r.Type, r.ID)
						return err
					})
				}
				if err != nil {
					errs <- fmt.Errorf("writer %d item %d: %w", w, i, err)
					return
				}
				// Readers run beside the writers.
				if _, err := s.Get(ctx, r.Type, r.ID); err != nil {
					errs <- fmt.Errorf("writer %d reading item %d back: %w", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n, err := s.Count(ctx, "Task"); err != nil || n != writers*each {
		t.Errorf("Count = %d, %v; want %d", n, err, writers*each)
	}
	for w := range writers {
		for i := range each {
			if _, err := s.Get(ctx, "Task", fmt.Sprintf("w%d-%03d", w, i)); err != nil {
				t.Errorf("Get: %v", err)
			}
		}
	}
}

func testConcurrentUpdates(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	ctx := t.Context()
	const writers, each = 4, 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	versions := map[int64]bool{}
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				got, err := s.Put(ctx, task("shared", w*100+i))
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				mu.Lock()
				if versions[got.Version] {
					t.Errorf("version %d handed out twice", got.Version)
				}
				versions[got.Version] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	cur, err := s.Get(ctx, "Task", "shared")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if cur.Version != writers*each {
		t.Errorf("final Version = %d, want %d", cur.Version, writers*each)
	}
	for v := int64(1); v <= writers*each; v++ {
		if _, err := s.GetVersion(ctx, "Task", "shared", v); err != nil {
			t.Errorf("GetVersion %d: %v", v, err)
		}
	}
}

func testReopen(t *testing.T, newURL NewURL) {
	url := newURL(t)
	clock := NewClock(epoch)
	s1, err := store.Open(t.Context(), url, store.WithNowFunc(clock.Now))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	first := mustPut(t, s1, task("t1", 1))
	mustPut(t, s1, task("t1", 2))
	if err := s1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s2 := open(t, url, clock) // migrations run again and find nothing to do
	got, err := s2.GetVersion(t.Context(), "Task", "t1", 1)
	if err != nil {
		t.Fatalf("GetVersion after reopen: %v", err)
	}
	same(t, "version 1 after reopen", got, first)
	if got := mustPut(t, s2, task("t1", 3)); got.Version != 3 {
		t.Errorf("Put after reopen: Version %d, want 3", got.Version)
	}
	// A second store open on the same database at the same time.
	s3 := open(t, url, clock)
	if got, err := s3.Get(t.Context(), "Task", "t1"); err != nil || got.Version != 3 {
		t.Errorf("Get from a second open store: Version %d, %v; want 3", got.Version, err)
	}
}

func testConcurrentOpen(t *testing.T, newURL NewURL) {
	// Several processes starting together on a new database (a server and
	// its workers) each migrate it; all must open it.
	url := newURL(t)
	const n = 4
	stores := make([]*store.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = store.Open(t.Context(), url) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Open %d: %v", i, errs[i])
			continue
		}
		if _, err := stores[i].Put(t.Context(), task(fmt.Sprintf("t%d", i), 1)); err != nil {
			t.Errorf("Put through store %d: %v", i, err)
		}
		if err := stores[i].Close(); err != nil {
			t.Errorf("Close %d: %v", i, err)
		}
	}
}

func testClose(t *testing.T, newURL NewURL) {
	s, err := store.Open(t.Context(), newURL(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ctx := t.Context()
	checks := map[string]error{}
	_, checks["Put"] = s.Put(ctx, task("t1", 1))
	checks["PutBatch"] = s.PutBatch(ctx, []store.Resource{task("t1", 1)})
	_, checks["Get"] = s.Get(ctx, "Task", "t1")
	_, checks["GetVersion"] = s.GetVersion(ctx, "Task", "t1", 1)
	_, checks["Search"] = s.Search(ctx, store.Query{Type: "Task"})
	_, checks["Count"] = s.Count(ctx, "Task")
	checks["WithTx"] = s.WithTx(ctx, func(*store.Tx) error { return nil })
	for op, err := range checks {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: err = %v, want ErrClosed", op, err)
		}
	}
}

func init() {
	cases = append(cases, []struct {
		name string
		run  func(t *testing.T, newURL NewURL)
	}{
		{"Heads", testHeads},
		{"APITokens", testAPITokens},
	}...)
}

// testHeads: Heads reports the current head of each stored key in one
// call, and leaves out keys not stored.
func testHeads(t *testing.T, newURL NewURL) {
	s, _ := fresh(t, newURL)
	ctx := t.Context()
	a, err := s.Put(ctx, store.Resource{Type: "Consent", ID: "c1", Source: "ngo-a", Format: "json", Data: []byte(`{"v":1}`), Status: "active"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, store.Resource{Type: "Consent", ID: "c1", Source: "ngo-a", Format: "json", Data: []byte(`{"v":2}`), Status: "inactive"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, store.Resource{Type: "Task", ID: "t1", Source: "clinic-b", Format: "json", Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	var heads map[string]store.Head
	err = s.WithTx(ctx, func(tx *store.Tx) error {
		var err error
		heads, err = tx.Heads(ctx, []string{"Consent/c1", "Task/t1", "Patient/none", "Consent/t1"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	c, ok := heads["Consent/c1"]
	if len(heads) != 2 || !ok || c.Version != 2 || c.Status != "inactive" || c.Source != "ngo-a" || c.Hash == a.Hash {
		t.Errorf("heads = %+v", heads)
	}
	if h := heads["Task/t1"]; h.Source != "clinic-b" || h.Version != 1 {
		t.Errorf("Task/t1 head = %+v", h)
	}
	err = s.WithTx(ctx, func(tx *store.Tx) error { _, err := tx.Heads(ctx, []string{"not a key"}); return err })
	if err == nil {
		t.Errorf("Heads of a malformed key: no error")
	}

	// Many keys of several types in one call (the statement is one
	// text whatever their number), a key twice, and keys of ids that
	// exist under another type only.
	var rows []store.Resource
	var keys []string
	for i := range 700 {
		id := fmt.Sprintf("m-%03d", i)
		typ := []string{"Task", "ServiceRequest"}[i%2]
		rows = append(rows, store.Resource{Type: typ, ID: id, Source: "ngo-a", Format: "json", Data: fmt.Appendf(nil, `{"i":%d}`, i), Status: "active"})
		keys = append(keys, typ+"/"+id)
	}
	if err := s.PutBatch(ctx, rows); err != nil {
		t.Fatal(err)
	}
	keys = append(keys, "Task/m-000", "ServiceRequest/m-000", "Task/m-001", "Patient/m-002")
	err = s.WithTx(ctx, func(tx *store.Tx) error {
		var err error
		heads, err = tx.Heads(ctx, keys)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(heads) != 700 {
		t.Errorf("Heads of 700 stored keys and 2 not stored: %d heads", len(heads))
	}
	for _, k := range []string{"Task/m-000", "ServiceRequest/m-001", "ServiceRequest/m-699"} {
		if h, ok := heads[k]; !ok || h.Version != 1 || h.Source != "ngo-a" {
			t.Errorf("heads[%s] = %+v, %v", k, h, ok)
		}
	}
	for _, k := range []string{"ServiceRequest/m-000", "Task/m-001", "Patient/m-002"} {
		if h, ok := heads[k]; ok {
			t.Errorf("heads[%s] = %+v, want none (not stored under that type)", k, h)
		}
	}
}

// testAPITokens: issued access tokens are found by hash with their
// partner, scopes and expiry; an assertion is good once until it expires.
func testAPITokens(t *testing.T, newURL NewURL) {
	s, clock := fresh(t, newURL)
	ctx := t.Context()
	now := clock.Now()
	h := sha256.Sum256([]byte("token"))
	if err := s.PutAccessToken(ctx, store.AccessToken{Hash: h, Partner: "clinic-a", Scopes: []string{"system/Task.rs", "system/Task.u"}, Expires: now.Add(5 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.AccessTokenByHash(ctx, h)
	if err != nil || got.Partner != "clinic-a" || strings.Join(got.Scopes, " ") != "system/Task.rs system/Task.u" || !got.Expires.Equal(now.Add(5*time.Minute).UTC().Truncate(time.Microsecond)) {
		t.Errorf("AccessTokenByHash = %+v, %v", got, err)
	}
	if _, err := s.AccessTokenByHash(ctx, sha256.Sum256([]byte("other"))); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an unknown token: %v, want ErrNotFound", err)
	}
	for i, c := range []struct {
		at   time.Time
		want bool
	}{{now, true}, {now.Add(time.Minute), false}, {now.Add(6 * time.Minute), true}} {
		ok, err := s.UseAssertion(ctx, "clinic-a", "jti-1", c.at.Add(5*time.Minute), c.at)
		if err != nil || ok != c.want {
			t.Errorf("use %d at +%v: %v, %v; want %v", i, c.at.Sub(now), ok, err, c.want)
		}
	}
	if ok, err := s.UseAssertion(ctx, "clinic-a", "jti-2", now.Add(5*time.Minute), now); err != nil || !ok {
		t.Errorf("another jti: %v %v", ok, err)
	}
	if ok, err := s.UseAssertion(ctx, "clinic-b", "jti-1", now.Add(5*time.Minute), now); err != nil || !ok {
		t.Errorf("another jti: %v %v", ok, err)
	}
}
