package exchange

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/pathway-fhir/pathway/connectors"
	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/mappings"
	"github.com/pathway-fhir/pathway/store"
)

// DefaultSyncInterval is how often pathway sync polls a partner: the
// Gravity SDOH guide asks for at least daily and suggests 15 minutes.
const DefaultSyncInterval = 15 * time.Minute

// DefaultSyncRetry bounds the attempts of one request of a sync: a few,
// then the cycle ends with an error and the next cycle starts again from
// the stored watermark.
var DefaultSyncRetry = RetryPolicy{MaxAttempts: 5, Base: time.Second, Max: time.Minute}

// Syncer pulls new referrals from one clinic partner's FHIR server and
// polls the Tasks the partner hosts. One cycle is Run: Pull, then
// PollTasks. A Syncer is not safe for concurrent use; one per partner.
type Syncer struct {
	// Partner is the partner's id in the configuration: the source of
	// what is pulled and the owner of the Tasks polled.
	Partner string
	// Target is the partner's FHIR base URL, client and credentials.
	Target Target
	// Pipeline ingests what is pulled; its Store keeps the watermark.
	Pipeline *Pipeline
	// Mapping converts each ServiceRequest with its Patient (the built-in
	// fhir-referral).
	Mapping *mappings.Mapping
	// Categories, "system|code" each, filter the search by category
	// (any of them); none: every category.
	Categories []string
	// Count is the page size asked for (_count); 0: 50.
	Count int
	// TaskPolling is how the Tasks the partner hosts are read: a search
	// from a stored watermark, falling back to a GET per Task when the
	// partner's server refuses the search with 400 (TaskPollingAuto, the
	// default), or always one or the other.
	TaskPolling TaskPolling
	// TaskCount is the Task page size asked for, and the Tasks taken in
	// one transaction (0: DefaultTaskCount).
	TaskCount int
	// Retry bounds each request's attempts (DefaultSyncRetry when zero).
	// 429 and 503 wait for Retry-After when it says; other 5xx and
	// transport errors back off.
	Retry RetryPolicy
	// MaxWait caps one Retry-After wait inside a cycle (default 5
	// minutes): a partner asking for longer ends the cycle, and
	// SyncReport.Wait tells the caller not to come back before.
	MaxWait time.Duration
	// Sleep waits d or until ctx ends (tests replace it).
	Sleep func(ctx context.Context, d time.Duration) error
	Now   func() time.Time
	Rand  func() float64
	// Progress, if set, is told what happens, in lines fit for a log:
	// counts, paths and resourceType/id, never personal data.
	Progress func(msg string)

	// taskSearchRefused: the partner refused the Task search (400); Auto
	// reads each Task from then on.
	taskSearchRefused bool
	// client is the default client when Target has none, kept so that
	// connections are reused.
	client *resty.Client
	// beforeCommit, in tests, runs last in each Task page's transaction.
	beforeCommit func(tx *store.Tx) error
}

// SyncReport is what one cycle did.
type SyncReport struct {
	Partner string `json:"partner"`
	// Pages and Pulled count the search pages read and the referrals
	// (ServiceRequests) on them.
	Pages  int `json:"pages"`
	Pulled int `json:"pulled"`
	// Ingested went through the pipeline; Skipped were pulled before (at
	// the watermark); Rejected could not be converted (kept in the store
	// with their reasons).
	Ingested int `json:"ingested"`
	Skipped  int `json:"skipped"`
	Rejected int `json:"rejected"`
	// Routed and Unroutable split Ingested; Enqueued counts new outbox
	// messages.
	Routed     int `json:"routed"`
	Unroutable int `json:"unroutable"`
	Enqueued   int `json:"enqueued"`
	// TasksPolled were read from the partner; TasksUpdated changed and
	// were stored; TasksRefused changed in a way the state machine
	// refuses (Refusals says how); TasksSentBack were enqueued back to
	// the referrer.
	// TaskPolling says how Tasks were read ("search" or "read"),
	// TaskPages counts the Task search pages and TaskWatermark is the
	// stored watermark of the Task search after the cycle.
	TaskPolling   TaskPolling `json:"task_polling,omitempty"`
	TaskPages     int         `json:"task_pages"`
	TaskWatermark time.Time   `json:"task_watermark"`
	TasksPolled   int         `json:"tasks_polled"`
	TasksUpdated  int         `json:"tasks_updated"`
	TasksRefused  int         `json:"tasks_refused"`
	TasksSentBack int         `json:"tasks_sent_back"`
	Refusals      []string    `json:"refusals,omitempty"`
	// Watermark is the stored watermark after the cycle.
	Watermark time.Time `json:"watermark"`
	// Wait, when set, is how long the partner asked not to be called.
	Wait time.Duration `json:"-"`
}

// SyncError is a request of a sync that failed for good in this cycle.
// It names the partner and the URL path, never a body or a query value.
type SyncError struct {
	Partner, Method, Path string
	// Status is the partner's last HTTP status, 0 without a response.
	Status int
	Reason string
}

func (e *SyncError) Error() string {
	return fmt.Sprintf("syncing with partner %s: %s %s: %s", e.Partner, e.Method, e.Path, e.Reason)
}

func (s *Syncer) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Syncer) progress(format string, args ...any) {
	if s.Progress != nil {
		s.Progress(fmt.Sprintf(format, args...))
	}
}

func (s *Syncer) sleep(ctx context.Context, d time.Duration) error {
	if s.Sleep != nil {
		return s.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (s *Syncer) retry() RetryPolicy {
	if s.Retry.MaxAttempts > 0 {
		return s.Retry
	}
	return DefaultSyncRetry
}

func (s *Syncer) base() string { return strings.TrimRight(s.Target.BaseURL, "/") }

// Run is one cycle: Pull, then PollTasks. A failed pull still polls the
// Tasks; the first error is returned with the report of what was done.
func (s *Syncer) Run(ctx context.Context) (SyncReport, error) {
	rep := SyncReport{Partner: s.Partner}
	err := s.Pull(ctx, &rep)
	if ctx.Err() != nil {
		return rep, err
	}
	if perr := s.PollTasks(ctx, &rep); err == nil {
		err = perr
	}
	return rep, err
}

// Pull searches the partner's ServiceRequests updated since the stored
// watermark, sorted by _lastUpdated, with their subjects, follows every
// next link, and ingests each referral with the partner as its source.
// After each page it stores the page's largest meta.lastUpdated, so a
// restart resumes after the last page ingested.
//
// The search is _lastUpdated=ge<watermark>, not gt: referrals that share
// the watermark's instant across a page boundary would otherwise be lost;
// the ones already pulled at that instant (SyncState.AtWatermark) are
// skipped, so none is ingested twice.
func (s *Syncer) Pull(ctx context.Context, rep *SyncReport) error {
	st := s.Pipeline.Store
	state, err := st.SyncState(ctx, s.Partner)
	if err != nil {
		return err
	}
	rep.Watermark = state.Watermark
	q := url.Values{}
	if !state.Watermark.IsZero() {
		q.Set("_lastUpdated", "ge"+state.Watermark.UTC().Format(time.RFC3339Nano))
	}
	q.Set("_include", "ServiceRequest:subject")
	q.Set("_sort", "_lastUpdated")
	count := s.Count
	if count <= 0 {
		count = 50
	}
	q.Set("_count", strconv.Itoa(count))
	if len(s.Categories) > 0 {
		q.Set("category", strings.Join(s.Categories, ","))
	}
	next := s.base() + "/ServiceRequest?" + q.Encode()
	visited := map[string]bool{}
	for next != "" {
		// A server whose next links repeat, or never end, must not hold
		// the cycle (and the Task polling after it) forever.
		if visited[next] || len(visited) >= maxSyncPages {
			return &SyncError{Partner: s.Partner, Method: "GET", Path: "/ServiceRequest", Reason: fmt.Sprintf("the server's next links repeat or run past %d pages in one cycle: stopped (the watermark keeps what was taken)", maxSyncPages)}
		}
		visited[next] = true
		body, err := s.get(ctx, next, rep)
		if err != nil {
			return err
		}
		rep.Pages++
		if next, err = s.page(ctx, body, &state, rep); err != nil {
			return err
		}
	}
	return nil
}

// maxSyncPages caps the pages one pull cycle follows.
const maxSyncPages = 10000

// page ingests one searchset page and advances the watermark; it returns
// the next link ("" on the last page).
func (s *Syncer) page(ctx context.Context, body []byte, state *store.SyncState, rep *SyncReport) (string, error) {
	path := "ServiceRequest search page " + strconv.Itoa(rep.Pages)
	parsed := fhir.Parse(body)
	b := parsed.Resource.GetBundle()
	if b == nil {
		reason := "the answer is not a FHIR Bundle"
		if len(parsed.Issues) > 0 {
			reason += ": " + parsed.Issues[0].String()
		}
		return "", &SyncError{Partner: s.Partner, Method: "GET", Path: "/ServiceRequest", Reason: reason}
	}
	// Issues by entry, to reject the referrals they are about.
	entryIssues := map[int][]string{}
	for _, is := range parsed.Issues.Errors() {
		if i, ok := entryIndex(is.Path); ok {
			entryIssues[i] = append(entryIssues[i], "invalid at the partner: "+is.String())
		}
	}
	// The same document, as the mapping reads it (the connectors' FHIR
	// JSON source, as pathway convert and ingest read files).
	src, err := connectors.OpenJSONObject(bytes.NewReader(body), path)
	if err != nil {
		return "", err
	}
	rec, err := src.Next()
	src.Close()
	if err != nil || rec.Err != nil || rec.JSON == nil {
		return "", &SyncError{Partner: s.Partner, Method: "GET", Path: "/ServiceRequest", Reason: "the answer's JSON cannot be read as a record"}
	}
	records := map[int]mappings.FHIRRecord{}
	for _, fr := range mappings.FHIRRecords(rec.JSON) {
		if i, ok := entryIndex(fr.Path); ok {
			records[i] = fr
		}
	}
	pageMax := time.Time{}
	var atMax []string
	for i, e := range b.GetEntry() {
		sr := e.GetResource().GetServiceRequest()
		if sr == nil {
			continue
		}
		if m := e.GetSearch().GetMode(); m != nil && fhir.EnumCode(m.GetValue().Descriptor().Values().ByNumber(m.GetValue().Number())) == "include" {
			continue
		}
		rep.Pulled++
		ref := "ServiceRequest/" + sr.GetId().GetValue()
		if sr.GetId().GetValue() == "" {
			ref = e.GetFullUrl().GetValue()
		}
		var lu time.Time
		if us := sr.GetMeta().GetLastUpdated().GetValueUs(); us != 0 {
			lu = time.UnixMicro(us).UTC()
		}
		if !lu.IsZero() {
			switch {
			case lu.After(pageMax):
				pageMax, atMax = lu, []string{ref}
			case lu.Equal(pageMax):
				atMax = append(atMax, ref)
			}
		}
		if !lu.IsZero() && lu.Equal(state.Watermark) && slices.Contains(state.AtWatermark, ref) {
			rep.Skipped++
			continue
		}
		if !lu.IsZero() && !state.Watermark.IsZero() && lu.Before(state.Watermark) {
			// Not sorted as asked, or older than asked: pulled before.
			rep.Skipped++
			continue
		}
		reasons := entryIssues[i]
		fr, ok := records[i]
		switch {
		case len(reasons) > 0:
		case !ok:
			reasons = []string{"the referral could not be read as a record"}
		case fr.Err != nil:
			reasons = mappingReasons(fr.Err)
		}
		if len(reasons) == 0 {
			reasons, err = s.ingest(ctx, fr.Fields, rep)
			if err != nil {
				return "", fmt.Errorf("ingesting %s from partner %s: %w", ref, s.Partner, err)
			}
		}
		if len(reasons) > 0 {
			rep.Rejected++
			if err := s.Pipeline.Store.PutSyncReject(ctx, store.SyncReject{Partner: s.Partner, Resource: ref, LastUpdated: lu, Reasons: reasons}); err != nil {
				return "", err
			}
			s.progress("%s from %s: rejected (%d reasons, kept in the store)", ref, s.Partner, len(reasons))
		}
	}
	if !pageMax.IsZero() && !pageMax.Before(state.Watermark) {
		if err := s.Pipeline.Store.AdvanceSync(ctx, s.Partner, pageMax, atMax); err != nil {
			return "", err
		}
		if st, err := s.Pipeline.Store.SyncState(ctx, s.Partner); err == nil {
			*state = st
		}
	}
	rep.Watermark = state.Watermark
	s.progress("%s page %d: %d referrals, %d ingested, %d rejected so far; watermark %s", s.Partner, rep.Pages, rep.Pulled, rep.Ingested, rep.Rejected, state.Watermark.Format(time.RFC3339Nano))
	for _, l := range b.GetLink() {
		if l.GetRelation().GetValue() == "next" {
			next := l.GetUrl().GetValue()
			if err := s.sameServer(next, "/ServiceRequest"); err != nil {
				return "", err
			}
			return next, nil
		}
	}
	return "", nil
}

// sameServer refuses a next link to another server: the partner's
// credentials go to its own server only.
func (s *Syncer) sameServer(link, path string) error {
	u, err := url.Parse(link)
	base, berr := url.Parse(s.base())
	if err != nil || berr != nil || u.Scheme != base.Scheme || u.Host != base.Host {
		return &SyncError{Partner: s.Partner, Method: "GET", Path: path, Reason: "the next link points to another server than the partner's endpoint: not followed"}
	}
	return nil
}

// ingest converts one referral and runs it through the pipeline; it
// returns the reasons it was rejected, or an error the cycle stops on.
func (s *Syncer) ingest(ctx context.Context, fields mappings.Fields, rep *SyncReport) ([]string, error) {
	ref, err := s.Mapping.Apply(fields)
	if err != nil {
		return mappingReasons(err), nil
	}
	bundle, err := mappings.Build(ref)
	if err != nil {
		return mappingReasons(err), nil
	}
	if issues := fhir.Validate(bundle); issues.HasErrors() {
		var reasons []string
		for _, is := range issues.Errors() {
			reasons = append(reasons, "invalid bundle: "+is.String())
		}
		return reasons, nil
	}
	res, err := s.Pipeline.Ingest(ctx, s.Partner, bundle)
	if err != nil {
		return nil, err
	}
	rep.Ingested++
	if res.Unroutable != "" {
		rep.Unroutable++
	} else {
		rep.Routed++
	}
	rep.Enqueued += res.Enqueued
	return nil, nil
}

func mappingReasons(err error) []string {
	var re *mappings.RecordError
	if errors.As(err, &re) {
		out := make([]string, len(re.Problems))
		for i, p := range re.Problems {
			out[i] = p.String()
		}
		return out
	}
	return []string{err.Error()}
}

// entryIndex reads i of a path that starts "Bundle.entry[i]".
func entryIndex(path string) (int, bool) {
	rest, ok := strings.CutPrefix(path, "Bundle.entry[")
	if !ok {
		return 0, false
	}
	end := strings.IndexByte(rest, ']')
	if end < 0 {
		return 0, false
	}
	i, err := strconv.Atoi(rest[:end])
	return i, err == nil
}

// get reads one URL of the partner, retrying as Retry allows: 429 and 503
// wait for Retry-After (or back off), other 5xx, 408 and transport errors
// back off, a 401 fetches a new token once, other statuses fail at once.
func (s *Syncer) get(ctx context.Context, u string, rep *SyncReport) ([]byte, error) {
	path := u
	if pu, err := url.Parse(u); err == nil {
		path = pu.Path
		if bp, err := url.Parse(s.base()); err == nil {
			path = "/" + strings.TrimPrefix(strings.TrimPrefix(pu.Path, bp.Path), "/")
		}
	}
	fail := func(status int, reason string) error {
		return &SyncError{Partner: s.Partner, Method: "GET", Path: path, Status: status, Reason: reason}
	}
	client := s.Target.Client
	if client == nil {
		if s.client == nil {
			s.client = NewClient(30*time.Second, nil)
		}
		client = s.client
	}
	pol := s.retry()
	maxWait := s.MaxWait
	if maxWait <= 0 {
		maxWait = 5 * time.Minute
	}
	rnd := s.Rand
	if rnd == nil {
		rnd = rand.Float64
	}
	reauth := false
	for attempt := 1; ; attempt++ {
		req := client.R().SetContext(ctx).SetHeader("Accept", "application/fhir+json")
		if s.Target.Auth != nil {
			if err := s.Target.Auth.Authorize(ctx, req); err != nil {
				return nil, fail(0, "authenticating: "+err.Error())
			}
		}
		resp, err := req.Get(u)
		var (
			status int
			reason string
			wait   = pol.Backoff(attempt, rnd)
		)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			reason = "no response: " + transportReason(err)
		case resp.StatusCode() == http.StatusOK:
			return resp.Body(), nil
		default:
			status = resp.StatusCode()
			reason = "HTTP " + strconv.Itoa(status) + " from the partner"
			switch {
			case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
				if after, ok := retryAfter(resp.Header().Get("Retry-After"), s.now()); ok {
					if after > maxWait {
						rep.Wait = max(rep.Wait, after)
						return nil, fail(status, reason+": it asks to wait "+after.String()+", longer than one cycle waits")
					}
					wait = max(wait, after)
					rep.Wait = max(rep.Wait, after)
				}
			case status == http.StatusUnauthorized && !reauth:
				if inv, ok := s.Target.Auth.(interface{ Invalidate() }); ok {
					inv.Invalidate()
					reauth = true
					attempt--
					continue
				}
				return nil, fail(status, reason+": credentials refused")
			case status == http.StatusRequestTimeout || status >= 500:
			default:
				return nil, fail(status, reason)
			}
		}
		if attempt >= pol.MaxAttempts {
			return nil, fail(status, fmt.Sprintf("%s, after %d attempts", reason, attempt))
		}
		s.progress("%s: GET %s: %s; trying again in %s", s.Partner, path, reason, wait.Round(time.Millisecond))
		if err := s.sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}
