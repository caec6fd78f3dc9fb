package exchange

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-resty/resty/v2"
	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/store"
	"github.com/pathway-fhir/pathway/store/storetest"
)

// fault is what the test partner does with one request.
type fault string

const (
	faultNone      fault = ""          // commit and answer 200
	fault500       fault = "500"       // answer 500 without committing
	fault500Reply  fault = "500reply"  // answer 500 with an OperationOutcome, without committing
	fault429       fault = "429"       // answer 429 with Retry-After: 120
	fault503       fault = "503"       // answer 503 with an HTTP-date Retry-After
	faultSlow      fault = "slow"      // answer after the client's timeout
	faultReset     fault = "reset"     // close the connection without answering
	faultLost      fault = "lost"      // commit, then close without answering
	fault422       fault = "422"       // refuse with an OperationOutcome
	faultAuth      fault = "auth"      // require a bearer token
	faultAccepted  fault = "accepted"  // answer 202
	faultHugeReply fault = "hugereply" // commit and answer 200 with a 2 MiB body
)

// partner is a FHIR server for tests that can fail on demand. It applies
// transaction bundles of PUTs, so a resend changes nothing (exactly once
// in effect), and counts every request and every write.
type partner struct {
	t      *testing.T
	mu     sync.Mutex
	faults []fault          // consumed one per request, then faultNone
	stored map[string]int   // "Type/id" -> writes that changed nothing new (1 = stored once)
	bodies map[string]int   // idempotency: resource -> number of times received
	lost   map[string]int   // resource -> receipts whose response was lost (faultLost)
	reqs   int              // requests seen
	clock  *storetest.Clock // for HTTP-date Retry-After
	tokens map[string]bool  // accepted bearer tokens when faultAuth is active
	auth   bool             // require a bearer token
	// onRequest, if set, runs as each request arrives (before it is read).
	onRequest func()
}

func newPartner(t *testing.T, clock *storetest.Clock, faults ...fault) (*partner, *httptest.Server) {
	p := &partner{t: t, faults: faults, stored: map[string]int{}, bodies: map[string]int{}, lost: map[string]int{}, clock: clock}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv
}

func (p *partner) next() fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reqs++
	if len(p.faults) == 0 {
		return faultNone
	}
	f := p.faults[0]
	p.faults = p.faults[1:]
	return f
}

func (p *partner) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.onRequest != nil {
		p.onRequest()
	}
	f := p.next()
	body := make([]byte, 0, 1024)
	buf := make([]byte, 4096)
	for {
		n, err := r.Body.Read(buf)
		body = append(body, buf[:n]...)
		if err != nil {
			break
		}
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/fhir+json" {
		http.Error(w, "want a POST of application/fhir+json", http.StatusBadRequest)
		return
	}
	if f == faultAuth && r.Header.Get("Authorization") != "Bearer s3cret" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	switch f {
	case fault500:
		w.WriteHeader(http.StatusInternalServerError)
		return
	case fault500Reply:
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient"}]}`)
		return
	case fault429:
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	case fault503:
		w.Header().Set("Retry-After", p.clock.Now().Add(300*time.Second).UTC().Format(http.TimeFormat))
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	case faultSlow:
		time.Sleep(400 * time.Millisecond)
		w.WriteHeader(http.StatusOK)
		return
	case faultReset:
		hijackClose(w)
		return
	case fault422:
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		fmt.Fprint(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid"}]}`)
		return
	}
	res := fhir.Parse(body)
	if !res.Valid() || res.Resource.GetBundle() == nil {
		http.Error(w, "not a valid Bundle", http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	for _, e := range res.Resource.GetBundle().GetEntry() {
		key := e.GetRequest().GetUrl().GetValue()
		p.stored[key] = 1 // a PUT of the same id replaces: one copy
		p.bodies[key]++
		if f == faultLost {
			p.lost[key]++
		}
	}
	p.mu.Unlock()
	switch f {
	case faultLost:
		hijackClose(w)
	case faultAccepted:
		w.WriteHeader(http.StatusAccepted)
	case faultHugeReply:
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(strings.Repeat(" ", 2<<20)))
	default:
		w.Header().Set("Content-Type", "application/fhir+json")
		fmt.Fprint(w, `{"resourceType":"Bundle","type":"transaction-response","entry":[]}`)
	}
}

func hijackClose(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

// lostCounts returns, per resource, how many receipts had their response
// lost: each explains one resend.
func (p *partner) lostCounts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.lost {
		out[k] = v
	}
	return out
}

func (p *partner) counts() (stored map[string]int, received map[string]int, reqs int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, r := map[string]int{}, map[string]int{}
	for k, v := range p.stored {
		s[k] = v
	}
	for k, v := range p.bodies {
		r[k] = v
	}
	return s, r, p.reqs
}

func patientKey(i int) string { return "Patient/" + fhir.NewID("test", fmt.Sprint(i), "Patient") }

// referralBundle is a transaction bundle that PUTs one Patient.
func referralBundle(t testing.TB, i int) []byte {
	t.Helper()
	pat, err := fhir.PatientSpec{ID: fhir.NewID("test", fmt.Sprint(i), "Patient")}.Build()
	if err != nil {
		t.Fatal(err)
	}
	b, err := fhir.BundleSpec{Type: fhir.BundleTypeTransaction, Entry: []fhir.BundleEntry{fhir.UpdateEntry(pat)}}.Build()
	if err != nil {
		t.Fatal(err)
	}
	data, err := fhir.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

type harness struct {
	store   *store.Store
	clock   *storetest.Clock
	partner *partner
	srv     *httptest.Server
	ids     []int64
	results []Result
	mu      sync.Mutex
	revoked map[int64]bool
}

func newHarness(t *testing.T, url string, n int, faults ...fault) *harness {
	h := &harness{clock: storetest.NewClock(time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)), revoked: map[int64]bool{}}
	s, err := store.Open(t.Context(), url, store.WithNowFunc(h.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	h.store = s
	h.partner, h.srv = newPartner(t, h.clock, faults...)
	err = s.WithTx(t.Context(), func(tx *store.Tx) error {
		for i := range n {
			id, _, err := tx.Enqueue(t.Context(), store.Message{
				Key: fmt.Sprintf("route-1/rec-%d/v1", i), Partner: "clinic-a", Purpose: "COC", Kind: "transaction",
				Payload: referralBundle(t, i),
			})
			if err != nil {
				return err
			}
			h.ids = append(h.ids, id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) deliverer(owner string, auth Authenticator) *Deliverer {
	return &Deliverer{
		Store:  h.store,
		Owner:  owner,
		Target: func(string) (Target, error) { return Target{BaseURL: h.srv.URL, Auth: auth}, nil },
		Prepare: func(_ context.Context, m store.Message) (Prepared, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.revoked[m.ID] {
				return Prepared{Withhold: "Consent/c1 was revoked: no permit for COC to clinic-a"}, nil
			}
			return Prepared{Bundle: m.Payload}, nil
		},
		Client: NewClient(200*time.Millisecond, nil),
		Retry:  RetryPolicy{MaxAttempts: 4, Base: time.Second, Max: time.Minute},
		Lease:  time.Minute,
		Batch:  5,
		Now:    h.clock.Now,
		Rand:   func() float64 { return 0.5 },
		OnResult: func(_ context.Context, r Result) {
			h.mu.Lock()
			h.results = append(h.results, r)
			h.mu.Unlock()
		},
	}
}

// drain runs d until nothing is due even an hour later.
func (h *harness) drain(t *testing.T, d *Deliverer) {
	t.Helper()
	for range 200 {
		n, err := d.RunOnce(t.Context())
		if err != nil {
			t.Fatalf("RunOnce: %v", err)
		}
		if n == 0 {
			st, err := h.store.OutboxStats(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if st.Counts[store.StatePending]+st.Counts[store.StateInflight] == 0 {
				return
			}
			h.clock.Advance(time.Minute)
		}
	}
	t.Fatal("outbox did not drain")
}

func (h *harness) states(t *testing.T) map[int64]store.Message {
	t.Helper()
	out := map[int64]store.Message{}
	for _, id := range h.ids {
		m, err := h.store.Message(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		out[id] = m
	}
	return out
}

func sqliteURL(t testing.TB) string { return "sqlite://" + filepath.Join(t.TempDir(), "pathway.db") }

// faultCase is one row of TestDeliverFaults.
type faultCase struct {
	name     string
	faults   []fault
	want     store.MessageState
	attempts int
	reason   string // in LastError
	// received is how many times the partner commits the Patient: once
	// when delivered, plus once per response lost after the commit.
	received int
	// outcome: the message keeps the partner's OperationOutcome.
	outcome bool
}

// TestDeliverFaults sends one message through each fault and checks where
// it ends: every message delivered exactly once in effect, or dead with a
// reason; retries wait as long as the partner asked.
func TestDeliverFaults(t *testing.T) {
	tests := []faultCase{
		{"ok", nil, store.StateDelivered, 1, "", 1, false},
		{"accepted", []fault{faultAccepted}, store.StateDelivered, 1, "", 1, false},
		{"500 then ok", []fault{fault500, fault500}, store.StateDelivered, 3, "", 1, false},
		{"429 then ok", []fault{fault429}, store.StateDelivered, 2, "", 1, false},
		{"503 then ok", []fault{fault503}, store.StateDelivered, 2, "", 1, false},
		{"timeout then ok", []fault{faultSlow}, store.StateDelivered, 2, "", 1, false},
		{"reset then ok", []fault{faultReset}, store.StateDelivered, 2, "", 1, false},
		{"response lost after commit", []fault{faultLost}, store.StateDelivered, 2, "", 2, false},
		{"refused", []fault{fault422}, store.StateDead, 1, "HTTP 422 from the partner: refused", 0, true},
		{"always failing", []fault{fault500, fault500, fault500, fault500}, store.StateDead, 4, "gave up after 4 attempts: HTTP 500 from the partner", 0, false},
		{"always failing with an answer, then timeouts", []fault{fault500Reply, faultSlow, faultSlow, faultSlow}, store.StateDead, 4, "gave up after 4 attempts: no response: timeout", 0, true},
		{"failing with an answer", []fault{fault500Reply, fault500Reply, fault500Reply, fault500Reply}, store.StateDead, 4, "gave up after 4 attempts: HTTP 500 from the partner", 0, true},
		{"huge reply", []fault{faultHugeReply, faultHugeReply, faultHugeReply, faultHugeReply}, store.StateDead, 4, "gave up after 4 attempts: no response: response larger than 1 MiB", 4, false},
	}
	for storeName, newURL := range storeURLs(t) {
		for _, tc := range tests {
			t.Run(storeName+"/"+tc.name, func(t *testing.T) {
				testDeliverFault(t, newURL(t), tc)
			})
		}
	}
}

func testDeliverFault(t *testing.T, url string, tc faultCase) {
	h := newHarness(t, url, 1, tc.faults...)
	h.drain(t, h.deliverer("w1", nil))
	m := h.states(t)[h.ids[0]]
	if m.State != tc.want || m.Attempts != tc.attempts {
		t.Fatalf("message ended %s after %d attempts (%q), want %s after %d", m.State, m.Attempts, m.LastError, tc.want, tc.attempts)
	}
	if tc.reason != "" && m.LastError != tc.reason {
		t.Errorf("reason %q, want %q", m.LastError, tc.reason)
	}
	stored, got, _ := h.partner.counts()
	if n := got[patientKey(0)]; n != tc.received {
		t.Errorf("partner received the Patient %d times, want %d", n, tc.received)
	}
	if tc.want == store.StateDelivered && (len(stored) != 1 || stored[patientKey(0)] != 1) {
		t.Errorf("partner holds %v, want the Patient once", stored)
	}
	if tc.outcome && !strings.Contains(string(m.Response), "OperationOutcome") {
		t.Errorf("dead letter keeps response %q, want the partner's OperationOutcome", m.Response)
	}
}

// TestDeliverHonoursRetryAfter: after a 429 with Retry-After: 120 the
// message is not due before two minutes, though the backoff is a second.
func TestDeliverHonoursRetryAfter(t *testing.T) {
	h := newHarness(t, sqliteURL(t), 1, fault429)
	d := h.deliverer("w1", nil)
	if _, err := d.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	m := h.states(t)[h.ids[0]]
	if want := h.clock.Now().Add(120 * time.Second).Truncate(time.Microsecond); m.State != store.StatePending || !m.NextAttemptAt.Equal(want) {
		t.Fatalf("after 429: %s due %v, want pending due %v", m.State, m.NextAttemptAt, want)
	}
	h.clock.Advance(119 * time.Second)
	if n, _ := d.RunOnce(t.Context()); n != 0 {
		t.Fatal("claimed before Retry-After")
	}
	h.clock.Advance(time.Second)
	if n, _ := d.RunOnce(t.Context()); n != 1 {
		t.Fatal("not claimed at Retry-After")
	}
}

// TestDeliverWithholdsAfterRevocation: a consent revoked between enqueue
// and send stops the send, and the partner receives nothing.
func TestDeliverWithholdsAfterRevocation(t *testing.T) {
	h := newHarness(t, sqliteURL(t), 3)
	h.revoked[h.ids[1]] = true
	h.drain(t, h.deliverer("w1", nil))
	st := h.states(t)
	if m := st[h.ids[1]]; m.State != store.StateWithheld || !strings.Contains(m.LastError, "revoked") {
		t.Errorf("revoked message = %s %q, want withheld with the reason", m.State, m.LastError)
	}
	stored, _, _ := h.partner.counts()
	if stored[patientKey(1)] != 0 || stored[patientKey(0)] != 1 || stored[patientKey(2)] != 1 {
		t.Errorf("partner holds %v, want p000 and p002 only", stored)
	}
}

type staticToken struct {
	mu          sync.Mutex
	invalidated int
}

func (s *staticToken) Authorize(_ context.Context, r *resty.Request) error {
	r.SetAuthToken("s3cret")
	return nil
}

func (s *staticToken) Invalidate() { s.mu.Lock(); s.invalidated++; s.mu.Unlock() }

func TestDeliverAuth(t *testing.T) {
	h := newHarness(t, sqliteURL(t), 1, faultAuth)
	h.drain(t, h.deliverer("w1", nil))
	if m := h.states(t)[h.ids[0]]; m.Attempts != 2 || m.State != store.StateDelivered {
		t.Errorf("without credentials: %s after %d attempts; want a retry after the 401", m.State, m.Attempts)
	}

	h = newHarness(t, sqliteURL(t), 1, faultAuth)
	tok := &staticToken{}
	h.drain(t, h.deliverer("w1", tok))
	if m := h.states(t)[h.ids[0]]; m.Attempts != 1 || m.State != store.StateDelivered {
		t.Errorf("with a token: %s after %d attempts", m.State, m.Attempts)
	}
}

// TestDeliverManyWorkers: 60 messages, a partner failing now and then,
// several workers on one store. Each message reaches the partner once,
// plus once per lost response (the only resend the faults explain), and
// no two workers ever hold the same message at once. The fake clock moves
// only while no worker is inside RunOnce, so no lease runs out in the
// middle of a batch: any extra receipt or overlapping hold is a bug.
func TestDeliverManyWorkers(t *testing.T) {
	for name, newURL := range storeURLs(t) {
		for _, workers := range []int{2, 4} {
			t.Run(fmt.Sprintf("%s/%d", name, workers), func(t *testing.T) {
				var faults []fault
				for i := range 60 {
					switch i % 7 {
					case 1:
						faults = append(faults, fault500)
					case 3:
						faults = append(faults, faultLost)
					case 5:
						faults = append(faults, faultReset)
					default:
						faults = append(faults, faultNone)
					}
				}
				h := newHarness(t, newURL(t), 60, faults...)
				var (
					gate    sync.RWMutex // RunOnce holds it shared, a clock advance alone
					mu      sync.Mutex
					holder  = map[int64]string{}    // message -> the worker between its Prepare and its result
					claims  = map[string][]int64{}  // owner -> messages it was handed, in order
					attempt = map[[2]int64]string{} // (message, attempt) -> the owner of that claim
				)
				var wg sync.WaitGroup
				for w := range workers {
					d := h.deliverer(fmt.Sprintf("w%d", w), nil)
					prepare, onResult := d.Prepare, d.OnResult
					d.Prepare = func(ctx context.Context, m store.Message) (Prepared, error) {
						mu.Lock()
						if other, held := holder[m.ID]; held {
							t.Errorf("message %d held by %s and %s at once", m.ID, other, d.Owner)
						}
						holder[m.ID] = d.Owner
						claims[d.Owner] = append(claims[d.Owner], m.ID)
						k := [2]int64{m.ID, int64(m.Attempts)}
						if other, dup := attempt[k]; dup {
							t.Errorf("message %d: claim %d handed to %s and %s", m.ID, m.Attempts, other, d.Owner)
						}
						attempt[k] = d.Owner
						mu.Unlock()
						return prepare(ctx, m)
					}
					d.OnResult = func(ctx context.Context, r Result) {
						mu.Lock()
						if holder[r.Message.ID] == d.Owner {
							delete(holder, r.Message.ID)
						}
						mu.Unlock()
						onResult(ctx, r)
					}
					wg.Go(func() {
						for range 200 {
							gate.RLock()
							n, err := d.RunOnce(t.Context())
							gate.RUnlock()
							if err != nil {
								t.Error(err)
								return
							}
							if n == 0 {
								st, _ := h.store.OutboxStats(t.Context())
								if st.Counts[store.StatePending]+st.Counts[store.StateInflight] == 0 {
									return
								}
								gate.Lock()
								h.clock.Advance(10 * time.Second)
								gate.Unlock()
							}
						}
					})
				}
				wg.Wait()
				delivered := 0
				for _, m := range h.states(t) {
					if m.State == store.StateDelivered {
						delivered++
					}
				}
				stored, received, _ := h.partner.counts()
				lost := h.partner.lostCounts()
				if delivered != 60 || len(stored) != 60 {
					t.Errorf("%d delivered, partner holds %d resources; want 60 and 60", delivered, len(stored))
				}
				for i := range 60 {
					k := patientKey(i)
					if n, explained := received[k], 1+lost[k]; n < 1 || n > explained {
						t.Errorf("%s received %d times; %d lost responses explain at most %d", k, n, lost[k], explained)
					}
				}
				total := 0
				for _, ids := range claims {
					total += len(ids)
				}
				if total < 60 {
					t.Errorf("workers were handed %d messages, want at least 60", total)
				}
				acks := map[int64]int{}
				for _, r := range h.results {
					if r.Outcome == OutcomeDelivered {
						acks[r.Message.ID]++
					}
				}
				for id, n := range acks {
					if n != 1 {
						t.Errorf("message %d acked %d times", id, n)
					}
				}
			})
		}
	}
}

func TestBackoff(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 10, Base: time.Second, Max: time.Minute}
	for _, tc := range []struct {
		attempt  int
		rnd      float64
		min, max time.Duration
	}{
		{1, 0, 500 * time.Millisecond, 500 * time.Millisecond},
		{1, 0.999, 500 * time.Millisecond, time.Second},
		{2, 0, time.Second, time.Second},
		{4, 0.5, 6 * time.Second, 6 * time.Second},
		{30, 0.999, 30 * time.Second, time.Minute},
	} {
		got := p.Backoff(tc.attempt, func() float64 { return tc.rnd })
		if got < tc.min || got > tc.max {
			t.Errorf("Backoff(%d, %v) = %v, want in [%v, %v]", tc.attempt, tc.rnd, got, tc.min, tc.max)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"120", 2 * time.Minute, true},
		{" 0 ", 0, true},
		{now.Add(time.Minute).Format(http.TimeFormat), time.Minute, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{"", 0, false},
		{"soon", 0, false},
		{"-5", 0, false},
	} {
		got, ok := retryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestDeliverTargetClient: a Target's own client (its TLS settings) is
// used for its deliveries; without it the Deliverer's client does not
// trust the partner's certificate, and says so.
func TestDeliverTargetClient(t *testing.T) {
	h := newHarness(t, sqliteURL(t), 1)
	tlsSrv := httptest.NewUnstartedServer(h.partner)
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)

	d := h.deliverer("w1", nil)
	d.Target = func(string) (Target, error) { return Target{BaseURL: tlsSrv.URL}, nil }
	if _, err := d.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	m := h.states(t)[h.ids[0]]
	if m.State != store.StatePending || !strings.Contains(m.LastError, "certificate is not trusted") {
		t.Fatalf("with the shared client: %s %q, want a retry naming the untrusted certificate", m.State, m.LastError)
	}

	own := NewClient(time.Second, tlsSrv.Client().Transport)
	d.Target = func(string) (Target, error) { return Target{BaseURL: tlsSrv.URL, Client: own}, nil }
	h.clock.Advance(time.Hour)
	if _, err := d.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if m := h.states(t)[h.ids[0]]; m.State != store.StateDelivered {
		t.Fatalf("with the target's client: %s %q, want delivered", m.State, m.LastError)
	}
}

// storeURLs are the stores the delivery tests run on: SQLite, and
// PostgreSQL when PATHWAY_TEST_DATABASE_URL is set.
func storeURLs(t *testing.T) map[string]func(t *testing.T) string {
	urls := map[string]func(t *testing.T) string{"sqlite": func(t *testing.T) string { return sqliteURL(t) }}
	if storetest.PostgresAvailable() {
		urls["postgres"] = func(t *testing.T) string { return storetest.PostgresURL(t) }
	} else {
		t.Log(storetest.PostgresEnv + " not set: PostgreSQL not tested")
	}
	return urls
}

// TestDeliverBatchLongerThanLease: a worker whose batch takes longer than
// its lease (each message takes 20s, the lease is 30s) while a second
// worker claims what has run out: no message reaches the partner twice,
// because each lease is renewed before its send and a message another
// worker holds is skipped.
func TestDeliverBatchLongerThanLease(t *testing.T) {
	for name, newURL := range storeURLs(t) {
		// Also with the send timeout known: a lease that outlasts the send
		// is not renewed, and one that does not still is.
		for _, timeout := range []time.Duration{0, 200 * time.Millisecond} {
			t.Run(fmt.Sprintf("%s/timeout=%s", name, timeout), func(t *testing.T) { testBatchLongerThanLease(t, newURL, timeout) })
		}
	}
}

func testBatchLongerThanLease(t *testing.T, newURL func(t *testing.T) string, timeout time.Duration) {
	h := newHarness(t, newURL(t), 6)
	d1, d2 := h.deliverer("w1", nil), h.deliverer("w2", nil)
	d1.SendTimeout, d2.SendTimeout = timeout, timeout
	d1.Lease, d2.Lease = 30*time.Second, 30*time.Second
	d1.Batch, d2.Batch = 6, 6
	prepare := d1.Prepare
	d1.Prepare = func(ctx context.Context, m store.Message) (Prepared, error) {
		h.clock.Advance(20 * time.Second)
		if m.ID == h.ids[2] {
			// While w1 is busy, w2 claims every lease that ran out.
			if n, err := d2.RunOnce(ctx); err != nil || n == 0 {
				t.Errorf("w2 claimed %d (%v), want the messages whose lease ran out", n, err)
			}
		}
		return prepare(ctx, m)
	}
	if n, err := d1.RunOnce(t.Context()); err != nil || n != 6 {
		t.Fatalf("w1 claimed %d (%v), want 6", n, err)
	}
	_, received, _ := h.partner.counts()
	for i := range 6 {
		if n := received[patientKey(i)]; n != 1 {
			t.Errorf("%s received %d times, want once", patientKey(i), n)
		}
	}
	lost := 0
	for _, r := range h.results {
		if r.Outcome == OutcomeLeaseLost {
			lost++
			if r.Sent != nil {
				t.Errorf("message %d: lease lost, yet sent", r.Message.ID)
			}
		}
	}
	if lost == 0 {
		t.Error("no send was skipped for a lost lease: the test did not make w2 take any message")
	}
	for id, m := range h.states(t) {
		if m.State != store.StateDelivered {
			t.Errorf("message %d is %s, want delivered", id, m.State)
		}
	}
}

// TestDeliverRenewsOnlyWhatIsNeeded: with the send timeout known, a
// message sent soon after its claim is sent on the claim's lease (not
// renewed: one write less), and one sent late in the claim is renewed
// first.
func TestDeliverRenewsOnlyWhatIsNeeded(t *testing.T) {
	h := newHarness(t, sqliteURL(t), 3)
	d := h.deliverer("w1", nil)
	d.SendTimeout, d.Lease, d.Batch = 200*time.Millisecond, time.Minute, 3
	claimed := h.clock.Now().Add(time.Minute)
	prepare := d.Prepare
	d.Prepare = func(ctx context.Context, m store.Message) (Prepared, error) {
		if m.ID == h.ids[2] {
			h.clock.Advance(55 * time.Second) // less than timeout and margin left
		} else {
			h.clock.Advance(time.Second)
		}
		return prepare(ctx, m)
	}
	leases := map[int64]time.Time{}
	h.partner.onRequest = func() {
		for _, id := range h.ids {
			if m, err := h.store.Message(t.Context(), id); err == nil && m.State == store.StateInflight {
				if _, seen := leases[id]; !seen {
					leases[id] = m.LeaseUntil
					return
				}
			}
		}
	}
	if n, err := d.RunOnce(t.Context()); err != nil || n != 3 {
		t.Fatalf("claimed %d (%v), want 3", n, err)
	}
	for i, id := range h.ids {
		want := claimed
		if i == 2 {
			want = h.clock.Now().Add(time.Minute) // renewed just before the send
		}
		if got := leases[id]; !got.Equal(want) {
			t.Errorf("message %d was sent with its lease until %s, want %s", i, got, want)
		}
	}
}
