package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pathway-fhir/pathway/fhir"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// The planned walks (plan.go) must find exactly what the reflective walk
// (path.go) finds. These tests compare them element by element on every
// resource of the test data, on the whole shared corpus when
// PATHWAY_CORPUS names it (make corpus), on generated referral Bundles,
// and (FuzzPlannedWalk) on whatever the fuzzer makes; each resource is
// checked as it is and after labelling, when it has inline labels.

// namedResource is one resource to compare the walks on.
type namedResource struct {
	name string
	msg  proto.Message
}

// diffResources returns the resources of the JSON files under the
// folders, with the entries of Bundles (and of Bundles in them) as
// resources of their own.
func diffResources(t testing.TB, dirs ...string) []namedResource {
	t.Helper()
	var out []namedResource
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || filepath.Ext(path) != ".json" {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if !bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) || !bytes.Contains(data, []byte(`"resourceType"`)) {
				return nil
			}
			r := fhir.Parse(data)
			if r.Resource == nil {
				return nil // not a resource this model reads
			}
			out = appendResources(out, path, r.Resource)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func appendResources(out []namedResource, name string, cr *fhir.ContainedResource) []namedResource {
	res := fhir.Unwrap(cr)
	if res == nil {
		return out
	}
	out = append(out, namedResource{name, res})
	for i, en := range cr.GetBundle().GetEntry() {
		if en.GetResource() != nil {
			out = appendResources(out, fmt.Sprintf("%s entry[%d]", name, i), en.GetResource())
		}
	}
	return out
}

// corpusDiffDirs are the folders the differential tests read: the test
// data, and the shared corpus when PATHWAY_CORPUS names it.
func corpusDiffDirs(t testing.TB) []string {
	dirs := []string{"../testdata"}
	if c := os.Getenv("PATHWAY_CORPUS"); c != "" {
		if _, err := os.Stat(c); err != nil {
			t.Fatalf("PATHWAY_CORPUS=%s: %v", c, err)
		}
		dirs = append(dirs, c)
	}
	return dirs
}

// visited is one element a walk met, as the writers would see it.
type visited struct {
	path   string
	elem   *elem // persisted: with the elems above it
	class  planClass
	pruned bool
}

// sameElem reports whether two elems and those above them are the same:
// the same messages (the copy-on-write maps are keyed on their identity),
// fields, indexes, names and choices.
func sameElem(a, b *elem) bool {
	for ; a != nil && b != nil; a, b = a.up, b.up {
		if a.parent != b.parent || a.fd != b.fd || a.idx != b.idx || a.msg != b.msg || a.name != b.name || a.choice != b.choice {
			return false
		}
	}
	return a == nil && b == nil
}

func sameVisits(a, b []visited) bool {
	return slices.EqualFunc(a, b, func(x, y visited) bool {
		return x.path == y.path && x.class == y.class && x.pruned == y.pruned && sameElem(x.elem, y.elem)
	})
}

// classOf is the class of an element as the reflective walks' type
// switches see it, written out again here.
func classOf(m protoreflect.Message) planClass {
	switch m.Interface().(type) {
	case *dpb.Coding:
		return classCoding
	case *dpb.CodeableConcept:
		return classCodeableConcept
	case *dpb.Reference:
		return classReference
	case *dpb.Extension:
		return classExtension
	case *dpb.Identifier:
		return classIdentifier
	case *dpb.Meta:
		return classMeta
	case *dpb.Narrative:
		return classNarrative
	case *dpb.HumanName, *dpb.ContactPoint, *dpb.Address, *dpb.Period, *dpb.Quantity, *dpb.Attachment:
		return classSummary
	}
	return classOther
}

// describeElem renders an elem and the elems above it, with the identity
// of the messages (the copy-on-write maps are keyed on it).
func describeElem(e *elem) string {
	var b strings.Builder
	for x := e; x != nil; x = x.up {
		choice := ""
		if x.choice != nil {
			choice = string(x.choice.FullName())
		}
		fmt.Fprintf(&b, "{parent %p fd %s idx %d msg %p name %s choice %s} ", x.parent.Interface(), x.fd.FullName(), x.idx, x.msg.Interface(), x.name, choice)
	}
	return b.String()
}

// prune is a pruning rule both walks are given, from the element's
// message alone: what scan and the labeller do, and a few arbitrary ones.
type prune func(m protoreflect.Message) bool

var prunes = map[string]prune{
	"none": func(protoreflect.Message) bool { return true },
	"scan-like": func(m protoreflect.Message) bool {
		switch m.Interface().(type) {
		case *fhir.ContainedResource:
			return true
		}
		name := m.Descriptor().Name()
		return name != "Meta" && name != "Narrative" && name != "CodeableConcept" && name != "Coding" && name != "Reference"
	},
}

// traceWalk and traceVisit record what each walk meets.
func traceWalk(m protoreflect.Message, prims bool, keep prune) []visited {
	var out []visited
	walk(m, nil, prims, func(e *elem) bool {
		k := keep(e.msg)
		out = append(out, visited{path: e.path(), elem: e.persist(), class: classOf(e.msg), pruned: !k})
		return k
	})
	return out
}

func traceVisit(t testing.TB, m protoreflect.Message, prims bool, keep prune) []visited {
	var out []visited
	if !visit(m, prims, func(_ *visitor, n *node) bool {
		e := n.elem(m)
		k := keep(e.msg)
		out = append(out, visited{path: e.path(), elem: e, class: n.plan.class, pruned: !k})
		return k
	}) {
		t.Fatalf("%s: no plan", m.Descriptor().FullName())
	}
	return out
}

// compareWalks checks that the planned and reflective walks and scans
// agree on a resource.
func compareWalks(t testing.TB, name string, m protoreflect.Message, l *Labeller) {
	t.Helper()
	for _, prims := range []bool{false, true} {
		for pn, keep := range prunes {
			want, got := traceWalk(m, prims, keep), traceVisit(t, m, prims, keep)
			if !sameVisits(want, got) {
				t.Errorf("%s (prims %v, prune %s): planned walk differs:\n%s", name, prims, pn, firstVisitDiff(want, got))
			}
		}
	}
	if got, want := hasInlineLabels(m), hasInlineLabelsReflect(m); got != want {
		t.Errorf("%s: hasInlineLabels says %v, on the reflective walk %v", name, got, want)
	}
	for _, pil := range []bool{false, true} {
		it := &item{}
		if pil {
			it.labels = []Label{{fhir.SystemActCode, LabelProcessInline}}
		}
		wantIt := &item{labels: it.labels}
		want := scanReflect(m, wantIt, nil, false)
		got, ok := scanPlanned(m, it, nil, false, true)
		if !ok {
			t.Fatalf("%s: no plan", name)
		}
		if d := diffScans(want, got, wantIt, it); d != "" {
			t.Errorf("%s (PROCESSINLINELABEL %v): planned scan differs: %s", name, pil, d)
		}
		// The references found again, as a scan that left them finds them.
		light, ok := scanPlanned(m, &item{labels: it.labels}, nil, false, false)
		if !ok || !light.refsLeft || light.refs != nil {
			t.Fatalf("%s: scanPlanned without references kept some", name)
		}
		if d := diffScans(want, scanned{refs: light.refsAt(m, nil), labelled: want.labelled}, wantIt, wantIt); d != "" {
			t.Errorf("%s (PROCESSINLINELABEL %v): references found again differ: %s", name, pil, d)
		}
		if l != nil && l.immig.codes != nil {
			// The scan with the immigration search in its walk: the same
			// scan, and what mayHoldCode's own walk says.
			sc, codes, refsOut, maybe, ok := scanSearching(m, nil, pil, true, &l.immig)
			if !ok {
				t.Fatalf("%s: no plan", name)
			}
			if d := diffScans(want, sc, wantIt, &item{codes: codes, refsOut: refsOut, scanned: true}); d != "" {
				t.Errorf("%s (PROCESSINLINELABEL %v): scan searching differs: %s", name, pil, d)
			}
			if wantMaybe, _ := mayHoldCode(m, &l.immig); maybe != wantMaybe {
				t.Errorf("%s (PROCESSINLINELABEL %v): scan searching says %v, mayHoldCode %v", name, pil, maybe, wantMaybe)
			}
		}
	}
	if l != nil {
		compareLabelWalks(t, name, m, l)
	}
}

// compareResolve checks resolve on the plans against resolveReflect for
// every path to an element of the resource (without indexes, a choice by
// its typed and by its base name) and the paths the test configuration's
// rules and agreements name.
func compareResolve(t testing.TB, name string, m protoreflect.Message) {
	t.Helper()
	paths := map[string]bool{"": true, "extension": true, "category": true, "reasonCode": true, "code": true,
		"value": true, "name.family": true, "name.given": true, "birthDate": true, "note.text": true, "nope": true}
	if m.Descriptor().Name() == "Bundle" {
		return // its entries are checked one by one
	}
	walk(m, nil, true, func(e *elem) bool {
		p := stripIndexes(e.path())
		if strings.Count(p, ".") > 3 {
			return false
		}
		paths[p] = true
		if e.choice != nil {
			base := e.name
			if e.up != nil {
				base = stripIndexes(e.up.path()) + "." + e.name
			}
			paths[base] = true
			paths[base+".extension"] = true
		}
		return true
	})
	for p := range paths {
		want, got := resolveReflect(m, p), resolve(m, p)
		if len(want) != len(got) {
			t.Errorf("%s: resolve %q: %d elements, the reflective resolve %d", name, p, len(got), len(want))
			continue
		}
		for i := range want {
			if !sameElem(&want[i], &got[i]) {
				t.Errorf("%s: resolve %q [%d]: %s, the reflective resolve %s", name, p, i, describeElem(&got[i]), describeElem(&want[i]))
			}
		}
	}
}

// compareLabelWalks checks the labeller's planned shortcuts against its
// reflective walks: a resource the planned check finds no immigration
// code in has none the reflective walk would label, and containsCode on
// the plans agrees with the reflective walk, element by element.
func compareLabelWalks(t testing.TB, name string, m protoreflect.Message, l *Labeller) {
	t.Helper()
	r := &l.immig
	if r.codes == nil {
		return
	}
	if got, ok := mayHoldCode(m, r); ok {
		if want := visitedHoldCode(t, m, r, true, true); got != want {
			t.Errorf("%s: mayHoldCode's search says %v, the visiting walk %v", name, got, want)
		}
	}
	if maybe, ok := mayHoldCode(m, r); ok && !maybe {
		if tops, whole, _ := immigrationTops(m, r); len(tops) > 0 || whole {
			t.Errorf("%s: the planned walk finds no immigration code, the reflective walk finds %d (whole resource %v)", name, len(tops), whole)
		}
	}
	rules := []*labelRule{r}
	for _, i := range l.rulesFor(string(m.Descriptor().Name())) {
		rules = append(rules, &l.rules[i])
	}
	for _, rule := range rules {
		if rule.matchAll {
			continue
		}
		check := func(e *elem) {
			for _, prims := range []bool{false, true} {
				want := rule.containsCodeReflect(e.msg, prims)
				if got := rule.containsCodeIn(e.msg, prims); got != want {
					t.Errorf("%s %s: rule %s: containsCodeIn(prims %v) %v, the reflective walk says %v", name, e.path(), rule.name, prims, got, want)
				}
				switch e.msg.Interface().(type) {
				case *dpb.Coding, *dpb.CodeableConcept: // decided without a walk
				default:
					if got := visitedHoldCode(t, e.msg, rule, prims, false); got != want {
						t.Errorf("%s %s: rule %s: the visiting walk (prims %v) says %v, the reflective walk %v", name, e.path(), rule.name, prims, got, want)
					}
				}
			}
		}
		// The resource and its elements two levels down: what rules name.
		check(&elem{msg: m})
		walk(m, nil, true, func(e *elem) bool {
			check(e)
			return e.up == nil
		})
	}
}

// visitedHoldCode is searchPlan on visit, with the search's decisions in
// the walk's function: what mayHoldCode and containsCodeIn did before they
// searched without nodes.
func visitedHoldCode(t testing.TB, m protoreflect.Message, r *labelRule, prims, skipMeta bool) bool {
	t.Helper()
	p, ptr := planFor(m)
	if p != nil && p.hasContained(ptr) && skipMeta {
		return true
	}
	found := false
	if !visit(m, prims, func(v *visitor, n *node) bool {
		switch c := n.plan.class; {
		case skipMeta && (c == classMeta || c == classNarrative):
			return false
		case c == classExtension:
			return (*dpb.Extension)(n.ptr).GetUrl().GetValue() != ExtInlineSecurityLabel
		case c == classCoding:
			found = found || r.codingMatches((*dpb.Coding)(n.ptr))
			v.stop = found
			return false
		}
		return true
	}) {
		t.Fatal("no plan")
	}
	return found
}

// decorate returns a copy of a resource with extensions added to about
// one element in three (primitive values too): extensions holding an
// immigration code, a literal reference, an inline label, or an
// extension holding those. Real data seldom has codes and references in
// such places (a primitive's extensions, a Period's), and these are where
// a plan that skips the wrong subtree would go unnoticed.
func decorate(res proto.Message, r *rand.Rand) proto.Message {
	c := proto.Clone(res)
	var visit func(m protoreflect.Message, depth int)
	visit = func(m protoreflect.Message, depth int) {
		var kids []protoreflect.Message
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Message() == nil || fd.IsMap() || fd.Message().FullName() == anyName {
				return true
			}
			if fd.IsList() {
				for i := range v.List().Len() {
					kids = append(kids, v.List().Get(i).Message())
				}
				return true
			}
			kids = append(kids, v.Message())
			return true
		})
		for _, k := range kids {
			visit(k, depth+1)
		}
		fd := m.Descriptor().Fields().ByName("extension")
		if fd == nil || !fd.IsList() || fd.Message().FullName() != (&dpb.Extension{}).ProtoReflect().Descriptor().FullName() || r.IntN(3) != 0 || depth > 12 {
			return
		}
		l := m.Mutable(fd).List()
		l.Append(protoreflect.ValueOfMessage(decoration(r).ProtoReflect()))
	}
	visit(c.ProtoReflect(), 0)
	return c
}

func decoration(r *rand.Rand) *dpb.Extension {
	x := &dpb.Extension{Url: fhir.URI("https://pathway.test/decoration")}
	switch r.IntN(5) {
	case 0:
		x.Value = &dpb.Extension_ValueX{Choice: &dpb.Extension_ValueX_Coding{Coding: fhir.Coding(fhir.SystemPathway, fhir.PathwayGroupLegalStatus, "")}}
	case 1:
		x.Value = &dpb.Extension_ValueX{Choice: &dpb.Extension_ValueX_Reference{Reference: &dpb.Reference{
			Reference: &dpb.Reference_PatientId{PatientId: &dpb.ReferenceId{Value: "p1",
				Extension: []*dpb.Extension{{Url: fhir.URI("https://pathway.test/on-id"), Value: &dpb.Extension_ValueX{Choice: &dpb.Extension_ValueX_Boolean{Boolean: &dpb.Boolean{Value: true}}}}}}},
			Identifier: &dpb.Identifier{Type: &dpb.CodeableConcept{Coding: []*dpb.Coding{fhir.Coding(fhir.SystemLOINC, "78746-5", "")}}}}}}
	case 2:
		x.Url = fhir.URI(ExtInlineSecurityLabel)
		x.Value = &dpb.Extension_ValueX{Choice: &dpb.Extension_ValueX_Coding{Coding: Label{fhir.SystemActCode, "PSY"}.Coding()}}
	case 3:
		x.Value = &dpb.Extension_ValueX{Choice: &dpb.Extension_ValueX_StringValue{StringValue: &dpb.String{Value: "x",
			Extension: []*dpb.Extension{{Url: fhir.URI(ExtInlineSecurityLabel), Value: &dpb.Extension_ValueX{Choice: &dpb.Extension_ValueX_Coding{Coding: Label{fhir.SystemActCode, "SDV"}.Coding()}}}}}}}
	default:
		x.Extension = []*dpb.Extension{decoration(r), {Url: fhir.URI("https://pathway.test/period"),
			Value: &dpb.Extension_ValueX{Choice: &dpb.Extension_ValueX_Period{Period: &dpb.Period{
				Extension: []*dpb.Extension{{Url: fhir.URI("https://pathway.test/in-period"), Value: &dpb.Extension_ValueX{Choice: &dpb.Extension_ValueX_Coding{Coding: fhir.Coding(fhir.SystemPathway, fhir.PathwayGroupMigrantType, "")}}}}}}}}}
	}
	return x
}

func firstVisitDiff(want, got []visited) string {
	for i := range min(len(want), len(got)) {
		if !sameVisits(want[i:i+1], got[i:i+1]) {
			return fmt.Sprintf("at %d:\n  walk:  %s %d %s\n  plans: %s %d %s", i,
				want[i].path, want[i].class, describeElem(want[i].elem), got[i].path, got[i].class, describeElem(got[i].elem))
		}
	}
	return fmt.Sprintf("walk met %d elements, the plans %d", len(want), len(got))
}

// diffScans describes how two scans differ, "" when they do not.
func diffScans(want, got scanned, wantIt, gotIt *item) string {
	if !slices.Equal(wantIt.codes, gotIt.codes) {
		return fmt.Sprintf("codes %d vs %d", len(wantIt.codes), len(gotIt.codes))
	}
	if !slices.Equal(wantIt.refsOut, gotIt.refsOut) {
		return fmt.Sprintf("refsOut %q vs %q", wantIt.refsOut, gotIt.refsOut)
	}
	if wantIt.scanned != gotIt.scanned {
		return "scanned"
	}
	if len(want.refs) != len(got.refs) {
		return fmt.Sprintf("%d refs vs %d", len(want.refs), len(got.refs))
	}
	for i := range want.refs {
		if a, b := want.refs[i].at.get(), got.refs[i].at.get(); !sameElem(a, b) || want.refs[i].key != got.refs[i].key {
			return fmt.Sprintf("ref %d: %s %s vs %s %s", i, want.refs[i].key, describeElem(a), got.refs[i].key, describeElem(b))
		}
	}
	if len(want.labelled) != len(got.labelled) {
		return fmt.Sprintf("%d labelled vs %d", len(want.labelled), len(got.labelled))
	}
	for i := range want.labelled {
		if !sameElem(want.labelled[i].e, got.labelled[i].e) {
			return fmt.Sprintf("labelled %d: %s vs %s", i, describeElem(want.labelled[i].e), describeElem(got.labelled[i].e))
		}
		if !slices.Equal(want.labelled[i].labels, got.labelled[i].labels) {
			return fmt.Sprintf("labelled %d: labels %v vs %v", i, want.labelled[i].labels, got.labelled[i].labels)
		}
	}
	return ""
}

// labelledCopy labels a copy of the resource as Filter does; nil when
// nothing was labelled.
func labelledCopy(l *Labeller, res proto.Message) protoreflect.Message {
	w := newCOW(res.ProtoReflect())
	if applied, _ := l.apply(w); len(applied) == 0 {
		return nil
	}
	return w.root
}

func diffLabeller(t testing.TB) *Labeller {
	t.Helper()
	cfg := testConfig(t)
	l, err := NewLabeller(cfg.Labels, cfg.ValueSets)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestPlannedWalkMatchesWalk(t *testing.T) {
	l := diffLabeller(t)
	rs := diffResources(t, corpusDiffDirs(t)...)
	if len(rs) < 200 {
		t.Fatalf("only %d resources in the test data", len(rs))
	}
	rnd := rand.New(rand.NewPCG(11, 2026))
	for _, r := range rs {
		compareWalks(t, r.name, r.msg.ProtoReflect(), l)
		compareResolve(t, r.name, r.msg.ProtoReflect())
		if lm := labelledCopy(l, r.msg); lm != nil {
			compareWalks(t, r.name+" (labelled)", lm, l)
		}
		d := decorate(r.msg, rnd)
		compareWalks(t, r.name+" (decorated)", d.ProtoReflect(), l)
		compareResolve(t, r.name+" (decorated)", d.ProtoReflect())
		if lm := labelledCopy(l, d); lm != nil {
			compareWalks(t, r.name+" (decorated, labelled)", lm, l)
		}
	}
	t.Logf("%d resources", len(rs))
}

func TestPlannedWalkMatchesWalkOnGeneratedBundles(t *testing.T) {
	l := diffLabeller(t)
	g := &gen{r: rand.New(rand.NewPCG(7, 2026)), partners: permissiveConfig(t).Partners}
	for i := range 100 {
		b := g.bundle()
		cr, err := fhir.Wrap(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range appendResources(nil, fmt.Sprintf("bundle %d", i), cr) {
			compareWalks(t, r.name, r.msg.ProtoReflect(), l)
			if lm := labelledCopy(l, r.msg); lm != nil {
				compareWalks(t, r.name+" (labelled)", lm, l)
			}
		}
	}
}

// FuzzPlannedWalk: on any resource the fuzzer makes, the planned walks
// find what the reflective walks find.
func FuzzPlannedWalk(f *testing.F) {
	for _, dir := range []string{"resources", "bundles", "consents"} {
		files, _ := filepath.Glob(filepath.Join(policyTestdata, dir, "*.json"))
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	l := diffLabeller(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := fhir.Parse(data)
		if r.Resource == nil {
			return
		}
		rnd := rand.New(rand.NewPCG(uint64(len(data)), 2026))
		for _, nr := range appendResources(nil, "input", r.Resource) {
			for i, res := range []proto.Message{nr.msg, decorate(nr.msg, rnd)} {
				name := fmt.Sprintf("%s (decorated %v)", nr.name, i == 1)
				compareWalks(t, name, res.ProtoReflect(), l)
				compareResolve(t, name, res.ProtoReflect())
				if lm := labelledCopy(l, res); lm != nil {
					compareWalks(t, name+" (labelled)", lm, l)
				}
			}
		}
	})
}

// TestFilterConcurrent: the plans, the visitor pool and the shared label
// codings serve concurrent Filters of one Bundle, each giving what a
// lone Filter gives and leaving the input as it was (run with -race).
// The outputs are marshalled after the Filters: marshalling writes the
// size caches of messages the outputs share with the input, which the
// struct copies of copy-on-write read.
func TestFilterConcurrent(t *testing.T) {
	cfg := testConfig(t)
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	in := testBundle(t, "referral-5.json")
	before, _ := proto.Marshal(in)
	partners := []string{"clinic-b", "community-c"}
	type result struct {
		out *rpb.Bundle
		d   []byte // the decision's JSON, explained while other Filters run
	}
	results := make([][]result, 8)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				out, d := e.Filter(filterRequest(cfg, partners[(i+j)%2], "COC"), in)
				dj, _ := json.Marshal(d)
				results[i] = append(results[i], result{out, dj})
			}
		}()
	}
	wg.Wait()
	want := map[string][]byte{}
	wantD := map[string]string{}
	for _, p := range partners {
		out, d := e.Filter(filterRequest(cfg, p, "COC"), in)
		want[p], _ = proto.Marshal(out)
		j, _ := json.Marshal(d) // all of it: the explanation too
		wantD[p] = string(j)
	}
	for i, rs := range results {
		for j, r := range rs {
			p := partners[(i+j)%2]
			if got, _ := proto.Marshal(r.out); !bytes.Equal(got, want[p]) || string(r.d) != wantD[p] {
				t.Errorf("a concurrent Filter for %s gave another result than a lone one", p)
			}
		}
	}
	if after, _ := proto.Marshal(in); !bytes.Equal(before, after) {
		t.Error("the input Bundle changed")
	}
}

// TestPlanIfaceMatchesReflect: the interface values the plans put
// together (walkPlan.iface) are the ones reflect makes, for every type
// planned while walking the test data.
func TestPlanIfaceMatchesReflect(t *testing.T) {
	l := diffLabeller(t)
	for _, r := range diffResources(t, corpusDiffDirs(t)...) {
		compareWalks(t, r.name, r.msg.ProtoReflect(), l)
	}
	m := walkPlans.Load()
	if m == nil || len(*m) < 50 {
		t.Fatal("few plans made")
	}
	for typ, p := range *m {
		if p.tab == nil {
			continue // not a message: never asked
		}
		v := reflect.New(typ)
		got := p.iface(v.UnsafePointer())
		if want := v.Interface(); got != want {
			t.Errorf("%v: iface gives %T %p, reflect %T %p", typ, got, got, want, want)
		}
		if got.ProtoReflect().Descriptor() != p.desc {
			t.Errorf("%v: iface's message has another descriptor", typ)
		}
	}
}

// TestCopyMapMatchesMap: copyMap answers as the map it stands for, below
// and above the pairs it keeps in its array.
func TestCopyMapMatchesMap(t *testing.T) {
	for _, n := range []int{1, copyMapSmall - 1, copyMapSmall, copyMapSmall + 1, 5 * copyMapSmall} {
		var c copyMap
		want := map[protoreflect.Message]protoreflect.Message{}
		var all []protoreflect.Message
		for i := range n {
			from := (&dpb.String{Value: fmt.Sprint(i)}).ProtoReflect()
			to := from
			if i%3 != 0 { // a copy; every third message is new, its own copy
				to = (&dpb.String{Value: fmt.Sprint(i)}).ProtoReflect()
			}
			c.add(from, to)
			want[from], want[to] = to, to
			all = append(all, from, to, (&dpb.String{}).ProtoReflect())
			for _, m := range all {
				got, ok := c.get(m)
				w, wok := want[m]
				if ok != wok || got != w {
					t.Fatalf("%d pairs: get gives %v %v, the map %v %v", i+1, got, ok, w, wok)
				}
			}
		}
	}
}

// TestWritableMetaMatchesField: writableMeta on the plans writes the
// labels w.field (protoreflect) writes, and never into the input.
func TestWritableMetaMatchesField(t *testing.T) {
	lbs := []Label{{fhir.SystemActCode, LabelProcessInline}, {fhir.SystemConfidentiality, "R"}, {fhir.SystemActCode, "PSY"}}
	for _, r := range diffResources(t, corpusDiffDirs(t)...) {
		before := proto.Clone(r.msg)
		planned, reflective := newCOW(r.msg.ProtoReflect()), newCOW(r.msg.ProtoReflect())
		if planned.plan == nil || planned.plan.metaOff == noOffset {
			continue
		}
		reflective.plan = nil // rootMeta and writableMeta through protoreflect
		for _, lb := range append(lbs, lbs...) {
			if a, b := addSecurity(planned, lb), addSecurity(reflective, lb); a != b {
				t.Fatalf("%s: addSecurity %v: %v on the plan, %v without", r.name, lb, a, b)
			}
		}
		removeSecurity(planned, lbs[0])
		removeSecurity(reflective, lbs[0])
		if !proto.Equal(planned.root.Interface(), reflective.root.Interface()) {
			t.Errorf("%s: labels written on the plan differ from those written through protoreflect", r.name)
		}
		if !proto.Equal(r.msg, before) {
			t.Errorf("%s: writing labels changed the input", r.name)
		}
	}
}
