package exchange

import (
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	"google.golang.org/protobuf/proto"

	"github.com/pathway-fhir/pathway/connectors"
	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/mappings"
	"github.com/pathway-fhir/pathway/policy"
	"github.com/pathway-fhir/pathway/store"
	"github.com/pathway-fhir/pathway/store/storetest"
)

// sampleBundles converts the sample NGO CSV with the built-in mapping,
// keyed by referral id; rejected rows are left out.
func sampleBundles(t *testing.T) map[string]*rpb.Bundle {
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
	out := map[string]*rpb.Bundle{}
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
		out[rec.Fields["referral_id"]] = b
	}
	if len(out) != 4 {
		t.Fatalf("sample gave %d bundles, want 4", len(out))
	}
	return out
}

type pipelineHarness struct {
	*harness
	pipe   *Pipeline
	cfg    *Config
	clinic *partner
	garden *partner
}

func newPipelineHarness(t *testing.T, url string) *pipelineHarness {
	t.Helper()
	h := &harness{clock: storetest.NewClock(time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)), revoked: map[int64]bool{}}
	s, err := store.Open(t.Context(), url, store.WithNowFunc(h.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	h.store = s
	data, err := os.ReadFile("../testdata/exchange/pathway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig("pathway.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	engine, err := policy.NewEngine(cfg.Policy)
	if err != nil {
		t.Fatal(err)
	}
	ph := &pipelineHarness{harness: h, cfg: cfg, pipe: &Pipeline{Store: s, Config: cfg, Engine: engine, Now: h.clock.Now}}
	var cs, gs string
	ph.clinic, h.srv = newPartner(t, h.clock)
	cs = h.srv.URL
	var gsrv = h.srv
	ph.garden, gsrv = newPartner(t, h.clock)
	gs = gsrv.URL
	cfg.Partners["clinic-riverside"].Endpoint = cs
	cfg.Partners["community-garden"].Endpoint = gs
	return ph
}

func (ph *pipelineHarness) worker() *Deliverer {
	d := ph.deliverer("w1", nil)
	d.Target = func(id string) (Target, error) {
		l := ph.cfg.Partners[id]
		if l == nil || l.Endpoint == "" {
			return Target{}, errors.New("no endpoint")
		}
		return Target{BaseURL: l.Endpoint}, nil
	}
	d.Prepare = ph.pipe.Prepare
	return d
}

func TestPipelineIngestRouteDecideDeliver(t *testing.T) {
	ph := newPipelineHarness(t, sqliteURL(t))
	bundles := sampleBundles(t)
	want := map[string]struct {
		risk     Risk
		partner  string
		enqueued int
	}{
		"R-2026-0101": {RiskModerate, "clinic-riverside", 1}, // moderate, Arabic with an interpreter, TREAT consented
		"R-2026-0102": {RiskLow, "community-garden", 1},      // low, Ukrainian, group; community partners consented
		"R-2026-0103": {RiskHigh, "clinic-riverside", 1},     // a self-harm flag: high risk, the specialist clinic
		"R-2026-0104": {RiskLow, "community-garden", 0},      // routed, but no consent: nothing leaves
	}
	for id, w := range want {
		res, err := ph.pipe.Ingest(t.Context(), "ngo-harbour", bundles[id])
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if res.Risk != w.risk || len(res.Routes) == 0 || res.Routes[0].Partner != w.partner || res.Enqueued != w.enqueued {
			t.Errorf("%s: risk %v routes %+v enqueued %d unroutable %q; want %v to %s, %d enqueued", id, res.Risk, res.Routes, res.Enqueued, res.Unroutable, w.risk, w.partner, w.enqueued)
		}
		dec := res.Decisions[w.partner]
		if dec.Explain() == "" || len(dec.Trail) == 0 {
			t.Errorf("%s: decision without explanation or trail: %+v", id, dec)
		}
		if w.enqueued == 0 && dec.Permitted() {
			t.Errorf("%s: permitted without consent: %s", id, dec.Explain())
		}
	}
	// A re-ingest of the same records changes nothing.
	for id, b := range bundles {
		res, err := ph.pipe.Ingest(t.Context(), "ngo-harbour", b)
		if err != nil {
			t.Fatal(err)
		}
		if res.Enqueued != 0 || res.Unchanged != want[id].enqueued {
			t.Errorf("re-ingest %s: enqueued %d unchanged %d", id, res.Enqueued, res.Unchanged)
		}
	}
	st, _ := ph.store.OutboxStats(t.Context())
	if st.Counts[store.StatePending] != 3 {
		t.Fatalf("outbox %+v, want 3 pending", st.Counts)
	}
	routings, err := ph.store.Routings(t.Context(), false, "", 0)
	if err != nil || len(routings) != 4 {
		t.Fatalf("routings %+v %v", routings, err)
	}

	ph.drain(t, ph.worker())
	clinic, _, _ := ph.clinic.counts()
	garden, _, _ := ph.garden.counts()
	if len(clinic) == 0 || len(garden) == 0 {
		t.Fatalf("clinic received %v, garden %v", clinic, garden)
	}
	for key := range garden {
		typ := strings.SplitN(key, "/", 2)[0]
		if typ != "Patient" && typ != "ServiceRequest" && typ != "Task" {
			t.Errorf("the community partner received %s, outside its agreement", key)
		}
	}
	hasObservation := false
	for key := range clinic {
		if strings.HasPrefix(key, "Observation/") || strings.HasPrefix(key, "Flag/") {
			hasObservation = true
		}
	}
	if !hasObservation {
		t.Errorf("the clinic received no screening or risk resources: %v", clinic)
	}
}

// TestPipelineRevocationStopsTheSend: the consent is revoked (a new
// version, status inactive) after enqueue and before the worker runs.
func TestPipelineRevocationStopsTheSend(t *testing.T) {
	ph := newPipelineHarness(t, sqliteURL(t))
	b := sampleBundles(t)["R-2026-0101"]
	if res, err := ph.pipe.Ingest(t.Context(), "ngo-harbour", b); err != nil || res.Enqueued != 1 {
		t.Fatalf("ingest: %+v %v", res, err)
	}
	consents, err := ph.store.Search(t.Context(), store.Query{Type: "Consent"})
	if err != nil || len(consents) != 1 {
		t.Fatalf("stored consents %v %v", consents, err)
	}
	c := consents[0]
	c.Data = []byte(strings.Replace(string(c.Data), `"status":"active"`, `"status":"inactive"`, 1))
	if !fhir.Parse(c.Data).Valid() || !strings.Contains(string(c.Data), `"inactive"`) {
		t.Fatalf("revoked consent is not valid FHIR")
	}
	if _, err := ph.store.Put(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	ph.drain(t, ph.worker())
	if got, _, reqs := ph.clinic.counts(); len(got) != 0 || reqs != 0 {
		t.Errorf("the clinic received %v after the revocation", got)
	}
	ms, err := ph.store.Messages(t.Context(), store.MessageQuery{State: store.StateWithheld})
	if err != nil || len(ms) != 1 || !strings.Contains(ms[0].LastError, "no longer permitted") {
		t.Fatalf("withheld messages %+v %v", ms, err)
	}
}

// TestReingestAtCapacity: a partner at its capacity limit because of this
// very referral still takes a re-ingest of it (the referral's own Task is
// not counted against it), the routing stays as it was, and its
// updated_at is not rewritten when nothing changed; another referral is
// held as over capacity.
func TestReingestAtCapacity(t *testing.T) {
	for name, newURL := range storeURLs(t) {
		t.Run(name, func(t *testing.T) {
			ph := newPipelineHarness(t, newURL(t))
			ph.cfg.Partners["clinic-riverside"].Services.Capacity = 1
			bundles := sampleBundles(t)
			b := bundles["R-2026-0101"]
			first, err := ph.pipe.Ingest(t.Context(), "ngo-harbour", b)
			if err != nil {
				t.Fatal(err)
			}
			if first.Unroutable != "" || len(first.Routes) != 1 || first.Routes[0].Partner != "clinic-riverside" {
				t.Fatalf("first ingest: routes %v, unroutable %q; want clinic-riverside", first.Routes, first.Unroutable)
			}
			before, err := ph.store.Routings(t.Context(), false, "", 0)
			if err != nil || len(before) != 1 {
				t.Fatalf("routings %v, %v", before, err)
			}
			ph.clock.Advance(time.Hour)
			again, err := ph.pipe.Ingest(t.Context(), "ngo-harbour", b)
			if err != nil {
				t.Fatal(err)
			}
			if again.Unroutable != "" || len(again.Routes) != 1 || again.Routes[0].Partner != "clinic-riverside" || again.Enqueued != 0 {
				t.Errorf("re-ingest: routes %v, unroutable %q, enqueued %d; want the same route and nothing new", again.Routes, again.Unroutable, again.Enqueued)
			}
			after, err := ph.store.Routings(t.Context(), false, "", 0)
			if err != nil || len(after) != 1 {
				t.Fatalf("routings %v, %v", after, err)
			}
			if !after[0].UpdatedAt.Equal(before[0].UpdatedAt) || after[0].Unroutable {
				t.Errorf("routing after an unchanged re-ingest = %+v, want as before (%+v)", after[0], before[0])
			}

			// Another mental-health referral finds the clinic full.
			other, err := ph.pipe.Ingest(t.Context(), "ngo-harbour", bundles["R-2026-0103"])
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range other.Routes {
				if r.Partner == "clinic-riverside" {
					t.Errorf("R-2026-0103 routed to the clinic although it is at capacity: %v", other.Routes)
				}
			}
		})
	}
}

// TestIngestGuard: a re-ingest never undoes what the partners did, and a
// referral whose ids collide with another source's is refused whole.
func TestIngestGuard(t *testing.T) {
	ph := newPipelineHarness(t, sqliteURL(t))
	b := sampleBundles(t)["R-2026-0101"]
	if _, err := ph.pipe.Ingest(t.Context(), "ngo-harbour", b); err != nil {
		t.Fatal(err)
	}
	tasks, err := ph.store.Search(t.Context(), store.Query{Type: "Task"})
	if err != nil || len(tasks) != 1 || tasks[0].Requester != "Organization/ngo-harbour" {
		t.Fatalf("tasks %+v %v", tasks, err)
	}
	// The clinic accepts; the NGO revokes the consent.
	task := tasks[0]
	task.Data = []byte(strings.Replace(string(task.Data), `"status":"requested"`, `"status":"accepted"`, 1))
	task.Status, task.Source = "accepted", "clinic-riverside"
	if _, err := ph.store.Put(t.Context(), task); err != nil {
		t.Fatal(err)
	}
	cs, _ := ph.store.Search(t.Context(), store.Query{Type: "Consent"})
	c := cs[0]
	c.Data = []byte(strings.Replace(string(c.Data), `"status":"active"`, `"status":"inactive"`, 1))
	c.Status = "inactive"
	if _, err := ph.store.Put(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	// A re-ingest of the old record: the Task stays accepted, the consent revoked.
	if _, err := ph.pipe.Ingest(t.Context(), "ngo-harbour", b); err != nil {
		t.Fatal(err)
	}
	if got, _ := ph.store.Get(t.Context(), "Task", task.ID); got.Status != "accepted" {
		t.Errorf("the re-ingest reset the Task to %s", got.Status)
	}
	if got, _ := ph.store.Get(t.Context(), "Consent", c.ID); got.Status != "inactive" {
		t.Errorf("the re-ingest re-activated a revoked consent: %s", got.Status)
	}
	// Another source sending the same ids: refused, nothing written.
	before, _ := ph.store.Get(t.Context(), "Patient", strings.TrimPrefix(task.Patient, "Patient/"))
	_, err = ph.pipe.Ingest(t.Context(), "community-garden", b)
	if !errors.Is(err, ErrForeignReferral) {
		t.Fatalf("ingest of another source's ids: %v, want ErrForeignReferral", err)
	}
	if after, _ := ph.store.Get(t.Context(), "Patient", before.ID); after.Version != before.Version || after.Source != "ngo-harbour" {
		t.Errorf("the refused referral wrote the Patient: v%d from %s", after.Version, after.Source)
	}
}

// TestReingestDoesNotResendAMovedTask: a changed record is sent again, but
// without the Task the partner has moved on: the re-sent referral cannot
// reset it at the partner.
func TestReingestDoesNotResendAMovedTask(t *testing.T) {
	ph := newPipelineHarness(t, sqliteURL(t))
	b := sampleBundles(t)["R-2026-0101"]
	if _, err := ph.pipe.Ingest(t.Context(), "ngo-harbour", b); err != nil {
		t.Fatal(err)
	}
	tasks, _ := ph.store.Search(t.Context(), store.Query{Type: "Task"})
	task := tasks[0]
	task.Data = []byte(strings.Replace(string(task.Data), `"status":"requested"`, `"status":"accepted"`, 1))
	task.Status, task.Source = "accepted", "clinic-riverside"
	if _, err := ph.store.Put(t.Context(), task); err != nil {
		t.Fatal(err)
	}
	// The NGO edits the record: the ServiceRequest's patient instruction changes.
	changed := proto.Clone(b).(*rpb.Bundle)
	for _, e := range changed.GetEntry() {
		if sr := e.GetResource().GetServiceRequest(); sr != nil {
			sr.PatientInstruction = &dpb.String{Value: "Mornings now, childcare found"}
		}
	}
	res, err := ph.pipe.Ingest(t.Context(), "ngo-harbour", changed)
	if err != nil || res.Enqueued != 1 {
		t.Fatalf("re-ingest of the changed record: %+v %v", res, err)
	}
	ms, _ := ph.store.Messages(t.Context(), store.MessageQuery{WithPayload: true})
	last := ms[len(ms)-1]
	if strings.Contains(string(last.Payload), task.ID) || !strings.Contains(string(last.Payload), "Mornings now") {
		t.Errorf("the re-sent referral carries the moved Task or lacks the change: %s", last.Payload)
	}
}

// TestShallowBundleHoldsEveryField: shallowBundle's copy is the bundle,
// for a bundle with every element of Bundle set (a field google/fhir adds
// and shallowBundle misses would fail here), and retarget leaves its input
// as it was.
func TestShallowBundleHoldsEveryField(t *testing.T) {
	b := sampleBundles(t)["R-2026-0101"]
	full := proto.Clone(b).(*rpb.Bundle)
	m := full.ProtoReflect()
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if m.Has(fd) {
			continue
		}
		// Set the element from a populated message of its type: enough
		// for Has, which is all the comparison needs.
		if fd.IsList() {
			l := m.Mutable(fd).List()
			l.Append(l.NewElement())
		} else {
			m.Set(fd, m.NewField(fd))
		}
	}
	for i := range fields.Len() {
		if !m.Has(fields.Get(i)) {
			t.Fatalf("Bundle.%s could not be set", fields.Get(i).Name())
		}
	}
	if got := shallowBundle(full); !proto.Equal(got, full) {
		t.Errorf("shallowBundle lost elements of the bundle")
	}
	before := proto.Clone(b)
	out := retarget(b, "community-garden", false, true)
	if !proto.Equal(b, before) {
		t.Errorf("retarget changed its input")
	}
	if proto.Equal(out, b) {
		t.Errorf("retarget for a second target made no Task of its own")
	}
}

// TestReingestKeepsARecordedConsent: a record that only proposes its
// person's consent (a clinic's referral: the fhir-referral mapping's
// Consent is always proposed) is held for want of consent; once the
// consent is recorded (a new, active version of the referral's Consent, as
// PUT /fhir/Consent stores it), the same record sent again neither sets it
// back to proposed nor is held: it is decided under the recorded consent.
func TestReingestKeepsARecordedConsent(t *testing.T) {
	ph := newPipelineHarness(t, sqliteURL(t))
	b := proto.Clone(sampleBundles(t)["R-2026-0101"]).(*rpb.Bundle)
	var consentID string
	for _, e := range b.GetEntry() {
		if c := e.GetResource().GetConsent(); c != nil {
			c.Status.Value = cpb.ConsentStateCode_PROPOSED
			consentID = c.GetId().GetValue()
		}
	}
	res, err := ph.pipe.Ingest(t.Context(), "ngo-harbour", b)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Routes) == 0 || res.Enqueued != 0 {
		t.Fatalf("a proposed consent: routes %v, %d enqueued, want routed and held", res.Routes, res.Enqueued)
	}
	for p, d := range res.Decisions {
		if d.Permitted() {
			t.Fatalf("a proposed consent permitted %s", p)
		}
	}
	// The person's consent is recorded: an active version.
	stored, err := ph.store.Get(t.Context(), "Consent", consentID)
	if err != nil || stored.Status != "proposed" {
		t.Fatalf("stored consent %+v, %v", stored, err)
	}
	stored.Data = []byte(strings.Replace(string(stored.Data), `"status":"proposed"`, `"status":"active"`, 1))
	stored.Status = "active"
	recorded, err := ph.store.Put(t.Context(), stored)
	if err != nil {
		t.Fatal(err)
	}
	res, err = ph.pipe.Ingest(t.Context(), "ngo-harbour", b)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := ph.store.Get(t.Context(), "Consent", consentID); got.Status != "active" || got.Version != recorded.Version {
		t.Errorf("the re-sent record changed the recorded consent: %s v%d, want active v%d", got.Status, got.Version, recorded.Version)
	}
	if res.Enqueued == 0 {
		t.Errorf("the re-sent record under the recorded consent: %d enqueued, decisions %v", res.Enqueued, res.Decisions)
	}
	for p, d := range res.Decisions {
		if !d.Permitted() {
			t.Errorf("under the recorded consent %s: %s (%s)", p, d.Effect, d.Explain())
		}
	}
}

// TestAConsentOfAnotherReferralReleasesTheHeld: a referral whose record
// only proposed a consent is held for its targets; a later record for the
// same person that carries their consent permits both, and the held one
// is queued after that record's commit without being sent again.
func TestAConsentOfAnotherReferralReleasesTheHeld(t *testing.T) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			url := ""
			if name == "sqlite" {
				url = sqliteURL(t)
			} else {
				if !storetest.PostgresAvailable() {
					t.Skip(storetest.PostgresEnv + " is not set: skipping the PostgreSQL store")
				}
				url = storetest.PostgresURL(t)
			}
			ph := newPipelineHarness(t, url)
			ph.pipe.Audit = &Auditor{Config: ph.cfg.Raw}
			ctx := t.Context()
			first := proto.Clone(sampleBundles(t)["R-2026-0101"]).(*rpb.Bundle)
			for _, e := range first.GetEntry() {
				if c := e.GetResource().GetConsent(); c != nil {
					c.Status.Value = cpb.ConsentStateCode_PROPOSED
				}
			}
			res, err := ph.pipe.Ingest(ctx, "ngo-harbour", first)
			if err != nil {
				t.Fatal(err)
			}
			if res.Held == 0 || res.Enqueued != 0 {
				t.Fatalf("a proposed consent: %d held, %d enqueued; want every target held", res.Held, res.Enqueued)
			}
			patient := patientRef(first)
			if hs, err := ph.store.HeldOf(ctx, patient); err != nil || len(hs) != res.Held {
				t.Fatalf("held of %s: %d, %v; want %d", patient, len(hs), err, res.Held)
			}

			// Another referral of the same person (as a partner pushing FHIR
			// with its own ids sends it), with their consent given.
			second := anotherReferral(t, sampleBundles(t)["R-2026-0101"])
			if patientRef(second) != patient || serviceRequestRef(second) == serviceRequestRef(first) {
				t.Fatalf("the second record is not another referral of the same person: %s %s", patientRef(second), serviceRequestRef(second))
			}
			res2, err := ph.pipe.Ingest(ctx, "ngo-harbour", second)
			if err != nil {
				t.Fatal(err)
			}
			if res2.Enqueued == 0 {
				t.Fatalf("the second record, with the consent: %d enqueued", res2.Enqueued)
			}
			if hs, err := ph.store.HeldOf(ctx, patient); err != nil || len(hs) != 0 {
				t.Errorf("held after the consent was recorded: %d, %v", len(hs), err)
			}
			ms, err := ph.store.Messages(ctx, store.MessageQuery{State: store.StatePending})
			if err != nil {
				t.Fatal(err)
			}
			streams := map[string]bool{}
			for _, m := range ms {
				streams[m.Stream] = true
			}
			for _, r := range res.Routes {
				if !streams[referralStream(serviceRequestRef(first), r.Partner)] {
					t.Errorf("the first referral was not queued for %s: %v", r.Partner, streams)
				}
			}
			if len(ms) != res.Held+res2.Enqueued {
				t.Errorf("%d pending, want %d released and %d of the second record", len(ms), res.Held, res2.Enqueued)
			}
			// Released once: the same record again changes nothing.
			if again, err := ph.pipe.Ingest(ctx, "ngo-harbour", second); err != nil || again.Enqueued != 0 {
				t.Errorf("re-ingest of the second record: %d enqueued, %v", again.Enqueued, err)
			}
			if ms2, _ := ph.store.Messages(ctx, store.MessageQuery{}); len(ms2) != len(ms) {
				t.Errorf("after a re-ingest: %d messages, want %d", len(ms2), len(ms))
			}
		})
	}
}

// anotherReferral is b with new ids for its ServiceRequest and Tasks:
// another referral of the same person, with the same consent.
func anotherReferral(t *testing.T, b *rpb.Bundle) *rpb.Bundle {
	t.Helper()
	data, err := fhir.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, e := range b.GetEntry() {
		r := e.GetResource()
		if r.GetServiceRequest() != nil || r.GetTask() != nil {
			id := fhir.IDOf(fhir.Unwrap(r))
			text = strings.ReplaceAll(text, id, fhir.NewID("test:another", id))
		}
	}
	p := fhir.Parse([]byte(text))
	if !p.Valid() {
		t.Fatalf("another referral: %v", p.Issues)
	}
	return p.Resource.GetBundle()
}

// TestReleaseHeldTwiceAtOnce: two releases of the same patient's held
// sends at the same time (two consent updates) queue each send once.
func TestReleaseHeldTwiceAtOnce(t *testing.T) {
	for name, newURL := range storeURLs(t) {
		t.Run(name, func(t *testing.T) {
			ph := newPipelineHarness(t, newURL(t))
			ph.pipe.Audit = &Auditor{Config: ph.cfg.Raw}
			ctx := t.Context()
			b, consent, hs := heldReferral(t, ph)
			if _, err := ph.store.Put(ctx, withStatus(consent, "active")); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			reps := make([]ReleaseReport, 2)
			errs := make([]error, 2)
			for i := range reps {
				wg.Go(func() { reps[i], errs[i] = ph.pipe.ReleaseHeld(ctx, patientRef(b)) })
			}
			wg.Wait()
			if errs[0] != nil || errs[1] != nil {
				t.Fatal(errs)
			}
			if got := len(reps[0].Released) + len(reps[1].Released); got != len(hs) {
				t.Errorf("released %v and %v, want %d in all", reps[0].Released, reps[1].Released, len(hs))
			}
			ms, err := ph.store.Messages(ctx, store.MessageQuery{})
			if err != nil || len(ms) != len(hs) {
				t.Errorf("%d messages after two releases, want %d (%v)", len(ms), len(hs), err)
			}
			if rep := verifyLog(t, ph.store); !rep.OK() {
				t.Errorf("audit log after the releases: %+v", rep.Problems)
			}
		})
	}
}

// heldReferral ingests the sample's R-2026-0101 with its consent only
// proposed (held for every target) and returns the bundle, its Consent as
// stored and what was held.
func heldReferral(t *testing.T, ph *pipelineHarness) (*rpb.Bundle, store.Resource, []store.Held) {
	t.Helper()
	ctx := t.Context()
	b := proto.Clone(sampleBundles(t)["R-2026-0101"]).(*rpb.Bundle)
	var consentID string
	for _, e := range b.GetEntry() {
		if c := e.GetResource().GetConsent(); c != nil {
			c.Status.Value = cpb.ConsentStateCode_PROPOSED
			consentID = c.GetId().GetValue()
		}
	}
	if res, err := ph.pipe.Ingest(ctx, "ngo-harbour", b); err != nil || res.Held == 0 {
		t.Fatalf("ingest: %d held, %v", res.Held, err)
	}
	c, err := ph.store.Get(ctx, "Consent", consentID)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := ph.store.HeldOf(ctx, patientRef(b))
	if err != nil || len(hs) == 0 {
		t.Fatalf("held: %d, %v", len(hs), err)
	}
	return b, c, hs
}

// withStatus is r, a Consent or Task as the store holds it, with status.
func withStatus(r store.Resource, status string) store.Resource {
	r.Data = []byte(strings.Replace(string(r.Data), `"status":"`+r.Status+`"`, `"status":"`+status+`"`, 1))
	r.Status = status
	return r
}

// TestReleaseDropsACancelledReferral: a referral the referrer cancelled
// while it was held is not sent when a consent is recorded later.
func TestReleaseDropsACancelledReferral(t *testing.T) {
	ph := newPipelineHarness(t, sqliteURL(t))
	ctx := t.Context()
	b, consent, hs := heldReferral(t, ph)
	for _, e := range b.GetEntry() {
		if tk := e.GetResource().GetTask(); tk != nil {
			cur, err := ph.store.Get(ctx, "Task", tk.GetId().GetValue())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ph.store.Put(ctx, withStatus(cur, "cancelled")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := ph.store.Put(ctx, withStatus(consent, "active")); err != nil {
		t.Fatal(err)
	}
	rep, err := ph.pipe.ReleaseHeld(ctx, patientRef(b))
	if err != nil || len(rep.Released) != 0 || rep.Dropped != len(hs) {
		t.Errorf("release of a cancelled referral: %+v, %v; want %d dropped", rep, err, len(hs))
	}
	if ms, _ := ph.store.Messages(ctx, store.MessageQuery{}); len(ms) != 0 {
		t.Errorf("%d messages queued for a cancelled referral", len(ms))
	}
	if left, _ := ph.store.HeldOf(ctx, patientRef(b)); len(left) != 0 {
		t.Errorf("still held: %d", len(left))
	}
}

// TestReleaseRequeuesAWithheldCopy: a send withheld at send time (its
// consent revoked), held again by a re-sent record and released by a
// consent given again, goes: the withheld message is queued again, not
// reported released while nothing moves.
func TestReleaseRequeuesAWithheldCopy(t *testing.T) {
	ph := newPipelineHarness(t, sqliteURL(t))
	ctx := t.Context()
	b, consent, hs := heldReferral(t, ph)
	active, err := ph.store.Put(ctx, withStatus(consent, "active"))
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := ph.pipe.ReleaseHeld(ctx, patientRef(b)); err != nil || len(rep.Released) != len(hs) {
		t.Fatalf("first release: %+v, %v", rep, err)
	}
	claimed, err := ph.store.Claim(ctx, "w1", 10, time.Minute)
	if err != nil || len(claimed) != len(hs) {
		t.Fatalf("claim: %d, %v", len(claimed), err)
	}
	for _, m := range claimed {
		if err := ph.store.Withhold(ctx, m.ID, "w1", "no longer permitted: consent revoked"); err != nil {
			t.Fatal(err)
		}
	}
	err = ph.store.WithTx(ctx, func(tx *store.Tx) error {
		for _, h := range hs {
			if err := tx.Hold(ctx, h); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ph.store.Put(ctx, withStatus(active, "active")); err != nil { // recorded again
		t.Fatal(err)
	}
	rep, err := ph.pipe.ReleaseHeld(ctx, patientRef(b))
	if err != nil || len(rep.Released) != len(hs) {
		t.Fatalf("second release: %+v, %v", rep, err)
	}
	pending, err := ph.store.Messages(ctx, store.MessageQuery{State: store.StatePending})
	if err != nil || len(pending) != len(hs) {
		t.Errorf("pending after the second release: %d, %v; want the withheld %d again", len(pending), err, len(hs))
	}
}

// TestReingestLeavesAPausedConsent: a consent set back to proposed on the
// API is not made active again by the record re-sent.
func TestReingestLeavesAPausedConsent(t *testing.T) {
	ph := newPipelineHarness(t, sqliteURL(t))
	ctx := t.Context()
	b := sampleBundles(t)["R-2026-0101"]
	if _, err := ph.pipe.Ingest(ctx, "ngo-harbour", b); err != nil {
		t.Fatal(err)
	}
	cs, err := ph.store.Search(ctx, consentsOf(patientRef(b)))
	if err != nil || len(cs) != 1 || cs[0].Status != "active" {
		t.Fatalf("consents: %+v, %v", cs, err)
	}
	paused, err := ph.store.Put(ctx, withStatus(cs[0], "proposed"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ph.pipe.Ingest(ctx, "ngo-harbour", b); err != nil {
		t.Fatal(err)
	}
	if got, _ := ph.store.Get(ctx, "Consent", cs[0].ID); got.Status != "proposed" || got.Version != paused.Version {
		t.Errorf("the re-sent record changed the paused consent: %s v%d, want proposed v%d", got.Status, got.Version, paused.Version)
	}
}

// TestSweepHeldCatchesAMissedRelease: a consent recorded without its
// release (the process stopped in between) is caught by the sweep; a
// patient re-decided and still held is not re-decided again until a
// consent of theirs is written again.
func TestSweepHeldCatchesAMissedRelease(t *testing.T) {
	for name, newURL := range storeURLs(t) {
		t.Run(name, func(t *testing.T) {
			ph := newPipelineHarness(t, newURL(t))
			ctx := t.Context()
			b, consent, hs := heldReferral(t, ph)
			// The consent was written in the instant the sends were held:
			// re-decided once (the race of a hold and a consent), then not.
			ph.clock.Advance(3 * time.Minute) // past the store's margin for statements stamped before they commit
			if rep, err := ph.pipe.SweepHeld(ctx, 100); err != nil || len(rep.Released) != 0 || rep.Held != len(hs) {
				t.Fatalf("first sweep: %+v, %v", rep, err)
			}
			if rep, err := ph.pipe.SweepHeld(ctx, 100); err != nil || len(rep.Released)+rep.Held != 0 {
				t.Fatalf("sweep with no consent written since: %+v, %v", rep, err)
			}
			// Written again, still only proposed: re-decided once, still held.
			again, err := ph.store.Put(ctx, withStatus(consent, "draft"))
			if err != nil {
				t.Fatal(err)
			}
			ph.clock.Advance(3 * time.Minute) // past the store's margin for statements stamped before they commit
			if rep, err := ph.pipe.SweepHeld(ctx, 100); err != nil || rep.Held != len(hs) {
				t.Fatalf("sweep after a consent that permits nothing: %+v, %v", rep, err)
			}
			if rep, err := ph.pipe.SweepHeld(ctx, 100); err != nil || rep.Held != 0 {
				t.Fatalf("a second sweep re-decided again: %+v, %v", rep, err)
			}
			// Recorded, and the release missed: the sweep sends it.
			ph.clock.Advance(3 * time.Minute) // past the store's margin for statements stamped before they commit
			if _, err := ph.store.Put(ctx, withStatus(again, "active")); err != nil {
				t.Fatal(err)
			}
			rep, err := ph.pipe.SweepHeld(ctx, 100)
			if err != nil || len(rep.Released) != len(hs) {
				t.Fatalf("sweep after the consent was recorded: %+v, %v", rep, err)
			}
			if left, _ := ph.store.HeldOf(ctx, patientRef(b)); len(left) != 0 {
				t.Errorf("still held after the sweep: %d", len(left))
			}
		})
	}
}

// TestReleaseWhileAWorkerHoldsTheCopy: a held send whose queued copy a
// worker is sending (and may yet withhold, decided before the consent)
// stays held, and the next sweep queues the copy once it is withheld.
func TestReleaseWhileAWorkerHoldsTheCopy(t *testing.T) {
	ph := newPipelineHarness(t, sqliteURL(t))
	ctx := t.Context()
	b, consent, hs := heldReferral(t, ph)
	active, err := ph.store.Put(ctx, withStatus(consent, "active"))
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := ph.pipe.ReleaseHeld(ctx, patientRef(b)); err != nil || len(rep.Released) != len(hs) {
		t.Fatalf("first release: %+v, %v", rep, err)
	}
	// Held again (a re-sent record after a revocation), while the queued
	// copy is claimed by a worker.
	if err := ph.store.WithTx(ctx, func(tx *store.Tx) error {
		for _, h := range hs {
			if err := tx.Hold(ctx, h); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	claimed, err := ph.store.Claim(ctx, "w1", 10, time.Minute)
	if err != nil || len(claimed) != len(hs) {
		t.Fatalf("claim: %d, %v", len(claimed), err)
	}
	ph.clock.Advance(3 * time.Minute)
	if _, err := ph.store.Put(ctx, withStatus(active, "active")); err != nil {
		t.Fatal(err)
	}
	rep, err := ph.pipe.ReleaseHeld(ctx, patientRef(b))
	if err != nil || len(rep.Released) != 0 || rep.Held != len(hs) {
		t.Fatalf("release while the copy is in flight: %+v, %v; want it held", rep, err)
	}
	// The worker withholds it (it decided before the consent); long after,
	// the sweep sends it.
	for _, m := range claimed {
		if err := ph.store.Withhold(ctx, m.ID, "w1", "no longer permitted"); err != nil {
			t.Fatal(err)
		}
	}
	ph.clock.Advance(time.Hour)
	rep, err = ph.pipe.SweepHeld(ctx, 100)
	if err != nil || len(rep.Released) != len(hs) {
		t.Fatalf("sweep after the worker settled: %+v, %v", rep, err)
	}
	if pending, _ := ph.store.Messages(ctx, store.MessageQuery{State: store.StatePending}); len(pending) != len(hs) {
		t.Errorf("pending after the sweep: %d, want %d", len(pending), len(hs))
	}
}

// TestReingestActivatesAConsentOnlyEverProposed: a consent proposed, then
// proposed again with changed content, becomes active when the record
// says it was given (only one active once and set back stays paused).
func TestReingestActivatesAConsentOnlyEverProposed(t *testing.T) {
	for name, newURL := range storeURLs(t) {
		t.Run(name, func(t *testing.T) {
			ph := newPipelineHarness(t, newURL(t))
			ctx := t.Context()
			b, consent, _ := heldReferral(t, ph)
			changed := consent
			changed.Data = []byte(strings.Replace(string(consent.Data), `"resourceType":"Consent"`, `"resourceType":"Consent","language":"en"`, 1))
			if _, err := ph.store.Put(ctx, changed); err != nil {
				t.Fatal(err)
			}
			given := proto.Clone(b).(*rpb.Bundle)
			for _, e := range given.GetEntry() {
				if c := e.GetResource().GetConsent(); c != nil {
					c.Status.Value = cpb.ConsentStateCode_ACTIVE
				}
			}
			if _, err := ph.pipe.Ingest(ctx, "ngo-harbour", given); err != nil {
				t.Fatal(err)
			}
			if got, _ := ph.store.Get(ctx, "Consent", consent.ID); got.Status != "active" {
				t.Errorf("a consent only ever proposed, after the record says it was given: %s v%d", got.Status, got.Version)
			}
		})
	}
}
