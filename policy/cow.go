package policy

import (
	"reflect"
	"slices"
	"sync"
	"unsafe"

	"google.golang.org/protobuf/reflect/protoreflect"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
)

// cow writes to a resource without changing the original: copy on write.
// The first change below an element copies the element and every element
// above it (one level each, sharing what is unchanged), so labelling and
// redacting a resource costs what it changes, not a deep copy. The result
// shares unchanged parts with the input: treat both as read-only.
//
// In place mode (Labeller.Apply) writes to the messages themselves.
type cow struct {
	root    protoreflect.Message
	copies  copyMap // original or copy -> copy
	inPlace bool
	// plan and ptr are root's walk plan and struct, for the fast paths
	// to meta (nil plan: protoreflect only); meta is the writable meta
	// once made.
	plan *walkPlan
	ptr  unsafe.Pointer
	meta *dpb.Meta
	// reflective makes the writers take protoreflect where they have a
	// faster path on the plans (Engine.reference: the differential tests).
	reflective bool
	// primLabels: an inline label was put on a primitive value, or one
	// covering an immigration code may sit on one, so the scan must look
	// at primitive values whatever meta.security says.
	primLabels bool
}

func newCOW(m protoreflect.Message) *cow {
	w := &cow{}
	w.start(m)
	return w
}

// start sets up w, a zero cow, to write to a copy of m (newCOW for a cow
// the caller allocated, one of many in an array).
func (w *cow) start(m protoreflect.Message) {
	if p, ptr := planFor(m); p != nil {
		w.plan, w.ptr = p, p.copy(ptr)
		w.root = p.message(w.ptr)
	} else {
		w.root = shallowCopy(m)
	}
	w.copies.add(m, w.root)
}

// copyMap maps the messages a cow copied, and the copies, to the copies.
// A resource's writes copy a handful of messages, so the pairs (original,
// copy) are searched in order, in an array inside the cow: a map cost an
// allocation and an interface hash per look-up. Past copyMapSmall pairs it
// becomes a map.
type copyMap struct {
	n     int
	small [copyMapSmall]copyPair
	big   map[protoreflect.Message]protoreflect.Message
}

const copyMapSmall = 4

type copyPair struct{ from, to protoreflect.Message }

// get returns the copy of m, or m itself when m is a copy.
func (c *copyMap) get(m protoreflect.Message) (protoreflect.Message, bool) {
	if c.big != nil {
		to, ok := c.big[m]
		return to, ok
	}
	for i := range c.n {
		if p := &c.small[i]; p.from == m || p.to == m {
			return p.to, true
		}
	}
	return nil, false
}

// add records that from is copied to to (from == to: a message made new).
func (c *copyMap) add(from, to protoreflect.Message) {
	if c.big == nil && c.n < copyMapSmall {
		c.small[c.n] = copyPair{from, to}
		c.n++
		return
	}
	if c.big == nil {
		c.big = make(map[protoreflect.Message]protoreflect.Message, 4*copyMapSmall)
		for _, p := range c.small[:c.n] {
			c.big[p.from], c.big[p.to] = p.to, p.to
		}
		c.small = [copyMapSmall]copyPair{}
	}
	c.big[from], c.big[to] = to, to
}

func inPlace(m protoreflect.Message) *cow {
	w := &cow{root: m, inPlace: true}
	w.plan, w.ptr = planFor(m)
	return w
}

// rootMeta returns the resource's meta for reading, or nil.
func (w *cow) rootMeta() *dpb.Meta {
	if meta, ok := w.plan.meta(w.ptr); ok {
		return meta
	}
	return metaOf(w.root)
}

// shallowCopy copies a message one level down: a new struct with new
// slices, sharing the elements (a Go struct copy; protoreflect would cost
// a reflective get per field).
func shallowCopy(m protoreflect.Message) protoreflect.Message {
	if p, ptr := planFor(m); p != nil {
		return p.message(p.copy(ptr))
	}
	src := reflect.ValueOf(m.Interface())
	if src.Kind() != reflect.Pointer || src.Elem().Kind() != reflect.Struct {
		return slowCopy(m)
	}
	dst := reflect.New(src.Elem().Type())
	dst.Elem().Set(src.Elem())
	for _, i := range sliceFields(src.Elem().Type()) {
		f := dst.Elem().Field(i)
		if f.Len() == 0 {
			continue
		}
		c := reflect.MakeSlice(f.Type(), f.Len(), f.Len())
		reflect.Copy(c, f)
		f.Set(c)
	}
	return dst.Interface().(protoreflect.ProtoMessage).ProtoReflect()
}

var sliceFieldCache sync.Map // reflect.Type -> []int

// sliceFields returns the indexes of the exported slice fields of a
// generated message struct (its repeated fields).
func sliceFields(t reflect.Type) []int {
	if v, ok := sliceFieldCache.Load(t); ok {
		return v.([]int)
	}
	var out []int
	for i := range t.NumField() {
		f := t.Field(i)
		if f.IsExported() && f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Pointer {
			out = append(out, i)
		}
	}
	sliceFieldCache.Store(t, out)
	return out
}

// slowCopy is shallowCopy through protoreflect.
func slowCopy(m protoreflect.Message) protoreflect.Message {
	n := m.Type().New()
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.IsList() {
			nl := n.Mutable(fd).List()
			l := v.List()
			for i := range l.Len() {
				nl.Append(l.Get(i))
			}
			return true
		}
		n.Set(fd, v)
		return true
	})
	return n
}

// current returns the message m now is (its copy, if it was copied).
func (w *cow) current(m protoreflect.Message) protoreflect.Message {
	if w.inPlace {
		return m
	}
	if c, ok := w.copies.get(m); ok {
		return c
	}
	return m
}

// holder returns the writable message holding e's field.
func (w *cow) holder(e *elem) protoreflect.Message {
	if w.inPlace {
		return e.parent
	}
	if e.up == nil {
		return w.root
	}
	return w.msg(e.up)
}

// msg returns a writable e, copying it (and what holds it) on first write.
func (w *cow) msg(e *elem) protoreflect.Message {
	if w.inPlace {
		return e.msg
	}
	if c, ok := w.copies.get(e.msg); ok {
		return c
	}
	p := w.holder(e)
	n := shallowCopy(e.msg)
	if sl, ptr := w.slotOf(p, e.fd); sl != nil && sl.sub.choice == nil {
		// What the protoreflect code below does, on the plan: the copy
		// takes the original's place in the holder (a copy the cow made,
		// with lists of its own). A choice's slot holds its wrapper: that
		// is left to protoreflect.
		old, nptr := protoPointer(e.msg), protoPointer(n)
		at := unsafe.Add(ptr, sl.off)
		if sl.list {
			items := *(*[]unsafe.Pointer)(at)
			if i := slices.Index(items, old); i >= 0 {
				items[i] = nptr
			}
		} else {
			*(*unsafe.Pointer)(at) = nptr
		}
		w.copies.add(e.msg, n)
		return n
	}
	switch {
	case e.fd.IsList():
		l := p.Mutable(e.fd).List()
		for i := range l.Len() {
			if it := l.Get(i).Message(); it == e.msg {
				l.Set(i, protoreflect.ValueOfMessage(n))
				break
			}
		}
	case isChoice(e.fd.Message()):
		wrap := p.Get(e.fd).Message()
		wc, ok := w.copies.get(wrap)
		if !ok {
			wc = shallowCopy(wrap)
			w.copies.add(wrap, wc)
			p.Set(e.fd, protoreflect.ValueOfMessage(wc))
		}
		if set := choiceSet(wc); set != nil {
			// A copied wrapper shares its oneof holder: clear it so Set
			// allocates a new one rather than writing into the original.
			wc.Clear(set)
			wc.Set(set, protoreflect.ValueOfMessage(n))
		}
	default:
		p.Set(e.fd, protoreflect.ValueOfMessage(n))
	}
	w.copies.add(e.msg, n)
	return n
}

// protoPointer returns the struct pointer of a generated message (the
// data word of its proto.Message).
func protoPointer(m protoreflect.Message) unsafe.Pointer {
	x := m.Interface()
	return ifaceWords(unsafe.Pointer(&x))[1]
}

// field returns a writable singular message field of a writable message,
// copying the field's message on first write (creating it when absent).
func (w *cow) field(m protoreflect.Message, fd protoreflect.FieldDescriptor) protoreflect.Message {
	if !m.Has(fd) {
		n := m.Mutable(fd).Message()
		if !w.inPlace {
			w.copies.add(n, n)
		}
		return n
	}
	old := m.Get(fd).Message()
	if w.inPlace {
		return m.Mutable(fd).Message()
	}
	if c, ok := w.copies.get(old); ok {
		return c
	}
	n := shallowCopy(old)
	w.copies.add(old, n)
	m.Set(fd, protoreflect.ValueOfMessage(n))
	return n
}

// slotOf returns where the plans keep a message field of a writable
// message m (its slot and m's struct), or nil when only protoreflect
// reaches it (no plan, a oneof case, a scalar). Writing there is writing
// the field: m is a copy the cow made, or the resource itself in place.
func (w *cow) slotOf(m protoreflect.Message, fd protoreflect.FieldDescriptor) (*slot, unsafe.Pointer) {
	var fr fieldReader
	switch {
	case w.reflective:
		return nil, nil
	case m == w.root && w.plan != nil:
		fr = fieldReader{m: m, p: w.plan, ptr: w.ptr, fast: w.plan.ok && len(w.plan.slots) == m.Descriptor().Fields().Len()}
	default:
		fr = newFieldReader(m)
	}
	if sl := fr.slot(fd); sl != nil && sl.list == fd.IsList() {
		return sl, fr.ptr
	}
	return nil, nil
}

// coding returns a label's Coding to write: a shared read-only one when
// writing copies (their output is read-only), a new one in place.
func (w *cow) coding(l Label) *dpb.Coding {
	if w.inPlace {
		return l.Coding()
	}
	return l.sharedCoding()
}
