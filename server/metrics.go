package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pathway-fhir/pathway/store"
)

// Metrics counts what Prometheus scrapes from /metrics: API requests by
// route and status, decisions by effect, deliveries by outcome; the
// outbox's depth and age are read from the store at each scrape.
type Metrics struct {
	mu         sync.Mutex
	requests   map[[2]string]uint64 // route, code
	seconds    map[string]float64   // route
	decisions  map[string]uint64    // effect
	deliveries map[string]uint64    // outcome
}

// NewMetrics returns empty metrics.
func NewMetrics() *Metrics {
	return &Metrics{requests: map[[2]string]uint64{}, seconds: map[string]float64{}, decisions: map[string]uint64{}, deliveries: map[string]uint64{}}
}

func (m *Metrics) request(route string, code int, d time.Duration) {
	m.mu.Lock()
	m.requests[[2]string{route, fmt.Sprint(code)}]++
	m.seconds[route] += d.Seconds()
	m.mu.Unlock()
}

// Decision counts a decision by its effect (permit, deny, no-consent).
func (m *Metrics) Decision(effect string) {
	m.mu.Lock()
	m.decisions[effect]++
	m.mu.Unlock()
}

// Delivery counts a delivery attempt by its outcome.
func (m *Metrics) Delivery(outcome string) {
	m.mu.Lock()
	m.deliveries[outcome]++
	m.mu.Unlock()
}

// write writes the metrics in the Prometheus text format.
func (m *Metrics) write(w io.Writer, stats store.OutboxStats) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintln(w, "# HELP pathway_api_requests_total FHIR API requests by route and HTTP status.")
	fmt.Fprintln(w, "# TYPE pathway_api_requests_total counter")
	keys := make([][2]string, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int { return strings.Compare(a[0]+a[1], b[0]+b[1]) })
	for _, k := range keys {
		fmt.Fprintf(w, "pathway_api_requests_total{route=%q,code=%q} %d\n", k[0], k[1], m.requests[k])
	}
	fmt.Fprintln(w, "# HELP pathway_api_request_seconds_total Time spent answering FHIR API requests, by route.")
	fmt.Fprintln(w, "# TYPE pathway_api_request_seconds_total counter")
	for _, r := range sorted(m.seconds) {
		fmt.Fprintf(w, "pathway_api_request_seconds_total{route=%q} %g\n", r, m.seconds[r])
	}
	fmt.Fprintln(w, "# HELP pathway_decisions_total Purpose-limitation decisions by effect.")
	fmt.Fprintln(w, "# TYPE pathway_decisions_total counter")
	for _, e := range sorted(m.decisions) {
		fmt.Fprintf(w, "pathway_decisions_total{effect=%q} %d\n", e, m.decisions[e])
	}
	fmt.Fprintln(w, "# HELP pathway_deliveries_total Outbox delivery attempts by outcome.")
	fmt.Fprintln(w, "# TYPE pathway_deliveries_total counter")
	for _, o := range sorted(m.deliveries) {
		fmt.Fprintf(w, "pathway_deliveries_total{outcome=%q} %d\n", o, m.deliveries[o])
	}
	fmt.Fprintln(w, "# HELP pathway_outbox_messages Outbox messages by state.")
	fmt.Fprintln(w, "# TYPE pathway_outbox_messages gauge")
	for _, st := range []store.MessageState{store.StatePending, store.StateInflight, store.StateDelivered, store.StateDead, store.StateWithheld} {
		fmt.Fprintf(w, "pathway_outbox_messages{state=%q} %d\n", st, stats.Counts[st])
	}
	fmt.Fprintln(w, "# HELP pathway_held_messages Sends held until a consent permits them (pathway referrals --held).")
	fmt.Fprintln(w, "# TYPE pathway_held_messages gauge")
	fmt.Fprintf(w, "pathway_held_messages %d\n", stats.Held)
	fmt.Fprintln(w, "# HELP pathway_outbox_oldest_waiting_seconds Age of the oldest pending or inflight message.")
	fmt.Fprintln(w, "# TYPE pathway_outbox_oldest_waiting_seconds gauge")
	fmt.Fprintf(w, "pathway_outbox_oldest_waiting_seconds %g\n", stats.OldestWaiting.Seconds())
}

func sorted[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	stats, err := s.o.Store.OutboxStats(ctx)
	if err != nil {
		http.Error(w, "store unavailable\n", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	s.metrics.write(w, stats)
}
