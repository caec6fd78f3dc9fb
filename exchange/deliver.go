package exchange

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-resty/resty/v2"
	"github.com/pathway-fhir/pathway/store"
)

// Target is where and how a partner receives bundles.
type Target struct {
	// BaseURL is the partner's FHIR base; transaction bundles are POSTed
	// to it.
	BaseURL string
	// Auth adds credentials to each request; nil sends none.
	Auth Authenticator
	// Client sends to this partner (NewPartnerClient: its TLS settings,
	// the request timeout); nil uses the Deliverer's Client.
	Client *resty.Client
}

// Authenticator adds a partner's credentials to a request.
type Authenticator interface {
	Authorize(ctx context.Context, r *resty.Request) error
}

// Prepared is what a message becomes at send time, decided against the
// consents and agreements as they are now.
type Prepared struct {
	// Bundle is the transaction Bundle to send, already filtered.
	Bundle []byte
	// Withhold, when not empty, says why nothing may be sent any more
	// (a consent revoked after enqueue). It names references and codes,
	// never personal data.
	Withhold string
	// Decision, when the pipeline audits, is the send-time decision for
	// the audit log (Result.Decision, for OnSettle).
	Decision *DecisionRecord
}

// Outcome is what became of one delivery attempt.
type Outcome string

const (
	OutcomeDelivered Outcome = "delivered"
	OutcomeRetry     Outcome = "retry"
	OutcomeDead      Outcome = "dead"
	OutcomeWithheld  Outcome = "withheld"
	OutcomeLeaseLost Outcome = "lease-lost"
	OutcomeReleased  Outcome = "released"
)

// Result reports one attempt, for metrics and the audit log.
type Result struct {
	Message store.Message
	Outcome Outcome
	// Status is the partner's HTTP status, 0 without a response.
	Status int
	// Reason explains a retry, dead letter or withholding.
	Reason string
	// Sent is the exact bundle sent (nil if nothing was sent).
	Sent []byte
	// RetryAt is when a retried message is due again.
	RetryAt time.Time
	// Endpoint is the partner's FHIR base URL, once known.
	Endpoint string
	// Decision is Prepared.Decision.
	Decision *DecisionRecord
}

// RetryPolicy bounds redelivery.
type RetryPolicy struct {
	// MaxAttempts is how many sends are tried before dead-lettering.
	MaxAttempts int
	// Base is the first backoff; each later one doubles, up to Max.
	Base, Max time.Duration
}

// DefaultRetryPolicy tries for about a day: 1s, 2s, 4s... capped at an hour.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 30, Base: time.Second, Max: time.Hour}

// Backoff returns the wait before the attempt after attempt (from 1), with
// "equal jitter": half the exponential step plus a random part of the
// other half, so workers that failed together do not retry together.
// rnd returns a number in [0, 1).
func (p RetryPolicy) Backoff(attempt int, rnd func() float64) time.Duration {
	d := p.Base
	for i := 1; i < attempt && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	half := d / 2
	return half + time.Duration(rnd()*float64(d-half))
}

// Deliverer claims outbox messages and sends them to partners. Several
// Deliverers (in one process or many) may run on one store: each needs
// its own Owner.
type Deliverer struct {
	Store *store.Store
	// Owner names this worker in leases: unique per running worker.
	Owner string
	// Target finds a partner's endpoint.
	Target func(partner string) (Target, error)
	// Prepare re-decides a message against the consents as they are now
	// and returns what to send.
	Prepare func(ctx context.Context, m store.Message) (Prepared, error)
	// Client sends to partners whose Target has no Client of its own.
	Client *resty.Client
	Retry  RetryPolicy
	// Lease is how long a claim lasts; each message's lease is renewed
	// for as long again just before it is sent, so it must outlast the
	// client's timeout (one send), not the batch. Batch is how many
	// messages one claim takes.
	Lease time.Duration
	Batch int
	// SendTimeout, when set, is the longest a send can take (the clients'
	// timeout). A message whose claim has at least that long to run, and
	// a tenth of the lease more, is sent without renewing its lease: no
	// other worker can claim it before the send is over. Zero renews
	// every lease.
	SendTimeout time.Duration
	// Now and Rand default to time.Now and math/rand/v2.
	Now  func() time.Time
	Rand func() float64
	// OnResult, if set, sees every attempt (metrics), after it is settled.
	OnResult func(ctx context.Context, r Result)
	// OnSettle, if set, runs inside the transaction that marks a message
	// delivered or withheld, so that what it writes (the audit log's
	// decision and disclosure: Auditor.Settled) commits with the state
	// change or not at all. If it fails, the message stays inflight and is
	// claimed again when its lease runs out (a resend is idempotent).
	OnSettle func(ctx context.Context, tx *store.Tx, r Result) error
	Logger   *slog.Logger
}

// maxResponseBytes caps what is read of a partner's response.
const maxResponseBytes = 1 << 20

// NewClient returns a resty client for partner deliveries: a timeout on
// every request, no retries of its own (the outbox owns redelivery), a
// capped response body, and no logging of requests or responses.
func NewClient(timeout time.Duration, transport http.RoundTripper) *resty.Client {
	hc := &http.Client{Timeout: timeout}
	if transport != nil {
		hc.Transport = transport
	}
	c := resty.NewWithClient(hc)
	c.SetRetryCount(0)
	c.SetResponseBodyLimit(maxResponseBytes)
	c.SetLogger(quietLogger{})
	c.SetDisableWarn(true)
	c.SetHeader("User-Agent", "pathway")
	return c
}

// NewPartnerClient returns a client for one partner, as NewClient, with
// its own connection pool that connects with the partner's TLS settings
// (its CA, a client certificate for mutual TLS, the server name; TLS 1.2
// at least). The same client should serve the partner's OAuth token
// endpoint, so that both see the same certificates.
func NewPartnerClient(timeout time.Duration, s TLSSettings) (*resty.Client, error) {
	tc, err := TLSConfig(s.CAFile, s.CertFile, s.KeyFile, s.ServerName)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return NewClient(timeout, tr), nil
}

// quietLogger drops resty's own log lines, which could quote bodies.
type quietLogger struct{}

func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Warnf(string, ...any)  {}
func (quietLogger) Debugf(string, ...any) {}

func (d *Deliverer) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Deliverer) rand() float64 {
	if d.Rand != nil {
		return d.Rand()
	}
	return rand.Float64()
}

func (d *Deliverer) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// RunOnce claims one batch and delivers it. It returns how many messages
// it claimed; 0 means nothing was due.
func (d *Deliverer) RunOnce(ctx context.Context) (int, error) {
	if d.Lease <= 0 || d.Batch <= 0 || d.Owner == "" || d.Target == nil || d.Prepare == nil {
		return 0, errors.New("deliverer: Owner, Target, Prepare, a positive Lease and Batch are required")
	}
	ms, err := d.Store.Claim(ctx, d.Owner, d.Batch, d.Lease)
	if err != nil {
		return 0, err
	}
	for i, m := range ms {
		if ctx.Err() != nil {
			// Shutting down: give the rest back untouched.
			d.releaseAll(ms[i:])
			return len(ms), ctx.Err()
		}
		r := d.deliver(ctx, m)
		if r.Outcome == OutcomeReleased {
			d.releaseAll(ms[i+1:])
			return len(ms), ctx.Err()
		}
	}
	return len(ms), nil
}

// Run delivers until ctx ends, polling every poll when nothing is due.
// On shutdown it releases what it holds unsent.
func (d *Deliverer) Run(ctx context.Context, poll time.Duration) error {
	for {
		n, err := d.RunOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			d.logger().LogAttrs(ctx, slog.LevelError, "claiming outbox messages", slog.String("error", err.Error()))
		}
		if n > 0 && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
		}
	}
}

func (d *Deliverer) releaseAll(ms []store.Message) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, m := range ms {
		if err := d.Store.Release(ctx, m.ID, d.Owner); err != nil && !errors.Is(err, store.ErrLeaseLost) {
			d.logger().LogAttrs(ctx, slog.LevelError, "releasing outbox message", slog.Any("message", m), slog.String("error", err.Error()))
		}
	}
}

// deliver makes one attempt at m and settles it in the store.
func (d *Deliverer) deliver(ctx context.Context, m store.Message) Result {
	r := Result{Message: m}
	p, err := d.Prepare(ctx, m)
	r.Decision = p.Decision
	switch {
	case err != nil && ctx.Err() != nil:
		r.Outcome = OutcomeReleased
	case err != nil:
		// The decision could not be made now (a store error): try later.
		r = d.retryOrDie(r, "preparing the bundle: "+err.Error())
	case p.Withhold != "":
		r.Outcome, r.Reason = OutcomeWithheld, p.Withhold
	default:
		r = d.send(ctx, r, p.Bundle)
	}
	d.settle(ctx, &r)
	if d.OnResult != nil {
		d.OnResult(ctx, r)
	}
	d.logger().LogAttrs(ctx, slog.LevelInfo, "outbox delivery", slog.Any("message", m),
		slog.String("outcome", string(r.Outcome)), slog.Int("status", r.Status), slog.Int("attempt", m.Attempts), slog.String("reason", r.Reason))
	return r
}

func (d *Deliverer) send(ctx context.Context, r Result, bundle []byte) Result {
	t, err := d.Target(r.Message.Partner)
	if err != nil {
		return d.dead(r, "no endpoint for partner "+r.Message.Partner+": "+err.Error())
	}
	client := t.Client
	if client == nil {
		client = d.Client
	}
	if client == nil {
		return d.dead(r, "no HTTP client for partner "+r.Message.Partner)
	}
	req := client.R().SetContext(ctx).
		SetHeader("Content-Type", "application/fhir+json").
		SetHeader("Accept", "application/fhir+json").
		SetHeader("Prefer", "return=minimal").
		SetBody(bundle)
	if t.Auth != nil {
		if err := t.Auth.Authorize(ctx, req); err != nil {
			if ctx.Err() != nil {
				r.Outcome = OutcomeReleased
				return r
			}
			return d.retryOrDie(r, "authenticating to "+r.Message.Partner+": "+err.Error())
		}
	}
	// The batch's claim may be older than the lease by now (slow partners,
	// token requests): renew this message's lease just before sending it,
	// and send nothing if another worker holds it already; unless the
	// claim outlasts the send for sure.
	if !d.leaseOutlastsSend(r.Message) {
		if r, renewed := d.renew(ctx, r); !renewed {
			return r
		}
	}
	return d.post(r, t, req, bundle)
}

// leaseOutlastsSend reports whether m's claim lasts for a whole send and a
// margin from now, so that its lease need not be renewed first.
func (d *Deliverer) leaseOutlastsSend(m store.Message) bool {
	if d.SendTimeout <= 0 || m.LeaseUntil.IsZero() {
		return false
	}
	margin := max(time.Second, d.Lease/10)
	return m.LeaseUntil.Sub(d.now()) >= d.SendTimeout+margin
}

// renew renews the lease of r's message; when it cannot, it says what
// became of the attempt (nothing is sent).
func (d *Deliverer) renew(ctx context.Context, r Result) (Result, bool) {
	if err := d.Store.Extend(ctx, r.Message.ID, d.Owner, d.Lease); err != nil {
		switch {
		case errors.Is(err, store.ErrLeaseLost):
			r.Outcome, r.Reason = OutcomeLeaseLost, "lease lost before sending: another worker holds the message"
		case ctx.Err() != nil:
			r.Outcome = OutcomeReleased
		default:
			// Unsure whether the lease is still ours: do not send now.
			r.Outcome, r.Reason = OutcomeRetry, "renewing the lease: "+err.Error()
			r.RetryAt = d.now().Add(d.Retry.Backoff(r.Message.Attempts, d.rand))
		}
		return r, false
	}
	return r, true
}

// post sends bundle to t with req and says what became of the attempt.
func (d *Deliverer) post(r Result, t Target, req *resty.Request, bundle []byte) Result {
	ctx := req.Context()
	r.Sent = bundle
	r.Endpoint = strings.TrimRight(t.BaseURL, "/")
	resp, err := req.Post(r.Endpoint)
	if err != nil {
		if ctx.Err() != nil {
			// Shutting down mid-send: the partner may or may not have
			// it; the resend is idempotent, so release it.
			r.Outcome = OutcomeReleased
			return r
		}
		return d.retryOrDie(r, "no response: "+transportReason(err))
	}
	r.Status = resp.StatusCode()
	if body := resp.Body(); (r.Status < 200 || r.Status >= 300) && len(body) > 0 {
		// The partner's answer (an OperationOutcome) is kept for operators
		// on every retry, so a dead letter after the last attempt has it.
		r.Message.Response = bytes.Clone(body)
	}
	switch code := r.Status; {
	case code >= 200 && code < 300:
		r.Outcome = OutcomeDelivered
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		r = d.retryOrDie(r, "HTTP "+strconv.Itoa(code)+" from the partner")
		if after, ok := retryAfter(resp.Header().Get("Retry-After"), d.now()); ok && r.Outcome == OutcomeRetry && r.RetryAt.Before(d.now().Add(after)) {
			r.RetryAt = d.now().Add(after)
		}
	case code == http.StatusUnauthorized:
		// An access token may have expired: fetch a new one next time.
		if inv, ok := t.Auth.(interface{ Invalidate() }); ok {
			inv.Invalidate()
		}
		r = d.retryOrDie(r, "HTTP 401 from the partner: credentials refused")
	case code == http.StatusRequestTimeout || code >= 500:
		r = d.retryOrDie(r, "HTTP "+strconv.Itoa(code)+" from the partner")
	default:
		// The partner refuses this bundle: resending will not help.
		r = d.dead(r, "HTTP "+strconv.Itoa(code)+" from the partner: refused")
	}
	return r
}

func (d *Deliverer) retryOrDie(r Result, reason string) Result {
	if r.Message.Attempts >= d.Retry.MaxAttempts {
		return d.dead(r, fmt.Sprintf("gave up after %d attempts: %s", r.Message.Attempts, reason))
	}
	r.Outcome, r.Reason = OutcomeRetry, reason
	r.RetryAt = d.now().Add(d.Retry.Backoff(r.Message.Attempts, d.rand))
	return r
}

func (d *Deliverer) dead(r Result, reason string) Result {
	r.Outcome, r.Reason = OutcomeDead, reason
	return r
}

// settle records r in the store. A lost lease turns it into
// OutcomeLeaseLost: another worker holds the message now.
func (d *Deliverer) settle(ctx context.Context, r *Result) {
	// Settle even when ctx was cancelled during the send.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	id := r.Message.ID
	var err error
	switch r.Outcome {
	case OutcomeDelivered, OutcomeWithheld:
		if d.OnSettle != nil {
			err = d.Store.WithTx(sctx, func(tx *store.Tx) error {
				// The decided bundle's row before the message's: an ingest
				// (and a release) of the same referral takes them in that
				// order, and the two must never wait for each other.
				if r.Decision != nil && r.Decision.DecidedID != "" {
					if _, err := tx.LockHeads(sctx, "Bundle", []string{r.Decision.DecidedID}); err != nil {
						return err
					}
				}
				var err error
				if r.Outcome == OutcomeDelivered {
					err = tx.Ack(sctx, id, d.Owner)
				} else {
					err = tx.Withhold(sctx, id, d.Owner, r.Reason)
				}
				if err != nil {
					return err
				}
				return d.OnSettle(sctx, tx, *r)
			})
		} else if r.Outcome == OutcomeDelivered {
			err = d.Store.Ack(sctx, id, d.Owner)
		} else {
			err = d.Store.Withhold(sctx, id, d.Owner, r.Reason)
		}
	case OutcomeRetry:
		err = d.Store.Retry(sctx, id, d.Owner, r.RetryAt, r.Reason, r.Message.Response)
	case OutcomeDead:
		err = d.Store.DeadLetter(sctx, id, d.Owner, r.Reason, r.Message.Response)
	case OutcomeReleased:
		err = d.Store.Release(sctx, id, d.Owner)
	}
	if errors.Is(err, store.ErrLeaseLost) {
		r.Outcome = OutcomeLeaseLost
		return
	}
	if err != nil {
		// The message stays inflight and is claimed again when its lease
		// runs out: nothing is lost, a resend is idempotent.
		d.logger().LogAttrs(sctx, slog.LevelError, "settling outbox message", slog.Any("message", r.Message), slog.String("error", err.Error()))
	}
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, t.Sub(now)), true
	}
	return 0, false
}

// transportReason names a transport failure without URLs or bodies.
func transportReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, resty.ErrResponseBodyTooLarge):
		return "response larger than 1 MiB"
	}
	var (
		cve *tls.CertificateVerificationError
		hne x509.HostnameError
		uae x509.UnknownAuthorityError
		ae  tls.AlertError
	)
	switch {
	case errors.As(err, &cve), errors.As(err, &hne), errors.As(err, &uae):
		return "TLS: the partner's certificate is not trusted (check tls.ca_file and tls.server_name)"
	case errors.As(err, &ae):
		return "TLS: the partner refused the handshake (check tls.cert_file and tls.key_file)"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return "network error (" + oe.Op + ")"
	}
	if strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "connection reset") {
		return "connection closed by the partner"
	}
	return "transport error"
}
