package server

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"

	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"

	"github.com/pathway-fhir/pathway/connectors"
	"github.com/pathway-fhir/pathway/exchange"
	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/mappings"
	"github.com/pathway-fhir/pathway/policy"
)

// intake takes a clinic's or an NGO's referral pushed as FHIR: a Bundle
// (transaction, batch, collection) or a single ServiceRequest with its
// Patient. Each ServiceRequest becomes one referral through the
// fhir-referral mapping (docs/fhir-referral.md) and the pipeline, with the
// caller as its source: labelled, routed, decided, stored and queued in
// one transaction per referral. The submission is all or nothing: if any
// referral cannot be converted, none is taken and the OperationOutcome
// names each problem by its FHIR path.
func (s *Server) intake(w http.ResponseWriter, r *http.Request, c *caller) {
	ctx := r.Context()
	body, err := fhir.ReadAllLimited(http.MaxBytesReader(w, r.Body, maxBody), maxBody)
	if err != nil {
		s.fail(w, r, http.StatusRequestEntityTooLarge, "api-invalid", "the body is larger than 4 MiB")
		return
	}
	if p := fhir.Parse(body); !p.Valid() {
		s.outcome(w, http.StatusBadRequest, p.Issues)
		return
	}
	src, err := connectors.OpenJSONObject(bytes.NewReader(body), "request")
	if err != nil {
		s.internal(w, r, err)
		return
	}
	rec, err := src.Next()
	if err != nil || rec.Err != nil {
		s.fail(w, r, http.StatusBadRequest, "api-invalid", "the body could not be read as one JSON object")
		return
	}
	m, err := mappings.Builtin("fhir-referral")
	if err == nil {
		// Ids are seeded by the caller's own namespace: another partner
		// sending the same referral numbers makes other resources.
		m, err = m.WithSourceSystem(IntakeSourceSystem(c.id))
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	type referral struct {
		path   string
		bundle *rpb.Bundle
	}
	var refs []referral
	var issues fhir.Issues
	for _, fr := range mappings.FHIRRecords(rec.JSON) {
		path := fr.Path
		if path == "" {
			path = "ServiceRequest"
		}
		if fr.Err != nil {
			issues = append(issues, recordIssues(path, fr.Err)...)
			continue
		}
		ref, err := m.Apply(fr.Fields)
		if err != nil {
			issues = append(issues, recordIssues(path, err)...)
			continue
		}
		b, err := mappings.Build(ref)
		if err != nil {
			issues = append(issues, fhir.Issue{Severity: fhir.SeverityError, Path: path, Code: "api-invalid", Details: "the referral could not be built: " + err.Error()})
			continue
		}
		if iv := fhir.Validate(b); iv.HasErrors() {
			issues = append(issues, iv...)
			continue
		}
		refs = append(refs, referral{path, b})
	}
	if len(issues) > 0 {
		s.logAccess(ctx, c, "transaction", policy.Deny)
		s.outcome(w, http.StatusUnprocessableEntity, issues)
		return
	}
	taken := map[string]string{} // FHIR path of the ServiceRequest -> Pathway's ServiceRequest
	var notes fhir.Issues
	for _, rf := range refs {
		res, err := s.o.Pipeline.Ingest(ctx, c.id, rf.bundle)
		if errors.Is(err, exchange.ErrForeignReferral) {
			s.logAccess(ctx, c, "transaction", policy.Deny)
			s.fail(w, r, http.StatusConflict, "api-conflict", rf.path+" conflicts with data Pathway holds from elsewhere: give the referral its own identifier")
			return
		}
		if err != nil {
			s.internal(w, r, err)
			return
		}
		taken[rf.path] = res.ServiceRequest
		what := "routed to " + strings.Join(routeNames(res.Routes), ", ")
		if res.Unroutable != "" {
			what = "held as unroutable: " + res.Unroutable
		}
		notes = append(notes, fhir.Issue{Severity: fhir.SeverityInformation, Path: rf.path, Code: "api-accepted",
			Details: fmt.Sprintf("taken as %s, %s", res.ServiceRequest, what)})
	}
	s.logAccess(ctx, c, "transaction", policy.Permit)
	if rt, _ := rec.JSON["resourceType"].(string); rt == "ServiceRequest" {
		w.Header().Set("Location", s.baseURL(r)+"/"+taken["ServiceRequest"])
		s.outcome(w, http.StatusCreated, notes)
		return
	}
	// A Bundle: one response entry per entry, in order. The ServiceRequests
	// became Pathway's referrals; the rest were taken with them.
	list, _ := rec.JSON["entry"].([]any)
	entries := make([]fhir.BundleEntry, len(list))
	for i := range list {
		resp := &fhir.BundleResponse{Status: "200 OK"}
		if sr, ok := taken[fmt.Sprintf("Bundle.entry[%d]", i)]; ok {
			resp = &fhir.BundleResponse{Status: "201 Created", Location: sr}
		}
		entries[i] = fhir.BundleEntry{Response: resp}
	}
	typ := fhir.BundleTypeTransactionResponse
	if bt, _ := rec.JSON["type"].(string); bt != "transaction" {
		typ = fhir.BundleTypeBatchResponse
	}
	b, err := fhir.BundleSpec{Type: typ, Timestamp: s.o.Now(), Entry: entries}.Build()
	if err != nil {
		s.internal(w, r, err)
		return
	}
	data, err := fhir.Marshal(b)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write(data)
}

// IntakeSourceSystem is the source system that seeds the ids of the
// referrals a partner pushes on the API.
func IntakeSourceSystem(partner string) string {
	return "https://pathway-fhir.org/source/api/" + partner
}

// recordIssues lists a mapping error's problems as issues at path.
func recordIssues(path string, err error) fhir.Issues {
	var re *mappings.RecordError
	if errors.As(err, &re) {
		out := make(fhir.Issues, len(re.Problems))
		for i, p := range re.Problems {
			out[i] = fhir.Issue{Severity: fhir.SeverityError, Path: path, Code: "api-invalid", Details: p.String()}
		}
		return out
	}
	return fhir.Issues{{Severity: fhir.SeverityError, Path: path, Code: "api-invalid", Details: err.Error()}}
}

// routeNames lists the partners of routes.
func routeNames(rs []exchange.Route) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Partner
	}
	return out
}
