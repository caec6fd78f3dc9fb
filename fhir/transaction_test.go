package fhir

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"

	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// encodeTransactionByCopy is what EncodeTransaction stands for: the
// rewritten copies of TransactionResources, marshalled, with their search
// fields.
func encodeTransactionByCopy(b *rpb.Bundle) ([]StoredEntry, error) {
	crs, err := TransactionResources(b)
	if err != nil {
		return nil, err
	}
	out := make([]StoredEntry, 0, len(crs))
	for _, cr := range crs {
		data, err := Marshal(cr)
		if err != nil {
			return nil, err
		}
		out = append(out, StoredEntry{Type: TypeOf(cr), ID: IDOf(cr), Data: data, Search: SearchFieldsOf(cr)})
	}
	return out, nil
}

// transactionBundles are the Bundles of testdata: the mappings' golden
// outputs (what ingest stores), the demo's and the R4 examples, and
// variants made to reach what the writer must leave to the copying path.
func transactionBundles(t *testing.T) map[string]*rpb.Bundle {
	t.Helper()
	out := map[string]*rpb.Bundle{}
	add := func(name string, data []byte) {
		p := Parse(data)
		if p.Valid() && p.Resource.GetBundle() != nil {
			out[name] = p.Resource.GetBundle()
		}
	}
	files, _ := filepath.Glob("../testdata/mappings/golden/*.ndjson")
	more, _ := filepath.Glob("../testdata/demo/*")
	ex, _ := filepath.Glob("../testdata/fhir-r4-examples/Bundle/*.json")
	for _, f := range append(append(files, more...), ex...) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".ndjson") {
			sc := bufio.NewScanner(bytes.NewReader(data))
			sc.Buffer(nil, 1<<24)
			for i := 0; sc.Scan(); i++ {
				add(f+":"+string(rune('0'+i%10))+strings.Repeat("+", i/10), sc.Bytes())
			}
			continue
		}
		add(f, data)
	}
	if len(out) < 10 {
		t.Fatalf("only %d bundles found in testdata", len(out))
	}
	// A reference whose uri has an extension, a display and a type; one to
	// an absolute fullUrl; one to nothing in the Bundle; and a contained
	// resource whose references point at entries.
	demo := demoBundle(t)
	v := proto.Clone(demo).(*rpb.Bundle)
	task := v.Entry[3].Resource.GetTask()
	task.ForValue.Display = String("the patient")
	task.ForValue.Type = URI("Patient")
	task.ForValue.GetUri().Extension = []*dpb.Extension{{Url: URI("https://example.org/x"), Value: &dpb.Extension_ValueX{Choice: &dpb.Extension_ValueX_StringValue{StringValue: String("x")}}}}
	task.Focus = RefURN("urn:uuid:not-in-the-bundle")
	v.Entry[0].FullUrl = URI("https://ngo.example/fhir/Patient/" + IDOf(v.Entry[0].Resource))
	v.Entry[1].Resource.GetServiceRequest().Subject = RefURN("https://ngo.example/fhir/Patient/" + IDOf(v.Entry[0].Resource))
	out["variants"] = v
	c := proto.Clone(demo).(*rpb.Bundle)
	pat, err := Wrap(proto.Clone(c.Entry[0].Resource.GetPatient()))
	if err != nil {
		t.Fatal(err)
	}
	held, err := anypb.New(pat)
	if err != nil {
		t.Fatal(err)
	}
	c.Entry[3].Resource.GetTask().Contained = append(c.Entry[3].Resource.GetTask().Contained, held)
	out["contained"] = c
	return out
}

// TestEncodeTransactionMatchesCopies: EncodeTransaction gives exactly the
// bytes, ids and search fields of copying, rewriting and marshalling, for
// every Bundle of testdata, and leaves the Bundle as it was.
func TestEncodeTransactionMatchesCopies(t *testing.T) {
	entries := 0
	for name, b := range transactionBundles(t) {
		before := proto.Clone(b)
		want, werr := encodeTransactionByCopy(b)
		got, gerr := EncodeTransaction(b)
		if (werr == nil) != (gerr == nil) {
			t.Errorf("%s: error %v, want %v", name, gerr, werr)
			continue
		}
		if !proto.Equal(before, b) {
			t.Errorf("%s: EncodeTransaction changed the bundle", name)
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d entries, want %d", name, len(got), len(want))
			continue
		}
		for i := range want {
			entries++
			g, w := got[i], want[i]
			if g.Type != w.Type || g.ID != w.ID || g.Search != w.Search || !bytes.Equal(g.Data, w.Data) {
				t.Errorf("%s: entry %d:\n got %s/%s %+v %s\nwant %s/%s %+v %s", name, i, g.Type, g.ID, g.Search, g.Data, w.Type, w.ID, w.Search, w.Data)
			}
		}
	}
	if entries < 100 {
		t.Errorf("only %d entries compared", entries)
	}
	b := demoBundle(t)
	b.Entry[0].Resource.GetPatient().Id = nil
	if _, err := EncodeTransaction(b); err == nil {
		t.Error("an entry without an id must be an error")
	}
}

// FuzzEncodeTransaction: for any Bundle, EncodeTransaction agrees with
// copying, rewriting and marshalling.
func FuzzEncodeTransaction(f *testing.F) {
	for _, pattern := range []string{"../testdata/fhir-r4-examples/Bundle/*.json", "../testdata/demo/*.json", "../testdata/mappings/golden/*.json"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil && len(data) < 64<<10 {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := Parse(data)
		b := r.Resource.GetBundle()
		if b == nil {
			return
		}
		want, werr := encodeTransactionByCopy(b)
		got, gerr := EncodeTransaction(b)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("error %v, want %v", gerr, werr)
		}
		if len(got) != len(want) {
			t.Fatalf("%d entries, want %d", len(got), len(want))
		}
		for i := range want {
			if got[i].Type != want[i].Type || got[i].ID != want[i].ID || got[i].Search != want[i].Search || !bytes.Equal(got[i].Data, want[i].Data) {
				t.Fatalf("entry %d:\n got %+v %s\nwant %+v %s", i, got[i].Search, got[i].Data, want[i].Search, want[i].Data)
			}
		}
	})
}
