package exchange

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
