package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/store"
	"github.com/pathway-fhir/pathway/store/storetest"
)

// taskStatus reads a Task response's status as FHIR spells it.
func taskStatus(t *testing.T, r response) string {
	t.Helper()
	task := r.resource(t).GetTask()
	if task == nil {
		t.Fatalf("status %d: not a Task: %s", r.status, r.body)
	}
	v := task.GetStatus().GetValue()
	return fhir.EnumCode(v.Descriptor().Values().ByNumber(v.Number()))
}

// searchIDs returns the ids of the match and include entries of a searchset.
func searchIDs(t *testing.T, r response) (match, include []string, next string) {
	t.Helper()
	b := r.resource(t).GetBundle()
	if r.status != 200 || b == nil {
		t.Fatalf("search: %d %s", r.status, r.body)
	}
	for _, e := range b.GetEntry() {
		key := fhir.Key(fhir.Unwrap(e.GetResource()))
		if e.GetSearch().GetMode().GetValue().String() == "INCLUDE" {
			include = append(include, key)
		} else {
			match = append(match, key)
		}
	}
	for _, l := range b.GetLink() {
		if l.GetRelation().GetValue() == "next" {
			next = l.GetUrl().GetValue()
		}
	}
	return match, include, next
}

// TestAuthorizationMatrix: a partner reads, searches, includes and
// updates only the referrals routed to it or sent by it.
func TestAuthorizationMatrix(t *testing.T) {
	f := newFixture(t, sqliteURL(t))
	clinicTask, gardenTask := f.tasks["clinic-riverside"][0], f.tasks["community-garden"][0]

	// Reads.
	for _, c := range []struct {
		token, task string
		want        int
	}{
		{tokClinic, clinicTask, 200}, {tokGarden, gardenTask, 200},
		{tokGarden, clinicTask, 404}, {tokClinic, gardenTask, 404}, // another partner's referral: not found
		{tokNGO, clinicTask, 200}, {tokNGO, gardenTask, 200}, // the requester
		{tokClinic, "no-such-task", 404},
		{tokAuditor, clinicTask, 403},                     // auditors read audit records only
		{tokGarden, f.hidden["community-garden"][0], 403}, // routed, but the consent refuses it
		{tokNGO, f.hidden["community-garden"][0], 403},    // the consent refuses everyone, the referrer too
	} {
		r := f.do("GET", "/fhir/Task/"+c.task, c.token, nil)
		if r.status != c.want {
			t.Errorf("%s reads Task/%s: %d, want %d: %s", c.token, c.task, r.status, c.want, r.body)
		}
		if c.want != 200 {
			r.outcome(t)
		}
	}
	// A vread of another partner's Task is not found either.
	if r := f.do("GET", "/fhir/Task/"+clinicTask+"/_history/1", tokGarden, nil); r.status != 404 {
		t.Errorf("garden vreads the clinic's Task: %d", r.status)
	}

	// Searches: only the caller's own, whatever the parameters say.
	match, _, _ := searchIDs(t, f.do("GET", "/fhir/Task", tokGarden, nil))
	if len(match) != len(f.tasks["community-garden"]) {
		t.Errorf("garden's default search: %v", match)
	}
	for _, m := range match {
		if strings.Contains(strings.Join(f.tasks["clinic-riverside"], " "), strings.TrimPrefix(m, "Task/")) {
			t.Errorf("garden's search shows the clinic's %s", m)
		}
	}
	for _, q := range []string{"owner=Organization/clinic-riverside", "requester=Organization/ngo-harbour", "owner=Organization/clinic-riverside&requester=Organization/ngo-harbour"} {
		match, inc, _ := searchIDs(t, f.do("GET", "/fhir/Task?"+q+"&_include=Task:focus", tokGarden, nil))
		if len(match) != 0 || len(inc) != 0 {
			t.Errorf("garden searches %s: %v %v", q, match, inc)
		}
	}
	match, _, _ = searchIDs(t, f.do("GET", "/fhir/Task?requester=Organization/ngo-harbour", tokNGO, nil))
	if len(match) != 3 {
		t.Errorf("the requester's search: %v (want the 3 its consents do not refuse)", match)
	}

	// Leak controls.
	for _, q := range []string{"patient.name=x", "_has:ServiceRequest:based-on:status=active", "_revinclude=Provenance:target", "_include=Task:owner", "subject=Patient/x", "owner:missing=true"} {
		r := f.do("GET", "/fhir/Task?"+q, tokGarden, nil)
		if code, _ := r.outcome(t); r.status != 400 || code != "api-not-supported" {
			t.Errorf("search %s: %d %s", q, r.status, code)
		}
	}
	if b := f.do("GET", "/fhir/Task?_total=accurate", tokGarden, nil).resource(t).GetBundle(); b.GetTotal() != nil {
		t.Errorf("_total=accurate gave a total")
	}

	// Updates of another partner's referral are not found.
	r := f.do("GET", "/fhir/Task/"+clinicTask, tokClinic, nil)
	if r := f.do("PUT", "/fhir/Task/"+clinicTask, tokGarden, []byte(strings.Replace(string(r.body), `"status":"requested"`, `"status":"accepted"`, 1))); r.status != 404 {
		t.Errorf("garden updates the clinic's Task: %d %s", r.status, r.body)
	}
	if r := f.do("PATCH", "/fhir/Task/"+clinicTask, tokGarden, []byte(`[{"op":"replace","path":"/status","value":"accepted"}]`), "Content-Type", "application/json-patch+json"); r.status != 404 {
		t.Errorf("garden patches the clinic's Task: %d %s", r.status, r.body)
	}

	// Linked reads: the focus of an own Task, filtered; another's: not found.
	task := f.do("GET", "/fhir/Task/"+gardenTask, tokGarden, nil).resource(t).GetTask()
	sr := fhir.RefString(task.GetFocus())
	if r := f.do("GET", "/fhir/"+sr, tokGarden, nil); r.status != 200 || strings.Contains(string(r.body), `"reasonCode"`) || strings.Contains(string(r.body), `"note"`) {
		t.Errorf("garden reads its ServiceRequest: %d, reasonCode and note must be withheld: %s", r.status, r.body)
	}
	if r := f.do("GET", "/fhir/"+sr, tokClinic, nil); r.status != 404 {
		t.Errorf("the clinic reads the garden's ServiceRequest: %d", r.status)
	}
	clinicSR := fhir.RefString(f.do("GET", "/fhir/Task/"+clinicTask, tokClinic, nil).resource(t).GetTask().GetFocus())
	if r := f.do("GET", "/fhir/"+clinicSR, tokGarden, nil); r.status != 404 {
		t.Errorf("garden reads the clinic's ServiceRequest: %d", r.status)
	}
	// _include stays inside the caller's referrals and is filtered too.
	_, inc, _ := searchIDs(t, f.do("GET", "/fhir/Task?_include=Task:focus&_include=Task:patient", tokGarden, nil))
	for _, ref := range inc {
		if ref == clinicSR {
			t.Errorf("garden's _include brought the clinic's %s", ref)
		}
	}
	if len(inc) == 0 {
		t.Errorf("garden's _include brought nothing")
	}

	// Audit records: auditors only.
	if r := f.do("GET", "/fhir/AuditEvent", tokClinic, nil); r.status != 403 {
		t.Errorf("a partner searches AuditEvent: %d", r.status)
	}
	r = f.do("GET", "/fhir/AuditEvent?_count=3", tokAuditor, nil)
	if _, _, next := searchIDs(t, r); len(r.resource(t).GetBundle().GetEntry()) != 3 || next == "" {
		t.Fatalf("the auditor searches AuditEvent: %d, want 3 and a next page", r.status)
	}
}

// TestTaskStateMachineOverHTTP takes a referral from requested to
// completed as the owner, with the forbidden moves refused by role.
func TestTaskStateMachineOverHTTP(t *testing.T) {
	f := newFixture(t, sqliteURL(t))
	id := f.tasks["community-garden"][0]
	path := "/fhir/Task/" + id
	read := f.do("GET", path, tokGarden, nil)
	if read.status != 200 || read.header.Get("ETag") != `W/"1"` || read.header.Get("Last-Modified") == "" {
		t.Fatalf("read: %d %v", read.status, read.header)
	}
	if r := f.do("GET", path, tokGarden, nil, "If-None-Match", `W/"1"`); r.status != 304 {
		t.Errorf("If-None-Match on the current version: %d", r.status)
	}
	put := func(token, from, to string, extra string, header ...string) response {
		body := strings.Replace(string(read.body), `"status":"`+from+`"`, `"status":"`+to+`"`+extra, 1)
		return f.do("PUT", path, token, []byte(body), header...)
	}
	// The requester cannot accept; the owner cannot reject without a reason.
	if r := put(tokNGO, "requested", "accepted", ""); r.status != 422 {
		t.Errorf("the requester accepts: %d %s", r.status, r.body)
	} else if code, text := r.outcome(t); code != "api-transition" || !strings.Contains(text, "only the owner") {
		t.Errorf("the requester accepts: %s %s", code, text)
	}
	if r := put(tokGarden, "requested", "rejected", ""); r.status != 422 || !strings.Contains(string(r.body), "statusReason.text") {
		t.Errorf("reject without a reason: %d %s", r.status, r.body)
	}
	// Other elements cannot change.
	if r := f.do("PUT", path, tokGarden, []byte(strings.Replace(string(read.body), `"intent":"order"`, `"intent":"plan"`, 1))); r.status != 422 {
		t.Errorf("changing intent: %d %s", r.status, r.body)
	}
	// The owner accepts, with If-Match.
	r := put(tokGarden, "requested", "accepted", "", "If-Match", `W/"1"`)
	if r.status != 200 || taskStatus(t, r) != "accepted" || r.header.Get("ETag") != `W/"2"` {
		t.Fatalf("accept: %d %v %s", r.status, r.header, r.body)
	}
	// A stale If-Match fails.
	if r := put(tokGarden, "requested", "in-progress", "", "If-Match", `W/"1"`); r.status != 412 {
		t.Errorf("stale If-Match: %d %s", r.status, r.body)
	}
	// PATCH to in-progress, then to completed with an output note.
	patch := func(token, ops string) response {
		return f.do("PATCH", path, token, []byte(ops), "Content-Type", "application/json-patch+json")
	}
	if r := patch(tokGarden, `[{"op":"test","path":"/status","value":"accepted"},{"op":"replace","path":"/status","value":"in-progress"}]`); r.status != 200 || taskStatus(t, r) != "in-progress" {
		t.Fatalf("patch to in-progress: %d %s", r.status, r.body)
	}
	if r := patch(tokGarden, `[{"op":"test","path":"/status","value":"accepted"}]`); r.status != 422 {
		t.Errorf("a failing JSON Patch test: %d", r.status)
	}
	if r := patch(tokNGO, `[{"op":"replace","path":"/status","value":"completed"}]`); r.status != 422 {
		t.Errorf("the requester completes: %d %s", r.status, r.body)
	}
	r = patch(tokGarden, `[{"op":"replace","path":"/status","value":"completed"},{"op":"add","path":"/note","value":[{"text":"Joined the Tuesday garden group."}]}]`)
	if r.status != 200 || taskStatus(t, r) != "completed" || !strings.Contains(string(r.body), "Tuesday garden group") {
		t.Fatalf("complete: %d %s", r.status, r.body)
	}
	// Completed is terminal: the requester cannot cancel any more.
	if r := patch(tokNGO, `[{"op":"replace","path":"/status","value":"cancelled"},{"op":"add","path":"/statusReason","value":{"text":"no longer needed"}}]`); r.status != 422 {
		t.Errorf("cancel a completed Task: %d %s", r.status, r.body)
	}
	// The requester sees the outcome.
	if r := f.do("GET", path, tokNGO, nil); r.status != 200 || taskStatus(t, r) != "completed" {
		t.Errorf("the requester reads the completed Task: %d %s", r.status, r.body)
	}
	// Every version is kept and readable.
	if r := f.do("GET", path+"/_history/2", tokGarden, nil); r.status != 200 || taskStatus(t, r) != "accepted" {
		t.Errorf("vread 2: %d %s", r.status, r.body)
	}
	// Prefer: return=minimal.
	id2 := f.tasks["clinic-riverside"][1]
	read2 := f.do("GET", "/fhir/Task/"+id2, tokClinic, nil)
	body := strings.Replace(string(read2.body), `"status":"requested"`, `"status":"rejected","statusReason":{"text":"No appointments until March."}`, 1)
	if r := f.do("PUT", "/fhir/Task/"+id2, tokClinic, []byte(body), "Prefer", "return=minimal"); r.status != 200 || len(r.body) != 0 || r.header.Get("ETag") != `W/"2"` {
		t.Errorf("return=minimal: %d %q %v", r.status, r.body, r.header)
	}
}

// TestSearchPaging pages through the requester's four Tasks two at a time.
func TestSearchPaging(t *testing.T) {
	f := newFixture(t, sqliteURL(t))
	seen := map[string]bool{}
	next := "/fhir/Task?requester=Organization/ngo-harbour&_count=2"
	pages := 0
	for next != "" {
		r := f.do("GET", next, tokNGO, nil)
		match, _, n := searchIDs(t, r)
		for _, m := range match {
			if seen[m] {
				t.Errorf("%s on two pages", m)
			}
			seen[m] = true
		}
		pages++
		next = ""
		if n != "" {
			u, err := url.Parse(n)
			if err != nil {
				t.Fatal(err)
			}
			next = u.RequestURI()
		}
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	if len(seen) != 3 || pages < 2 {
		t.Errorf("paged %d Tasks in %d pages", len(seen), pages)
	}
	if r := f.do("GET", "/fhir/Task?status=requested&owner=Organization/clinic-riverside", tokClinic, nil); r.status != 200 {
		t.Errorf("status search: %d", r.status)
	} else if m, _, _ := searchIDs(t, r); len(m) != 2 {
		t.Errorf("clinic's requested Tasks: %v", m)
	}
	if r := f.do("GET", "/fhir/Task?_lastUpdated=2026-01-01", tokClinic, nil); r.status != 400 {
		t.Errorf("_lastUpdated without a prefix: %d", r.status)
	}
	if m, _, _ := searchIDs(t, f.do("GET", "/fhir/Task?_lastUpdated=ge2026-01-01", tokClinic, nil)); len(m) != 2 {
		t.Errorf("_lastUpdated=ge: %v", m)
	}
}

// TestConsentRevocationOverHTTP: the referring NGO revokes the consent;
// the clinic can no longer see the Task, at once.
func TestConsentRevocationOverHTTP(t *testing.T) {
	f := newFixture(t, sqliteURL(t))
	id := f.tasks["clinic-riverside"][0]
	task, err := f.st.Get(t.Context(), "Task", id)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := f.st.Search(t.Context(), store.Query{Type: "Consent", Patient: task.Patient})
	if err != nil || len(cs) != 1 {
		t.Fatalf("consents of %s: %v %v", task.Patient, cs, err)
	}
	if r := f.do("GET", "/fhir/Task/"+id, tokClinic, nil); r.status != 200 {
		t.Fatalf("before: %d", r.status)
	}
	revoked := strings.Replace(string(cs[0].Data), `"status":"active"`, `"status":"inactive"`, 1)
	if r := f.do("PUT", "/fhir/Consent/"+cs[0].ID, tokClinic, []byte(revoked)); r.status != 403 {
		t.Errorf("the clinic revokes the NGO's consent record: %d %s", r.status, r.body)
	}
	r := f.do("PUT", "/fhir/Consent/"+cs[0].ID, tokNGO, []byte(revoked), "If-Match", `W/"1"`)
	if r.status != 200 || r.header.Get("ETag") != `W/"2"` {
		t.Fatalf("the NGO revokes: %d %s", r.status, r.body)
	}
	if r := f.do("GET", "/fhir/Task/"+id, tokClinic, nil); r.status != 403 {
		t.Errorf("after the revocation the clinic reads the Task: %d %s", r.status, r.body)
	}
	m, _, _ := searchIDs(t, f.do("GET", "/fhir/Task", tokClinic, nil))
	for _, ref := range m {
		if ref == "Task/"+id {
			t.Errorf("after the revocation the clinic's search still shows %s", ref)
		}
	}
}

// TestRateLimit: a partner over its rate gets 429 with Retry-After.
func TestRateLimit(t *testing.T) {
	f := newFixture(t, sqliteURL(t), func(o *Options) { o.Rate, o.Burst = 1, 2 })
	var codes []int
	for range 3 {
		codes = append(codes, f.do("GET", "/fhir/Task", tokGarden, nil).status)
	}
	r := f.do("GET", "/fhir/Task", tokGarden, nil)
	if fmt.Sprint(codes) != "[200 200 429]" || r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Errorf("codes %v then %d, Retry-After %q", codes, r.status, r.header.Get("Retry-After"))
	}
	if r := f.do("GET", "/fhir/Task", tokClinic, nil); r.status != 200 {
		t.Errorf("another partner is limited too: %d", r.status)
	}
	f.clock.Advance(2_000_000_000)
	if r := f.do("GET", "/fhir/Task", tokGarden, nil); r.status != 200 {
		t.Errorf("after the wait: %d", r.status)
	}
}

// TestIntake: a partner pushes a FHIR referral Bundle; each ServiceRequest
// becomes a referral from it, routed and decided, and the response has an
// entry per entry. A Bundle with a referral that cannot be converted is
// refused whole.
func TestIntake(t *testing.T) {
	f := newFixture(t, sqliteURL(t))
	body, err := os.ReadFile("../testdata/mappings/fhir-referral-bundle.json")
	if err != nil {
		t.Fatal(err)
	}
	before, _ := f.st.Count(t.Context(), "Task")
	if r := f.do("POST", "/fhir", tokAuditor, body); r.status != 403 {
		t.Errorf("an auditor pushes referrals: %d", r.status)
	}
	// The sample holds two referrals that cannot be converted (entries 7
	// and 8): the whole Bundle is refused, each problem named.
	r := f.do("POST", "/fhir", tokNGO, body)
	if oo := r.resource(t).GetOperationOutcome(); r.status != 422 || len(oo.GetIssue()) != 2 {
		t.Fatalf("intake of the sample with its bad referrals: %d %s", r.status, r.body)
	}
	if n, _ := f.st.Count(t.Context(), "Task"); n != before {
		t.Fatalf("a refused intake stored Tasks: %d -> %d", before, n)
	}
	// Without them, it is taken.
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	entries := doc["entry"].([]any)
	doc["entry"] = append(entries[:7:7], entries[9:]...)
	if body, err = json.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	r = f.do("POST", "/fhir", tokNGO, body)
	b := r.resource(t).GetBundle()
	if r.status != 200 || b == nil || !strings.HasSuffix(b.GetType().GetValue().String(), "RESPONSE") {
		t.Fatalf("intake: %d %s", r.status, r.body)
	}
	created := 0
	for _, e := range b.GetEntry() {
		if strings.HasPrefix(e.GetResponse().GetStatus().GetValue(), "201") {
			created++
			if !strings.HasPrefix(e.GetResponse().GetLocation().GetValue(), "ServiceRequest/") {
				t.Errorf("created entry without a ServiceRequest location: %v", e.GetResponse())
			}
		}
	}
	after, _ := f.st.Count(t.Context(), "Task")
	if created == 0 || after <= before {
		t.Errorf("intake created %d referrals, Tasks %d -> %d", created, before, after)
	}
	// Again: nothing new.
	if r := f.do("POST", "/fhir", tokNGO, body); r.status != 200 {
		t.Errorf("intake again: %d", r.status)
	}
	if again, _ := f.st.Count(t.Context(), "Task"); again != after {
		t.Errorf("a repeated intake changed the Tasks: %d -> %d", after, again)
	}
	// A ServiceRequest whose subject does not resolve: refused, nothing taken.
	bad := []byte(`{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:2f7c3a4e-6d0b-4f53-9b1a-1d9f4c2e7a10","resource":{"resourceType":"ServiceRequest","status":"active","intent":"order","subject":{"reference":"Patient/nowhere"}},"request":{"method":"POST","url":"ServiceRequest"}}]}`)
	r = f.do("POST", "/fhir", tokNGO, bad)
	if code, _ := r.outcome(t); r.status != 422 || code != "api-invalid" {
		t.Errorf("an unresolvable referral: %d %s %s", r.status, code, r.body)
	}
	if r := f.do("POST", "/fhir", tokNGO, []byte(`{"resourceType":"Bundle","type":"transaction","entry":[{}]}`)); r.status != 400 {
		t.Errorf("an invalid Bundle: %d", r.status)
	}
}

// TestIntakeServiceRequest: a single ServiceRequest with its Patient
// contained is one referral: 201 with its Location.
func TestIntakeServiceRequest(t *testing.T) {
	f := newFixture(t, sqliteURL(t))
	body, err := os.ReadFile("../testdata/mappings/fhir-referral-servicerequest.json")
	if err != nil {
		t.Fatal(err)
	}
	r := f.do("POST", "/fhir", tokNGO, body)
	if r.status != 201 || !strings.Contains(r.header.Get("Location"), "/fhir/ServiceRequest/") {
		t.Fatalf("intake of a ServiceRequest: %d %v %s", r.status, r.header, r.body)
	}
	if oo := r.resource(t).GetOperationOutcome(); oo == nil || !strings.Contains(string(r.body), "taken as ServiceRequest/") {
		t.Errorf("the outcome does not say what became of it: %s", r.body)
	}
}

// TestReviewFixes covers what a security review found: intake cannot
// write over another partner's referral, the referrer follows what it
// pushed, a conditional read does not skip the consent, the requester
// cannot rewrite the owner's statusReason or businessStatus nor sign notes
// as someone else, and Consent ids reveal nothing.
func TestReviewFixes(t *testing.T) {
	f := newFixture(t, sqliteURL(t))
	body, err := os.ReadFile("../testdata/mappings/fhir-referral-servicerequest.json")
	if err != nil {
		t.Fatal(err)
	}
	r := f.do("POST", "/fhir", tokNGO, body)
	if r.status != 201 {
		t.Fatalf("NGO intake: %d %s", r.status, r.body)
	}
	ngoSR := r.header.Get("Location")
	// The same referral numbers from another partner make other resources.
	r = f.do("POST", "/fhir", tokGarden, body)
	if r.status != 201 || r.header.Get("Location") == ngoSR {
		t.Errorf("another partner's intake of the same referral: %d at %s (the NGO's is %s)", r.status, r.header.Get("Location"), ngoSR)
	}
	// The referrer follows what it pushed.
	m, _, _ := searchIDs(t, f.do("GET", "/fhir/Task?requester=Organization/ngo-harbour", tokNGO, nil))
	if len(m) != 4 {
		t.Errorf("the NGO's referrals after its intake: %v (want the 3 of the sample and the pushed one)", m)
	}

	// The requester cannot rewrite the owner's statusReason or businessStatus.
	id := f.tasks["clinic-riverside"][0]
	path := "/fhir/Task/" + id
	patch := func(token, ops string) response {
		return f.do("PATCH", path, token, []byte(ops), "Content-Type", "application/json-patch+json")
	}
	if r := patch(tokClinic, `[{"op":"replace","path":"/status","value":"accepted"}]`); r.status != 200 {
		t.Fatalf("accept: %d %s", r.status, r.body)
	}
	if r := patch(tokClinic, `[{"op":"replace","path":"/status","value":"on-hold"},{"op":"add","path":"/statusReason","value":{"text":"waiting for an interpreter"}}]`); r.status != 200 {
		t.Fatalf("on-hold: %d %s", r.status, r.body)
	}
	if r := patch(tokNGO, `[{"op":"remove","path":"/statusReason"}]`); r.status != 422 {
		t.Errorf("the requester removes the owner's statusReason: %d %s", r.status, r.body)
	}
	if r := patch(tokNGO, `[{"op":"add","path":"/businessStatus","value":{"text":"done"}}]`); r.status != 422 {
		t.Errorf("the requester sets businessStatus: %d %s", r.status, r.body)
	}
	r = patch(tokNGO, `[{"op":"add","path":"/note","value":[{"authorReference":{"reference":"Organization/clinic-riverside"},"text":"signed as the clinic"}]}]`)
	if r.status != 200 || !strings.Contains(string(r.body), `"Organization/ngo-harbour"`) || strings.Contains(string(r.body), `"authorReference":{"reference":"Organization/clinic-riverside"}`) {
		t.Errorf("a note signed as another partner: %d %s", r.status, r.body)
	}
	stored, _ := f.st.Get(t.Context(), "Task", id)
	if !strings.Contains(string(stored.Data), "waiting for an interpreter") {
		t.Errorf("the owner's statusReason was lost: %s", stored.Data)
	}

	// A Consent id that is not the caller's patient's, and one that does not
	// exist, get the same answer; PUT creates nothing.
	cs, _ := f.st.Search(t.Context(), store.Query{Type: "Consent", Patient: stored.Patient})
	other := strings.Replace(string(cs[0].Data), `"id":"`+cs[0].ID+`"`, `"id":"no-such-consent"`, 1)
	if r := f.do("PUT", "/fhir/Consent/no-such-consent", tokNGO, []byte(other)); r.status != 404 {
		t.Errorf("PUT of a new Consent id: %d %s", r.status, r.body)
	}

	// After a revocation a conditional read is refused like any read.
	revoked := strings.Replace(string(cs[0].Data), `"status":"active"`, `"status":"inactive"`, 1)
	if r := f.do("PUT", "/fhir/Consent/"+cs[0].ID, tokNGO, []byte(revoked)); r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	if r := f.do("GET", path, tokClinic, nil, "If-None-Match", "*"); r.status != 403 || strings.Contains(string(r.body), "Consent/") {
		t.Errorf("a conditional read after the revocation: %d %s", r.status, r.body)
	}
}

// TestConcurrentUpdatesOfOneTaskLoseNothing: partners' updates racing on
// one Task either land or get a 409; none is written over by another
// (the version is checked on the locked row).
func TestConcurrentUpdatesOfOneTaskLoseNothing(t *testing.T) {
	urls := map[string]func(testing.TB) string{"sqlite": sqliteURL}
	if storetest.PostgresAvailable() {
		urls["postgres"] = storetest.PostgresURL
	}
	for name, newURL := range urls {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, newURL(t), func(o *Options) { o.Rate, o.Burst = 1e9, 1e9 })
			path := "/fhir/Task/" + f.tasks["clinic-riverside"][0]
			patch := func(ops string) (int, string) {
				req, _ := http.NewRequest("PATCH", f.srv.URL+path, strings.NewReader(ops))
				req.Header.Set("Authorization", "Bearer "+tokClinic)
				req.Header.Set("Content-Type", "application/json-patch+json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return 0, err.Error()
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			if code, body := patch(`[{"op":"replace","path":"/status","value":"accepted"},{"op":"add","path":"/note","value":[{"text":"first"}]}]`); code != 200 {
				t.Fatalf("accept: %d %s", code, body)
			}
			var (
				mu     sync.Mutex
				landed []string
				wg     sync.WaitGroup
			)
			for round := range 3 {
				for k := range 6 {
					wg.Go(func() {
						text := fmt.Sprintf("note %d.%d", round, k)
						code, body := patch(`[{"op":"add","path":"/note/-","value":{"text":"` + text + `"}}]`)
						switch code {
						case 200:
							mu.Lock()
							landed = append(landed, text)
							mu.Unlock()
						case 409, 412:
						default:
							t.Errorf("PATCH %s: %d %s", text, code, body)
						}
					})
				}
				wg.Wait()
			}
			got := f.do("GET", path, tokClinic, nil)
			if got.status != 200 {
				t.Fatalf("read: %d", got.status)
			}
			if len(landed) == 0 {
				t.Fatal("no update landed")
			}
			for _, text := range append(landed, "first") {
				if !strings.Contains(string(got.body), `"`+text+`"`) {
					t.Errorf("%q was accepted (200) but is not in the Task: written over by a concurrent update", text)
				}
			}
		})
	}
}

// TestConsentReleasesHeldReferral: the referral the patient's consent
// refused is held, not dropped; once the NGO records a consent that
// permits it, it is queued for the partner at once (and logged), and a
// consent that still refuses it leaves it held.
func TestConsentReleasesHeldReferral(t *testing.T) {
	f := newFixture(t, sqliteURL(t))
	ctx := t.Context()
	hs, err := f.st.HeldMessages(ctx, "", 0)
	if err != nil || len(hs) != 1 || hs[0].Partner != "community-garden" || !strings.HasPrefix(hs[0].Reason, "deny") {
		t.Fatalf("held after ingest: %+v %v", hs, err)
	}
	patient := hs[0].Patient
	cs, err := f.st.Search(ctx, store.Query{Type: "Consent", Patient: patient})
	if err != nil || len(cs) != 1 {
		t.Fatalf("consents of the held referral's patient: %v %v", cs, err)
	}
	before, err := f.st.Messages(ctx, store.MessageQuery{Partner: "community-garden", WithPayload: true})
	if err != nil {
		t.Fatal(err)
	}
	entries := func() int64 {
		h, err := f.st.AuditSize(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	logged := entries()

	// Recorded again as it was (still a deny): it stays held.
	if r := f.do("PUT", "/fhir/Consent/"+cs[0].ID, tokNGO, cs[0].Data); r.status != 200 {
		t.Fatalf("PUT of the same consent: %d %s", r.status, r.body)
	}
	if again, _ := f.st.HeldMessages(ctx, "", 0); len(again) != 1 {
		t.Errorf("a consent that still refuses released it: %+v", again)
	}

	permit := strings.Replace(string(cs[0].Data), `"provision":{"type":"deny"}`, `"provision":{"type":"permit"}`, 1)
	if permit == string(cs[0].Data) {
		t.Fatal("the sample consent's provision is not the deny this test changes")
	}
	if r := f.do("PUT", "/fhir/Consent/"+cs[0].ID, tokNGO, []byte(permit)); r.status != 200 {
		t.Fatalf("the NGO records the consent: %d %s", r.status, r.body)
	}
	if again, _ := f.st.HeldMessages(ctx, "", 0); len(again) != 0 {
		t.Errorf("still held after a permitting consent: %+v", again)
	}
	after, err := f.st.Messages(ctx, store.MessageQuery{Partner: "community-garden", WithPayload: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before)+1 || after[len(after)-1].Key != hs[0].Key || after[len(after)-1].State != store.StatePending {
		var got []string
		for _, m := range after {
			got = append(got, fmt.Sprintf("%d %s %s", m.ID, m.Key[:8], m.State))
		}
		t.Fatalf("community-garden's messages: %d before, after %v; want the held %s pending", len(before), got, hs[0].Key[:8])
	}
	if got := entries(); got <= logged {
		t.Errorf("audit log: %d entries before the release, %d after", logged, got)
	}
	// The worker sends it under the consent as it is now.
	prep, err := f.pipe.Prepare(ctx, after[len(after)-1])
	if err != nil || prep.Withhold != "" || len(prep.Bundle) == 0 {
		t.Errorf("Prepare of the released message: withhold %q, %d bytes, %v", prep.Withhold, len(prep.Bundle), err)
	}
}
