package fhir

import (
	"fmt"
	"strconv"

	"google.golang.org/protobuf/proto"

	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// TransactionResources returns copies of the resources of a transaction or
// batch Bundle with the references between entries rewritten from the
// entries' fullUrls ("urn:uuid:...") to "Type/id", as a FHIR server does when
// it processes a transaction. Pathway's bundles carry deterministic ids, so
// every entry resource must have an id; one without is an error naming the
// entry. The Bundle itself is not changed.
func TransactionResources(b *rpb.Bundle) ([]*ContainedResource, error) {
	byURL := make(map[string]*Reference, len(b.GetEntry()))
	out := make([]*ContainedResource, 0, len(b.GetEntry()))
	for i, e := range b.GetEntry() {
		if e.GetResource() == nil {
			continue
		}
		t, id := TypeOf(e.GetResource()), IDOf(e.GetResource())
		if id == "" {
			return nil, fmt.Errorf("bundle entry %d (%s) has no id: Pathway needs an id on every entry resource", i, t)
		}
		if u := e.GetFullUrl().GetValue(); u != "" {
			byURL[u] = Ref(t, id)
		}
		out = append(out, proto.Clone(e.GetResource()).(*ContainedResource))
	}
	rewrite := func(ref *Reference) {
		if target, ok := byURL[ref.GetUri().GetValue()]; ok {
			ref.Reference = proto.Clone(target).(*Reference).Reference
		}
	}
	for i, cr := range out {
		// The plans' walk first; a type they cannot describe takes the
		// reflective walk (which finds the references the first one did
		// not rewrite: a rewritten one no longer matches).
		if refsOK(cr, func(ref *Reference, _ []string) bool { rewrite(ref); return true }) {
			continue
		}
		walkReferences(Unwrap(cr).ProtoReflect(), "entry["+strconv.Itoa(i)+"]", func(_ string, ref *Reference) { rewrite(ref) })
	}
	return out, nil
}
