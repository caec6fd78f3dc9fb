package fhir

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

func demoBundle(t *testing.T) *rpb.Bundle {
	t.Helper()
	data, err := os.ReadFile("../testdata/demo/ngo-referral-bundle.json")
	if err != nil {
		t.Fatal(err)
	}
	cr, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return cr.GetBundle()
}

func TestTransactionResources(t *testing.T) {
	b := demoBundle(t)
	before := proto.Clone(b)
	res, err := TransactionResources(b)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(before, b) {
		t.Fatal("TransactionResources changed the bundle")
	}
	var keys []string
	for _, r := range res {
		keys = append(keys, Key(r))
	}
	const p = "8b1e6a52-6a0e-5d3c-9f4b-2f3c1d7e9a0"
	want := []string{"Patient/" + p + "1", "ServiceRequest/" + p + "2", "Consent/" + p + "3", "Task/" + p + "4"}
	if len(keys) != 4 || keys[0] != want[0] || keys[3] != want[3] {
		t.Fatalf("resources %v, want %v", keys, want)
	}
	task := res[3].GetTask()
	if got := RefString(task.GetForValue()); got != want[0] {
		t.Errorf("Task.for = %q, want %q", got, want[0])
	}
	if got := RefString(task.GetFocus()); got != want[1] {
		t.Errorf("Task.focus = %q, want %q", got, want[1])
	}
	if got := RefString(task.GetOwner()); got != "Organization/community-garden" {
		t.Errorf("Task.owner changed: %q", got)
	}
	for _, r := range res {
		if is := Validate(r); is.HasErrors() {
			t.Errorf("%s invalid after rewriting: %v", Key(r), is)
		}
	}

	b.Entry[0].Resource.GetPatient().Id = nil
	if _, err := TransactionResources(b); err == nil {
		t.Error("an entry without an id must be an error")
	}
}

func TestSearchFieldsOf(t *testing.T) {
	res, err := TransactionResources(demoBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	const p = "Patient/8b1e6a52-6a0e-5d3c-9f4b-2f3c1d7e9a01"
	tests := []SearchFields{
		{Patient: p},
		{Patient: p, Status: "active", Requester: "Organization/ngo-harbour"},
		{Patient: p, Status: "active"},
		{Patient: p, Status: "requested", Owner: "Organization/community-garden", Requester: "Organization/ngo-harbour"},
	}
	for i, want := range tests {
		if got := SearchFieldsOf(res[i]); got != want {
			t.Errorf("%s: %+v, want %+v", Key(res[i]), got, want)
		}
	}
	inProgress, err := Decode([]byte(`{"resourceType":"Task","status":"entered-in-error","intent":"order"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := SearchFieldsOf(inProgress).Status; got != "entered-in-error" {
		t.Errorf("status %q", got)
	}
}

func TestMarshalBinaryDeterministic(t *testing.T) {
	res, err := TransactionResources(demoBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		a, err := MarshalBinary(r)
		if err != nil {
			t.Fatal(err)
		}
		again, err := UnmarshalBinary(a)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := MarshalBinary(again)
		if !bytes.Equal(a, b) || !proto.Equal(r, again) {
			t.Errorf("%s: binary round trip differs", Key(r))
		}
	}
	if _, err := UnmarshalBinary([]byte("not proto")); err == nil {
		t.Error("garbage must not decode")
	}
}

// TestTransactionResourcesFastWalk: the plans' reference walk rewrites
// exactly what the reflective walk rewrites, on every Bundle of the corpus
// (make corpus: the whole shared corpus) and the demo's.
func TestTransactionResourcesFastWalk(t *testing.T) {
	var bundles []*rpb.Bundle
	bundles = append(bundles, demoBundle(t))
	// The mappings' goldens are the bundles ingest stores, full of urn:uuid
	// references.
	for _, dir := range append(corpusDirs(t), "../testdata/mappings/golden") {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(path, ".rejects.ndjson") {
				return err
			}
			var docs [][]byte
			switch filepath.Ext(path) {
			case ".json":
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				docs = append(docs, data)
			case ".ndjson":
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				docs = bytes.Split(bytes.TrimSpace(data), []byte("\n"))
			}
			for _, data := range docs {
				if r := Parse(data); r.Valid() && r.Resource.GetBundle() != nil {
					bundles = append(bundles, r.Resource.GetBundle())
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	rewritten := 0
	for i, b := range bundles {
		fast, err := TransactionResources(b)
		if err != nil {
			continue // an entry without an id: not a transaction Pathway takes
		}
		// The reflective walk alone, as TransactionResources did before.
		byURL := map[string]*Reference{}
		for _, e := range b.GetEntry() {
			if e.GetResource() != nil && e.GetFullUrl().GetValue() != "" {
				byURL[e.GetFullUrl().GetValue()] = Ref(TypeOf(e.GetResource()), IDOf(e.GetResource()))
			}
		}
		var inputs []*ContainedResource
		for _, e := range b.GetEntry() {
			if e.GetResource() != nil {
				inputs = append(inputs, e.GetResource())
			}
		}
		for j, cr := range fast {
			slow := proto.Clone(inputs[j]).(*ContainedResource)
			walkReferences(Unwrap(slow).ProtoReflect(), "", func(_ string, ref *Reference) {
				if target, ok := byURL[ref.GetUri().GetValue()]; ok {
					ref.Reference = proto.Clone(target).(*Reference).Reference
					rewritten++
				}
			})
			if !proto.Equal(cr, slow) {
				t.Errorf("bundle %d entry %d (%s): the fast walk's rewrite differs from the reflective walk's", i, j, Key(Unwrap(cr)))
			}
		}
	}
	if len(bundles) < 2 || rewritten == 0 {
		t.Fatalf("%d bundles, %d references rewritten: the test checked nothing", len(bundles), rewritten)
	}
	t.Logf("%d bundles, %d references rewritten", len(bundles), rewritten)
}
