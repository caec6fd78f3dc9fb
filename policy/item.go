package policy

import (
	"reflect"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pathway-fhir/pathway/fhir"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
)

// keyIndex resolves references between the resources of one request: a
// reference written "urn:uuid:..." (a Bundle entry's fullUrl) or
// "Type/id/_history/n" reads as "Type/id".
type keyIndex struct {
	alias map[string]string // fullUrl -> Type/id
	items map[string]*item  // Type/id -> item
	// withheld holds the keys of the resources withheld for their type
	// (label knows them before it scans): a scan keeps the elements of
	// references to them, which redaction will remove.
	withheld map[string]bool
}

// withholds reports whether the resource of the key is withheld for its type.
func (k *keyIndex) withholds(key string) bool { return k != nil && k.withheld[key] }

// norm returns the key a literal reference names.
func (k *keyIndex) norm(ref string) string {
	if k != nil {
		if key, ok := k.alias[ref]; ok {
			return key
		}
	}
	if i := strings.Index(ref, "/_history/"); i > 0 {
		ref = ref[:i]
	}
	// An absolute URL ending in Type/id names the same resource for our
	// purposes only when it is a Bundle fullUrl; otherwise it stays as written.
	return ref
}

// item is what the evaluator knows about one piece of data: a resource, or
// an element of one that carries its own labels.
type item struct {
	key      string // "Observation/o1"
	rtype    string
	element  string // "" for the resource; the element path otherwise
	labels   []Label
	codes    []*dpb.Coding // every coding in the resource (not meta, not labels)
	profiles []string
	date     *span
	refsOut  []string // keys of what the resource refers to
	authors  []string // keys of the resource's authors
	authored bool     // the resource type has an author-like element
	scanned  bool     // codes and refsOut are known (see scan)
	// patient is the key of the patient the resource is about: the Patient
	// itself, or what its subject, patient, for or beneficiary refers to;
	// "" when it names none.
	patient string
	// unlabelled is set while the item is of a resource label did not
	// label (its type is withheld): its codes and references are then
	// found by keyIndex.refsOf when first asked.
	unlabelled *unlabelled
}

// patientFields are the elements naming whom a resource is about.
var patientFields = []string{"subject", "patient", "for", "beneficiary"}

// target names the item in trails and obligations.
func (it *item) target() string {
	if it.element != "" {
		return it.key + " " + it.element
	}
	return it.key
}

// hasAnyLabel matches provision security labels: a confidentiality label
// matches data at that level or lower (an unlabelled resource is N); any
// other label matches data carrying it.
func (it *item) hasAnyLabel(ls []Label) tri {
	for _, l := range ls {
		if l.System == fhir.SystemConfidentiality {
			want, ok := confidentialityRank[l.Code]
			if ok && it.confidentiality() <= want {
				return yes
			}
			continue
		}
		for _, h := range it.labels {
			if h == l {
				return yes
			}
		}
	}
	return no
}

// hasCode reports whether the resource has a coding of the code.
func (it *item) hasCode(l Label) bool {
	for _, c := range it.codes {
		if c.GetCode().GetValue() == l.Code && c.GetSystem().GetValue() == l.System {
			return true
		}
	}
	return false
}

// hasImmigration reports whether the item carries the IMMIG label.
func (it *item) hasImmigration() bool {
	for _, l := range it.labels {
		if l.isImmigration() {
			return true
		}
	}
	return false
}

// confidentiality returns the item's confidentiality rank (N when unlabelled).
func (it *item) confidentiality() int {
	best := -1
	for _, l := range it.labels {
		if l.System == fhir.SystemConfidentiality {
			if r, ok := confidentialityRank[l.Code]; ok && r > best {
				best = r
			}
		}
	}
	if best < 0 {
		return confidentialityRank["N"]
	}
	return best
}

// isClass matches a provision class: a resource type, a profile canonical,
// or a FHIR media type.
func (it *item) isClass(c Label) bool {
	switch c.System {
	case fhir.SystemResourceTypes, "":
		return c.Code == it.rtype
	case "urn:ietf:bcp:13":
		return strings.HasPrefix(c.Code, "application/fhir+") || c.Code == "application/fhir"
	}
	for _, p := range it.profiles {
		if p == c.Code {
			return true
		}
	}
	return false
}

// matchDataRef matches one provision.data entry.
func (it *item) matchDataRef(keys *keyIndex, d dataRef) tri {
	ref := keys.norm(d.ref)
	if ref == "" {
		return no
	}
	switch d.meaning {
	case "instance":
		return boolTri(ref == it.key)
	case "related": // the resource and what it refers to
		if ref == it.key {
			return yes
		}
		target, ok := keys.items[ref]
		if !ok {
			return unknown // the named resource is not in the request
		}
		return boolTri(containsString(keys.refsOf(target), it.key))
	case "dependents": // the resource and what refers to it
		return boolTri(ref == it.key || containsString(it.refsOut, ref))
	case "authoredby":
		if !it.authored {
			return unknown
		}
		return boolTri(containsString(it.authors, ref))
	}
	return no
}

// authoredBy matches author (AUT) actors.
func (it *item) authoredBy(keys *keyIndex, as []actor) tri {
	if !it.authored {
		return unknown
	}
	for _, a := range as {
		if a.ref != "" && containsString(it.authors, keys.norm(a.ref)) {
			return yes
		}
	}
	return no
}

func boolTri(b bool) tri {
	if b {
		return yes
	}
	return no
}

// dateFields are the elements whose date says when a resource's data is
// from, in order of preference (provision.dataPeriod is matched on it).
var dateFields = []string{"effective", "occurrence", "authoredOn", "authored", "recordedDate",
	"onset", "performed", "issued", "period", "dateTime", "date", "created", "recorded"}

// authorFields are the elements naming who wrote a resource.
var authorFields = []string{"author", "recorder", "asserter", "requester", "performer"}

// scanned is what one pass over a labelled resource finds besides its item.
type scanned struct {
	refs     []keptRef         // literal references (not to contained resources)
	labelled []labelledElement // elements with inline labels
	// refsLeft: refs holds only the references to resources withheld for
	// their type (keyIndex.withheld), the others were left (scanLight);
	// the scan looked at primitive values with prims. refsAt finds them
	// all again.
	refsLeft, prims bool
}

// refsAt returns the references a scan found with their elements: those
// it kept, or for a scan that left them (scanLight), those a new scan of
// m finds, the same while m is as it was scanned (meta aside, which no
// scan enters). Redaction asks only when it removes one, which few
// resources need: most never pay for the references' elements.
func (sc *scanned) refsAt(m protoreflect.Message, keys *keyIndex) []keptRef {
	if !sc.refsLeft {
		return sc.refs
	}
	st := &scanState{m: m, keys: keys, prims: sc.prims}
	if visit(m, st.prims, st.visitRefs) {
		return st.sc.refs
	}
	return scan(m, &item{}, keys, sc.prims).refs
}

// keptRef is a literal reference a scan found: the key of what it refers
// to (the item's refsOut holds the same) and where it is, made into an
// elem only when redaction removes it.
type keptRef struct {
	key string
	at  lazyElem
}

// lazyElem is an element kept by a walk: an elem already (the reflective
// walk), or a copy of the planned walk's nodes from the resource down,
// made into an elem when asked.
type lazyElem struct {
	e     *elem
	nodes []node
	root  protoreflect.Message
}

// keepNode copies n and the nodes above it out of the walk's stack, into
// the arena's array.
func (a *nodeArena) keepNode(root protoreflect.Message, n *node) lazyElem {
	d := 0
	for x := n; x != nil; x = x.up {
		d++
	}
	nodes := a.take(d)
	for x, i := n, d-1; x != nil; x, i = x.up, i-1 {
		nodes[i] = *x
		if i > 0 {
			nodes[i].up = &nodes[i-1]
		}
	}
	return lazyElem{nodes: nodes, root: root}
}

// nodeArena hands out the nodes a scan keeps from a few arrays instead of
// one allocation per reference. An array is never grown (kept nodes
// point at each other): a new one takes over when it is full.
type nodeArena struct{ free []node }

func (a *nodeArena) take(n int) []node {
	if len(a.free) < n {
		a.free = make([]node, max(n, 4))
	}
	out := a.free[:n:n]
	a.free = a.free[n:]
	return out
}

// get returns the element.
func (l *lazyElem) get() *elem {
	if l.e == nil && len(l.nodes) > 0 {
		l.e = l.nodes[len(l.nodes)-1].elem(l.root)
	}
	return l.e
}

// labelledElement is an element with inline labels; for a label on an
// extension's value, the element is the extension.
type labelledElement struct {
	e      *elem
	labels []Label
}

// itemFields are the fields of one resource type that buildItem reads,
// found once per type: the date fields (in dateFields' order), the
// patient fields and the author fields that are References.
type itemFields struct {
	dates, patients, authors []protoreflect.FieldDescriptor
	authored                 bool
}

var itemFieldCache sync.Map // protoreflect.MessageDescriptor -> *itemFields

func itemFieldsOf(md protoreflect.MessageDescriptor) *itemFields {
	if v, ok := itemFieldCache.Load(md); ok {
		return v.(*itemFields)
	}
	f := &itemFields{}
	for _, name := range dateFields {
		if fd, _, ok := fieldFor(md, name); ok && !fd.IsList() && fd.Message() != nil {
			f.dates = append(f.dates, fd)
		}
	}
	for _, name := range patientFields {
		if fd, _, ok := fieldFor(md, name); ok && !fd.IsList() && fd.Message() != nil && fd.Message().FullName() == referenceName {
			f.patients = append(f.patients, fd)
		}
	}
	for _, name := range authorFields {
		if fd, _, ok := fieldFor(md, name); ok && fd.Message() != nil && fd.Message().FullName() == referenceName {
			f.authors = append(f.authors, fd)
		}
	}
	f.authored = len(f.authors) > 0
	v, _ := itemFieldCache.LoadOrStore(md, f)
	return v.(*itemFields)
}

// buildItem reads the facts of a resource (after labelling) that need no
// walk: labels, profiles, date, authors, into it (a zero item). meta is
// the resource's meta.
func buildItem(it *item, m protoreflect.Message, meta *dpb.Meta, key string, keys *keyIndex) {
	md := m.Descriptor()
	*it = item{key: key, rtype: string(md.Name())}
	if sec := meta.GetSecurity(); len(sec) > 0 {
		it.labels = make([]Label, 0, len(sec)+2) // room for what the scan adds
		for _, c := range sec {
			it.labels = append(it.labels, labelOf(c))
		}
	}
	for _, p := range meta.GetProfile() {
		it.profiles = append(it.profiles, p.GetValue())
	}
	f := itemFieldsOf(md)
	fr := newFieldReader(m)
	for _, fd := range f.dates {
		v, set := fr.value(fd)
		if !set {
			continue
		}
		if s, ok := dateOfValue(v); ok {
			it.date = &s
			break
		}
	}
	if it.rtype == "Patient" {
		it.patient = key
	}
	for _, fd := range f.patients {
		if it.patient != "" {
			break
		}
		if v, set := fr.value(fd); set {
			it.patient = keys.norm(refString(v.(*dpb.Reference)))
		}
	}
	it.authored = f.authored
	for _, fd := range f.authors {
		for _, v := range fr.values(fd) {
			it.authors = append(it.authors, keys.norm(refString(v.(*dpb.Reference))))
		}
	}
}

// fieldReader reads message fields of a resource: on its walk plan where
// it has one, else through protoreflect.
type fieldReader struct {
	m    protoreflect.Message
	p    *walkPlan
	ptr  unsafe.Pointer
	fast bool
}

func newFieldReader(m protoreflect.Message) fieldReader {
	p, ptr := planFor(m)
	return fieldReader{m: m, p: p, ptr: ptr, fast: p != nil && p.ok && len(p.slots) == m.Descriptor().Fields().Len()}
}

// slot returns where the plan keeps a message field, nil when only
// protoreflect reads it.
func (fr fieldReader) slot(fd protoreflect.FieldDescriptor) *slot {
	if !fr.fast {
		return nil
	}
	if sl := &fr.p.slots[fd.Index()]; sl.off != noOffset && sl.sub != nil {
		return sl
	}
	return nil
}

// value returns a singular message field's value (a choice resolved to
// the chosen type), and whether it is set.
func (fr fieldReader) value(fd protoreflect.FieldDescriptor) (proto.Message, bool) {
	if sl := fr.slot(fd); sl != nil && !sl.list {
		c := *(*unsafe.Pointer)(unsafe.Add(fr.ptr, sl.off))
		if c == nil {
			return nil, false
		}
		sub := sl.sub
		if sub.choice != nil {
			cp, inner := sub.choice.which(c)
			if cp == nil || cp.sub == nil {
				return nil, true // set, to nothing readable
			}
			sub, c = cp.sub, inner
		}
		return sub.iface(c), true
	}
	if !fr.m.Has(fd) {
		return nil, false
	}
	v := fr.m.Get(fd).Message()
	if isChoice(v.Descriptor()) {
		set := choiceSet(v)
		if set == nil || set.Message() == nil {
			return nil, true
		}
		v = v.Get(set).Message()
	}
	return v.Interface(), true
}

// values returns a message field's values: its elements, or its value.
func (fr fieldReader) values(fd protoreflect.FieldDescriptor) []proto.Message {
	if !fd.IsList() {
		if v, ok := fr.value(fd); ok {
			return []proto.Message{v}
		}
		return nil
	}
	var out []proto.Message
	if sl := fr.slot(fd); sl != nil && sl.list {
		for _, c := range *(*[]unsafe.Pointer)(unsafe.Add(fr.ptr, sl.off)) {
			out = append(out, sl.sub.iface(c))
		}
		return out
	}
	if !fr.m.Has(fd) {
		return nil
	}
	l := fr.m.Get(fd).List()
	for i := range l.Len() {
		out = append(out, l.Get(i).Message().Interface())
	}
	return out
}

// scan walks a labelled resource once for what needs a walk: the codes and
// outgoing references (into the item) and the elements with inline labels.
// Primitive values are searched for inline labels only when the resource
// says it has some (DS4P PROCESSINLINELABEL). It walks on the plans
// (scanPlanned) and falls back to the reflective walk (scanReflect) for a
// resource they cannot describe; both find the same, in the same order.
// With prims it looks at primitive values whatever the labels say (the
// labeller put inline labels on some).
func scan(m protoreflect.Message, it *item, keys *keyIndex, prims bool) scanned {
	if sc, ok := scanPlanned(m, it, keys, prims, true); ok {
		return sc
	}
	return scanReflect(m, it, keys, prims)
}

// scanLight is scan without the elements of the references on the plans
// (refsAt finds them when asked): the keys are in the item's refsOut.
func scanLight(m protoreflect.Message, it *item, keys *keyIndex, prims bool) scanned {
	if sc, ok := scanPlanned(m, it, keys, prims, false); ok {
		return sc
	}
	return scanReflect(m, it, keys, prims)
}

// scanPrims reports whether scan looks at primitive values: when the
// resource is labelled PROCESSINLINELABEL.
func scanPrims(it *item) bool {
	for _, l := range it.labels {
		if l.System == fhir.SystemActCode && l.Code == LabelProcessInline {
			return true // DS4P: inline labels may sit on any element
		}
	}
	return false
}

// scanPlanned is scanReflect on the walk plans: the same decisions, case
// by case, on typed pointers. Elements become elems only when kept (a
// reference, an element with inline labels).
// With keepRefs it keeps the references' elements, else refsAt finds
// them when asked.
func scanPlanned(m protoreflect.Message, it *item, keys *keyIndex, prims, keepRefs bool) (scanned, bool) {
	// What the walk gathers lives in one struct (a closure would put each
	// variable it changes on the heap on its own).
	st := &scanState{m: m, keys: keys, prims: prims || scanPrims(it), keepRefs: keepRefs,
		// Room for what a referral's resources hold, in one allocation each.
		codes: slices.Grow(it.codes[:0], 8), refsOut: slices.Grow(it.refsOut[:0], 4)}
	if !visit(m, st.prims, st.visit) {
		return scanned{}, false
	}
	it.codes, it.refsOut, it.scanned = st.codes, st.refsOut, true
	st.sc.refsLeft, st.sc.prims = !keepRefs, st.prims
	return st.sc, true
}

// scanSearching is scanPlanned with the immigration search of
// labelImmigrationCodes (mayHoldCode) in the same walk (visitSearching),
// for a resource the labelling rules labelled and the immigration codes
// not yet: it reports whether the resource may hold a coding of r where
// that search looks. The scan's codes and references are returned, not
// put into an item (buildItem, which makes the item, comes after
// labelling). ok is false when the plans cannot describe m.
// keepRefs is scanPlanned's.
func scanSearching(m protoreflect.Message, keys *keyIndex, prims, keepRefs bool, r *labelRule) (sc scanned, codes []*dpb.Coding, refsOut []string, maybe, ok bool) {
	p, ptr := planFor(m)
	if p == nil || !p.ok {
		return scanned{}, nil, nil, false, false
	}
	st := &scanState{m: m, keys: keys, prims: prims, keepRefs: keepRefs,
		codes: make([]*dpb.Coding, 0, 8), refsOut: make([]string, 0, 4)}
	found, ok := visitSearching(p, ptr, st.prims, st.visit, r)
	if !ok {
		return scanned{}, nil, nil, false, false
	}
	st.sc.refsLeft, st.sc.prims = !keepRefs, st.prims
	return st.sc, st.codes, st.refsOut, found || p.hasContained(ptr), true
}

// scanState is one planned scan in progress.
type scanState struct {
	m        protoreflect.Message
	keys     *keyIndex
	prims    bool
	keepRefs bool // keep the references' elements (scanPlanned)
	sc       scanned
	arena    nodeArena
	codes    []*dpb.Coding
	refsOut  []string
}

// visitRefs is visit for a scan of the references alone (refsAt): it
// enters what visit enters and keeps the references' elements, nothing
// else.
func (st *scanState) visitRefs(_ *visitor, n *node) bool {
	switch n.plan.class {
	case classMeta, classNarrative, classCodeableConcept, classCoding:
		return false
	case classReference:
		v := (*dpb.Reference)(n.ptr)
		if r := refString(v); r != "" && !strings.HasPrefix(r, "#") {
			st.sc.refs = append(st.sc.refs, keptRef{key: st.keys.norm(r), at: st.arena.keepNode(st.m, n)})
		}
		return v.GetIdentifier() != nil
	case classExtension:
		return (*dpb.Extension)(n.ptr).GetUrl().GetValue() != ExtInlineSecurityLabel
	case classIdentifier:
		return st.prims || (*dpb.Identifier)(n.ptr).GetAssigner() != nil
	case classSummary:
		return st.prims
	}
	return true
}

func (st *scanState) visit(_ *visitor, n *node) bool {
	m, sc := st.m, &st.sc
	switch n.plan.class {
	case classMeta, classNarrative:
		return false
	case classCodeableConcept:
		v := (*dpb.CodeableConcept)(n.ptr)
		for i, c := range v.GetCoding() {
			st.codes = append(st.codes, c)
			if len(c.GetExtension()) > 0 {
				cn := node{plan: codingPlan(), ptr: unsafe.Pointer(c), field: &codingField, idx: i, up: n}
				sc.inlineNode(m, &cn, c.GetExtension())
			}
		}
		sc.inlineNode(m, n, v.GetExtension())
		return false
	case classCoding:
		v := (*dpb.Coding)(n.ptr)
		st.codes = append(st.codes, v)
		sc.inlineNode(m, n, v.GetExtension())
		return false
	case classReference:
		v := (*dpb.Reference)(n.ptr)
		if r := refString(v); r != "" && !strings.HasPrefix(r, "#") {
			key := st.keys.norm(r)
			st.refsOut = append(st.refsOut, key)
			if st.keepRefs || st.keys.withholds(key) { // else refsAt finds the element again, if asked
				if sc.refs == nil {
					sc.refs = make([]keptRef, 0, 4) // most resources refer to a few others
				}
				sc.refs = append(sc.refs, keptRef{key: key, at: st.arena.keepNode(m, n)})
			}
		}
		sc.inlineNode(m, n, v.GetExtension())
		return v.GetIdentifier() != nil
	case classExtension:
		v := (*dpb.Extension)(n.ptr)
		if v.GetUrl().GetValue() == ExtInlineSecurityLabel {
			return false // a label, not data
		}
		sc.inlineNode(m, n, v.GetExtension())
		return true
	case classIdentifier:
		v := (*dpb.Identifier)(n.ptr)
		st.codes = append(st.codes, v.GetType().GetCoding()...)
		sc.inlineNode(m, n, v.GetExtension())
		return st.prims || v.GetAssigner() != nil
	case classSummary:
		if !st.prims {
			sc.inlineNode(m, n, n.plan.extensions(n.ptr))
			return false
		}
	}
	sc.inlineNode(m, n, n.plan.extensions(n.ptr))
	return true
}

var (
	codingPlan  = sync.OnceValue(func() *walkPlan { return planOfType(reflect.TypeFor[dpb.Coding]()) })
	codingField = fieldRef{(&dpb.CodeableConcept{}).ProtoReflect().Descriptor().Fields().ByName("coding"), "coding"}
)

// inlineNode is inline for a node of a planned walk: the node becomes an
// elem only when its extensions hold inline labels.
func (sc *scanned) inlineNode(root protoreflect.Message, n *node, exts []*dpb.Extension) {
	ls := inlineOf(exts)
	if len(ls) == 0 {
		return
	}
	target := n
	if n.up != nil && n.field.fd.Name() == "value" && n.up.plan.class == classExtension {
		target = n.up
	}
	sc.labelled = append(sc.labelled, labelledElement{e: target.elem(root), labels: ls})
}

// scanReflect is scan on the reflective walk (path.go): the reference
// implementation, used where the plans cannot describe a resource.
func scanReflect(m protoreflect.Message, it *item, keys *keyIndex, prims bool) scanned {
	var sc scanned
	it.codes = it.codes[:0]
	it.refsOut = it.refsOut[:0]
	it.scanned = true
	prims = prims || scanPrims(it)
	walk(m, nil, prims, func(e *elem) bool {
		switch v := e.msg.Interface().(type) {
		case *dpb.Meta, *dpb.Narrative:
			return false
		case *dpb.CodeableConcept:
			for i, c := range v.GetCoding() {
				it.codes = append(it.codes, c)
				if len(c.GetExtension()) > 0 {
					fd := e.msg.Descriptor().Fields().ByName("coding")
					sc.inline(&elem{parent: e.msg, fd: fd, idx: i, msg: c.ProtoReflect(), name: "coding", up: e}, c.GetExtension())
				}
			}
			sc.inline(e, v.GetExtension())
			return false
		case *dpb.Coding:
			it.codes = append(it.codes, v)
			sc.inline(e, v.GetExtension())
			return false
		case *dpb.Reference:
			if r := refString(v); r != "" && !strings.HasPrefix(r, "#") {
				key := keys.norm(r)
				it.refsOut = append(it.refsOut, key)
				sc.refs = append(sc.refs, keptRef{key: key, at: lazyElem{e: e.persist()}})
			}
			sc.inline(e, v.GetExtension())
			return v.GetIdentifier() != nil
		case *dpb.Extension:
			if v.GetUrl().GetValue() == ExtInlineSecurityLabel {
				return false // a label, not data
			}
			sc.inline(e, v.GetExtension())
			return true
		case *dpb.Identifier:
			it.codes = append(it.codes, v.GetType().GetCoding()...)
			sc.inline(e, v.GetExtension())
			return prims || v.GetAssigner() != nil
		case *dpb.HumanName, *dpb.ContactPoint, *dpb.Address, *dpb.Period, *dpb.Quantity, *dpb.Attachment:
			if !prims {
				sc.inline(e, extensionsOf(e.msg))
				return false
			}
		}
		if exts := extensionsOf(e.msg); len(exts) > 0 {
			sc.inline(e, exts)
		}
		return true
	})
	return sc
}

// extensionsOf returns a message's extensions without reflection where it can.
func extensionsOf(m protoreflect.Message) []*dpb.Extension {
	if x, ok := m.Interface().(interface{ GetExtension() []*dpb.Extension }); ok {
		return x.GetExtension()
	}
	return nil
}

var referenceName = (&dpb.Reference{}).ProtoReflect().Descriptor().FullName()

// inlineOf returns the inline labels among extensions.
func inlineOf(exts []*dpb.Extension) []Label {
	var ls []Label
	for _, x := range exts {
		if x.GetUrl().GetValue() == ExtInlineSecurityLabel && x.GetValue().GetCoding() != nil {
			ls = append(ls, labelOf(x.GetValue().GetCoding()))
		}
	}
	return ls
}

// inline records the inline labels among an element's extensions.
func (sc *scanned) inline(e *elem, exts []*dpb.Extension) {
	ls := inlineOf(exts)
	if len(ls) == 0 {
		return
	}
	target := e
	if e.up != nil && e.fd.Name() == "value" {
		if _, ok := e.up.msg.Interface().(*dpb.Extension); ok {
			target = e.up
		}
	}
	sc.labelled = append(sc.labelled, labelledElement{e: target.persist(), labels: ls})
}

// dateOfValue reads a dateTime, date, instant or Period; false for anything else and nil.
func dateOfValue(m proto.Message) (span, bool) {
	switch v := m.(type) {
	case *dpb.DateTime:
		return dateTimeSpan(v), true
	case *dpb.Instant:
		return dateTimeSpan(&dpb.DateTime{ValueUs: v.GetValueUs(), Timezone: v.GetTimezone(), Precision: dpb.DateTime_MICROSECOND}), true
	case *dpb.Date:
		p := dpb.DateTime_DAY
		switch v.GetPrecision() {
		case dpb.Date_YEAR:
			p = dpb.DateTime_YEAR
		case dpb.Date_MONTH:
			p = dpb.DateTime_MONTH
		}
		return dateTimeSpan(&dpb.DateTime{ValueUs: v.GetValueUs(), Timezone: v.GetTimezone(), Precision: p}), true
	case *dpb.Period:
		return periodSpan(v), true
	}
	return span{}, false
}

// refString is fhir.RefString with fast paths for the forms Pathway's
// Bundles and consents use most (fhir.RefString reads typed references by
// reflection).
func refString(r *dpb.Reference) string {
	var t string
	var id *dpb.ReferenceId
	switch x := r.GetReference().(type) {
	case nil:
		return ""
	case *dpb.Reference_Uri:
		return x.Uri.GetValue()
	case *dpb.Reference_OrganizationId:
		t, id = "Organization", x.OrganizationId
	case *dpb.Reference_PatientId:
		t, id = "Patient", x.PatientId
	case *dpb.Reference_PractitionerId:
		t, id = "Practitioner", x.PractitionerId
	case *dpb.Reference_ServiceRequestId:
		t, id = "ServiceRequest", x.ServiceRequestId
	case *dpb.Reference_ObservationId:
		t, id = "Observation", x.ObservationId
	default:
		return fhir.RefString(r)
	}
	if id.GetHistory() != nil {
		return fhir.RefString(r)
	}
	return t + "/" + id.GetValue()
}
