package exchange

import (
	"fmt"
	"sync"

	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"

	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/store"
)

// parsedCache keeps parsed stored resources by the SHA-256 of their bytes:
// parsing FHIR JSON (google/fhir, strict) costs far more than the store
// read, and the API reads the same Tasks, Patients and Consents again and
// again. Entries are content-addressed, so a new version is a new entry
// and nothing is ever stale.
type parsedCache struct {
	mu  sync.Mutex
	max int
	m   map[[32]byte]*rpb.ContainedResource
}

var parsed = &parsedCache{max: 8192, m: map[[32]byte]*rpb.ContainedResource{}}

// ParseStored returns the parsed resource of a stored FHIR JSON version.
// The result is shared: treat it as read-only (proto.Clone before
// changing it).
func ParseStored(r store.Resource) (*rpb.ContainedResource, error) {
	if r.Format != FormatJSON {
		return nil, fmt.Errorf("stored %s is not FHIR JSON", r.Ref())
	}
	parsed.mu.Lock()
	cr, ok := parsed.m[r.Hash]
	parsed.mu.Unlock()
	if ok {
		return cr, nil
	}
	p := fhir.Parse(r.Data)
	if p.Resource == nil {
		return nil, fmt.Errorf("stored %s does not parse", r.Ref())
	}
	parsed.mu.Lock()
	if len(parsed.m) >= parsed.max {
		clear(parsed.m) // simple and bounded; the hot set refills at once
	}
	parsed.m[r.Hash] = p.Resource
	parsed.mu.Unlock()
	return p.Resource, nil
}

// RememberParsed puts a resource the caller has just stored, and holds
// parsed, in the parse cache: the next read of that version is not parsed
// again. cr must not be changed afterwards.
func RememberParsed(r store.Resource, cr *rpb.ContainedResource) {
	if r.Format != FormatJSON || cr == nil {
		return
	}
	parsed.mu.Lock()
	if len(parsed.m) >= parsed.max {
		clear(parsed.m)
	}
	parsed.m[r.Hash] = cr
	parsed.mu.Unlock()
}
