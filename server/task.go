package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	tpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/task_go_proto"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/exchange"
	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/policy"
	"github.com/pathway-fhir/pathway/store"
)

// maxBody caps a request body.
const maxBody = 4 << 20

// role is the caller's part in a stored Task, "" when it has none.
func role(t store.Resource, c *caller) exchange.TaskRole {
	switch c.ref {
	case t.Owner:
		return exchange.RoleOwner
	case t.Requester:
		return exchange.RoleRequester
	}
	return ""
}

// visibleTask returns the stored Task id if the caller is its owner or
// requester; otherwise a not-found error, whether or not it exists.
func (s *Server) visibleTask(ctx context.Context, id string, c *caller) (store.Resource, error) {
	t, err := s.o.Store.Get(ctx, "Task", id)
	if err != nil {
		return t, err
	}
	if role(t, c) == "" {
		return store.Resource{}, fmt.Errorf("Task/%s: %w", id, store.ErrNotFound)
	}
	return t, nil
}

// taskView is the caller's view of a stored Task under the patient's
// consents now; nil when nothing of it may be shown.
func (s *Server) taskView(ctx context.Context, t store.Resource, c *caller) (*tpb.Task, policy.Decision, error) {
	v, err := s.o.Pipeline.ViewFor(ctx, c.id, t.Patient, []store.Resource{t}, role(t, c) == exchange.RoleRequester)
	if err != nil {
		return nil, v.Decision, err
	}
	cr := v.Resources[t.Ref()]
	if cr == nil {
		return nil, v.Decision, nil
	}
	return cr.GetTask(), v.Decision, nil
}

func (s *Server) readTask(w http.ResponseWriter, r *http.Request, c *caller) {
	s.readTaskVersion(w, r, c, 0)
}

func (s *Server) vreadTask(w http.ResponseWriter, r *http.Request, c *caller) {
	v, err := strconv.ParseInt(r.PathValue("vid"), 10, 64)
	if err != nil || v < 1 {
		s.fail(w, r, http.StatusBadRequest, "api-invalid", "the version id must be a positive whole number")
		return
	}
	s.readTaskVersion(w, r, c, v)
}

func (s *Server) readTaskVersion(w http.ResponseWriter, r *http.Request, c *caller, version int64) {
	ctx := r.Context()
	t, err := s.visibleTask(ctx, r.PathValue("id"), c)
	if err == nil && version > 0 {
		// Authorised on the current version: the parties do not change.
		t, err = s.o.Store.GetVersion(ctx, "Task", t.ID, version)
		if err == nil && role(t, c) == "" {
			err = store.ErrNotFound
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		s.logAccess(ctx, c, "read", policy.Deny)
		s.fail(w, r, http.StatusNotFound, "api-not-found", "no Task with this id is shared with you")
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	task, _, err := s.taskView(ctx, t, c)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if task == nil {
		// The decision's explanation is not sent: it would tell the
		// partner what the patient decided about it.
		s.logAccess(ctx, c, interactionOf(version), policy.Deny, inputOf(t))
		s.fail(w, r, http.StatusForbidden, "api-forbidden", notShared)
		return
	}
	s.logAccess(ctx, c, interactionOf(version), policy.Permit, inputOf(t))
	if match := r.Header.Get("If-None-Match"); match != "" && version == 0 && etagMatches(match, t.Version) {
		w.Header().Set("ETag", fmt.Sprintf(`W/"%d"`, t.Version))
		w.WriteHeader(http.StatusNotModified)
		return
	}
	s.writeResource(w, r, http.StatusOK, task, t.Version, t.LastUpdated)
}

// notShared is the detail of a 403 on a referral the caller may no
// longer see: it says nothing of why.
const notShared = "this referral is not shared with you now (the patient's consent or your agreement does not allow it); ask the referring partner"

// interactionOf names a read in the audit log.
func interactionOf(version int64) string {
	if version > 0 {
		return "vread"
	}
	return "read"
}

// etagMatches reports whether an If-None-Match or If-Match value names version.
func etagMatches(header string, version int64) bool {
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" {
			return true
		}
		tag = strings.TrimPrefix(tag, "W/")
		if strings.Trim(tag, `"`) == strconv.FormatInt(version, 10) {
			return true
		}
	}
	return false
}

// Task search parameters this server supports; anything else (chained
// parameters, _has, _revinclude, other _include) is refused, so that a
// search never reaches past the caller's own referrals.
var taskSearchParams = map[string]bool{
	"owner": true, "requester": true, "status": true, "patient": true, "focus": true,
	"_lastUpdated": true, "_count": true, "_include": true, "_page_after": true, "_total": true, "_format": true,
}

const (
	defaultCount = 50
	maxCount     = 200
)

func (s *Server) searchTasks(w http.ResponseWriter, r *http.Request, c *caller) {
	ctx := r.Context()
	q := r.URL.Query()
	for name := range q {
		switch {
		case strings.Contains(name, ".") || strings.Contains(name, ":") && !strings.HasPrefix(name, "_"):
			s.fail(w, r, http.StatusBadRequest, "api-not-supported", "chained parameters and modifiers are not supported: search on owner, requester, status, patient, focus or _lastUpdated")
			return
		case name == "_has" || name == "_revinclude":
			s.fail(w, r, http.StatusBadRequest, "api-not-supported", name+" is not supported")
			return
		case !taskSearchParams[name]:
			s.fail(w, r, http.StatusBadRequest, "api-not-supported", "search parameter "+name+" is not supported on Task (supported: owner, requester, status, patient, focus, _lastUpdated, _count, _include=Task:focus, _include=Task:patient)")
			return
		}
		if len(q[name]) > 1 && name != "_include" {
			s.fail(w, r, http.StatusBadRequest, "api-invalid", "give "+name+" once")
			return
		}
	}
	sq := store.Query{Type: "Task", Status: q.Get("status"), Patient: q.Get("patient"), AfterID: q.Get("_page_after")}
	owner, requester := q.Get("owner"), q.Get("requester")
	switch {
	case owner == "" && requester == "":
		sq.Owner = c.ref // the caller's own work list
	case owner != "" && owner != c.ref && requester != c.ref, requester != "" && requester != c.ref && owner != c.ref:
		// Someone else's Tasks: nothing is shared with the caller.
		s.writeSearch(w, r, c, nil, q, "")
		return
	default:
		sq.Owner, sq.Requester = owner, requester
	}
	if v := q.Get("_lastUpdated"); v != "" {
		t, err := parseLastUpdated(v)
		if err != nil {
			s.fail(w, r, http.StatusBadRequest, "api-invalid", err.Error())
			return
		}
		sq.UpdatedSince = t
	}
	count := defaultCount
	if v := q.Get("_count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.fail(w, r, http.StatusBadRequest, "api-invalid", "_count must be a whole number")
			return
		}
		count = min(n, maxCount)
	}
	for _, inc := range q["_include"] {
		if inc != "Task:focus" && inc != "Task:patient" {
			s.fail(w, r, http.StatusBadRequest, "api-not-supported", "_include supports Task:focus and Task:patient only")
			return
		}
	}
	if count == 0 {
		s.writeSearch(w, r, c, nil, q, "")
		return
	}
	focus := q.Get("focus")
	var page []store.Resource
	next := ""
	// Read pages of the store until count Tasks pass the filters.
	for len(page) < count {
		sq.Limit = count + 1
		rs, err := s.o.Store.Search(ctx, sq)
		if err != nil {
			s.internal(w, r, err)
			return
		}
		more := len(rs) > count
		if more {
			rs = rs[:count]
		}
		used := 0
		for _, t := range rs {
			used++
			if focus == "" || taskFocus(t) == focus {
				page = append(page, t)
			}
			sq.AfterID = t.ID
			if len(page) == count {
				break
			}
		}
		if len(page) == count && (more || used < len(rs)) {
			next = sq.AfterID
		}
		if !more {
			break
		}
	}
	s.writeSearch(w, r, c, page, q, next)
}

// taskFocus reads Task.focus of a stored Task.
func taskFocus(t store.Resource) string {
	cr, err := exchange.ParseStored(t)
	if err != nil {
		return ""
	}
	return fhir.RefString(cr.GetTask().GetFocus())
}

func parseLastUpdated(v string) (time.Time, error) {
	prefix := ""
	for _, p := range []string{"ge", "gt"} {
		if strings.HasPrefix(v, p) {
			prefix, v = p, v[2:]
		}
	}
	if prefix == "" {
		return time.Time{}, errors.New("_lastUpdated supports ge and gt (_lastUpdated=ge2026-11-01T00:00:00Z)")
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			if prefix == "gt" {
				t = t.Add(time.Microsecond)
			}
			return t, nil
		}
	}
	return time.Time{}, errors.New("_lastUpdated: not a FHIR instant or date")
}

// writeSearch filters the page for the caller (by patient), adds the
// includes, and writes the searchset. Nothing hidden is counted: the
// Bundle has no total.
func (s *Server) writeSearch(w http.ResponseWriter, r *http.Request, c *caller, page []store.Resource, q url.Values, next string) {
	ctx := r.Context()
	base := s.baseURL(r)
	incFocus, incPatient := slices.Contains(q["_include"], "Task:focus"), slices.Contains(q["_include"], "Task:patient")
	var entries []fhir.BundleEntry
	var inputs []audit.Input
	// One view per patient and role of the caller.
	type group struct {
		patient  string
		referrer bool
	}
	byPatient := map[group][]store.Resource{}
	var order []group
	for _, t := range page {
		g := group{t.Patient, role(t, c) == exchange.RoleRequester}
		if _, ok := byPatient[g]; !ok {
			order = append(order, g)
		}
		byPatient[g] = append(byPatient[g], t)
	}
	included := map[string]bool{}
	for _, g := range order {
		patient, tasks := g.patient, byPatient[g]
		rs := slices.Clone(tasks)
		if incFocus {
			for _, t := range tasks {
				typ, id, _ := strings.Cut(taskFocus(t), "/")
				if typ == "ServiceRequest" {
					if sr, err := s.o.Store.Get(ctx, typ, id); err == nil {
						rs = append(rs, sr)
					}
				}
			}
		}
		v, err := s.o.Pipeline.ViewFor(ctx, c.id, patient, rs, g.referrer)
		if err != nil {
			s.internal(w, r, err)
			return
		}
		for _, t := range tasks {
			cr := v.Resources[t.Ref()]
			if cr == nil {
				continue
			}
			task := proto.Clone(cr.GetTask()).(*tpb.Task)
			setMeta(task, t.Version, t.LastUpdated)
			entries = append(entries, fhir.SearchEntry(base+"/"+t.Ref(), task, fhir.SearchModeMatch))
			inputs = append(inputs, inputOf(t))
			if incFocus {
				ref := fhir.RefString(task.GetFocus())
				if cr := v.Resources[ref]; cr != nil && !included[ref] {
					included[ref] = true
					entries = append(entries, fhir.SearchEntry(base+"/"+ref, fhir.Unwrap(cr), fhir.SearchModeInclude))
					for _, sr := range rs {
						if sr.Ref() == ref {
							inputs = append(inputs, inputOf(sr))
						}
					}
				}
			}
			if incPatient && patient != "" {
				if cr := v.Resources[patient]; cr != nil && !included[patient] {
					included[patient] = true
					entries = append(entries, fhir.SearchEntry(base+"/"+patient, fhir.Unwrap(cr), fhir.SearchModeInclude))
					typ, id, _ := strings.Cut(patient, "/")
					if pr, err := s.o.Store.Get(ctx, typ, id); err == nil {
						inputs = append(inputs, inputOf(pr))
					}
				}
			}
		}
	}
	self := base + "/Task?" + q.Encode()
	links := []fhir.BundleLink{{Relation: "self", URL: self}}
	if next != "" {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("_page_after", next)
		links = append(links, fhir.BundleLink{Relation: "next", URL: base + "/Task?" + nq.Encode()})
	}
	b, err := fhir.BundleSpec{Type: fhir.BundleTypeSearchset, Timestamp: s.o.Now(), Link: links, Entry: entries}.Build()
	if err != nil {
		s.internal(w, r, err)
		return
	}
	s.logAccess(ctx, c, "search-type", policy.Permit, inputs...)
	data, err := fhir.Marshal(b)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.Write(data)
}

// The elements of a Task its parties may change; everything else stays as
// stored.
var taskMutable = []string{"status", "status_reason", "business_status", "note", "output", "last_modified"}

func (s *Server) updateTask(w http.ResponseWriter, r *http.Request, c *caller) {
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
	task := p.Resource.GetTask()
	if task == nil {
		s.fail(w, r, http.StatusBadRequest, "api-invalid", "the body must be a Task")
		return
	}
	s.changeTask(w, r, c, task, nil)
}

func (s *Server) patchTask(w http.ResponseWriter, r *http.Request, c *caller) {
	ctx := r.Context()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json-patch+json") {
		s.fail(w, r, http.StatusUnsupportedMediaType, "api-not-supported", "PATCH takes a JSON Patch (Content-Type: application/json-patch+json)")
		return
	}
	body, err := fhir.ReadAllLimited(http.MaxBytesReader(w, r.Body, maxBody), maxBody)
	if err != nil {
		s.fail(w, r, http.StatusRequestEntityTooLarge, "api-invalid", "the body is larger than 4 MiB")
		return
	}
	t, err := s.visibleTask(ctx, r.PathValue("id"), c)
	if errors.Is(err, store.ErrNotFound) {
		s.fail(w, r, http.StatusNotFound, "api-not-found", "no Task with this id is shared with you")
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	view, _, err := s.taskView(ctx, t, c)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if view == nil {
		s.fail(w, r, http.StatusForbidden, "api-forbidden", notShared)
		return
	}
	doc, err := fhir.Marshal(view)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	patched, err := applyJSONPatch(doc, body)
	if err != nil {
		s.fail(w, r, http.StatusUnprocessableEntity, "api-invalid", "the JSON Patch does not apply: "+err.Error())
		return
	}
	pr := fhir.Parse(patched)
	if !pr.Valid() || pr.Resource.GetTask() == nil {
		issues := pr.Issues
		if len(issues) == 0 {
			issues = fhir.Issues{{Severity: fhir.SeverityError, Code: "api-invalid", Details: "the patched Task is not a valid Task"}}
		}
		s.outcome(w, http.StatusUnprocessableEntity, issues)
		return
	}
	s.changeTask(w, r, c, pr.Resource.GetTask(), &viewed{t, view})
}

// viewed is a stored Task and the caller's view of it, already read.
type viewed struct {
	stored store.Resource
	view   *tpb.Task
}

// changeTask applies the caller's new Task: only the mutable elements are
// taken from it, the move is checked against the state machine and the
// caller's role, and the change is stored, audited and sent back to the
// other party in one transaction. known, when set, is what the request
// has already read (a PATCH applies to the view).
func (s *Server) changeTask(w http.ResponseWriter, r *http.Request, c *caller, in *tpb.Task, known *viewed) {
	ctx := r.Context()
	id := r.PathValue("id")
	if in.GetId().GetValue() != id {
		s.fail(w, r, http.StatusBadRequest, "api-invalid", "the Task's id must be the id in the URL")
		return
	}
	// A PATCH read the Task already (and applied the patch to that
	// version); the transaction below checks it is still the current one.
	var t store.Resource
	if known != nil {
		t = known.stored
	} else {
		var err error
		t, err = s.visibleTask(ctx, id, c)
		if errors.Is(err, store.ErrNotFound) {
			s.fail(w, r, http.StatusNotFound, "api-not-found", "no Task with this id is shared with you (Pathway does not create Tasks through PUT)")
			return
		}
		if err != nil {
			s.internal(w, r, err)
			return
		}
	}
	if m := r.Header.Get("If-Match"); m != "" && !etagMatches(m, t.Version) {
		w.Header().Set("ETag", fmt.Sprintf(`W/"%d"`, t.Version))
		s.fail(w, r, http.StatusPreconditionFailed, "api-precondition", fmt.Sprintf("the Task is at version %d, not the one in If-Match: read it again and reapply your change", t.Version))
		return
	}
	var (
		view *tpb.Task
		err  error
	)
	if known != nil {
		view = known.view
	} else if view, _, err = s.taskView(ctx, t, c); err != nil {
		s.internal(w, r, err)
		return
	}
	if view == nil {
		s.fail(w, r, http.StatusForbidden, "api-forbidden", notShared)
		return
	}
	if !sameExceptMutable(view, in) {
		s.fail(w, r, http.StatusUnprocessableEntity, "api-invalid", "only status, statusReason, businessStatus, note and output may change: send the Task as you read it with only those changed")
		return
	}
	cached, err := exchange.ParseStored(t)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	stored := cached.GetTask()
	from := exchange.TaskStatus(stored)
	to := exchange.ImpliedStatus(from, in) // a BSeR system reports progress by businessStatus alone
	rl := role(t, c)
	if err := exchange.CheckTransition(from, to, rl, in.GetStatusReason().GetText().GetValue()); err != nil {
		s.logAccess(ctx, c, "update", policy.Deny)
		s.fail(w, r, http.StatusUnprocessableEntity, "api-transition", err.Error())
		return
	}
	// Notes and outputs are added to, never rewritten: the caller's view
	// may lack some (filtered), which must not be lost.
	notes, okNotes := appended(view.GetNote(), in.GetNote())
	outputs, okOutputs := appended(view.GetOutput(), in.GetOutput())
	if !okNotes || !okOutputs {
		s.fail(w, r, http.StatusUnprocessableEntity, "api-invalid", "notes and outputs can only be added to: send the ones you read, unchanged and first, then the new ones")
		return
	}
	now := s.o.Now().UTC()
	next := proto.Clone(stored).(*tpb.Task)
	// statusReason says why the Task has its status: it changes with a
	// move, by whoever makes it. businessStatus is the owner's report of
	// progress. Otherwise both stay as stored, also when the caller's view
	// lacked them.
	if to != from {
		next.Status = exchange.TaskStatusCode(to)
		next.StatusReason = in.GetStatusReason()
	}
	if rl == exchange.RoleOwner {
		next.BusinessStatus = in.GetBusinessStatus()
	} else if !proto.Equal(in.GetBusinessStatus(), view.GetBusinessStatus()) {
		s.fail(w, r, http.StatusUnprocessableEntity, "api-transition", "only the owner reports businessStatus")
		return
	}
	if to == from && !proto.Equal(in.GetStatusReason(), view.GetStatusReason()) {
		s.fail(w, r, http.StatusUnprocessableEntity, "api-transition", "statusReason changes only with the status it explains")
		return
	}
	// Added notes are the caller's: Pathway writes who and when.
	exchange.AddToTask(next, notes, outputs, c.id, now)
	if iv := fhir.Validate(next); iv.HasErrors() {
		s.outcome(w, http.StatusUnprocessableEntity, iv)
		return
	}
	data, err := fhir.Marshal(next)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	sf := fhir.SearchFieldsOf(next)
	var saved store.Resource
	// Concurrent updates commit together (group commit): each waits for
	// the commit's flush, and with the audit log holds the log's
	// sequencer until then, so one flush for several is what lets the
	// API take more updates a second than the disk takes flushes.
	err = s.o.Store.WithGroupTx(ctx, func(ctx context.Context, tx *store.Tx) error {
		// The version is checked on the locked row (PostgreSQL; SQLite's
		// transaction holds the write lock): a change committed by sync or
		// another request in between, or made just before in the same
		// transaction, is a conflict, never overwritten.
		var err error
		saved, err = tx.Update(ctx, store.Resource{Type: "Task", ID: id, Source: c.id, Format: exchange.FormatJSON, Data: data,
			Patient: sf.Patient, Status: sf.Status, Owner: sf.Owner, Requester: sf.Requester}, t.Version)
		if errors.Is(err, store.ErrConflict) {
			return errConflict
		}
		if err != nil {
			return err
		}
		if _, err := s.o.Pipeline.FlowBack(ctx, tx, saved, c.id); err != nil {
			return err
		}
		// The access entry last, after every row of the shared
		// transaction is locked: the audit log's sequencer is the lock
		// every audited transaction takes, and takes last.
		in := inputOf(saved)
		tx.AtEnd(func(ctx context.Context, tx *store.Tx) error {
			return s.logAccessTx(ctx, tx, c, "update", policy.Permit, in)
		})
		return nil
	})
	if errors.Is(err, errConflict) {
		s.fail(w, r, http.StatusConflict, "api-conflict", "the Task changed while this update was made: read it again and reapply your change")
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	markLogged(ctx)
	exchange.RememberParsed(saved, &rpb.ContainedResource{OneofResource: &rpb.ContainedResource_Task{Task: next}})
	w.Header().Set("Location", s.baseURL(r)+"/Task/"+id+"/_history/"+strconv.FormatInt(saved.Version, 10))
	w.Header().Set("ETag", fmt.Sprintf(`W/"%d"`, saved.Version))
	w.Header().Set("Last-Modified", saved.LastUpdated.UTC().Format(http.TimeFormat))
	if strings.Contains(r.Header.Get("Prefer"), "return=minimal") {
		w.WriteHeader(http.StatusOK)
		return
	}
	out, _, err := s.taskView(ctx, saved, c)
	if err != nil || out == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	s.writeResource(w, r, http.StatusOK, out, saved.Version, saved.LastUpdated)
}

var errConflict = errors.New("version conflict")

// appended returns what in adds after the items of view, and false when in
// does not start with them unchanged.
func appended[T proto.Message](view, in []T) ([]T, bool) {
	if len(in) < len(view) {
		return nil, false
	}
	for i := range view {
		if !proto.Equal(view[i], in[i]) {
			return nil, false
		}
	}
	return in[len(view):], true
}

// sameExceptMutable reports whether a and b differ only in the elements
// the parties may change (and meta and text, which the server owns).
func sameExceptMutable(a, b *tpb.Task) bool {
	a, b = proto.Clone(a).(*tpb.Task), proto.Clone(b).(*tpb.Task)
	for _, t := range []*tpb.Task{a, b} {
		m := t.ProtoReflect()
		for _, name := range append(slices.Clone(taskMutable), "meta", "text") {
			m.Clear(m.Descriptor().Fields().ByName(protoreflect.Name(name)))
		}
	}
	return proto.Equal(a, b)
}
