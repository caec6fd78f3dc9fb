package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"

	"github.com/pathway-fhir/pathway/exchange"
	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/policy"
	"github.com/pathway-fhir/pathway/store"
)

// Options configure a Server.
type Options struct {
	// Store holds the resources, the outbox and the audit log. Required.
	Store *store.Store
	// Pipeline is the exchange of the network (its Config and Engine):
	// reads are filtered through it, Task changes travel back through it.
	// Required.
	Pipeline *exchange.Pipeline
	// Audit, when set, logs every API access (reads in batches, changes
	// in the transaction that makes them).
	Audit *exchange.Auditor
	// BaseURL is the public URL of the FHIR base ("https://pathway.example.org/fhir"),
	// for fullUrls and paging links. Default: from the request's Host.
	BaseURL string
	// Rate and Burst limit each partner's requests (per second, and the
	// bucket size). Defaults 50 and 100.
	Rate  float64
	Burst int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger gets one line per request: method, route, status, partner,
	// resourceType/id; never a body, a query value or a token.
	Logger *slog.Logger
	// Ready, when set, reports whether the server should take traffic
	// (the worker and the store are up); /readyz calls it.
	Ready func(ctx context.Context) error
}

// Server is Pathway's FHIR R4 API for partners and auditors.
type Server struct {
	o       Options
	cfg     *exchange.Config
	tokens  map[[sha256.Size]byte]*caller
	callers map[string]*caller // by partner id
	smart   *smart
	mux     *http.ServeMux
	metrics *Metrics
	limits  *limiter
	access  *accessLog
	cap     []byte // the CapabilityStatement, as served
}

// caller is an authenticated partner.
type caller struct {
	id      string
	ref     string // Organization/id
	partner *policy.Partner
	auditor bool
	// scopes limit what an access token may do (SMART system scopes);
	// nil for a static token, which may do all its role allows.
	scopes []exchange.Scope
}

// New builds a Server from the network's configuration: every partner
// with api.token_sha256 hashes can call it with one of those tokens, and
// every partner with an api.jwks_file can get access tokens at
// /auth/token (SMART Backend Services).
func New(o Options) (*Server, error) {
	if o.Store == nil || o.Pipeline == nil || o.Pipeline.Config == nil || o.Pipeline.Engine == nil {
		return nil, errors.New("server: Store and a Pipeline with its Config and Engine are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Rate <= 0 {
		o.Rate = 50
	}
	if o.Burst <= 0 {
		o.Burst = 100
	}
	s := &Server{o: o, cfg: o.Pipeline.Config, tokens: map[[sha256.Size]byte]*caller{}, callers: map[string]*caller{}, mux: http.NewServeMux(), metrics: NewMetrics()}
	for _, id := range s.cfg.Order {
		link := s.cfg.Partners[id]
		p := s.cfg.Policy.Partner(id)
		if link == nil || p == nil {
			continue
		}
		c := &caller{id: id, ref: "Organization/" + id, partner: p, auditor: p.Kind == policy.KindAuditor}
		s.callers[id] = c
		for _, h := range link.APITokens {
			if other, dup := s.tokens[h]; dup {
				return nil, fmt.Errorf("server: partners %s and %s share an API token", other.id, id)
			}
			s.tokens[h] = c
		}
	}
	s.limits = newLimiter(o.Rate, o.Burst, o.Now)
	if o.Audit != nil {
		s.access = newAccessLog(o.Store, o.Audit, o.Logger)
	}
	if err := s.setupSMART(); err != nil {
		return nil, err
	}
	tokenURL := tokenPlaceholder
	if o.BaseURL != "" {
		tokenURL = s.tokenURL(nil)
	}
	var err error
	if s.cap, err = capabilityStatement(o.Now(), tokenURL); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

// Metrics returns the server's metrics, for the worker and the
// decision counters to add to.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Close flushes the access log. Call it after the HTTP server has shut
// down.
func (s *Server) Close(ctx context.Context) error {
	if s.access == nil {
		return nil
	}
	return s.access.close(ctx)
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	m.HandleFunc("GET /readyz", s.readyz)
	m.HandleFunc("GET /metrics", s.serveMetrics)
	m.HandleFunc("GET /fhir/metadata", s.metadata)
	m.HandleFunc("POST "+tokenPath, s.token)
	m.HandleFunc("GET /.well-known/smart-configuration", s.smartConfiguration)
	m.HandleFunc("GET /fhir/.well-known/smart-configuration", s.smartConfiguration)
	m.Handle("GET /fhir/Task/{id}", s.authed("read", s.readTask))
	m.Handle("GET /fhir/Task/{id}/_history/{vid}", s.authed("vread", s.vreadTask))
	m.Handle("GET /fhir/Task", s.authed("search-type", s.searchTasks))
	m.Handle("PUT /fhir/Task/{id}", s.authed("update", s.updateTask))
	m.Handle("PATCH /fhir/Task/{id}", s.authed("patch", s.patchTask))
	for _, typ := range readableTypes {
		m.Handle("GET /fhir/"+typ+"/{id}", s.authed("read", s.readLinked(typ)))
	}
	m.Handle("PUT /fhir/Consent/{id}", s.authed("update", s.putConsent))
	m.Handle("POST /fhir", s.authed("transaction", s.intake))
	m.Handle("POST /fhir/{$}", s.authed("transaction", s.intake))
	m.Handle("GET /fhir/AuditEvent", s.authed("search-type", s.searchAuditEvents))
	m.HandleFunc("/fhir/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusNotFound, "api-not-supported", "this server does not support "+r.Method+" on this path: see /fhir/metadata for what it supports")
	})
}

// readableTypes are the resource types a partner may read when a Task of
// its points to them (focus, for, and what the referral bundle carried).
var readableTypes = []string{"ServiceRequest", "Patient", "Consent", "QuestionnaireResponse", "Flag", "Observation"}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.o.Now()
	rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	s.mux.ServeHTTP(rw, r)
	route := r.Pattern
	if route == "" {
		route = "unmatched"
	}
	s.metrics.request(route, rw.status, s.o.Now().Sub(start))
	s.o.Logger.LogAttrs(r.Context(), slog.LevelInfo, "api request", slog.String("method", r.Method), slog.String("route", route),
		slog.Int("status", rw.status), slog.String("partner", rw.partner), slog.String("ref", rw.ref))
}

// statusWriter remembers the status and who was served, for the log.
type statusWriter struct {
	http.ResponseWriter
	status       int
	partner, ref string
	wroteHeader  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

// authed authenticates the caller (a bearer token), applies its rate
// limit, and refuses auditors everything but the audit records.
func (s *Server) authed(interaction string, h func(w http.ResponseWriter, r *http.Request, c *caller)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		scheme, token, ok := strings.Cut(auth, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pathway"`)
			s.logAccess(r.Context(), anonymous, interaction, policy.Deny)
			s.fail(w, r, http.StatusUnauthorized, "api-login", "send the partner's API token as Authorization: Bearer <token>")
			return
		}
		hash := sha256.Sum256([]byte(strings.TrimSpace(token)))
		c := s.tokens[hash]
		if c == nil {
			var expired bool
			var err error
			if c, expired, err = s.lookup(r.Context(), hash, s.o.Now()); err != nil {
				s.internal(w, r, err)
				return
			}
			if expired {
				w.Header().Set("WWW-Authenticate", `Bearer realm="pathway", error="invalid_token", error_description="the access token has expired"`)
				s.logAccess(r.Context(), anonymous, interaction, policy.Deny)
				s.fail(w, r, http.StatusUnauthorized, "api-login", "the access token has expired: get a new one at "+tokenPath)
				return
			}
		}
		if c == nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pathway", error="invalid_token"`)
			s.logAccess(r.Context(), anonymous, interaction, policy.Deny)
			s.fail(w, r, http.StatusUnauthorized, "api-login", "the token is not one of a partner of this network")
			return
		}
		if sw, ok := w.(*statusWriter); ok {
			sw.partner = c.id
		}
		if wait, ok := s.limits.allow(c.id); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+0.999)))
			s.logAccess(r.Context(), c, interaction, policy.Deny)
			s.fail(w, r, http.StatusTooManyRequests, "api-throttled", "too many requests from this partner: retry after the time in Retry-After")
			return
		}
		isAudit := strings.HasPrefix(r.URL.Path, "/fhir/AuditEvent")
		if c.auditor != isAudit {
			if c.auditor {
				s.fail(w, r, http.StatusForbidden, "api-forbidden", "an auditor reads the audit records (AuditEvent) only")
			} else {
				s.fail(w, r, http.StatusForbidden, "api-forbidden", "only an auditor may read the audit records")
			}
			s.logAccess(r.Context(), c, interaction, policy.Deny)
			return
		}
		if !s.scoped(w, r, c, interaction) {
			return
		}
		// Every access is logged: the handler logs what it read or
		// changed; an exit that logged nothing (a refusal, an error) is
		// logged here by its status.
		mark := &accessMark{}
		r = r.WithContext(context.WithValue(r.Context(), markKey{}, mark))
		h(w, r, c)
		if !mark.done {
			effect := policy.Permit
			if sw, ok := w.(*statusWriter); ok && sw.status >= 400 {
				effect = policy.Deny
			}
			s.logAccess(r.Context(), c, interaction, effect)
		}
	})
}

// accessMark records that a request's access was logged.
type accessMark struct{ done bool }

type markKey struct{}

// anonymous stands for a caller without a valid token, in the audit log.
var anonymous = &caller{id: "unauthenticated", ref: "Device/unauthenticated"}

// fail writes an OperationOutcome. details must hold no personal data:
// statuses, codes, references and what to do.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, code, details string) {
	issues := fhir.Issues{{Severity: fhir.SeverityError, Code: code, Details: details}}
	s.outcome(w, status, issues)
}

func (s *Server) outcome(w http.ResponseWriter, status int, issues fhir.Issues) {
	data, err := fhir.Marshal(fhir.OperationOutcome(issues))
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(data)
}

// internal reports an unexpected error: logged by reference only, and
// answered with a generic OperationOutcome.
func (s *Server) internal(w http.ResponseWriter, r *http.Request, err error) {
	s.o.Logger.LogAttrs(r.Context(), slog.LevelError, "api error", slog.String("route", r.Pattern), slog.String("error", err.Error()))
	s.fail(w, r, http.StatusInternalServerError, "api-exception", "the server could not complete the request; it has been logged")
}

// writeResource writes one resource with its version headers.
func (s *Server) writeResource(w http.ResponseWriter, r *http.Request, status int, res proto.Message, version int64, updated time.Time) {
	res = proto.Clone(res) // filtered resources share parts with the parse cache
	setMeta(res, version, updated)
	data, err := fhir.Marshal(res)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if version > 0 {
		w.Header().Set("ETag", fmt.Sprintf(`W/"%d"`, version))
		w.Header().Set("Last-Modified", updated.UTC().Format(http.TimeFormat))
	}
	if sw, ok := w.(*statusWriter); ok {
		sw.ref = fhir.Key(res)
	}
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(data)
}

// setMeta sets meta.versionId and meta.lastUpdated of a resource.
func setMeta(res proto.Message, version int64, updated time.Time) {
	if version <= 0 {
		return
	}
	m := res.ProtoReflect()
	fd := m.Descriptor().Fields().ByName("meta")
	if fd == nil {
		return
	}
	var meta *dpb.Meta
	if m.Has(fd) {
		meta = proto.Clone(m.Get(fd).Message().Interface()).(*dpb.Meta)
	} else {
		meta = &dpb.Meta{}
	}
	meta.VersionId = &dpb.Id{Value: strconv.FormatInt(version, 10)}
	meta.LastUpdated = &dpb.Instant{ValueUs: updated.UnixMicro(), Timezone: "Z", Precision: dpb.Instant_MICROSECOND}
	m.Set(fd, protoreflect.ValueOfMessage(meta.ProtoReflect()))
}

func (s *Server) baseURL(r *http.Request) string {
	if s.o.BaseURL != "" {
		return strings.TrimRight(s.o.BaseURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/fhir"
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.o.Store.Count(ctx, "Task"); err != nil {
		http.Error(w, "store unavailable\n", http.StatusServiceUnavailable)
		return
	}
	if s.o.Ready != nil {
		if err := s.o.Ready(ctx); err != nil {
			http.Error(w, "not ready\n", http.StatusServiceUnavailable)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ready\n"))
}

func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.Write(s.capFor(r))
}

// limiter is a token bucket per partner (or per address, for the token
// endpoint). A bucket that has filled up again is the same as none, so the
// map is swept of them whenever it has doubled since the last sweep: it
// holds about the callers of the last burst/rate seconds, not every
// address ever seen.
type limiter struct {
	mu      sync.Mutex
	rate    float64
	burst   float64
	now     func() time.Time
	buckets map[string]*bucket
	sweepAt int // sweep when the map holds this many buckets
}

// minSweep is the map size below which a limiter never sweeps.
const minSweep = 1024

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(rate float64, burst int, now func() time.Time) *limiter {
	return &limiter{rate: rate, burst: float64(burst), now: now, buckets: map[string]*bucket{}, sweepAt: minSweep}
}

// sweep drops the buckets that are full again. l.mu is held.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
	l.sweepAt = max(minSweep, 2*len(l.buckets))
}

// allow takes a token for partner, or says how long until one is free.
func (l *limiter) allow(partner string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.buckets[partner]
	if b == nil {
		if len(l.buckets) >= l.sweepAt {
			l.sweep(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[partner] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return time.Duration((1 - b.tokens) / l.rate * float64(time.Second)), false
}
