package policy

// Walk plans: what the labeller, the scanner and the redactor need to
// know about each google/fhir message type, worked out once per type from
// its descriptor and its generated Go struct, and cached (walkPlans).
//
// Why: walk and resolve (path.go) go through protoreflect. Every Has, Get,
// Range or Interface there builds a reflect value of the message (a
// reflect.NewAt and a type-cache lookup), so on a referral Bundle
// reflection was most of the cost of labelling, scanning and redacting
// it. A plan holds instead, per field, where the struct keeps it (its
// offset; whether it is a pointer, a list, a choice (value[x]) or a
// oneof) and the plan of its type, and per type its kind for the walks
// (Coding, CodeableConcept, Reference, Extension, Identifier, Meta,
// Narrative, the datatypes scan passes over, primitive, choice). With it:
//
//   - visit walks a resource reading pointers and slice headers (scan,
//     containsCode, and mayHoldCode, which settles that a resource holds
//     no immigration code before the reflective labelling walk is run);
//     nodes become the protoreflect-based elems the writers use only when
//     a walk keeps one (a reference redaction removes, an inline label);
//   - resolve reads rule and agreement paths, fieldReader the fields
//     buildItem and keepFields need;
//   - copy-on-write copies a struct and its slices, and reads meta, in
//     place.
//
// What the plans do not skip: a planned walk visits exactly the elements
// walk visits, in the same order: the message-typed fields of each
// element in descriptor order, not google.protobuf.Any (contained
// resources, which the callers read themselves) and not maps; primitive
// values only when asked (prims) and then only when they have extensions;
// a choice as the chosen type. The only subtrees left out are those walk
// leaves out, and those the caller's function declines, as with walk.
// The differential tests (plan_test.go) check visit, scan, containsCode,
// mayHoldCode and resolve against the reflective versions on every
// resource of the test data (and of the shared corpus under make corpus),
// on copies of them with codes, references and inline labels added in
// odd places (primitive values, Periods, references' ids), on generated
// referral Bundles, and in FuzzPlannedWalk.
//
// Conservative by construction: a type whose generated code has a shape
// the plans do not expect (an "extension" field that is not
// []*Extension, a oneof whose cases are not contiguous fields, a wrapper
// that is not a single pointer, a repeated choice) gets a plan with ok
// false, so does every type above it, and every caller then uses the
// reflective code instead, for the whole resource. A oneof case the plan
// did not record when it was made is looked up through reflect.

import (
	"maps"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/runtime/protoimpl"
	"google.golang.org/protobuf/types/known/anypb"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
)

// planClass is the kind of element a type is, for the walks that treat
// some datatypes specially.
type planClass uint8

const (
	classOther planClass = iota
	classCoding
	classCodeableConcept
	classReference
	classExtension
	classIdentifier
	classMeta
	classNarrative
	// classSummary are the datatypes scan does not enter unless the
	// resource has inline labels (HumanName, ContactPoint, Address,
	// Period, Quantity, Attachment).
	classSummary
)

// classes maps the Go types the walks single out to their class. The
// match is on the exact type, as walk's type switches match.
var classes = map[reflect.Type]planClass{
	reflect.TypeFor[dpb.Coding]():          classCoding,
	reflect.TypeFor[dpb.CodeableConcept](): classCodeableConcept,
	reflect.TypeFor[dpb.Reference]():       classReference,
	reflect.TypeFor[dpb.Extension]():       classExtension,
	reflect.TypeFor[dpb.Identifier]():      classIdentifier,
	reflect.TypeFor[dpb.Meta]():            classMeta,
	reflect.TypeFor[dpb.Narrative]():       classNarrative,
	reflect.TypeFor[dpb.HumanName]():       classSummary,
	reflect.TypeFor[dpb.ContactPoint]():    classSummary,
	reflect.TypeFor[dpb.Address]():         classSummary,
	reflect.TypeFor[dpb.Period]():          classSummary,
	reflect.TypeFor[dpb.Quantity]():        classSummary,
	reflect.TypeFor[dpb.Attachment]():      classSummary,
}

// noOffset marks a field a type does not have.
const noOffset = ^uintptr(0)

// walkPlan describes one generated message type.
type walkPlan struct {
	typ   reflect.Type // the struct type (not the pointer)
	desc  protoreflect.MessageDescriptor
	class planClass
	// prim: a primitive datatype (a scalar "value" field): walks enter it
	// only for its extensions.
	prim bool
	// choice is the oneof of a choice wrapper (value[x]), nil otherwise.
	choice *oneofPlan
	// extOff is the offset of the []*dpb.Extension field "extension".
	extOff uintptr
	// containedOff is the offset of the []*anypb.Any field "contained".
	containedOff uintptr
	// metaOff is the offset of the *dpb.Meta field "meta" of a resource.
	metaOff uintptr
	// slices are the offsets of the struct's slices of pointers (its
	// repeated fields): what a shallow copy must copy.
	slices []uintptr
	// fields are the message-typed fields walk visits, in descriptor
	// order; a oneof of the message itself (Reference.reference) is one
	// field at the place of its cases.
	fields []fieldPlan
	// complex are the fields a walk without primitives visits: fields
	// that are not primitives, and oneofs with a case that is not one.
	complex []fieldPlan
	// slots say where each field is kept, by descriptor index.
	slots []slot
	// ok is false when the plans cannot describe the type or a type
	// below it: visit then hands the walk to the reflective walker.
	ok bool
	// tab is the type word of a proto.Message holding a *typ: with it,
	// iface makes the interface value of a struct pointer directly.
	tab unsafe.Pointer
}

// fieldPlan is one message-typed field (or one oneof) of a type.
type fieldPlan struct {
	fieldRef
	off    uintptr
	list   bool
	prim   bool       // the field's type is a primitive datatype
	choice bool       // the field's type is a choice wrapper (sub.choice)
	oneof  *oneofPlan // the field is a oneof of the message itself
	sub    *walkPlan  // the field's type; nil for a oneof
}

// slot says where one field of a type is kept in its struct: a message
// pointer or a slice of them at off (with the plan of their type), or
// somewhere only protoreflect reads (off is noOffset: a scalar, a oneof).
type slot struct {
	off  uintptr
	list bool
	sub  *walkPlan
}

// has reports whether the field is set in the struct at ptr, as
// protoreflect's Has says for a message field (off is not noOffset).
func (sl *slot) has(ptr unsafe.Pointer) bool {
	if sl.list {
		return len(*(*[]unsafe.Pointer)(unsafe.Add(ptr, sl.off))) > 0
	}
	return *(*unsafe.Pointer)(unsafe.Add(ptr, sl.off)) != nil
}

// oneofPlan is a oneof: an interface field holding a one-field wrapper
// struct per case.
type oneofPlan struct {
	owner reflect.Type // the struct holding the interface field
	index int          // its index in owner
	off   uintptr      // its offset in owner
	// byType are the cases by wrapper type; byTab the same by the type
	// word of the interface value (recorded when the plan is made, and
	// only trusted for what was recorded).
	byType map[reflect.Type]*casePlan
	byTab  map[unsafe.Pointer]*casePlan
}

// casePlan is one case of a oneof.
type casePlan struct {
	fieldRef
	sub  *walkPlan // the case's type, nil for a scalar case
	prim bool
}

// fieldRef names a field an element is in: its descriptor and its FHIR
// JSON name.
type fieldRef struct {
	fd   protoreflect.FieldDescriptor
	name string
}

var (
	// walkPlans maps struct types to their plans: a map replaced, never
	// changed, when plans are added (reads take no lock), so it holds
	// only complete plans.
	walkPlans   atomic.Pointer[map[reflect.Type]*walkPlan]
	walkPlansMu sync.Mutex
)

// loadPlan returns the published plan of a struct type.
func loadPlan(t reflect.Type) (*walkPlan, bool) {
	if m := walkPlans.Load(); m != nil {
		p, ok := (*m)[t]
		return p, ok
	}
	return nil, false
}

// planFor returns the plan of a message's type, or nil when the message
// is not a generated struct.
func planFor(m protoreflect.Message) (*walkPlan, unsafe.Pointer) {
	v := reflect.ValueOf(m.Interface())
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, nil
	}
	return planOfType(v.Type().Elem()), v.UnsafePointer()
}

// planOfType returns the plan of a struct type, making it (and the plans
// of every type below it) on first use.
func planOfType(t reflect.Type) *walkPlan {
	if p, ok := loadPlan(t); ok {
		return p
	}
	walkPlansMu.Lock()
	defer walkPlansMu.Unlock()
	if p, ok := loadPlan(t); ok {
		return p
	}
	b := planBuilder{made: map[reflect.Type]*walkPlan{}}
	p := b.plan(t)
	b.settle()
	// Publish only complete plans: readers never see one being built.
	next := map[reflect.Type]*walkPlan{}
	if old := walkPlans.Load(); old != nil {
		maps.Copy(next, *old)
	}
	maps.Copy(next, b.made)
	walkPlans.Store(&next)
	return p
}

// planBuilder makes the plans of a type and of every type below it.
type planBuilder struct {
	made map[reflect.Type]*walkPlan
}

// plan returns the plan of struct type t, made once per builder (types
// refer to themselves: Extension holds Extensions).
func (b *planBuilder) plan(t reflect.Type) *walkPlan {
	if p, ok := loadPlan(t); ok {
		return p
	}
	if p, ok := b.made[t]; ok {
		return p
	}
	p := &walkPlan{typ: t, class: classes[t], extOff: noOffset, containedOff: noOffset, metaOff: noOffset, ok: true}
	b.made[t] = p
	if t.Kind() != reflect.Struct {
		p.ok = false
		return p
	}
	msg, isMsg := reflect.New(t).Interface().(proto.Message)
	if !isMsg {
		p.ok = false
		return p
	}
	p.tab = ifaceWords(unsafe.Pointer(&msg))[0]
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() && f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Pointer {
			p.slices = append(p.slices, f.Offset)
		}
	}
	p.desc = msg.ProtoReflect().Descriptor()
	p.layout(b, msg)
	return p
}

// layout fills in a plan's fields from the descriptor and the struct.
func (p *walkPlan) layout(b *planBuilder, msg proto.Message) {
	md, st := p.desc, p.typ
	if v := md.Fields().ByName("value"); v != nil && v.Message() == nil {
		p.prim = true
	}
	// Struct fields by proto field number and by oneof name.
	byNumber := map[protoreflect.FieldNumber]int{}
	byOneof := map[protoreflect.Name]int{}
	for i := range st.NumField() {
		sf := st.Field(i)
		if tag := sf.Tag.Get("protobuf"); tag != "" {
			if n, ok := tagNumber(tag); ok {
				byNumber[n] = i
			}
		}
		if tag := sf.Tag.Get("protobuf_oneof"); tag != "" && sf.Type.Kind() == reflect.Interface {
			byOneof[protoreflect.Name(tag)] = i
		}
	}
	if od := md.Oneofs().ByName("choice"); od != nil && od.Fields().Len() == md.Fields().Len() {
		idx, ok := byOneof[od.Name()]
		if !ok {
			p.ok = false
			return
		}
		p.choice = b.oneof(msg, od, idx, false)
		if p.choice == nil {
			p.ok = false
		}
		return // a choice wrapper is never walked itself: walks go to the chosen type
	}
	if fd := md.Fields().ByName("extension"); fd != nil {
		i, ok := byNumber[fd.Number()]
		if !ok || st.Field(i).Type != reflect.TypeFor[[]*dpb.Extension]() {
			p.ok = false // inline labels are read from here: it must be what they expect
			return
		}
		p.extOff = st.Field(i).Offset
	}
	if fd := md.Fields().ByName("contained"); fd != nil {
		if i, ok := byNumber[fd.Number()]; ok && st.Field(i).Type == reflect.TypeFor[[]*anypb.Any]() {
			p.containedOff = st.Field(i).Offset
		} else {
			p.ok = false
			return
		}
	}
	if fd := md.Fields().ByName("meta"); fd != nil {
		if i, ok := byNumber[fd.Number()]; ok && st.Field(i).Type == reflect.TypeFor[*dpb.Meta]() {
			p.metaOff = st.Field(i).Offset
		}
	}
	fields := md.Fields()
	p.slots = make([]slot, fields.Len())
	for i := range fields.Len() {
		fd := fields.Get(i)
		p.slots[i] = slot{off: noOffset}
		idx, ok := byNumber[fd.Number()]
		if fd.Message() == nil || fd.IsMap() || (fd.ContainingOneof() != nil && !fd.ContainingOneof().IsSynthetic()) || !ok {
			continue
		}
		ft := st.Field(idx).Type
		if fd.IsList() && ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		} else if fd.IsList() {
			continue
		}
		if ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct {
			p.slots[i] = slot{off: st.Field(idx).Offset, list: fd.IsList(), sub: b.plan(ft.Elem())}
		}
	}
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			// The oneof's cases must be contiguous, so that visiting the
			// set case here keeps descriptor order.
			n := od.Fields().Len()
			if od.Fields().Get(0) != fd || i+n > fields.Len() || fields.Get(i+n-1) != od.Fields().Get(n-1) {
				p.ok = false
				return
			}
			idx, ok := byOneof[od.Name()]
			if !ok {
				p.ok = false
				return
			}
			op := b.oneof(msg, od, idx, true)
			if op == nil {
				p.ok = false
				return
			}
			p.fields = append(p.fields, fieldPlan{fieldRef: fieldRef{fd: fd}, oneof: op})
			i += n - 1
			continue
		}
		if fd.Message() == nil || fd.IsMap() || fd.Message().FullName() == anyName {
			continue
		}
		idx, ok := byNumber[fd.Number()]
		if !ok {
			p.ok = false
			return
		}
		sf := st.Field(idx)
		ft := sf.Type
		if fd.IsList() {
			if ft.Kind() != reflect.Slice {
				p.ok = false
				return
			}
			ft = ft.Elem()
		}
		if ft.Kind() != reflect.Pointer || ft.Elem().Kind() != reflect.Struct {
			p.ok = false
			return
		}
		if fd.IsList() && isChoice(fd.Message()) {
			p.ok = false // walk would enter the wrapper itself: not planned
			return
		}
		sub := b.plan(ft.Elem())
		p.fields = append(p.fields, fieldPlan{fieldRef: fieldRef{fd, fhirName(fd)}, off: sf.Offset, list: fd.IsList(),
			prim: isPrimDescriptor(fd.Message()), choice: isChoice(fd.Message()), sub: sub})
	}
	for _, f := range p.fields {
		if f.oneof != nil && f.oneof.allPrim() || f.oneof == nil && f.prim {
			continue
		}
		p.complex = append(p.complex, f)
	}
}

// allPrim reports whether every case of a oneof is a primitive or a
// scalar: a walk without primitives never enters it.
func (op *oneofPlan) allPrim() bool {
	for _, cp := range op.byType {
		if cp.sub != nil && !cp.prim {
			return false
		}
	}
	return true
}

var anyName = (&anypb.Any{}).ProtoReflect().Descriptor().FullName()

// isPrimDescriptor reports whether a type is a primitive datatype, as
// walk decides it: it has a scalar "value" field.
func isPrimDescriptor(md protoreflect.MessageDescriptor) bool {
	v := md.Fields().ByName("value")
	return v != nil && v.Message() == nil
}

// oneof plans a oneof from the wrapper types the generated code lists
// (protoimpl.MessageInfo.OneofWrappers); nil when they are not what the
// plans expect.
//
// In a oneof of the message itself (not a choice), walk leaves out cases
// holding google.protobuf.Any, as it leaves out such fields: skipAny.
func (b *planBuilder) oneof(msg proto.Message, od protoreflect.OneofDescriptor, index int, skipAny bool) *oneofPlan {
	st := reflect.TypeOf(msg).Elem()
	op := &oneofPlan{owner: st, index: index, off: st.Field(index).Offset,
		byType: map[reflect.Type]*casePlan{}, byTab: map[unsafe.Pointer]*casePlan{}}
	mi, ok := msg.ProtoReflect().Type().(*protoimpl.MessageInfo)
	if !ok {
		return nil
	}
	scratch := reflect.New(st).Elem().Field(index) // an interface field to read type words from
	for _, w := range mi.OneofWrappers {
		wt := reflect.TypeOf(w) // *Type_Case
		if wt.Kind() != reflect.Pointer || wt.Elem().Kind() != reflect.Struct || wt.Elem().NumField() != 1 {
			return nil
		}
		n, ok := tagNumber(wt.Elem().Field(0).Tag.Get("protobuf"))
		if !ok {
			return nil
		}
		fd := od.Fields().ByNumber(n)
		if fd == nil {
			continue // a case of another oneof of the message
		}
		cp := &casePlan{fieldRef: fieldRef{fd, fhirName(fd)}}
		if fd.Message() != nil {
			inner := wt.Elem().Field(0)
			if inner.Offset != 0 || inner.Type.Kind() != reflect.Pointer || inner.Type.Elem().Kind() != reflect.Struct {
				return nil
			}
			if !skipAny || fd.Message().FullName() != anyName {
				cp.sub = b.plan(inner.Type.Elem())
				cp.prim = isPrimDescriptor(fd.Message())
			}
		}
		op.byType[wt] = cp
		scratch.Set(reflect.Zero(wt)) // a nil *Type_Case: the type word alone
		if tab := ifaceWords(scratch.Addr().UnsafePointer())[0]; tab != nil {
			op.byTab[tab] = cp
		}
	}
	if len(op.byType) != od.Fields().Len() {
		return nil
	}
	return op
}

// tagNumber reads the field number of a protobuf struct tag ("bytes,3,opt,name=type,proto3").
func tagNumber(tag string) (protoreflect.FieldNumber, bool) {
	_, rest, ok := strings.Cut(tag, ",")
	if !ok {
		return 0, false
	}
	num, _, _ := strings.Cut(rest, ",")
	n, err := strconv.Atoi(num)
	return protoreflect.FieldNumber(n), err == nil && n > 0
}

// settle marks not ok every plan that reaches a plan that is not ok, so
// that a walk knows from the root's plan alone whether it can go ahead.
func (b *planBuilder) settle() {
	for changed := true; changed; {
		changed = false
		for _, p := range b.made {
			if !p.ok {
				continue
			}
			bad := false
			for i := range p.fields {
				f := &p.fields[i]
				if f.sub != nil && !f.sub.ok {
					bad = true
				}
				if f.oneof != nil {
					bad = bad || f.oneof.broken()
				}
			}
			if p.choice != nil && p.choice.broken() {
				bad = true
			}
			if bad {
				p.ok, changed = false, true
			}
		}
	}
}

func (op *oneofPlan) broken() bool {
	for _, cp := range op.byType {
		if cp.sub != nil && !cp.sub.ok {
			return true
		}
	}
	return false
}

// ifaceWords returns the two words of the interface value at ptr: its
// type word (for a non-empty interface, the itab of interface and
// concrete type) and its data word (here the wrapper pointer).
func ifaceWords(ptr unsafe.Pointer) [2]unsafe.Pointer { return *(*[2]unsafe.Pointer)(ptr) }

// which returns the case set in the oneof of the struct at ptr and the
// case's message; cp is nil when no case is set or the case holds a nil
// message (which holds nothing), inner nil for a scalar case.
func (op *oneofPlan) which(ptr unsafe.Pointer) (cp *casePlan, inner unsafe.Pointer) {
	words := ifaceWords(unsafe.Add(ptr, op.off))
	if words[0] == nil || words[1] == nil {
		return nil, nil
	}
	cp = op.byTab[words[0]]
	if cp == nil {
		w := reflect.NewAt(op.owner, ptr).Elem().Field(op.index).Elem()
		if cp = op.byType[w.Type()]; cp == nil {
			return nil, nil
		}
	}
	if cp.sub == nil {
		return cp, nil
	}
	inner = *(*unsafe.Pointer)(words[1]) // the wrapper's one field, at offset 0
	if inner == nil {
		return nil, nil
	}
	return cp, inner
}

// hasExt reports whether the struct at ptr has extensions.
func (p *walkPlan) hasExt(ptr unsafe.Pointer) bool {
	return p.extOff != noOffset && len(*(*[]unsafe.Pointer)(unsafe.Add(ptr, p.extOff))) > 0
}

// extensions returns the extensions of the struct at ptr.
func (p *walkPlan) extensions(ptr unsafe.Pointer) []*dpb.Extension {
	if p.extOff == noOffset {
		return nil
	}
	return *(*[]*dpb.Extension)(unsafe.Add(ptr, p.extOff))
}

// hasContained reports whether the resource at ptr has contained resources.
func (p *walkPlan) hasContained(ptr unsafe.Pointer) bool {
	return p.containedOff != noOffset && len(*(*[]unsafe.Pointer)(unsafe.Add(ptr, p.containedOff))) > 0
}

// meta returns the meta of the resource at ptr; ok is false when the
// plan does not know where the type keeps it.
func (p *walkPlan) meta(ptr unsafe.Pointer) (meta *dpb.Meta, ok bool) {
	if p == nil || p.metaOff == noOffset {
		return nil, false
	}
	return *(**dpb.Meta)(unsafe.Add(ptr, p.metaOff)), true
}

// copy returns a shallow copy of the struct at ptr: a new struct with new
// slices, sharing what they point at (a Go struct copy, as shallowCopy
// makes through reflect).
func (p *walkPlan) copy(ptr unsafe.Pointer) unsafe.Pointer {
	dst := reflect.New(p.typ)
	dst.Elem().Set(reflect.ValueOf(p.iface(ptr)).Elem())
	d := dst.UnsafePointer()
	// The new slices share one array, each capped at its length, so that
	// an append to one of them moves it rather than write into the next.
	n := 0
	for _, off := range p.slices {
		n += len(*(*[]unsafe.Pointer)(unsafe.Add(d, off)))
	}
	if n == 0 {
		return d
	}
	all := make([]unsafe.Pointer, 0, n)
	for _, off := range p.slices {
		at := (*[]unsafe.Pointer)(unsafe.Add(d, off))
		if l := len(*at); l > 0 {
			start := len(all)
			all = append(all, *at...)
			*at = all[start : start+l : start+l]
		}
	}
	return d
}

// message returns the protoreflect view of the struct at ptr: the same
// value protoreflect gives for the message (generated messages reflect
// through their own pointer), so it can key the copy-on-write maps.
func (p *walkPlan) message(ptr unsafe.Pointer) protoreflect.Message {
	return p.iface(ptr).ProtoReflect()
}

// iface returns the struct at ptr as a proto.Message. It puts together
// the interface value from the type word recorded when the plan was made
// and the pointer: reflect.NewAt(...).Interface() gives the same value but
// looks the pointer type up in reflect's cache on every call.
func (p *walkPlan) iface(ptr unsafe.Pointer) proto.Message {
	var m proto.Message
	words := (*[2]unsafe.Pointer)(unsafe.Pointer(&m))
	words[0], words[1] = p.tab, ptr
	return m
}

// node is one element met by a planned walk. Nodes live on the walk's
// stack and are reused: keep one only through elem.
type node struct {
	plan   *walkPlan
	ptr    unsafe.Pointer
	field  *fieldRef // the field in the holder (for a choice, the value[x] field)
	choice *casePlan // for a choice, the type chosen
	idx    int       // index in a list, -1 for a singular field
	up     *node     // the element holding this one; nil under the resource
}

// elem returns the element as the writers see it (protoreflect messages,
// persisted: it outlives the walk). root is the resource walked.
func (n *node) elem(root protoreflect.Message) *elem {
	if n == nil {
		return nil
	}
	e := &elem{fd: n.field.fd, idx: n.idx, msg: n.plan.message(n.ptr), name: n.field.name}
	if n.choice != nil {
		e.choice = n.choice.fd
	}
	e.up = n.up.elem(root)
	if e.up != nil {
		e.parent = e.up.msg
	} else {
		e.parent = root
	}
	return e
}

// set fills in a node field by field. The nodes live in a pooled (heap)
// visitor: a whole-struct store goes through the runtime's bulk write
// barrier while the GC marks, field stores through the cheap one.
func (n *node) set(plan *walkPlan, ptr unsafe.Pointer, field *fieldRef, choice *casePlan, idx int, up *node) {
	n.plan, n.ptr, n.field, n.choice, n.idx, n.up = plan, ptr, field, choice, idx, up
}

// visitFunc visits one element; returning false skips its children, and
// setting v.stop ends the walk.
type visitFunc func(v *visitor, n *node) bool

// visitor holds a planned walk's reusable nodes, one per depth.
type visitor struct {
	fn    visitFunc
	prims bool
	stop  bool // set by fn to end the walk
	deep  int  // the deepest stack node used
	// codes, when set, makes the walk a search for a coding of the rule
	// (searchPlan): search decides at each element, without nodes or fn.
	codes    *labelRule
	skipMeta bool // the search leaves out meta and the narrative
	found    bool // what the search (or hasInlineLabels) found
	stack    [24]node
}

// visitors are reused: a visitor is two kilobytes, and a Filter walks a
// dozen times.
var visitors = sync.Pool{New: func() any { return new(visitor) }}

// visit walks the elements under root (not root itself) as walk does (see the comment at the top). It returns false,
// without calling fn, when the plans cannot describe the message: the
// caller then walks with walk.
func visit(root protoreflect.Message, prims bool, fn visitFunc) bool {
	p, ptr := planFor(root)
	return visitPlan(p, ptr, prims, fn)
}

// visitPlan is visit for a message whose plan and struct the caller has.
func visitPlan(p *walkPlan, ptr unsafe.Pointer, prims bool, fn visitFunc) bool {
	if p == nil || !p.ok || p.choice != nil {
		return false
	}
	v := visitors.Get().(*visitor)
	v.fn, v.prims, v.stop, v.deep = fn, prims, false, 0
	v.walk(p, ptr, nil, 0)
	// Drop what the walk pointed at, so the pool keeps no resource alive.
	clear(v.stack[:min(v.deep+1, len(v.stack))])
	v.fn = nil
	visitors.Put(v)
	return true
}

// searchPlan reports whether a coding of r lies under the struct at ptr
// where the planned walk with prims finds one, leaving out inline labels
// and, with skipMeta, meta and the narrative: mayHoldCode's and
// containsCodeIn's walks, without making nodes or calling a function per
// element. ok is false when the plans cannot describe the message.
func searchPlan(p *walkPlan, ptr unsafe.Pointer, r *labelRule, prims, skipMeta bool) (found, ok bool) {
	if p == nil || !p.ok || p.choice != nil {
		return false, false
	}
	v := visitors.Get().(*visitor)
	v.fn, v.prims, v.stop, v.deep = nil, prims, false, 0
	v.codes, v.skipMeta, v.found = r, skipMeta, false
	v.walk(p, ptr, nil, 0)
	found = v.found
	v.codes = nil
	visitors.Put(v)
	return found, true
}

// visitSearching is visit with a search for a coding of r at once: the
// walk of visit (prims as given) and searchPlan's walk with prims and
// skipMeta, in one pass over the elements both visit, the search going
// on alone below elements visit's function declines, and into primitive
// values when visit leaves them out. Nothing the search looks at is left
// out: searchPlan's walk enters every element visit's walk enters (meta,
// the narrative, codings and inline labels are where it stops, and so do
// the scans that use this). fn sees exactly what visit would show it, in
// the same order. It reports what the search found; ok is false, without
// calling fn, when the plans cannot describe the message.
func visitSearching(p *walkPlan, ptr unsafe.Pointer, prims bool, fn visitFunc, r *labelRule) (found, ok bool) {
	if p == nil || !p.ok || p.choice != nil {
		return false, false
	}
	v := visitors.Get().(*visitor)
	v.fn, v.prims, v.stop, v.deep = fn, prims, false, 0
	v.codes, v.skipMeta, v.found = r, true, false
	v.walkBoth(p, ptr, nil, 0)
	found = v.found
	clear(v.stack[:min(v.deep+1, len(v.stack))])
	v.fn, v.codes = nil, nil
	visitors.Put(v)
	return found, true
}

// walkBoth is walk for visitSearching: every element searchPlan's walk
// visits under p, each shown to fn where walk (with v.prims) would show
// it.
func (v *visitor) walkBoth(p *walkPlan, ptr unsafe.Pointer, up *node, depth int) {
	for i := range p.fields {
		f := &p.fields[i]
		switch {
		case f.oneof != nil:
			cp, inner := f.oneof.which(ptr)
			if cp == nil || cp.sub == nil || (cp.prim && !cp.sub.hasExt(inner)) {
				continue
			}
			if cp.prim && !v.prims {
				v.searchOnly(cp.sub, inner)
				continue
			}
			n := v.at(depth)
			n.set(cp.sub, inner, &cp.fieldRef, nil, -1, up)
			v.both(n, depth)
		case f.list:
			items := *(*[]unsafe.Pointer)(unsafe.Add(ptr, f.off))
			for j, c := range items {
				if c == nil || (f.prim && !f.sub.hasExt(c)) {
					continue
				}
				if f.prim && !v.prims {
					v.searchOnly(f.sub, c)
					continue
				}
				n := v.at(depth)
				n.set(f.sub, c, &f.fieldRef, nil, j, up)
				v.both(n, depth)
			}
		default:
			c := *(*unsafe.Pointer)(unsafe.Add(ptr, f.off))
			if c == nil {
				continue
			}
			sub, prim := f.sub, f.prim
			var choice *casePlan
			if f.choice {
				cp, inner := sub.choice.which(c)
				if cp == nil || cp.sub == nil {
					continue
				}
				sub, c, choice, prim = cp.sub, inner, cp, cp.prim
			}
			if prim && !sub.hasExt(c) {
				continue
			}
			if prim && !v.prims {
				v.searchOnly(sub, c)
				continue
			}
			n := v.at(depth)
			n.set(sub, c, &f.fieldRef, choice, -1, up)
			v.both(n, depth)
		}
	}
}

// both shows one element to fn and to the search: below it the walk goes
// on for both when fn enters it (the search then does too), for the
// search alone when only the search does.
func (v *visitor) both(n *node, depth int) {
	searchIn := !v.found && v.search(n.plan, n.ptr)
	if v.fn(v, n) {
		v.walkBoth(n.plan, n.ptr, n, depth+1)
		return
	}
	if searchIn && !v.found {
		v.searchBelow(n.plan, n.ptr)
	}
}

// searchOnly searches an element visit's walk leaves out (a primitive
// value, when fn does not see them): the element, then what is below it.
func (v *visitor) searchOnly(p *walkPlan, ptr unsafe.Pointer) {
	if !v.found && v.search(p, ptr) && !v.found {
		v.searchBelow(p, ptr)
	}
}

// searchBelow runs searchPlan's walk (prims) under an element; a search
// that finds its coding stops only itself.
func (v *visitor) searchBelow(p *walkPlan, ptr unsafe.Pointer) {
	fn, prims := v.fn, v.prims
	v.fn, v.prims = nil, true
	v.walk(p, ptr, nil, 0)
	v.fn, v.prims, v.stop = fn, prims, false
}

// search decides one element of a search: false leaves out its children.
func (v *visitor) search(p *walkPlan, ptr unsafe.Pointer) bool {
	switch p.class {
	case classMeta, classNarrative:
		return !v.skipMeta
	case classExtension:
		return (*dpb.Extension)(ptr).GetUrl().GetValue() != ExtInlineSecurityLabel // a label, not data
	case classCoding:
		if v.codes.codingMatches((*dpb.Coding)(ptr)) {
			v.found, v.stop = true, true
		}
		return false
	}
	return true
}

// at returns the node for a depth: the stack's, or a new one deeper down.
func (v *visitor) at(depth int) *node {
	if depth < len(v.stack) {
		v.deep = max(v.deep, depth)
		return &v.stack[depth]
	}
	return &node{}
}

func (v *visitor) walk(p *walkPlan, ptr unsafe.Pointer, up *node, depth int) {
	fields := p.complex
	if v.prims {
		fields = p.fields
	}
	for i := range fields {
		if v.stop {
			return
		}
		f := &fields[i]
		switch {
		case f.oneof != nil:
			cp, inner := f.oneof.which(ptr)
			if cp == nil || cp.sub == nil {
				continue
			}
			if cp.prim && (!v.prims || !cp.sub.hasExt(inner)) {
				continue
			}
			if v.codes != nil {
				if v.search(cp.sub, inner) {
					v.walk(cp.sub, inner, nil, depth+1)
				}
				continue
			}
			n := v.at(depth)
			n.set(cp.sub, inner, &cp.fieldRef, nil, -1, up)
			if v.fn(v, n) {
				v.walk(cp.sub, inner, n, depth+1)
			}
		case f.prim && !v.prims:
			continue
		case f.list:
			items := *(*[]unsafe.Pointer)(unsafe.Add(ptr, f.off))
			for j, c := range items {
				if v.stop {
					return
				}
				if c == nil || (f.prim && !f.sub.hasExt(c)) {
					continue
				}
				if v.codes != nil {
					if v.search(f.sub, c) {
						v.walk(f.sub, c, nil, depth+1)
					}
					continue
				}
				n := v.at(depth)
				n.set(f.sub, c, &f.fieldRef, nil, j, up)
				if v.fn(v, n) {
					v.walk(f.sub, c, n, depth+1)
				}
			}
		default:
			c := *(*unsafe.Pointer)(unsafe.Add(ptr, f.off))
			if c == nil {
				continue
			}
			sub := f.sub
			var choice *casePlan
			if f.choice {
				cp, inner := sub.choice.which(c)
				if cp == nil || cp.sub == nil {
					continue
				}
				if cp.prim && (!v.prims || !cp.sub.hasExt(inner)) {
					continue
				}
				sub, c, choice = cp.sub, inner, cp
			} else if f.prim && !sub.hasExt(c) {
				continue
			}
			if v.codes != nil {
				if v.search(sub, c) {
					v.walk(sub, c, nil, depth+1)
				}
				continue
			}
			n := v.at(depth)
			n.set(sub, c, &f.fieldRef, choice, -1, up)
			if v.fn(v, n) {
				v.walk(sub, c, n, depth+1)
			}
		}
	}
}
