package fhir

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
)

// btReferral builds the resources of one referral with deterministic ids
// and urn:uuid references between them, for a transaction.
func btReferral(t *testing.T) (patient, sr, consent, task proto.Message, ids map[string]string) {
	t.Helper()
	ids = map[string]string{}
	for _, typ := range []string{"Patient", "ServiceRequest", "Consent", "Task"} {
		ids[typ] = NewID("ngo-a", "case-17", typ)
	}
	urn := func(typ string) *Reference { return RefURN(FullURL(ids[typ])) }
	ps := btPatient()
	ps.ID = ids["Patient"]
	var err error
	if patient, err = ps.Build(); err != nil {
		t.Fatal(err)
	}
	ss := btServiceRequest()
	ss.ID, ss.Subject, ss.SupportingInfo = ids["ServiceRequest"], urn("Patient"), nil
	if sr, err = ss.Build(); err != nil {
		t.Fatal(err)
	}
	cs := btConsent()
	cs.ID, cs.Patient, cs.Performer, cs.Source = ids["Consent"], urn("Patient"), nil, nil
	cs.Provision.Provision[0].Data = nil
	if consent, err = cs.Build(); err != nil {
		t.Fatal(err)
	}
	ts := btTask()
	ts.ID, ts.Focus, ts.For = ids["Task"], urn("ServiceRequest"), urn("Patient")
	if task, err = ts.Build(); err != nil {
		t.Fatal(err)
	}
	return patient, sr, consent, task, ids
}

func TestBundleTransaction(t *testing.T) {
	patient, sr, consent, task, ids := btReferral(t)
	b, err := BundleSpec{
		Type:      BundleTypeTransaction,
		Timestamp: btT0,
		Entry: []BundleEntry{
			CreateEntry(patient, IdentifierQuery(Identifier("https://ngo-a.example/client", "c-17"))),
			CreateEntry(sr, IdentifierQuery(Identifier("https://ngo-a.example/referral", "r-9"))),
			CreateEntry(consent, IdentifierQuery(Identifier("https://ngo-a.example/consent", "k-3"))),
			UpdateEntry(task),
		},
	}.Build()
	if err != nil {
		t.Fatal(err)
	}
	j := btJSON(t, b)
	btContains(t, j, `{"resourceType":"Bundle","entry":[{"fullUrl":"urn:uuid:`+ids["Patient"]+`","request":{"ifNoneExist":"identifier=https://ngo-a.example/client|c-17","method":"POST","url":"Patient"},"resource":{"resourceType":"Patient"`,
		`"request":{"method":"PUT","url":"Task/`+ids["Task"]+`"}`,
		`"focus":{"reference":"urn:uuid:`+ids["ServiceRequest"]+`"}`,
		`"type":"transaction"`, `"timestamp":"2026-03-02T09:30:00Z"`)
}

func TestBundleOtherTypes(t *testing.T) {
	patient, sr, _, task, ids := btReferral(t)
	total := uint32(1)
	tests := []struct {
		name string
		spec BundleSpec
		want []string
	}{
		{"collection", BundleSpec{Type: BundleTypeCollection, Entry: []BundleEntry{ResourceEntry(patient), ResourceEntry(task)}},
			[]string{`"type":"collection"`, `{"fullUrl":"urn:uuid:` + ids["Task"] + `","resource":{"resourceType":"Task"`}},
		{"searchset", BundleSpec{Type: BundleTypeSearchset, Total: &total,
			Link:  []BundleLink{{Relation: "self", URL: "https://pathway.example/fhir/Patient?identifier=x"}},
			Entry: []BundleEntry{SearchEntry("https://pathway.example/fhir/Patient/"+ids["Patient"], patient, SearchModeMatch)}},
			[]string{`"total":1`, `"search":{"mode":"match"}`, `"link":[{"relation":"self"`}},
		{"batch", BundleSpec{Type: BundleTypeBatch, Entry: []BundleEntry{
			UpdateEntry(patient),
			{Request: &BundleRequest{Method: HTTPMethodGET, URL: "Task?owner=Organization/clinic-b"}},
			{Request: &BundleRequest{Method: HTTPMethodDELETE, URL: "Flag/f1"}},
			{FullURL: FullURL(IDOf(sr)), Resource: sr, Request: &BundleRequest{
				Method: HTTPMethodPUT, URL: "ServiceRequest?identifier=https://ngo-a.example/referral|r-9", IfMatch: `W/"2"`}},
		}}, []string{`"type":"batch"`, `{"request":{"method":"GET","url":"Task?owner=Organization/clinic-b"}}`, `"ifMatch":"W/\"2\""`}},
		{"transaction-response", BundleSpec{Type: BundleTypeTransactionResponse, Entry: []BundleEntry{
			{Response: &BundleResponse{Status: "201 Created", Location: "Patient/123/_history/1", Etag: `W/"1"`, LastModified: btT0}},
			{Response: &BundleResponse{Status: "200 OK"}},
		}}, []string{`"response":{"etag":"W/\"1\"","lastModified":"2026-03-02T09:30:00Z","location":"Patient/123/_history/1","status":"201 Created"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.spec.Build()
			if err != nil {
				t.Fatal(err)
			}
			btContains(t, btJSON(t, b), tt.want...)
		})
	}
}

func TestBundleSpecProblems(t *testing.T) {
	patient, sr, _, task, _ := btReferral(t)
	plain, err := PatientSpec{ID: "p1"}.Build()
	if err != nil {
		t.Fatal(err)
	}
	total := uint32(3)
	tests := []struct {
		field string
		spec  BundleSpec
	}{
		{"type", BundleSpec{}},
		{"type", BundleSpec{Type: "document"}},
		{"total", BundleSpec{Type: BundleTypeCollection, Total: &total}},
		{"entry[0].request", BundleSpec{Type: BundleTypeTransaction, Entry: []BundleEntry{ResourceEntry(patient)}}},
		{"entry[0].request", BundleSpec{Type: BundleTypeCollection, Entry: []BundleEntry{CreateEntry(patient, "")}}},
		{"entry[0].response", BundleSpec{Type: BundleTypeBatchResponse, Entry: []BundleEntry{ResourceEntry(patient)}}},
		{"entry[0].response", BundleSpec{Type: BundleTypeCollection, Entry: []BundleEntry{{FullURL: FullURL(IDOf(patient)), Resource: patient, Response: &BundleResponse{Status: "200"}}}}},
		{"entry[0].response.status", BundleSpec{Type: BundleTypeBatchResponse, Entry: []BundleEntry{{Response: &BundleResponse{}}}}},
		{"entry[0].search", BundleSpec{Type: BundleTypeCollection, Entry: []BundleEntry{SearchEntry(FullURL(IDOf(patient)), patient, SearchModeMatch)}}},
		{"entry[0].search.mode", BundleSpec{Type: BundleTypeSearchset, Entry: []BundleEntry{SearchEntry(FullURL(IDOf(patient)), patient, "")}}},
		{"entry[0]", BundleSpec{Type: BundleTypeCollection, Entry: []BundleEntry{{}}}},
		{"entry[0].resource", BundleSpec{Type: BundleTypeCollection, Entry: []BundleEntry{{FullURL: "urn:oid:1.2", Resource: &dpb.Coding{}}}}},
		{"entry[0].fullUrl", BundleSpec{Type: BundleTypeCollection, Entry: []BundleEntry{ResourceEntry(plain)}}},
		{"entry[0].fullUrl", BundleSpec{Type: BundleTypeCollection, Entry: []BundleEntry{{Resource: patient}}}},
		{"entry[0].fullUrl", BundleSpec{Type: BundleTypeCollection, Entry: []BundleEntry{{FullURL: "Patient/p1", Resource: patient}}}},
		{"entry[0].fullUrl", BundleSpec{Type: BundleTypeCollection, Entry: []BundleEntry{{FullURL: FullURL(IDOf(task)), Resource: patient}}}},
		{"entry[0].fullUrl", BundleSpec{Type: BundleTypeCollection, Entry: []BundleEntry{{FullURL: "https://x.example/Patient/1/_history/2", Resource: patient}}}},
		{"entry[1].fullUrl", BundleSpec{Type: BundleTypeCollection, Entry: []BundleEntry{ResourceEntry(patient), ResourceEntry(patient)}}},
		{"entry[0].request.method", BundleSpec{Type: BundleTypeBatch, Entry: []BundleEntry{{Request: &BundleRequest{URL: "Patient"}}}}},
		{"entry[0].request.url", BundleSpec{Type: BundleTypeBatch, Entry: []BundleEntry{{Request: &BundleRequest{Method: HTTPMethodGET}}}}},
		{"entry[0].request.url", BundleSpec{Type: BundleTypeTransaction, Entry: []BundleEntry{{FullURL: FullURL(IDOf(patient)), Resource: patient,
			Request: &BundleRequest{Method: HTTPMethodPOST, URL: "Task"}}}}},
		{"entry[0].request.url", BundleSpec{Type: BundleTypeTransaction, Entry: []BundleEntry{{FullURL: FullURL(IDOf(patient)), Resource: patient,
			Request: &BundleRequest{Method: HTTPMethodPUT, URL: "Patient/other"}}}}},
		{"entry[0].request.url", BundleSpec{Type: BundleTypeTransaction, Entry: []BundleEntry{{FullURL: FullURL(IDOf(patient)), Resource: patient,
			Request: &BundleRequest{Method: HTTPMethodPUT, URL: "Patient?"}}}}},
		{"entry[0].request.ifNoneExist", BundleSpec{Type: BundleTypeTransaction, Entry: []BundleEntry{{FullURL: FullURL(IDOf(patient)), Resource: patient,
			Request: &BundleRequest{Method: HTTPMethodPUT, URL: "Patient/" + IDOf(patient), IfNoneExist: "identifier=x"}}}}},
		{"entry[0].request.ifNoneExist", BundleSpec{Type: BundleTypeTransaction, Entry: []BundleEntry{CreateEntry(patient, "?identifier=x")}}},
		// The Task points at the ServiceRequest and Patient by urn:uuid; neither is in this bundle.
		{"entry[0].resource.focus", BundleSpec{Type: BundleTypeTransaction, Entry: []BundleEntry{UpdateEntry(task)}}},
		{"entry[1].resource.subject", BundleSpec{Type: BundleTypeBatch, Entry: []BundleEntry{UpdateEntry(task), UpdateEntry(sr)}}},
		{"link[0].url", BundleSpec{Type: BundleTypeSearchset, Link: []BundleLink{{Relation: "self"}}}},
		{"identifier", BundleSpec{Type: BundleTypeCollection, Identifier: Identifier("", "x")}},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			btExpectProblem(t, func() error { _, err := tt.spec.Build(); return err }, tt.field)
		})
	}
	// A collection may hold urn references that no entry resolves: only transactions and batches are processed.
	if _, err := (BundleSpec{Type: BundleTypeCollection, Entry: []BundleEntry{ResourceEntry(task)}}).Build(); err != nil {
		t.Errorf("collection: %v", err)
	}
	if !strings.Contains(FullURL(IDOf(task)), "urn:uuid:") {
		t.Error("FullURL")
	}
}
