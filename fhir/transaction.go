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
	byURL, _, err := entryTargets(b)
	if err != nil {
		return nil, err
	}
	out := make([]*ContainedResource, 0, len(b.GetEntry()))
	for _, e := range b.GetEntry() {
		if e.GetResource() != nil {
			out = append(out, proto.Clone(e.GetResource()).(*ContainedResource))
		}
	}
	for i, cr := range out {
		rewriteRefs(cr, byURL, i)
	}
	return out, nil
}

// rewriteRefs rewrites, in cr, each reference to an entry's fullUrl to the
// typed reference byURL holds for it. The plans' walk first; a type they
// cannot describe takes the reflective walk (which finds the references
// the first one did not rewrite: a rewritten one no longer matches). i is
// the entry's index, for the reflective walk's paths.
func rewriteRefs(cr *ContainedResource, byURL map[string]*Reference, i int) {
	rewrite := func(ref *Reference) {
		if target, ok := byURL[ref.GetUri().GetValue()]; ok {
			ref.Reference = proto.Clone(target).(*Reference).Reference
		}
	}
	if refsOK(cr, func(ref *Reference, _ []string) bool { rewrite(ref); return true }) {
		return
	}
	walkReferences(Unwrap(cr).ProtoReflect(), "entry["+strconv.Itoa(i)+"]", func(_ string, ref *Reference) { rewrite(ref) })
}

// entryTargets returns what the entries' fullUrls stand for, as typed
// references and as the literals "Type/id"; an entry resource without an
// id is an error naming the entry.
func entryTargets(b *rpb.Bundle) (map[string]*Reference, map[string]string, error) {
	byURL := make(map[string]*Reference, len(b.GetEntry()))
	literal := make(map[string]string, len(b.GetEntry()))
	for i, e := range b.GetEntry() {
		if e.GetResource() == nil {
			continue
		}
		t, id := TypeOf(e.GetResource()), IDOf(e.GetResource())
		if id == "" {
			return nil, nil, fmt.Errorf("bundle entry %d (%s) has no id: Pathway needs an id on every entry resource", i, t)
		}
		if u := e.GetFullUrl().GetValue(); u != "" {
			byURL[u] = Ref(t, id)
			literal[u] = t + "/" + id
		}
	}
	return byURL, literal, nil
}

// StoredEntry is one entry resource of a transaction Bundle as a server
// stores it: its JSON with the references between entries rewritten (as
// TransactionResources rewrites them) and its search fields.
type StoredEntry struct {
	Type, ID string
	Data     []byte
	Search   SearchFields
}

// EncodeTransaction returns what TransactionResources, Marshal and
// SearchFieldsOf give for each entry resource of b, without copying the
// resources: the JSON writer rewrites the references as it writes them.
// A resource it cannot write so (one with contained resources, say) is
// copied, rewritten and marshalled as before. The Bundle is not changed.
func EncodeTransaction(b *rpb.Bundle) ([]StoredEntry, error) {
	byURL, literal, err := entryTargets(b)
	if err != nil {
		return nil, err
	}
	resolve := func(ref *Reference) *Reference {
		if target, ok := byURL[ref.GetUri().GetValue()]; ok {
			return &Reference{Reference: target.Reference, Type: ref.GetType()}
		}
		return ref
	}
	out := make([]StoredEntry, 0, len(b.GetEntry()))
	for i, e := range b.GetEntry() {
		cr := e.GetResource()
		if cr == nil {
			continue
		}
		se := StoredEntry{Type: TypeOf(cr), ID: IDOf(cr)}
		if data, ok := marshalFastRefs(cr, literal); ok {
			se.Data, se.Search = data, searchFields(cr, resolve)
			out = append(out, se)
			continue
		}
		// The copy, rewritten as TransactionResources rewrites it.
		c := proto.Clone(cr).(*ContainedResource)
		rewriteRefs(c, byURL, i)
		data, err := Marshal(c)
		if err != nil {
			return nil, fmt.Errorf("encoding %s: %w", Key(c), err)
		}
		se.Data, se.Search = data, SearchFieldsOf(c)
		out = append(out, se)
	}
	return out, nil
}
