package exchange

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/store"
	"github.com/pathway-fhir/pathway/store/storetest"
)

// instantPartner accepts every bundle at once, reading it whole.
func instantPartner(b *testing.B) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		n.Add(1)
		w.Header().Set("Content-Type", "application/fhir+json")
		w.Write([]byte(`{"resourceType":"Bundle","type":"transaction-response"}`))
	}))
	b.Cleanup(srv.Close)
	return srv, &n
}

// BenchmarkDeliver measures outbox to a loopback partner that accepts at
// once: claim, prepare (the payload as is), POST, ack. One op is one
// bundle delivered. Enqueueing is outside the timer.
func BenchmarkDeliver(b *testing.B) {
	stores := map[string]func(testing.TB) string{"sqlite": sqliteURL}
	if storetest.PostgresAvailable() {
		stores["postgres"] = storetest.PostgresURL
	}
	payload := referralBundle(b, 1)
	for _, name := range []string{"sqlite", "postgres"} {
		newURL, ok := stores[name]
		if !ok {
			continue
		}
		for _, workers := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/workers=%d", name, workers), func(b *testing.B) {
				s, err := store.Open(context.Background(), newURL(b))
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				srv, got := instantPartner(b)
				err = s.WithTx(context.Background(), func(tx *store.Tx) error {
					for i := range b.N {
						if _, _, err := tx.Enqueue(context.Background(), store.Message{Key: fmt.Sprint(i), Partner: "p", Kind: "transaction", Payload: payload}); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				client := NewClient(10*time.Second, &http.Transport{MaxIdleConnsPerHost: workers * 2})
				b.ResetTimer()
				var wg sync.WaitGroup
				for w := range workers {
					d := &Deliverer{
						Store: s, Owner: fmt.Sprint("w", w), Client: client,
						Target:  func(string) (Target, error) { return Target{BaseURL: srv.URL}, nil },
						Prepare: func(_ context.Context, m store.Message) (Prepared, error) { return Prepared{Bundle: m.Payload}, nil },
						Retry:   DefaultRetryPolicy, Lease: time.Minute, Batch: 32,
						SendTimeout: 10 * time.Second, // the client's, as pathway worker sets it
					}
					wg.Go(func() {
						for {
							n, err := d.RunOnce(context.Background())
							if err != nil {
								b.Error(err)
								return
							}
							if n == 0 {
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				if got.Load() != int64(b.N) {
					b.Fatalf("partner received %d bundles, want %d", got.Load(), b.N)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "bundles/s")
			})
		}
	}
}

// BenchmarkDeliverBaseline POSTs the same bundle to the same partner with
// net/http and no outbox: the floor BenchmarkDeliver is measured against.
func BenchmarkDeliverBaseline(b *testing.B) {
	payload := referralBundle(b, 1)
	srv, _ := instantPartner(b)
	for _, workers := range []int{1, 4} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers * 2}}
			var next atomic.Int64
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						resp, err := hc.Post(srv.URL, "application/fhir+json", bytes.NewReader(payload))
						if err != nil {
							b.Error(err)
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "bundles/s")
		})
	}
}

// BenchmarkSyncTaskUpdates is pathway sync taking Task changes from a
// partner that hosts its Tasks, on each store: one op is one Task read
// from the partner, found accepted with a note, checked against the state
// machine, stored as a new version and queued back to the referrer
// (filtered for it), through the HTTP client on loopback. search reads
// the Tasks a page (DefaultTaskCount) at a time and takes each page in one
// transaction; read is the fallback, a GET per Task; +audit logs each
// change's flow-back decision, as pathway sync does. Run with
// -benchtime 10000x for the 10,000 updates.
func BenchmarkSyncTaskUpdates(b *testing.B) {
	stores := map[string]func(testing.TB) string{"sqlite": sqliteURL, "postgres": storetest.PostgresURL}
	for _, name := range []string{"sqlite", "postgres"} {
		newURL := stores[name]
		if name == "postgres" && !storetest.PostgresAvailable() {
			b.Log(storetest.PostgresEnv + " not set: PostgreSQL not measured")
			continue
		}
		for _, c := range []struct {
			label   string
			mode    TaskPolling
			audited bool
		}{{"search", TaskPollingSearch, false}, {"search+audit", TaskPollingSearch, true}, {"read", TaskPollingRead, false}} {
			b.Run(name+"/"+c.label, func(b *testing.B) { benchSyncTaskUpdates(b, newURL(b), c.mode, c.audited) })
		}
	}
}

func benchSyncTaskUpdates(b *testing.B, url string, mode TaskPolling, audited bool) {
	h := newSyncHarness(b, url)
	if audited {
		h.pipe.Audit = &Auditor{Config: h.cfg.Raw}
	}
	ctx := b.Context()
	_, srv := newClinic(b, nil, nil)
	clinic := srv.Config.Handler.(*clinicServer)
	h.cfg.Partners["clinic-riverside"].Endpoint = "http://127.0.0.1:1/fhir"
	if _, err := h.store.Put(ctx, store.Resource{Type: "Patient", ID: ptID, Source: "clinic-riverside", Format: FormatJSON,
		Data: []byte(`{"resourceType":"Patient","id":"` + ptID + `","name":[{"family":"Example"}]}`), Patient: "Patient/" + ptID}); err != nil {
		b.Fatal(err)
	}
	rows := make([]store.Resource, 0, b.N)
	for i := range b.N {
		id := fhir.NewID("bench", strconv.Itoa(i))
		rows = append(rows, store.Resource{Type: "Task", ID: id, Source: "clinic-riverside", Format: FormatJSON, Data: []byte(taskJSON(id, "requested", "")),
			Patient: "Patient/" + ptID, Status: "requested", Owner: "Organization/community-garden", Requester: "Organization/clinic-riverside"})
		clinic.setTask(id, taskJSON(id, "accepted", "", "first session on Monday"))
	}
	for i := 0; i < len(rows); i += 500 {
		if err := h.store.PutBatch(ctx, rows[i:min(i+500, len(rows))]); err != nil {
			b.Fatal(err)
		}
	}
	rows = nil // stored: not kept live through the measurement
	clinic.mu.Lock()
	clinic.refreshTasks() // the partner's changes, made before the sync
	clinic.mu.Unlock()
	s := h.syncer(b, "community-garden", srv.URL+"/fhir")
	s.TaskPolling = mode
	var rep SyncReport
	cpu0 := processCPU()
	b.ResetTimer()
	if err := s.PollTasks(ctx, &rep); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	// CPU time is steadier than wall time on a shared machine; it counts
	// the clinic server's share too (the same process).
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
	if rep.TasksUpdated != b.N || rep.TasksSentBack != b.N {
		b.Fatalf("updated %d and sent back %d of %d Tasks: %+v", rep.TasksUpdated, rep.TasksSentBack, b.N, rep)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
