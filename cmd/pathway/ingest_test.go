package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/store"
)

// fhirPartner is a partner FHIR server for CLI tests: it applies
// transaction bundles (PUT by id), optionally slowly, and counts requests.
type fhirPartner struct {
	mu       sync.Mutex
	delay    time.Duration
	stored   map[string]bool
	requests int
	srv      *httptest.Server
}

func newFHIRPartner(t *testing.T, delay time.Duration) *fhirPartner {
	p := &fhirPartner{delay: delay, stored: map[string]bool{}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		time.Sleep(p.delay)
		res := fhir.Parse(body)
		if !res.Valid() || res.Resource.GetBundle() == nil {
			http.Error(w, "not a valid Bundle", http.StatusBadRequest)
			return
		}
		p.mu.Lock()
		p.requests++
		for _, e := range res.Resource.GetBundle().GetEntry() {
			p.stored[e.GetRequest().GetUrl().GetValue()] = true
		}
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/fhir+json")
		io.WriteString(w, `{"resourceType":"Bundle","type":"transaction-response"}`)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *fhirPartner) snapshot() (map[string]bool, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]bool{}
	for k := range p.stored {
		out[k] = true
	}
	return out, p.requests
}

// networkConfig writes the demo network's configuration with the two
// partners' endpoints pointing at clinic and garden, and a short lease.
func networkConfig(t *testing.T, clinic, garden string) string {
	t.Helper()
	data, err := os.ReadFile("../../testdata/exchange/pathway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(data), "http://127.0.0.1:8101/fhir", clinic, 1)
	s = strings.Replace(s, "http://127.0.0.1:8102/fhir", garden, 1)
	s = strings.Replace(s, "timeout: 10s\n  lease: 1m", "timeout: 1s\n  lease: 2s", 1)
	file := filepath.Join(t.TempDir(), "pathway.yaml")
	if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestIngestWorkerReferrals(t *testing.T) {
	clinic, garden := newFHIRPartner(t, 0), newFHIRPartner(t, 0)
	cfg := networkConfig(t, clinic.srv.URL, garden.srv.URL)
	db := "sqlite://" + filepath.Join(t.TempDir(), "pathway.db")
	rejects := filepath.Join(t.TempDir(), "rejects.ndjson")
	csvFile := "../../testdata/mappings/ngo-referral.csv"

	code, out, errOut := runCmd(t, "", "ingest", "--config", cfg, "--database", db, "--mapping", "ngo-referral-csv", "--source", "ngo-harbour", "--rejects", rejects, "--json", csvFile)
	var sum ingestSummary
	if code != 1 || json.Unmarshal([]byte(out), &sum) != nil {
		t.Fatalf("ingest: exit %d\n%s\n%s", code, out, errOut)
	}
	if sum.Read != 6 || sum.Ingested != 4 || sum.Rejected != 2 || sum.Enqueued != 3 || sum.Routed != 4 {
		t.Errorf("ingest summary %+v", sum)
	}
	// Again: nothing new.
	_, out, _ = runCmd(t, "", "ingest", "--config", cfg, "--database", db, "--mapping", "ngo-referral-csv", "--source", "ngo-harbour", "--rejects", rejects, "--json", csvFile)
	if json.Unmarshal([]byte(out), &sum) != nil || sum.Enqueued != 0 || sum.Unchanged != 3 {
		t.Errorf("re-ingest summary %+v", sum)
	}
	// The same records from another partner: each is refused (its ids
	// are ngo-harbour's) and goes to the rejects file; nothing is written.
	foreign := filepath.Join(t.TempDir(), "foreign.ndjson")
	code, out, errOut = runCmd(t, "", "ingest", "--config", cfg, "--database", db, "--mapping", "ngo-referral-csv", "--source", "community-garden", "--rejects", foreign, "--json", csvFile)
	if code != 1 || json.Unmarshal([]byte(out), &sum) != nil || sum.Ingested != 0 || sum.Rejected != 6 || sum.Enqueued != 0 {
		t.Errorf("ingest from another source: exit %d, summary %+v\n%s", code, sum, errOut)
	}
	if data, err := os.ReadFile(foreign); err != nil || strings.Count(string(data), "another source sent") != 4 {
		t.Errorf("rejects of the other source's ingest (%v):\n%s", err, data)
	}
	if code, _, errOut := runCmd(t, "", "ingest", "--config", cfg, "--database", db, "--mapping", "ngo-referral-csv", "--source", "nobody", csvFile); code != 2 || !strings.Contains(errOut, `--source "nobody" is not a partner`) {
		t.Errorf("unknown source: exit %d %s", code, errOut)
	}

	code, out, errOut = runCmd(t, "", "worker", "--config", cfg, "--database", db, "--once")
	if code != 0 || !strings.Contains(out, "delivered 3,") {
		t.Fatalf("worker: exit %d\n%s\n%s", code, out, errOut)
	}
	cs, _ := clinic.snapshot()
	gs, _ := garden.snapshot()
	if len(cs) == 0 || len(gs) == 0 {
		t.Errorf("clinic received %v, garden %v", cs, gs)
	}

	code, out, _ = runCmd(t, "", "referrals", "--database", db, "--json")
	if code != 0 || strings.Count(out, "\n") != 4 || !strings.Contains(out, `"risk":"high"`) {
		t.Errorf("referrals: exit %d\n%s", code, out)
	}
	code, out, _ = runCmd(t, "", "outbox", "list", "--database", db, "--state", "delivered")
	if code != 0 || strings.Count(out, "delivered") != 3 {
		t.Errorf("outbox list: exit %d\n%s", code, out)
	}
}

// TestWorkerKilledMidBatch kills a worker process with SIGKILL while it
// delivers, restarts it, and checks that every message is delivered, none
// is lost, and only what was in flight at the kill is sent twice.
// TestIngestFHIRDocument: pathway ingest takes each ServiceRequest of a
// clinic's FHIR document as its own referral (as pathway convert does),
// and rejects the ones that cannot convert by their path in the document.
func TestIngestFHIRDocument(t *testing.T) {
	cfg := networkConfig(t, "http://127.0.0.1:1/fhir", "http://127.0.0.1:2/fhir")
	db := "sqlite://" + filepath.Join(t.TempDir(), "pathway.db")
	rejects := filepath.Join(t.TempDir(), "rejects.ndjson")
	doc := "../../testdata/mappings/fhir-referral-bundle.json"
	code, out, errOut := runCmd(t, "", "ingest", "--config", cfg, "--database", db, "--mapping", "fhir-referral", "--source", "clinic-riverside", "--rejects", rejects, "--json", doc)
	var sum ingestSummary
	if code != 1 || json.Unmarshal([]byte(out), &sum) != nil {
		t.Fatalf("ingest: exit %d\n%s\n%s", code, out, errOut)
	}
	// Two referrals convert: the social-prescribing one is routed to the
	// community group (and withheld: no consent of the person yet), the
	// high-risk one is unroutable; two are rejected on purpose.
	if sum.Read != 4 || sum.Ingested != 2 || sum.Rejected != 2 || sum.Routed != 1 || sum.Unroutable != 1 || sum.Withheld != 1 {
		t.Errorf("ingest summary %+v", sum)
	}
	data, err := os.ReadFile(rejects)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{doc + ":Bundle.entry[7]", doc + ":Bundle.entry[8]"} {
		if !strings.Contains(string(data), `"position":"`+want+`"`) {
			t.Errorf("rejects do not name %s:\n%s", want, data)
		}
	}
	// The withheld send waits for the person's consent, and says so.
	code, out, errOut = runCmd(t, "", "referrals", "--database", db, "--held", "--json")
	var held struct {
		ServiceRequest           string `json:"service_request"`
		Partner, Patient, Reason string
	}
	if code != 0 || strings.Count(out, "\n") != 1 || json.Unmarshal([]byte(out), &held) != nil {
		t.Fatalf("referrals --held: exit %d\n%s\n%s", code, out, errOut)
	}
	if held.Partner != "community-garden" || !strings.HasPrefix(held.ServiceRequest, "ServiceRequest/") || !strings.HasPrefix(held.Reason, "no-consent") || !strings.HasPrefix(held.Patient, "Patient/") {
		t.Errorf("held: %+v", held)
	}
	code, out, _ = runCmd(t, "", "referrals", "--database", db, "--held")
	if code != 0 || !strings.Contains(out, "WHY") || !strings.Contains(out, "community-garden") {
		t.Errorf("referrals --held: exit %d\n%s", code, out)
	}
	if code, _, errOut = runCmd(t, "", "referrals", "--database", db, "--held", "--unroutable"); code != 2 {
		t.Errorf("--held with --unroutable: exit %d %s", code, errOut)
	}
}

func TestWorkerKilledMidBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: not building the binary")
	}
	bin := filepath.Join(t.TempDir(), "pathway")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building pathway: %v\n%s", err, out)
	}
	clinic, garden := newFHIRPartner(t, 30*time.Millisecond), newFHIRPartner(t, 30*time.Millisecond)
	cfg := networkConfig(t, clinic.srv.URL, garden.srv.URL)
	db := "sqlite://" + filepath.Join(t.TempDir(), "pathway.db")

	// 40 referrals: the sample's four valid rows ten times, with their own ids.
	input := filepath.Join(t.TempDir(), "many.csv")
	writeManyReferrals(t, "../../testdata/mappings/ngo-referral.csv", input, 10)
	// Every process signs the audit log with the network's key.
	keyFile, pubFile, _ := writeKeys(t, t.TempDir())
	t.Setenv(envSigningKey, "")
	t.Setenv(envSigningKeyFile, keyFile)
	code, out, errOut := runCmd(t, "", "ingest", "--config", cfg, "--database", db, "--mapping", "ngo-referral-csv", "--source", "ngo-harbour", "--json", input)
	var sum ingestSummary
	if code != 0 || json.Unmarshal([]byte(out), &sum) != nil || sum.Enqueued != 30 {
		t.Fatalf("ingest: exit %d %+v\n%s", code, sum, errOut)
	}

	worker := exec.Command(bin, "worker", "--config", cfg, "--database", db)
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, n1 := clinic.snapshot()
		_, n2 := garden.snapshot()
		if n1+n2 >= 8 {
			break
		}
		if time.Now().After(deadline) {
			worker.Process.Kill()
			t.Fatal("the worker delivered nothing in 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := worker.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	worker.Wait()
	killedAfter := time.Since(started)
	// The kill came between appending disclosures and checkpointing them
	// (the checkpointer signs every 1000 entries or 10 seconds).
	if st, err := store.Open(t.Context(), db); err != nil {
		t.Fatal(err)
	} else {
		size, _ := st.AuditSize(t.Context())
		cp, err := st.LatestAuditCheckpoint(t.Context())
		st.Close()
		if err != nil || cp.Size != 40 || size <= 40 {
			t.Fatalf("at the kill: %d entries, latest checkpoint %d (%v); want the ingest's 40 decisions checkpointed and the worker's entries after them", size, cp.Size, err)
		}
		if killedAfter < 9*time.Second && size == cp.Size {
			t.Fatalf("the killed worker left no entry outside a checkpoint: the test did not kill it between append and checkpoint")
		}
	}
	_, before1 := clinic.snapshot()
	_, before2 := garden.snapshot()
	if before1+before2 >= 30 {
		t.Fatalf("the worker finished before it was killed (%d requests): slow the partners down", before1+before2)
	}
	time.Sleep(2100 * time.Millisecond) // the killed worker's lease runs out

	restart := exec.Command(bin, "worker", "--config", cfg, "--database", db, "--once")
	if out, err := restart.CombinedOutput(); err != nil {
		t.Fatalf("restarted worker: %v\n%s", err, out)
	}
	st, err := store.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stats, err := st.OutboxStats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if stats.Counts[store.StateDelivered] != 30 {
		t.Errorf("after the restart: %v, want all 30 delivered", stats.Counts)
	}
	_, n1 := clinic.snapshot()
	_, n2 := garden.snapshot()
	if n1+n2 < 30 || n1+n2 > 31 {
		t.Errorf("partners saw %d requests for 30 messages: at most the one in flight at the kill may be sent twice", n1+n2)
	}

	// Nothing the killed worker logged is lost: the restarted worker's
	// last checkpoint covers it, and every delivery has one disclosure.
	disclosures := 0
	if err := st.ScanAudit(t.Context(), store.AuditScan{}, func(r store.AuditRecord) error {
		if r.Kind == "disclosure" {
			disclosures++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if disclosures != 30 {
		t.Errorf("the audit log holds %d disclosures for 30 deliveries", disclosures)
	}
	code, out, errOut = runCmd(t, "", "audit", "verify", "--database", db, "--key", pubFile, "--json")
	var rep verifyOutput
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || !rep.OK || rep.Uncovered != 0 || rep.Rederived != rep.Decisions {
		t.Errorf("verify after the kill and restart: exit %d %v uncovered %d, %d of %d decisions re-derived\n%s%s", code, err, rep.Uncovered, rep.Rederived, rep.Decisions, out, errOut)
	}
}

// writeManyReferrals copies the valid rows of a referral CSV copies times,
// each copy with its own referral and client ids.
func writeManyReferrals(t *testing.T, from, to string, copies int) {
	t.Helper()
	f, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w := csv.NewWriter(out)
	w.Write(rows[0])
	for c := range copies {
		for _, r := range rows[1:5] {
			r = append([]string(nil), r...)
			r[0] = fmt.Sprintf("%s-%02d", r[0], c)
			r[1] = fmt.Sprintf("%s-%02d", r[1], c)
			w.Write(r)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		t.Fatal(err)
	}
}
