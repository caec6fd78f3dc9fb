package fhir

import (
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// BundleSpec describes a Bundle: a transaction of one referral's resources,
// a batch, the response to either, a search result or a plain collection.
type BundleSpec struct {
	// ID is the logical id.
	ID string
	// Profile lists meta.profile canonicals.
	Profile []string
	// Security lists meta.security labels. A bundle carries no label that
	// itself reveals something sensitive (DESIGN.md).
	Security []*dpb.Coding
	// Identifier is a persistent identifier of the bundle, with system and value.
	Identifier *dpb.Identifier
	// Type is required.
	Type BundleType
	// Timestamp is when the bundle was assembled.
	Timestamp time.Time
	// Total is the number of matches of a search; searchset only (bdl-1).
	Total *uint32
	// Link lists links about the bundle (self, next for paging).
	Link []BundleLink
	// Entry lists the entries, in order.
	Entry []BundleEntry
}

// BundleLink is one link of a Bundle.
type BundleLink struct {
	// Relation is the link relation ("self", "next"). Required.
	Relation string
	// URL is the link target. Required.
	URL string
}

// BundleEntry is one entry of a Bundle. CreateEntry, UpdateEntry,
// ResourceEntry and SearchEntry make the usual kinds.
type BundleEntry struct {
	// FullURL is the entry's absolute URL: "urn:uuid:<uuid>" for resources
	// sent in a transaction, the server URL in a search result. Required
	// when the entry has a resource.
	FullURL string
	// Resource is the resource (a *task_go_proto.Task, say, or a ContainedResource).
	Resource proto.Message
	// Request is the operation to perform; transaction and batch only, and required there.
	Request *BundleRequest
	// Response is the result of an operation; transaction-response and batch-response only, and required there.
	Response *BundleResponse
	// Search says why the entry is in a search result; searchset only.
	Search *BundleSearch
}

// BundleRequest is the operation of a transaction or batch entry.
type BundleRequest struct {
	// Method is required.
	Method HTTPMethod
	// URL is relative to the server base: "Task" to create, "Task/<id>" to
	// update, "Task?identifier=..." for a conditional update. Required.
	URL string
	// IfNoneExist makes a POST a conditional create: the search (without
	// '?') that finds an existing resource, such as IdentifierQuery(identifier).
	IfNoneExist string
	// IfMatch makes the operation conditional on the version ETag (W/"3").
	IfMatch string
	// IfNoneMatch makes a read conditional on the ETag.
	IfNoneMatch string
}

// BundleResponse is the result of one entry of a transaction or batch.
type BundleResponse struct {
	// Status is the HTTP status, starting with the code ("201 Created"). Required.
	Status string
	// Location is where a created resource lives ("Task/123/_history/1").
	Location string
	// Etag is the version ETag of the resource.
	Etag string
	// LastModified is when the resource was last changed.
	LastModified time.Time
}

// BundleSearch says why an entry is in a searchset.
type BundleSearch struct {
	// Mode is required.
	Mode SearchMode
}

// CreateEntry returns a transaction or batch entry that creates res:
// fullUrl "urn:uuid:<id>" (res needs a UUID id, as NewID makes), POST to its
// type, conditional on ifNoneExist when that is not "" (see IdentifierQuery).
// References to it from other entries use RefURN(FullURL(id)), which the
// server rewrites to the id it assigns.
func CreateEntry(res proto.Message, ifNoneExist string) BundleEntry {
	return BundleEntry{
		FullURL:  FullURL(IDOf(res)),
		Resource: res,
		Request:  &BundleRequest{Method: HTTPMethodPOST, URL: TypeOf(res), IfNoneExist: ifNoneExist},
	}
}

// UpdateEntry returns a transaction or batch entry that creates or updates
// res at its own id: fullUrl "urn:uuid:<id>", PUT "Type/id". References to it
// may use Ref(type, id) or RefURN(FullURL(id)).
func UpdateEntry(res proto.Message) BundleEntry {
	return BundleEntry{
		FullURL:  FullURL(IDOf(res)),
		Resource: res,
		Request:  &BundleRequest{Method: HTTPMethodPUT, URL: TypeOf(res) + "/" + IDOf(res)},
	}
}

// ResourceEntry returns a collection entry: fullUrl "urn:uuid:<id>" and the resource.
func ResourceEntry(res proto.Message) BundleEntry {
	return BundleEntry{FullURL: FullURL(IDOf(res)), Resource: res}
}

// SearchEntry returns a searchset entry: the resource at its server URL, with its search mode.
func SearchEntry(fullURL string, res proto.Message, mode SearchMode) BundleEntry {
	return BundleEntry{FullURL: fullURL, Resource: res, Search: &BundleSearch{Mode: mode}}
}

// Build checks the spec and returns the Bundle. Beyond the bundle invariants
// (bdl-1 to bdl-7) it checks that every fullUrl is absolute and unique, that a
// "urn:uuid:" fullUrl holds a UUID equal to its resource's id, that request
// URLs match their resources, and that in a transaction or batch every
// "urn:uuid:" reference points at an entry of the bundle.
func (s BundleSpec) Build() (*rpb.Bundle, error) {
	c := &specCheck{typ: "Bundle"}
	c.common(s.ID, s.Profile, s.Security)
	if s.Identifier != nil {
		c.identifier("identifier", s.Identifier)
	}
	tv, ok := s.Type.proto()
	c.status("type", s.Type == "", ok)
	if s.Total != nil && s.Type != BundleTypeSearchset {
		c.fail("total", "only in a searchset (bdl-1)")
	}
	b := &rpb.Bundle{
		Id:         optID(s.ID),
		Meta:       buildMeta(s.Profile, s.Security),
		Identifier: s.Identifier,
		Type:       &rpb.Bundle_TypeCode{Value: tv},
		Timestamp:  Instant(s.Timestamp),
	}
	if s.Total != nil {
		b.Total = &dpb.UnsignedInt{Value: *s.Total}
	}
	for i, l := range s.Link {
		f := specIndex("link", i)
		c.text(f+".relation", l.Relation)
		c.text(f+".url", l.URL)
		b.Link = append(b.Link, &rpb.Bundle_Link{Relation: String(l.Relation), Url: URI(l.URL)})
	}
	needsRequest := s.Type == BundleTypeTransaction || s.Type == BundleTypeBatch
	needsResponse := s.Type == BundleTypeTransactionResponse || s.Type == BundleTypeBatchResponse
	fullURLs := make(map[string]bool, len(s.Entry))
	for i, e := range s.Entry {
		b.Entry = append(b.Entry, s.buildEntry(c, specIndex("entry", i), e, needsRequest, needsResponse, fullURLs))
	}
	if needsRequest {
		for i, e := range b.Entry {
			if e.GetResource() == nil {
				continue
			}
			if refsOK(e.GetResource(), func(ref *Reference, _ []string) bool { return urnRefOK(ref, fullURLs) }) {
				continue // one walk on the plans: every urn:uuid reference names an entry
			}
			f := specIndex("entry", i) + ".resource"
			bundleURNRefs(c, f, Unwrap(e.GetResource()), fullURLs)
		}
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return b, nil
}

// buildEntry checks and converts one entry.
func (s BundleSpec) buildEntry(c *specCheck, f string, e BundleEntry, needsRequest, needsResponse bool, fullURLs map[string]bool) *rpb.Bundle_Entry {
	out := &rpb.Bundle_Entry{}
	resType, resID := "", ""
	if e.Resource != nil {
		cr, err := Wrap(e.Resource)
		if err != nil {
			c.fail(f+".resource", "not an R4 resource")
		} else {
			out.Resource = cr
			resType, resID = TypeOf(cr), IDOf(cr)
		}
	}
	if e.Resource == nil && e.Request == nil && e.Response == nil {
		c.fail(f, "an entry needs a resource, a request or a response (bdl-5)")
	}
	switch u := e.FullURL; {
	case u == "":
		if e.Resource != nil {
			c.fail(f+".fullUrl", "required for an entry with a resource")
		}
	case strings.HasPrefix(u, "urn:uuid:"):
		if !IsUUID(u[len("urn:uuid:"):]) {
			c.fail(f+".fullUrl", "urn:uuid: needs a lowercase UUID; make ids with NewID")
		} else if resID != "" && resID != u[len("urn:uuid:"):] {
			c.fail(f+".fullUrl", "the UUID differs from the resource id")
		}
	case strings.HasPrefix(u, "urn:oid:"), strings.HasPrefix(u, "http://"), strings.HasPrefix(u, "https://"):
		if strings.Contains(u, "/_history/") {
			c.fail(f+".fullUrl", "cannot be a version-specific URL (bdl-8)")
		}
	default:
		c.fail(f+".fullUrl", "must be absolute: urn:uuid:, urn:oid:, http:// or https://")
	}
	if e.FullURL != "" {
		if fullURLs[e.FullURL] {
			c.fail(f+".fullUrl", "not unique in the bundle (bdl-7)")
		}
		fullURLs[e.FullURL] = true
		out.FullUrl = URI(e.FullURL)
	}
	switch {
	case needsRequest && e.Request == nil:
		c.fail(f+".request", "required in a transaction or batch (bdl-3)")
	case !needsRequest && e.Request != nil:
		c.fail(f+".request", "only in a transaction or batch (bdl-3)")
	case e.Request != nil:
		out.Request = e.Request.build(c, f+".request", resType, resID)
	}
	switch {
	case needsResponse && e.Response == nil:
		c.fail(f+".response", "required in a transaction-response or batch-response (bdl-4)")
	case !needsResponse && e.Response != nil:
		c.fail(f+".response", "only in a transaction-response or batch-response (bdl-4)")
	case e.Response != nil:
		c.text(f+".response.status", e.Response.Status)
		out.Response = &rpb.Bundle_Entry_Response{
			Status:       String(e.Response.Status),
			Etag:         optString(e.Response.Etag),
			LastModified: Instant(e.Response.LastModified),
		}
		if e.Response.Location != "" {
			out.Response.Location = URI(e.Response.Location)
		}
	}
	if e.Search != nil {
		if s.Type != BundleTypeSearchset {
			c.fail(f+".search", "only in a searchset (bdl-2)")
		}
		mv, ok := e.Search.Mode.proto()
		c.status(f+".search.mode", e.Search.Mode == "", ok)
		out.Search = &rpb.Bundle_Entry_Search{Mode: &rpb.Bundle_Entry_Search_ModeCode{Value: mv}}
	}
	return out
}

// build checks and converts a request against the entry's resource.
func (r *BundleRequest) build(c *specCheck, f, resType, resID string) *rpb.Bundle_Entry_Request {
	mv, ok := r.Method.proto()
	c.status(f+".method", r.Method == "", ok)
	c.text(f+".url", r.URL)
	if r.IfNoneExist != "" && r.Method != HTTPMethodPOST {
		c.fail(f+".ifNoneExist", "only with POST (a conditional create)")
	}
	if strings.HasPrefix(r.IfNoneExist, "?") {
		c.fail(f+".ifNoneExist", "the search without its leading '?'")
	}
	if resType != "" && r.URL != "" {
		path, query, conditional := strings.Cut(r.URL, "?")
		switch r.Method {
		case HTTPMethodPOST:
			if r.URL != resType {
				c.fail(f+".url", "a create posts to the resource type")
			}
		case HTTPMethodPUT:
			switch {
			case conditional && (path != resType || query == ""):
				c.fail(f+".url", "a conditional update is \"Type?search\" of the resource's type")
			case !conditional && r.URL != resType+"/"+resID:
				c.fail(f+".url", "an update puts to \"Type/id\" of the resource")
			}
		case HTTPMethodGET, HTTPMethodHEAD, HTTPMethodDELETE, HTTPMethodPATCH:
		}
	}
	out := &rpb.Bundle_Entry_Request{
		Method:      &rpb.Bundle_Entry_Request_MethodCode{Value: mv},
		Url:         URI(r.URL),
		IfNoneExist: optString(r.IfNoneExist),
		IfMatch:     optString(r.IfMatch),
		IfNoneMatch: optString(r.IfNoneMatch),
	}
	return out
}

// bundleURNRefs fails every urn:uuid reference in res that names no fullUrl of the bundle.
func bundleURNRefs(c *specCheck, path string, res proto.Message, fullURLs map[string]bool) {
	if res == nil {
		return
	}
	eachReference(res.ProtoReflect(), func(p string, _ protoreflect.FieldDescriptor, ref *Reference) {
		if !urnRefOK(ref, fullURLs) {
			c.fail(path+"."+p, "points at a urn:uuid fullUrl no entry of the bundle has")
		}
	})
}

// urnRefOK is false for a urn:uuid reference that names no fullUrl of the bundle.
func urnRefOK(ref *Reference, fullURLs map[string]bool) bool {
	u := ref.GetUri().GetValue()
	return !strings.HasPrefix(u, "urn:uuid:") || fullURLs[u]
}
