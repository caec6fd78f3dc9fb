package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/exchange"
	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/policy"
	"github.com/pathway-fhir/pathway/store"
)

// linkedTasks returns the caller's Tasks (as owner or requester) about the
// patient, at most a few: enough to know the caller has a referral of
// that patient.
func (s *Server) linkedTasks(ctx context.Context, c *caller, patient string) ([]store.Resource, error) {
	if patient == "" {
		return nil, nil
	}
	own, err := s.o.Store.Search(ctx, store.Query{Type: "Task", Patient: patient, Owner: c.ref, Limit: 10})
	if err != nil {
		return nil, err
	}
	req, err := s.o.Store.Search(ctx, store.Query{Type: "Task", Patient: patient, Requester: c.ref, Limit: 10})
	if err != nil {
		return nil, err
	}
	return append(own, req...), nil
}

// readLinked reads a resource of typ that one of the caller's Tasks is
// about (its focus, its patient, and what the referral carried about that
// patient), filtered for the caller under the consents now. Anything else
// is not found, whether or not it exists.
func (s *Server) readLinked(typ string) func(w http.ResponseWriter, r *http.Request, c *caller) {
	return func(w http.ResponseWriter, r *http.Request, c *caller) {
		ctx := r.Context()
		notFound := func() {
			s.logAccess(ctx, c, "read", policy.Deny)
			s.fail(w, r, http.StatusNotFound, "api-not-found", "no "+typ+" with this id is shared with you")
		}
		res, err := s.o.Store.Get(ctx, typ, r.PathValue("id"))
		if errors.Is(err, store.ErrNotFound) || err == nil && res.Format != exchange.FormatJSON {
			notFound()
			return
		}
		if err != nil {
			s.internal(w, r, err)
			return
		}
		tasks, err := s.linkedTasks(ctx, c, res.Patient)
		if err != nil {
			s.internal(w, r, err)
			return
		}
		if len(tasks) == 0 {
			notFound()
			return
		}
		referrer := false
		for _, t := range tasks {
			referrer = referrer || t.Requester == c.ref
		}
		v, err := s.o.Pipeline.ViewFor(ctx, c.id, res.Patient, []store.Resource{res}, referrer)
		if err != nil {
			s.internal(w, r, err)
			return
		}
		cr := v.Resources[res.Ref()]
		if cr == nil {
			notFound()
			return
		}
		s.logAccess(ctx, c, "read", policy.Permit, inputOf(res))
		s.writeResource(w, r, http.StatusOK, fhir.Unwrap(cr), res.Version, res.LastUpdated)
	}
}

// putConsent stores a new version of a Consent the caller may update: one
// about a patient the caller referred (a Task it requested). A revocation
// (status inactive, or a deny provision) takes effect at once: every later
// read, and every message still in the outbox, is decided again under it.
func (s *Server) putConsent(w http.ResponseWriter, r *http.Request, c *caller) {
	ctx := r.Context()
	id := r.PathValue("id")
	body, err := fhir.ReadAllLimited(http.MaxBytesReader(w, r.Body, maxBody), maxBody)
	if err != nil {
		s.fail(w, r, http.StatusRequestEntityTooLarge, "api-invalid", "the body is larger than 4 MiB")
		return
	}
	p := fhir.Parse(body)
	if !p.Valid() {
		s.outcome(w, http.StatusBadRequest, p.Issues)
		return
	}
	consent := p.Resource.GetConsent()
	if consent == nil || consent.GetId().GetValue() != id {
		s.fail(w, r, http.StatusBadRequest, "api-invalid", "the body must be a Consent with the id in the URL")
		return
	}
	sf := fhir.SearchFieldsOf(consent)
	cur, err := s.o.Store.Get(ctx, "Consent", id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.internal(w, r, err)
		return
	}
	// Only an existing Consent about the same patient is updated: a new
	// consent comes with its referral (the same answer whether another
	// patient's Consent has this id or none does, so ids reveal nothing).
	if err != nil || cur.Patient != sf.Patient || sf.Patient == "" {
		s.fail(w, r, http.StatusNotFound, "api-not-found", "no Consent with this id is shared with you (a new consent comes with the referral it belongs to)")
		return
	}
	req, err := s.o.Store.Search(ctx, store.Query{Type: "Task", Patient: sf.Patient, Requester: c.ref, Limit: 1})
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if len(req) == 0 {
		s.logAccess(ctx, c, "update", policy.Deny)
		s.fail(w, r, http.StatusForbidden, "api-forbidden", "only the partner that referred the patient may record their consent")
		return
	}
	if m := r.Header.Get("If-Match"); m != "" && !etagMatches(m, cur.Version) {
		s.fail(w, r, http.StatusPreconditionFailed, "api-precondition", fmt.Sprintf("the Consent is at version %d, not the one in If-Match", cur.Version))
		return
	}
	data, err := fhir.Marshal(consent)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	var saved store.Resource
	err = s.o.Store.WithTx(ctx, func(tx *store.Tx) error {
		var err error
		saved, err = tx.Put(ctx, store.Resource{Type: "Consent", ID: id, Source: c.id, Format: exchange.FormatJSON, Data: data, Patient: sf.Patient, Status: sf.Status})
		if err != nil {
			return err
		}
		return s.logAccessTx(ctx, tx, c, "update", policy.Permit, inputOf(saved))
	})
	if err != nil {
		s.internal(w, r, err)
		return
	}
	markLogged(ctx)
	// Referrals held for want of this consent go now. The Consent is
	// recorded whatever happens here: what fails stays held, and the
	// next consent recorded (or the referral sent again) re-decides it.
	// Not on the request's context: a caller that hangs up does not stop
	// what its recorded consent set going.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if _, err := s.o.Pipeline.ReleaseHeld(rctx, sf.Patient); err != nil {
		s.o.Logger.LogAttrs(ctx, slog.LevelError, "releasing held referrals", slog.String("ref", "Consent/"+id), slog.String("error", err.Error()))
	}
	status := http.StatusOK
	w.Header().Set("Location", s.baseURL(r)+"/Consent/"+id+"/_history/"+strconv.FormatInt(saved.Version, 10))
	if strings.Contains(r.Header.Get("Prefer"), "return=minimal") {
		w.Header().Set("ETag", fmt.Sprintf(`W/"%d"`, saved.Version))
		w.WriteHeader(status)
		return
	}
	s.writeResource(w, r, status, consent, saved.Version, saved.LastUpdated)
}

// searchAuditEvents lists the audit log as AuditEvents, for auditors:
// _since (an instant), _count and _page_after (a log index).
func (s *Server) searchAuditEvents(w http.ResponseWriter, r *http.Request, c *caller) {
	ctx := r.Context()
	q := r.URL.Query()
	for name := range q {
		if name != "_since" && name != "_count" && name != "_page_after" && name != "_format" {
			s.fail(w, r, http.StatusBadRequest, "api-not-supported", "AuditEvent search supports _since, _count and paging only")
			return
		}
	}
	sc := store.AuditScan{}
	if v := q.Get("_since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			s.fail(w, r, http.StatusBadRequest, "api-invalid", "_since must be an instant (2026-11-01T00:00:00Z)")
			return
		}
		sc.Since = t
	}
	if v := q.Get("_page_after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			s.fail(w, r, http.StatusBadRequest, "api-invalid", "_page_after must be a log index")
			return
		}
		sc.From = n + 1
	}
	count := defaultCount
	if v := q.Get("_count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			s.fail(w, r, http.StatusBadRequest, "api-invalid", "_count must be a positive whole number")
			return
		}
		count = min(n, maxCount)
	}
	base := s.baseURL(r)
	var entries []fhir.BundleEntry
	last := int64(-1)
	more := false
	stop := errors.New("page full")
	err := s.o.Store.ScanAudit(ctx, sc, func(rec store.AuditRecord) error {
		if len(entries) == count {
			more = true
			return stop
		}
		e, err := audit.ParseEntry(rec.Data)
		if err != nil {
			return fmt.Errorf("audit entry %d: %w", rec.Seq, err)
		}
		ev, err := e.AuditEvent()
		if err != nil {
			return err
		}
		entries = append(entries, fhir.SearchEntry(base+"/AuditEvent/"+e.ID, ev, fhir.SearchModeMatch))
		last = rec.Seq
		return nil
	})
	if err != nil && !errors.Is(err, stop) {
		s.internal(w, r, err)
		return
	}
	links := []fhir.BundleLink{{Relation: "self", URL: base + "/AuditEvent?" + q.Encode()}}
	if more {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("_page_after", strconv.FormatInt(last, 10))
		links = append(links, fhir.BundleLink{Relation: "next", URL: base + "/AuditEvent?" + nq.Encode()})
	}
	b, err := fhir.BundleSpec{Type: fhir.BundleTypeSearchset, Timestamp: s.o.Now(), Link: links, Entry: entries}.Build()
	if err != nil {
		s.internal(w, r, err)
		return
	}
	s.logAccess(ctx, c, "search-type", policy.Permit)
	data, err := fhir.Marshal(b)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.Write(data)
}
