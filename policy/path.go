package policy

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	apb "github.com/google/fhir/go/proto/google/fhir/proto/annotations_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// Element paths in this package are FHIR paths inside one resource, in the
// names FHIR JSON uses, without the resource type: "reasonCode[0]",
// "name[1].given", "valueCodeableConcept", "extension[2]". Rules in
// configuration write them without indexes ("reasonCode", "name.family").

// elem is one element found in a resource: where it sits (so it can be
// removed) and the message it is.
type elem struct {
	parent   protoreflect.Message         // the message holding the field
	fd       protoreflect.FieldDescriptor // the field in parent
	idx      int                          // index in a repeated field, -1 for a singular one
	msg      protoreflect.Message         // the element (for a choice, the chosen datatype)
	name     string                       // FHIR name ("reasonCode", "value")
	choice   protoreflect.FieldDescriptor // for a choice, the type chosen ("value" + "CodeableConcept")
	up       *elem                        // the element holding this one; nil under the resource
	pathMemo string                       // path's result, once asked (an elem never changes)
}

// path returns the element's FHIR path in the resource: "name[1].family".
func (e *elem) path() string {
	if e == nil || e.parent == nil {
		return ""
	}
	if e.pathMemo == "" {
		e.pathMemo = string(e.appendPath(nil))
	}
	return e.pathMemo
}

func (e *elem) appendPath(b []byte) []byte {
	if e.up != nil && e.up.parent != nil {
		b = e.up.appendPath(b)
		b = append(b, '.')
	}
	b = append(b, e.name...)
	if e.choice != nil {
		b = append(b, upperFirst(e.choice.JSONName())...)
	}
	if e.idx >= 0 {
		b = append(b, '[')
		b = strconv.AppendInt(b, int64(e.idx), 10)
		b = append(b, ']')
	}
	return b
}

// fieldInfo is what the walkers need to know of a message-typed field.
type fieldInfo struct {
	fd     protoreflect.FieldDescriptor
	name   string // FHIR JSON name
	list   bool
	choice bool // a choice wrapper (value[x])
	prim   bool // a primitive datatype: only its extensions can hold elements
	goIdx  int  // the field's index in the generated Go struct, -1 if unknown
	sub    atomic.Pointer[msgInfo]
}

// subInfo returns the field's message type information, cached.
func (fi *fieldInfo) subInfo() *msgInfo {
	if p := fi.sub.Load(); p != nil {
		return p
	}
	p := infoOf(fi.fd.Message())
	fi.sub.Store(p)
	return p
}

// msgInfo caches, per message type, its message-typed fields.
type msgInfo struct {
	fields   []*fieldInfo
	byName   map[string]fieldHit
	choice   bool
	choiceOD protoreflect.OneofDescriptor // the choice oneof of a choice wrapper
	prim     bool                         // a primitive datatype (a scalar value)
	ext      protoreflect.FieldDescriptor // the extension field, if any
}

type fieldHit struct {
	fd, choice protoreflect.FieldDescriptor
}

var msgInfos sync.Map // protoreflect.MessageDescriptor -> *msgInfo

// infoOf returns the cached field information of a message type.
func infoOf(md protoreflect.MessageDescriptor) *msgInfo {
	if v, ok := msgInfos.Load(md); ok {
		return v.(*msgInfo)
	}
	mi := &msgInfo{byName: map[string]fieldHit{}}
	if od := md.Oneofs().ByName("choice"); od != nil && od.Fields().Len() == md.Fields().Len() {
		mi.choice, mi.choiceOD = true, od
	}
	mi.ext = md.Fields().ByName("extension")
	if v := md.Fields().ByName("value"); v != nil && v.Message() == nil {
		mi.prim = true
	}
	fields := md.Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		name := fhirName(f)
		mi.byName[name] = fieldHit{fd: f}
		if f.Message() == nil || f.IsMap() || f.Message().FullName() == "google.protobuf.Any" {
			continue
		}
		fi := &fieldInfo{fd: f, name: name, list: f.IsList()}
		sub := f.Message()
		if od := sub.Oneofs().ByName("choice"); od != nil && od.Fields().Len() == sub.Fields().Len() {
			fi.choice = true
			cf := sub.Fields()
			for j := range cf.Len() {
				mi.byName[name+upperFirst(cf.Get(j).JSONName())] = fieldHit{fd: f, choice: cf.Get(j)}
			}
		}
		if v := sub.Fields().ByName("value"); v != nil && v.Message() == nil {
			fi.prim = true
		}
		mi.fields = append(mi.fields, fi)
	}
	mi.setGoIndexes(md)
	v, _ := msgInfos.LoadOrStore(md, mi)
	return v.(*msgInfo)
}

// setGoIndexes finds each field's index in the generated Go struct, so
// walks read fields with plain reflection instead of protoreflect (which
// costs an allocation-heavy conversion per field).
func (mi *msgInfo) setGoIndexes(md protoreflect.MessageDescriptor) {
	for i := range mi.fields {
		mi.fields[i].goIdx = -1
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
	if err != nil {
		return
	}
	t := reflect.TypeOf(mt.Zero().Interface())
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return
	}
	t = t.Elem()
	byName := map[string]int{}
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("protobuf")
		for part := range strings.SplitSeq(tag, ",") {
			if n, ok := strings.CutPrefix(part, "name="); ok {
				byName[n] = i
			}
		}
	}
	for i := range mi.fields {
		if idx, ok := byName[string(mi.fields[i].fd.Name())]; ok {
			mi.fields[i].goIdx = idx
		}
	}
}

// fhirName returns the FHIR JSON name of a google/fhir field: the JSON
// name, except that google/fhir spells FHIR's "for" and "class"
// for_value and class_value.
func fhirName(fd protoreflect.FieldDescriptor) string {
	n := fd.JSONName()
	if strings.HasSuffix(string(fd.Name()), "_value") {
		n = strings.TrimSuffix(n, "Value")
	}
	return n
}

// isChoice reports whether md is a google/fhir choice wrapper (value[x]).
func isChoice(md protoreflect.MessageDescriptor) bool { return infoOf(md).choice }

// choiceSet returns the chosen field of a choice wrapper, or nil.
func choiceSet(m protoreflect.Message) protoreflect.FieldDescriptor {
	return m.WhichOneof(m.Descriptor().Oneofs().ByName("choice"))
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// fieldFor finds the field of md that the FHIR name names. For a choice
// element, name may be the base name ("value") or a typed name
// ("valueCodeableConcept"); choice is then the wanted type's field, or nil
// for any.
func fieldFor(md protoreflect.MessageDescriptor, name string) (fd, choice protoreflect.FieldDescriptor, ok bool) {
	h, ok := infoOf(md).byName[name]
	return h.fd, h.choice, ok
}

// resourceDescriptors maps resource type names to their message descriptors.
var resourceDescriptors = sync.OnceValue(func() map[string]protoreflect.MessageDescriptor {
	m := map[string]protoreflect.MessageDescriptor{}
	od := (&rpb.ContainedResource{}).ProtoReflect().Descriptor().Oneofs().ByName("oneof_resource")
	for i := range od.Fields().Len() {
		md := od.Fields().Get(i).Message()
		m[string(md.Name())] = md
	}
	return m
})

// checkPath reports whether a dotted FHIR path (without indexes) names
// elements of the resource type, and why not.
func checkPath(resourceType, path string) (string, bool) {
	md, ok := resourceDescriptors()[resourceType]
	if !ok {
		return "not an R4 resource type", false
	}
	if path == "" {
		return "empty path", false
	}
	for _, seg := range strings.Split(path, ".") {
		if md == nil {
			return "path goes below a primitive value", false
		}
		fd, choice, ok := fieldFor(md, seg)
		if !ok {
			return "no element " + strconv.Quote(seg) + " in " + string(md.Name()), false
		}
		switch {
		case choice != nil:
			md = choice.Message()
		case fd.Message() != nil && isChoice(fd.Message()):
			md = nil // any type: nothing below a base choice name is checked
			if seg != fd.JSONName() {
				return "no element " + strconv.Quote(seg), false
			}
			return "", true
		default:
			md = fd.Message()
		}
		if md != nil && md.FullName() == "google.protobuf.Any" {
			return "path goes into contained resources", false
		}
	}
	return "", true
}

// resolve returns the elements at the dotted path in m (m itself for "").
// It reads the fields on the walk plans where they describe them, else
// through protoreflect (appendChildren); both give the same elems.
func resolve(m protoreflect.Message, path string) []elem {
	if path == "" {
		return []elem{{msg: m, idx: -1}}
	}
	p, ptr := planFor(m)
	if p == nil || !p.ok {
		p = nil
	}
	// The elements under the resource do not point at it (their up is
	// nil), so the first step starts from m itself, not from an elem of it.
	seg, rest, more := strings.Cut(path, ".")
	cur, at := resolveStep(nil, nil, m, nil, planned{p, ptr}, seg)
	for more && len(cur) > 0 {
		seg, rest, more = strings.Cut(rest, ".")
		var next []elem
		var nextAt []planned
		for i := range cur {
			next, nextAt = resolveStep(next, nextAt, cur[i].msg, &cur[i], at[i], seg)
		}
		cur, at = next, nextAt
	}
	return cur
}

// resolveStep appends the elements named seg under parent (the message
// of up; up nil for the resource), on the plans when they describe the
// field, else through protoreflect.
func resolveStep(out []elem, outAt []planned, parent protoreflect.Message, up *elem, at planned, seg string) ([]elem, []planned) {
	if at.p != nil {
		if next, nextAt, ok := appendPlanned(out, outAt, parent, up, at, seg); ok {
			return next, nextAt
		}
	}
	n := len(out)
	out = appendChildren(out, parent, up, seg)
	for range len(out) - n {
		outAt = append(outAt, planned{})
	}
	return out, outAt
}

// resolveReflect is resolve through protoreflect alone: the reference the
// planned steps are tested against.
func resolveReflect(m protoreflect.Message, path string) []elem {
	cur := []elem{{msg: m, idx: -1}}
	if path == "" {
		return cur
	}
	for seg := range strings.SplitSeq(path, ".") {
		var next []elem
		for i := range cur {
			up := &cur[i]
			if up.parent == nil {
				up = nil // the resource
			}
			next = appendChildren(next, cur[i].msg, up, seg)
		}
		cur = next
		if len(cur) == 0 {
			break
		}
	}
	return cur
}

// planned is the plan and struct of an elem's message.
type planned struct {
	p   *walkPlan
	ptr unsafe.Pointer
}

// appendPlanned is appendChildren on the plans; ok is false when they do
// not describe the field (a oneof case, a scalar), which appendChildren
// then reads.
func appendPlanned(out []elem, outAt []planned, parent protoreflect.Message, up *elem, at planned, seg string) ([]elem, []planned, bool) {
	md := parent.Descriptor()
	fd, choice, found := fieldFor(md, seg)
	if !found || fd.Message() == nil {
		return out, outAt, true // nothing there, as appendChildren finds
	}
	if len(at.p.slots) != md.Fields().Len() {
		return out, outAt, false
	}
	sl := &at.p.slots[fd.Index()]
	if sl.off == noOffset || sl.sub == nil || !sl.sub.ok || (sl.list && sl.sub.choice != nil) {
		return out, outAt, false
	}
	name := fhirName(fd)
	if sl.list {
		items := *(*[]unsafe.Pointer)(unsafe.Add(at.ptr, sl.off))
		if slices.Contains(items, nil) {
			return out, outAt, false
		}
		out, outAt = slices.Grow(out, len(items)), slices.Grow(outAt, len(items))
		for i, c := range items {
			out = append(out, elem{parent: parent, fd: fd, idx: i, msg: sl.sub.message(c), up: up, name: name})
			outAt = append(outAt, planned{okPlan(sl.sub), c})
		}
		return out, outAt, true
	}
	c := *(*unsafe.Pointer)(unsafe.Add(at.ptr, sl.off))
	if c == nil {
		return out, outAt, true
	}
	if sl.sub.choice != nil {
		cp, inner := sl.sub.choice.which(c)
		if cp == nil || (choice != nil && cp.fd != choice) || cp.sub == nil {
			return out, outAt, true
		}
		out = append(out, elem{parent: parent, fd: fd, idx: -1, msg: cp.sub.message(inner), up: up, name: name, choice: cp.fd})
		return out, append(outAt, planned{okPlan(cp.sub), inner}), true
	}
	out = append(out, elem{parent: parent, fd: fd, idx: -1, msg: sl.sub.message(c), up: up, name: name})
	return out, append(outAt, planned{okPlan(sl.sub), c}), true
}

// okPlan returns p, or nil when it cannot be trusted.
func okPlan(p *walkPlan) *walkPlan {
	if p == nil || !p.ok {
		return nil
	}
	return p
}

// appendChildren appends the elements named seg under parent (the
// message of up; up nil for the resource).
func appendChildren(out []elem, parent protoreflect.Message, up *elem, seg string) []elem {
	fd, choice, ok := fieldFor(parent.Descriptor(), seg)
	if !ok || fd.Message() == nil || !parent.Has(fd) {
		return out
	}
	name := fhirName(fd)
	if fd.IsList() {
		l := parent.Get(fd).List()
		for i := range l.Len() {
			out = append(out, elem{parent: parent, fd: fd, idx: i, msg: l.Get(i).Message(), up: up, name: name})
		}
		return out
	}
	v := parent.Get(fd).Message()
	if isChoice(fd.Message()) {
		set := choiceSet(v)
		if set == nil || (choice != nil && set != choice) || set.Message() == nil {
			return out
		}
		return append(out, elem{parent: parent, fd: fd, idx: -1, msg: v.Get(set).Message(), up: up,
			name: name, choice: set})
	}
	return append(out, elem{parent: parent, fd: fd, idx: -1, msg: v, up: up, name: name})
}

// walkFunc visits one element; returning false skips its children.
type walkFunc func(e *elem) bool

// walk visits the message elements under m (not m itself), depth first, in
// field order. Primitive values are visited only with prims, and then only
// when they carry extensions; contained resources (google.protobuf.Any)
// are not entered. up is the element m is (nil for a resource).
//
// The elems fn receives live on the walk's stack and are reused: fn must
// call persist on any elem it keeps.
func walk(m protoreflect.Message, up *elem, prims bool, fn walkFunc) {
	var w walker
	w.fn, w.prims = fn, prims
	w.walk(m, up, 0)
}

// walker holds a walk's reusable elems, one per depth.
type walker struct {
	fn    walkFunc
	prims bool
	stack [24]elem
}

// at returns the elem for a depth: the stack's, or a new one deeper down.
func (w *walker) at(depth int) *elem {
	if depth < len(w.stack) {
		return &w.stack[depth]
	}
	return &elem{}
}

// persist returns a copy of e and the elems above it that outlives the walk.
func (e *elem) persist() *elem {
	if e == nil {
		return nil
	}
	c := *e
	c.up = e.up.persist()
	return &c
}

func (w *walker) walk(m protoreflect.Message, up *elem, depth int) {
	w.walkInfo(m, infoOf(m.Descriptor()), up, depth)
}

func (w *walker) walkInfo(m protoreflect.Message, mi *msgInfo, up *elem, depth int) {
	var rv reflect.Value
	fast := false
	if x := reflect.ValueOf(m.Interface()); x.Kind() == reflect.Pointer && !x.IsNil() {
		rv, fast = x.Elem(), true
	}
	for i := range mi.fields {
		fi := mi.fields[i]
		if fi.prim && !w.prims {
			continue
		}
		var f reflect.Value
		if fast && fi.goIdx >= 0 {
			f = rv.Field(fi.goIdx)
			if fi.list {
				if f.Len() == 0 {
					continue
				}
			} else if f.IsNil() {
				continue
			}
		} else if !m.Has(fi.fd) {
			continue
		}
		if fi.list {
			n := 0
			if f.IsValid() {
				n = f.Len()
			} else {
				n = m.Get(fi.fd).List().Len()
			}
			for j := range n {
				var c protoreflect.Message
				if f.IsValid() {
					c = f.Index(j).Interface().(protoreflect.ProtoMessage).ProtoReflect()
				} else {
					c = m.Get(fi.fd).List().Get(j).Message()
				}
				sub := fi.subInfo()
				if fi.prim && !(sub.ext != nil && c.Has(sub.ext)) {
					continue
				}
				e := w.at(depth)
				*e = elem{parent: m, fd: fi.fd, idx: j, msg: c, name: fi.name, up: up}
				if w.fn(e) {
					w.walkInfo(c, sub, e, depth+1)
				}
			}
			continue
		}
		var c protoreflect.Message
		if f.IsValid() {
			c = f.Interface().(protoreflect.ProtoMessage).ProtoReflect()
		} else {
			c = m.Get(fi.fd).Message()
		}
		var sub *msgInfo
		var set protoreflect.FieldDescriptor
		if fi.choice {
			set = c.WhichOneof(fi.subInfo().choiceOD)
			if set == nil || set.Message() == nil {
				continue
			}
			c = c.Get(set).Message()
			sub = infoOf(c.Descriptor())
			if sub.prim && (!w.prims || !hasExtensions(c)) {
				continue
			}
		} else {
			sub = fi.subInfo()
			if fi.prim && !(sub.ext != nil && c.Has(sub.ext)) {
				continue
			}
		}
		e := w.at(depth)
		*e = elem{parent: m, fd: fi.fd, idx: -1, msg: c, name: fi.name, choice: set, up: up}
		if w.fn(e) {
			w.walkInfo(c, sub, e, depth+1)
		}
	}
}

// hasExtensions reports whether a message has extensions.
func hasExtensions(m protoreflect.Message) bool {
	ext := infoOf(m.Descriptor()).ext
	return ext != nil && m.Has(ext)
}

var requiredCache sync.Map // protoreflect.FieldDescriptor -> bool

// required reports whether FHIR requires the field (min cardinality 1).
func required(fd protoreflect.FieldDescriptor) bool {
	if v, ok := requiredCache.Load(fd); ok {
		return v.(bool)
	}
	r, _ := proto.GetExtension(fd.Options(), apb.E_ValidationRequirement).(apb.Requirement)
	req := r == apb.Requirement_REQUIRED_BY_FHIR
	requiredCache.Store(fd, req)
	return req
}

// isEmpty reports whether a message has no field set.
func isEmpty(m protoreflect.Message) bool {
	empty := true
	m.Range(func(protoreflect.FieldDescriptor, protoreflect.Value) bool {
		empty = false
		return false
	})
	return empty
}
