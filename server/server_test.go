package server

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"

	"github.com/pathway-fhir/pathway/connectors"
	"github.com/pathway-fhir/pathway/exchange"
	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/mappings"
	"github.com/pathway-fhir/pathway/policy"
	"github.com/pathway-fhir/pathway/store"
	"github.com/pathway-fhir/pathway/store/storetest"
)

// Tokens of the test partners.
const (
	tokNGO     = "tok-ngo-harbour"
	tokClinic  = "tok-clinic-riverside"
	tokGarden  = "tok-community-garden"
	tokAuditor = "tok-auditor"
)

// auditorPartner adds an auditor to the demo network.
const auditorPartner = `  - id: advisory-board
    name: Community Advisory Board
    kind: auditor

routes:
`

type fixture struct {
	t     testing.TB
	srv   *httptest.Server
	s     *Server
	st    *store.Store
	pipe  *exchange.Pipeline
	clock *storetest.Clock
	// tasks by partner: the Task ids of the sample referrals each owns and
	// may see; hidden: those the patient's consent keeps from it.
	tasks, hidden map[string][]string
}

func newFixture(t testing.TB, url string, opts ...func(*Options)) *fixture {
	t.Helper()
	clock := storetest.NewClock(time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC))
	st, err := store.Open(t.Context(), url, store.WithNowFunc(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	data, err := os.ReadFile("../testdata/exchange/pathway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte("routes:\n"), []byte(auditorPartner), 1)
	cfg, err := exchange.ParseConfig("pathway.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	for id, tok := range map[string]string{"ngo-harbour": tokNGO, "clinic-riverside": tokClinic, "community-garden": tokGarden, "advisory-board": tokAuditor} {
		cfg.Partners[id].APITokens = [][32]byte{sha256.Sum256([]byte(tok))}
	}
	engine, err := policy.NewEngine(cfg.Policy)
	if err != nil {
		t.Fatal(err)
	}
	auditor := &exchange.Auditor{Config: cfg.Raw}
	pipe := &exchange.Pipeline{Store: st, Config: cfg, Engine: engine, Now: clock.Now, Audit: auditor}
	for _, b := range sampleBundles(t) {
		if _, err := pipe.Ingest(t.Context(), "ngo-harbour", b); err != nil {
			t.Fatal(err)
		}
	}
	// The server's address is known before it starts, so that its public
	// base URL can be set (SMART client assertions name it).
	srv := httptest.NewUnstartedServer(nil)
	o := Options{Store: st, Pipeline: pipe, Audit: auditor, Now: clock.Now, BaseURL: "http://" + srv.Listener.Addr().String() + "/fhir"}
	for _, f := range opts {
		f(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = s
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		s.Close(t.Context())
	})
	f := &fixture{t: t, srv: srv, s: s, st: st, pipe: pipe, clock: clock, tasks: map[string][]string{}, hidden: map[string][]string{}}
	tasks, err := st.Search(t.Context(), store.Query{Type: "Task"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range tasks {
		owner := strings.TrimPrefix(tk.Owner, "Organization/")
		v, err := pipe.ViewFor(t.Context(), owner, tk.Patient, []store.Resource{tk}, false)
		if err != nil {
			t.Fatal(err)
		}
		if v.Resources[tk.Ref()] != nil {
			f.tasks[owner] = append(f.tasks[owner], tk.ID)
		} else {
			f.hidden[owner] = append(f.hidden[owner], tk.ID)
		}
	}
	// The sample: two referrals to the clinic, one to the community group,
	// and one routed to it that the patient's consent refuses.
	if len(f.tasks["clinic-riverside"]) != 2 || len(f.tasks["community-garden"]) != 1 || len(f.hidden["community-garden"]) != 1 {
		t.Fatalf("sample Tasks by owner: %v, hidden %v", f.tasks, f.hidden)
	}
	return f
}

// sampleBundles converts the sample NGO CSV with the built-in mapping.
func sampleBundles(t testing.TB) []*rpb.Bundle {
	t.Helper()
	m, err := mappings.Builtin("ngo-referral-csv")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("../testdata/mappings/ngo-referral.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src, err := connectors.OpenCSV(f, "ngo-referral.csv", connectors.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []*rpb.Bundle
	for {
		rec, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Err != nil {
			continue
		}
		ref, err := m.Apply(mappings.MapFields(rec.Fields))
		if err != nil {
			continue
		}
		b, err := mappings.Build(ref)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request with token (none when "").
func (f *fixture) do(method, path, token string, body []byte, header ...string) response {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

// resource parses a response body as FHIR.
func (r response) resource(t *testing.T) *fhir.ContainedResource {
	t.Helper()
	p := fhir.Parse(r.body)
	if p.Resource == nil {
		t.Fatalf("status %d: body is not FHIR: %s", r.status, r.body)
	}
	return p.Resource
}

// outcome returns the OperationOutcome's first issue code and text.
func (r response) outcome(t *testing.T) (string, string) {
	t.Helper()
	oo := r.resource(t).GetOperationOutcome()
	if oo == nil || len(oo.GetIssue()) == 0 {
		t.Fatalf("status %d: not an OperationOutcome: %s", r.status, r.body)
	}
	is := oo.GetIssue()[0]
	return is.GetDetails().GetCoding()[0].GetCode().GetValue(), is.GetDetails().GetText().GetValue()
}

func TestMetadataAndAuthentication(t *testing.T) {
	f := newFixture(t, sqliteURL(t))
	r := f.do("GET", "/fhir/metadata", "", nil)
	cs := r.resource(t).GetCapabilityStatement()
	if r.status != 200 || cs == nil || cs.GetFhirVersion().GetValue().String() != "V_4_0_1" {
		t.Fatalf("metadata: %d %s", r.status, r.body)
	}
	for _, c := range []struct{ token, want string }{{"", "api-login"}, {"not-a-token", "api-login"}} {
		r := f.do("GET", "/fhir/Task", c.token, nil)
		code, _ := r.outcome(t)
		if r.status != 401 || code != c.want || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("token %q: %d %s %s", c.token, r.status, code, r.header.Get("WWW-Authenticate"))
		}
	}
	if r := f.do("GET", "/healthz", "", nil); r.status != 200 {
		t.Errorf("healthz: %d", r.status)
	}
	if r := f.do("GET", "/readyz", "", nil); r.status != 200 {
		t.Errorf("readyz: %d", r.status)
	}
}

func sqliteURL(t testing.TB) string { return "sqlite://" + filepath.Join(t.TempDir(), "pathway.db") }

// TestLimiterForgetsIdleCallers: the limiter's map does not grow with
// every address ever seen; a caller whose bucket refilled starts full, and
// a caller still limited stays limited across a sweep.
func TestLimiterForgetsIdleCallers(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	l := newLimiter(1, 2, func() time.Time { return now })
	// A limited caller: both tokens used.
	for range 2 {
		if _, ok := l.allow("busy"); !ok {
			t.Fatal("busy refused within its burst")
		}
	}
	// Ten thousand callers, a thousand a second: each one's bucket has
	// refilled a second later.
	for i := range 10 * minSweep {
		l.allow("10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256))
		if i%minSweep == 0 {
			now = now.Add(time.Second)
		}
	}
	if n := len(l.buckets); n > 4*minSweep {
		t.Errorf("%d buckets for the callers of the last second or two, want at most %d", n, 4*minSweep)
	}
	now = now.Add(5 * time.Second)
	if _, ok := l.allow("busy"); !ok {
		t.Error("busy still refused after its bucket refilled")
	}
	for i := range minSweep + 1 {
		l.allow("10.1." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256))
	}
	if n := len(l.buckets); n > minSweep+2 {
		t.Errorf("%d buckets after the old ones refilled, want at most %d", n, minSweep+2)
	}
	// A sweep keeps a bucket that is not full.
	l.allow("busy")
	l.allow("busy")
	if _, ok := l.allow("busy"); ok {
		t.Fatal("busy allowed beyond its burst")
	}
	l.sweep(now)
	if _, ok := l.allow("busy"); ok {
		t.Error("a sweep forgot a caller that is still limited")
	}
}

// TestMetrics: /metrics reports requests by route and code, decisions by
// effect, the outbox by state and the held sends, from the store as it is.
func TestMetrics(t *testing.T) {
	f := newFixture(t, sqliteURL(t))
	if r := f.do("GET", "/fhir/Task/"+f.tasks["clinic-riverside"][0], tokClinic, nil); r.status != 200 {
		t.Fatalf("read: %d", r.status)
	}
	f.do("GET", "/fhir/Task/"+f.tasks["clinic-riverside"][0], "wrong-token", nil)
	f.s.Metrics().Decision("permit")
	f.s.Metrics().Delivery("delivered")
	resp, err := http.Get(f.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	stats, err := f.st.OutboxStats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	text := string(body)
	for _, want := range []string{
		`pathway_api_requests_total{route="GET /fhir/Task/{id}",code="200"} 1`,
		`pathway_api_requests_total{route="GET /fhir/Task/{id}",code="401"} 1`,
		`pathway_decisions_total{effect="permit"} 1`,
		`pathway_deliveries_total{outcome="delivered"} 1`,
		fmt.Sprintf(`pathway_outbox_messages{state="pending"} %d`, stats.Counts[store.StatePending]),
		"pathway_held_messages 1",
		"# TYPE pathway_outbox_oldest_waiting_seconds gauge",
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", want, text)
		}
	}
	if stats.Counts[store.StatePending] == 0 || stats.Held != 1 {
		t.Errorf("the fixture's outbox: %+v", stats)
	}
}
