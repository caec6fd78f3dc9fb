package fhir

import (
	"bytes"
	"reflect"
	"testing"
	"unsafe"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
)

// allPlans makes and returns every plan reachable from ContainedResource.
func allPlans() map[reflect.Type]*msgPlan {
	out := map[reflect.Type]*msgPlan{}
	var visit func(p *msgPlan)
	visit = func(p *msgPlan) {
		if p == nil || out[p.typ] != nil {
			return
		}
		out[p.typ] = p.get()
		for _, fp := range p.fields {
			visit(fp.shell)
			for _, cp := range fp.cases {
				visit(cp.shell)
			}
		}
	}
	visit(plans().contained)
	return out
}

// TestPlans checks that the plans cover R4: every resource type, every
// oneof case (read the fast way and through reflect alike), and the
// facts the fast paths rely on.
func TestPlans(t *testing.T) {
	set := plans()
	if set == nil {
		t.Fatal("the plans are switched off: the generated code has a shape they do not expect")
	}
	all := allPlans()
	if len(all) < 1000 || len(set.byResource) < 140 {
		t.Fatalf("%d plans, %d resource types", len(all), len(set.byResource))
	}
	for _, p := range all {
		if p.broken {
			t.Errorf("%s: broken plan", p.desc.FullName())
		}
	}
	var cases int
	for st, p := range all {
		for _, fp := range p.fields {
			if fp.cases == nil {
				continue
			}
			for wt, cp := range fp.cases {
				cases++
				msg := reflect.New(st).Interface().(proto.Message)
				m := msg.ProtoReflect()
				m.Set(cp.fd, m.NewField(cp.fd))
				ptr := unsafe.Pointer(reflect.ValueOf(msg).Pointer())
				got, inner, known := fp.whichCase(ptr)
				if !known || got != cp || (cp.shell != nil && inner == nil) {
					t.Fatalf("%s: whichCase gives %v", cp.fd.FullName(), got)
				}
				if fp.byTab[ifaceWords(unsafe.Add(ptr, fp.offset))[0]] != cp {
					t.Fatalf("%s: not found by its type word", cp.fd.FullName())
				}
				// A typed nil wrapper is no case, as protoreflect sees it.
				reflect.ValueOf(msg).Elem().Field(fp.index).Set(reflect.Zero(wt))
				if got, _, known := fp.whichCase(ptr); got != nil || !known || m.WhichOneof(cp.fd.ContainingOneof()) != nil {
					t.Fatalf("%s: a typed nil wrapper gives %v", cp.fd.FullName(), got)
				}
			}
		}
	}
	if cases < 1000 {
		t.Errorf("only %d oneof cases", cases)
	}
	ref := planOf(reflect.TypeFor[dpb.Reference]())
	if ref == nil || !ref.isReference || !ref.refType || ref.refOneof == nil {
		t.Fatalf("Reference plan: %+v", ref)
	}
	if p := planOf(reflect.TypeFor[dpb.String]()); p.prim != primString || p.check != checkString || !p.stringVal {
		t.Errorf("String plan: %+v", p)
	}
}

// TestWrapUnwrapIDOf checks the fast Wrap, Unwrap, TypeOf and IDOf against
// protoreflect on every resource type.
func TestWrapUnwrapIDOf(t *testing.T) {
	od := (&ContainedResource{}).ProtoReflect().Descriptor().Oneofs().ByName("oneof_resource")
	for i := range od.Fields().Len() {
		f := od.Fields().Get(i)
		want := &ContainedResource{}
		res := want.ProtoReflect().Mutable(f).Message()
		if idf := res.Descriptor().Fields().ByName("id"); idf != nil {
			id := res.Mutable(idf).Message()
			id.Set(id.Descriptor().Fields().ByName("value"), protoreflect.ValueOfString("x-1"))
		}
		cr, err := Wrap(res.Interface())
		if err != nil {
			t.Fatalf("%s: %v", f.Name(), err)
		}
		if !proto.Equal(cr, want) || Unwrap(cr) != res.Interface() || Unwrap(want) != res.Interface() {
			t.Errorf("%s: Wrap and Unwrap do not round-trip", f.Name())
		}
		if TypeOf(cr) != string(res.Descriptor().Name()) || IDOf(cr) != "x-1" || IDOf(res.Interface()) != "x-1" {
			t.Errorf("%s: TypeOf %q IDOf %q", f.Name(), TypeOf(cr), IDOf(cr))
		}
	}
	if Unwrap(&ContainedResource{}) != nil || IDOf(&dpb.Reference{}) != "" {
		t.Error("empty")
	}
}

// TestPlansConcurrently runs the fast paths from several goroutines at
// once (run alone, it is also the first use of the plans, which are then
// made concurrently); go test -race checks the lazy making of plans.
func TestPlansConcurrently(t *testing.T) {
	var inputs []*ContainedResource
	for _, data := range jsonResources(t, "../testdata/fhir-r4-examples") {
		if r := Parse(data); r.Resource != nil {
			inputs = append(inputs, r.Resource)
		}
	}
	want := make([][]byte, len(inputs))
	done := make(chan error)
	for g := range 4 {
		go func() {
			for i := range inputs {
				cr := inputs[(i+g*37)%len(inputs)]
				if _, err := Marshal(cr); err != nil {
					done <- err
					return
				}
				Validate(cr)
				refsOK(cr, refTypeAllowed)
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	for i, cr := range inputs {
		want[i], _ = marshalGoogle(theCodec(), cr)
		if got, _ := Marshal(cr); !bytes.Equal(got, want[i]) {
			t.Errorf("resource %d: output differs after concurrent use", i)
		}
	}
}

// TestRefTypeOf holds refTypeOf to typedRef for every case of Reference,
// set, set to a nil ReferenceId, and as a typed nil wrapper.
func TestRefTypeOf(t *testing.T) {
	od := (&Reference{}).ProtoReflect().Descriptor().Oneofs().ByName("reference")
	check := func(what string, ref *Reference) {
		wantType, rid := typedRef(ref)
		gotType, typed := refTypeOf(ref)
		if typed != (rid != nil) || (typed && gotType != wantType) {
			t.Errorf("%s: refTypeOf = %q %v, typedRef = %q %v", what, gotType, typed, wantType, rid != nil)
		}
	}
	for i := range od.Fields().Len() {
		fd := od.Fields().Get(i)
		ref := &Reference{}
		ref.ProtoReflect().Set(fd, ref.ProtoReflect().NewField(fd))
		check(string(fd.Name()), ref)
		f := reflect.ValueOf(ref).Elem().FieldByName("Reference")
		w := reflect.New(f.Elem().Type().Elem()) // the wrapper, its field left nil
		f.Set(w)
		check(string(fd.Name())+" nil", ref)
		f.Set(reflect.Zero(w.Type()))
		check(string(fd.Name())+" typed nil wrapper", ref)
	}
	check("empty", &Reference{})
	check("nil", nil)
}
