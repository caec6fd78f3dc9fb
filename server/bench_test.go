package server

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"

	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/store"
	"github.com/pathway-fhir/pathway/store/storetest"
)

// benchStores are the stores the API benchmarks run on: each call of a
// benchmark function gets a new one (the testing package calls it again
// with a larger b.N).
func benchStores(b *testing.B) map[string]func(testing.TB) string {
	out := map[string]func(testing.TB) string{"sqlite": sqliteURL}
	if storetest.PostgresAvailable() {
		out["postgres"] = storetest.PostgresURL
	} else {
		b.Log(storetest.PostgresEnv + " not set: PostgreSQL not measured")
	}
	return out
}

// latencies collects request durations and reports p50 and p99.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) { l.mu.Lock(); l.d = append(l.d, d); l.mu.Unlock() }

func (l *latencies) report(b *testing.B, unit string) {
	slices.Sort(l.d)
	if len(l.d) == 0 {
		return
	}
	b.ReportMetric(float64(l.d[len(l.d)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(l.d[len(l.d)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
}

// get is a bare authorised GET through the HTTP stack on loopback.
func benchGet(b *testing.B, client *http.Client, url, token string) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
}

// BenchmarkTaskRead is an authorised Task read over HTTP on loopback: the
// token check, the store read, the Task filtered under the patient's
// consents and the partner's agreement, the access logged; 8 clients at
// once.
func BenchmarkTaskRead(b *testing.B) {
	for name, newURL := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			f := newFixture(b, newURL(b), func(o *Options) { o.Rate, o.Burst = 1e9, 1e9 })
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
			path := f.srv.URL + "/fhir/Task/" + f.tasks["clinic-riverside"][0]
			var lat latencies
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					t0 := time.Now()
					benchGet(b, client, path, tokClinic)
					lat.add(time.Since(t0))
				}
			})
			b.StopTimer()
			lat.report(b, "reads/s")
		})
	}
}

// BenchmarkTaskSearch is the owner's work list (two Tasks) with their
// ServiceRequests included.
func BenchmarkTaskSearch(b *testing.B) {
	for name, newURL := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			f := newFixture(b, newURL(b), func(o *Options) { o.Rate, o.Burst = 1e9, 1e9 })
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
			path := f.srv.URL + "/fhir/Task?status=requested&_include=Task:focus"
			var lat latencies
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					t0 := time.Now()
					benchGet(b, client, path, tokClinic)
					lat.add(time.Since(t0))
				}
			})
			b.StopTimer()
			lat.report(b, "searches/s")
		})
	}
}

// BenchmarkTaskUpdate is a Task change through PATCH: the state machine,
// a new version stored, the access logged in the same transaction. The
// Task moves between in-progress and on-hold; one client (updates of one
// Task are serialised by If-Match in practice).
func BenchmarkTaskUpdate(b *testing.B) {
	for name, newURL := range benchStores(b) {
		// One client, and several, each moving its own Task (partners
		// update their Tasks at the same time; one Task's updates are
		// serialised by If-Match in practice): the clinic's two Tasks of
		// the sample, and eight with three more copies of the sample.
		for _, clients := range []int{1, 2, 8} {
			label := name
			if clients > 1 {
				label += fmt.Sprintf("/clients=%d", clients)
			}
			b.Run(label, func(b *testing.B) { benchTaskUpdate(b, newURL, clients) })
		}
	}
}

// copySample ingests copies more of the sample referrals, each copy with
// ids of its own, and returns the Tasks the clinic may change, the
// fixture's first.
func copySample(b *testing.B, f *fixture, copies int) []string {
	ids := slices.Clone(f.tasks["clinic-riverside"])
	for k := range copies {
		for _, bundle := range sampleBundles(b) {
			data, err := fhir.Marshal(bundle)
			if err != nil {
				b.Fatal(err)
			}
			text := string(data)
			for _, e := range bundle.GetEntry() {
				id := fhir.IDOf(fhir.Unwrap(e.GetResource()))
				text = strings.ReplaceAll(text, id, fhir.NewID("bench:copy", id, strconv.Itoa(k)))
			}
			p := fhir.Parse([]byte(text))
			if !p.Valid() {
				b.Fatalf("copy %d: %v", k, p.Issues)
			}
			res, err := f.pipe.Ingest(b.Context(), "ngo-harbour", p.Resource.GetBundle())
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range res.Routes {
				if r.Partner != "clinic-riverside" || !res.Decisions[r.Partner].Permitted() {
					continue
				}
				ts, err := f.st.Search(b.Context(), store.Query{Type: "Task", Owner: "Organization/clinic-riverside", Patient: patientOf(p.Resource.GetBundle())})
				if err != nil || len(ts) != 1 {
					b.Fatalf("the copy's clinic Task: %d, %v", len(ts), err)
				}
				ids = append(ids, ts[0].ID)
			}
		}
	}
	return ids
}

// patientOf is the reference of the bundle's Patient.
func patientOf(b *rpb.Bundle) string {
	for _, e := range b.GetEntry() {
		if p := e.GetResource().GetPatient(); p != nil {
			return "Patient/" + p.GetId().GetValue()
		}
	}
	return ""
}

func benchTaskUpdate(b *testing.B, newURL func(testing.TB) string, clients int) {
	f := newFixture(b, newURL(b), func(o *Options) { o.Rate, o.Burst = 1e9, 1e9 })
	parallel := clients > 1
	client := &http.Client{}
	patch := func(id, ops string) {
		req, _ := http.NewRequest("PATCH", f.srv.URL+"/fhir/Task/"+id, bytes.NewReader([]byte(ops)))
		req.Header.Set("Authorization", "Bearer "+tokClinic)
		req.Header.Set("Content-Type", "application/json-patch+json")
		req.Header.Set("Prefer", "return=minimal")
		resp, err := client.Do(req)
		if err != nil {
			b.Error(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Errorf("PATCH %s: %d %s", ops, resp.StatusCode, body)
		}
	}
	ids := f.tasks["clinic-riverside"]
	if clients > len(ids) {
		ids = copySample(b, f, (clients-1)/len(ids))
	}
	if len(ids) < clients {
		b.Fatalf("the clinic has %d Tasks, want %d", len(ids), clients)
	}
	ids = ids[:clients]
	for _, id := range ids {
		patch(id, `[{"op":"replace","path":"/status","value":"accepted"}]`)
		patch(id, `[{"op":"replace","path":"/status","value":"in-progress"}]`)
	}
	var lat latencies
	b.ResetTimer()
	var wg sync.WaitGroup
	for k, id := range ids {
		n := b.N / len(ids)
		if k < b.N%len(ids) {
			n++
		}
		wg.Go(func() {
			for i := range n {
				ops := `[{"op":"replace","path":"/status","value":"in-progress"}]`
				if i%2 == 0 {
					ops = fmt.Sprintf(`[{"op":"replace","path":"/status","value":"on-hold"},{"op":"add","path":"/statusReason","value":{"text":"waiting %d"}}]`, i)
				}
				t0 := time.Now()
				patch(id, ops)
				lat.add(time.Since(t0))
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if parallel {
		b.ReportMetric(float64(len(ids)), "clients")
	}
	lat.report(b, "updates/s")
}
