package fhir

// Per-message-type plans: what the fast paths (the reference checks of the
// builders, Validate's scan and the JSON writer in marshal.go) need to know
// about each of google/fhir's R4 message types, computed once from the
// descriptors and the generated Go structs.
//
// Why not protoreflect: Message.Range and Get on a generated message build
// each field value through reflect.NewAt of a pointer-to-pointer type,
// which costs a sync.Map lookup per field; on a referral bundle that was
// most of the time of every walk. The plans instead hold the offset of
// each field in the generated struct, checked against the field's Go type
// when the plan is built, so a walk reads pointers, slices and scalars
// directly, and every per-type decision (is this a primitive, a choice
// type, a Reference; which fields are required; what JSON key a choice
// case has) is made once. Oneofs, held in interface fields, are read
// through reflect.
//
// A plan is made the first time a walk meets its type (a referral bundle
// needs about a hundred of the 1,200 R4 types), under a sync.Once per
// type: until then it is a shell that knows only its type and kind, and
// every walk reaches a child plan through get. Anything a plan does not
// model is marked so that the fast path hands over to the general code,
// which stays the reference behaviour; a type whose generated code has a
// shape the plans do not expect gets a broken plan, which every fast path
// also hands over.

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unsafe"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/runtime/protoimpl"
	"google.golang.org/protobuf/types/known/anypb"

	apb "github.com/google/fhir/go/proto/google/fhir/proto/annotations_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
)

// planKind says how a message type is walked and written.
type planKind uint8

const (
	// kindComplex is a datatype, backbone element or resource: an object of its fields.
	kindComplex planKind = iota
	// kindPrimitive is a FHIR primitive (string, date, code...): a JSON value plus "_name".
	kindPrimitive
	// kindChoice is a value[x] wrapper: one oneof whose case names the JSON key.
	kindChoice
	// kindContained is ContainedResource: a oneof of every resource type.
	kindContained
	// kindAny is google.protobuf.Any, which holds contained resources.
	kindAny
)

// primKind says how a primitive's value is written (google/fhir's
// marshalPrimitiveType switch, by descriptor name).
type primKind uint8

const (
	primUnsupported primKind = iota
	primString               // Canonical, Code, Id, Markdown, Oid, String, Uri, Url, Uuid, Xhtml
	primBool                 // Boolean
	primInt                  // Integer
	primUint                 // PositiveInt, UnsignedInt
	primDecimal              // Decimal: the value string, as written
	primBase64               // Base64Binary
	primDate                 // Date
	primDateTime             // DateTime
	primTime                 // Time
	primInstant              // Instant
	primCodeString           // a code of a value set, held as a string
	primCodeEnum             // a code of a value set, held as an enum
	primReferenceID          // ReferenceId: written only by the general path
)

// checkKind is the value check google/fhir's fhirvalidate applies to a type.
type checkKind uint8

const (
	checkNone   checkKind = iota
	checkString           // String: at most 1 MB, no control characters but tab, LF, CR
	checkUint             // UnsignedInt, PositiveInt: at most 2^31-1
	checkRegex            // Id, Oid, Uuid, Code: the type's value_regex
	checkURL              // Uri, Url, Canonical: net/url parses it
)

// noField marks a field a type does not have.
const noField = ^uintptr(0)

// msgPlan describes one generated message type. A shell (before get) has
// only typ, desc, kind, name, isReference and refType, which never change.
type msgPlan struct {
	typ  reflect.Type // the struct type (not the pointer)
	desc protoreflect.MessageDescriptor
	kind planKind
	// name is the descriptor's short name: the resource type for resources.
	name string
	// isReference: the Go type is R4's Reference (what the builders' and
	// rules' reference walks look for).
	isReference bool
	// refType: the type has google/fhir's fhir_reference_type option (what
	// its validator and marshaller treat as a reference).
	refType bool

	set   *planSet
	once  sync.Once
	ready atomic.Bool
	// broken: the plans cannot describe the type; every fast path gives up on it.
	broken bool

	// fields are the message-typed fields, oneofs as one field each.
	fields []*fieldPlan
	// scalars is true for a non-primitive type with scalar fields (only Any).
	scalars bool
	// oneof is the single oneof of a choice type or ContainedResource.
	oneof *fieldPlan

	// refOneof is the "reference" oneof of a refType plan, nil if it has none.
	refOneof *fieldPlan

	// required are the fields google/fhir's validator requires (REQUIRED_BY_FHIR).
	required []presence
	check    checkKind
	regex    func(string) bool // for checkRegex

	// Offsets in the struct, noField when the type has no such field: id
	// and extension (elements), the value fields of primitives, url of
	// Extension, history of ReferenceId.
	idOff, extOff, valueOff, usOff, tzOff, precOff, urlOff, historyOff uintptr
	idShell, extShell, urlShell, historyShell                          *msgPlan
	// stringVal: the value field is a Go string.
	stringVal bool

	// Primitives: how the value is written.
	prim    primKind
	layouts map[int32][2]string // precision -> layout, layout when tz is "Z"
	codes   map[int32]string    // enum number -> JSON string, quoted

	// writeOK is false when the writer cannot reproduce google/fhir's
	// output for the type (duplicate keys, keys that need escaping).
	writeOK bool

	byNumber map[protoreflect.FieldNumber]int // struct field index by number, while building
}

// fieldPlan is one message-typed field, or one oneof, of a message type.
type fieldPlan struct {
	fd     protoreflect.FieldDescriptor // the field; the first case for a oneof
	owner  reflect.Type                 // the struct type holding the field
	index  int                          // struct field index
	offset uintptr                      // struct field offset
	list   bool
	shell  *msgPlan // the field's type, nil for a oneof: use plan()
	// cases are a oneof's cases by wrapper type (*Reference_Uri...).
	cases map[reflect.Type]*casePlan
	// byTab are the same cases by the type word of the interface field
	// (the itab of the oneof interface and the wrapper type).
	byTab map[unsafe.Pointer]*casePlan
	// allowed is the field's valid_reference_type list.
	allowed []string
	// key and ext are the JSON keys of the field ("name", "_name"); for a
	// choice-typed field, keys holds one pair per case instead.
	key, ext *jsonKey
	keys     []*jsonKey // choice cases: [2*case.ord] value key, [2*case.ord+1] "_" key
}

// casePlan is one case of a oneof.
type casePlan struct {
	fd      protoreflect.FieldDescriptor
	ord     int
	wrapper reflect.Type // *Type_Case
	shell   *msgPlan     // the case's type, nil for a scalar case: use plan()
	allowed []string
	// refType is the resource type of a typed Reference case (patient_id -> Patient).
	refType string
	// key and ext are the JSON keys of the case inside a plain (non-choice) message.
	key, ext *jsonKey
}

// jsonKey is a JSON object key with its rank among the keys of its object.
type jsonKey struct {
	rank   int
	quoted string // `"name":`
}

// presence tells whether one field is set, as protoreflect's Has does for
// proto3 fields.
type presence struct {
	owner  reflect.Type
	index  int
	offset uintptr
	kind   reflect.Kind
	// oneofCase is the wrapper type when the field is a oneof case.
	oneofCase reflect.Type
}

type planSet struct {
	byType    sync.Map // struct type -> *msgPlan (a shell until used)
	contained *msgPlan
	reference *msgPlan // R4 Reference, nil if its plan is broken
	// byResource maps each resource's struct type to its ContainedResource case.
	byResource map[reflect.Type]*casePlan
	// refTypeByName maps typed Reference case names to their resource types
	// (google/fhir's referenceFieldToType).
	refTypeByName map[protoreflect.Name]string
}

// plans returns the set of plans, made on first use with the plan of
// ContainedResource; nil when the generated code has a shape they do not
// expect (every fast path then stands aside).
var plans = sync.OnceValue(func() *planSet {
	set := &planSet{byResource: map[reflect.Type]*casePlan{}, refTypeByName: map[protoreflect.Name]string{}}
	for name, t := range refFields().byName {
		set.refTypeByName[name] = t
	}
	set.contained = set.shell(reflect.TypeFor[ContainedResource]()).get()
	if set.contained.broken || set.contained.kind != kindContained || set.contained.oneof == nil {
		return nil
	}
	for _, cp := range set.contained.oneof.cases {
		if cp.shell != nil {
			set.byResource[cp.shell.typ] = cp
		}
	}
	if ref := set.shell(referenceType).get(); !ref.broken && ref.refOneof != nil {
		set.reference = ref
	}
	return set
})

// planOf returns the plan of a generated message's struct type, or nil.
func planOf(t reflect.Type) *msgPlan {
	set := plans()
	if set == nil {
		return nil
	}
	if p, ok := set.byType.Load(t); ok {
		return p.(*msgPlan).get()
	}
	if t.Kind() != reflect.Struct || !reflect.PointerTo(t).Implements(protoMessageType) {
		return nil
	}
	return set.shell(t).get()
}

var protoMessageType = reflect.TypeFor[proto.Message]()

// plan returns the plan of the field's type, made on first use.
func (fp *fieldPlan) plan() *msgPlan { return fp.shell.get() }

// plan returns the plan of the case's type, nil for a scalar case.
func (cp *casePlan) plan() *msgPlan { return cp.shell.get() }

func (p *msgPlan) idPlan() *msgPlan      { return p.idShell.get() }
func (p *msgPlan) extPlan() *msgPlan     { return p.extShell.get() }
func (p *msgPlan) urlPlan() *msgPlan     { return p.urlShell.get() }
func (p *msgPlan) historyPlan() *msgPlan { return p.historyShell.get() }

// get makes the plan from its shell, once; nil stays nil.
func (p *msgPlan) get() *msgPlan {
	if p != nil && !p.ready.Load() {
		p.once.Do(p.build)
	}
	return p
}

// shell returns the shell of a struct type's plan, making it if needed: a
// plan that knows its type and kind only.
func (set *planSet) shell(st reflect.Type) *msgPlan {
	if p, ok := set.byType.Load(st); ok {
		return p.(*msgPlan)
	}
	msg, ok := reflect.New(st).Interface().(proto.Message)
	shape(ok, "%v is not a message", st)
	md := msg.ProtoReflect().Descriptor()
	p := &msgPlan{typ: st, desc: md, name: string(md.Name()), set: set,
		idOff: noField, extOff: noField, valueOff: noField, usOff: noField, tzOff: noField, precOff: noField, urlOff: noField, historyOff: noField}
	opts := md.Options()
	sdk, _ := proto.GetExtension(opts, apb.E_StructureDefinitionKind).(apb.StructureDefinitionKindValue)
	isChoice, _ := proto.GetExtension(opts, apb.E_IsChoiceType).(bool)
	switch {
	case st == anyType:
		p.kind = kindAny
	case md.FullName() == (&ContainedResource{}).ProtoReflect().Descriptor().FullName():
		p.kind = kindContained
	case sdk == apb.StructureDefinitionKindValue_KIND_PRIMITIVE_TYPE:
		p.kind = kindPrimitive
	case isChoice:
		p.kind = kindChoice
	}
	p.isReference = st == referenceType
	p.refType = proto.HasExtension(opts, apb.E_FhirReferenceType)
	actual, _ := set.byType.LoadOrStore(st, p)
	return actual.(*msgPlan)
}

// build makes the plan of a shell. Only the plans of choice types are
// made on the way (for the keys of the fields that hold them), and those
// make no others, so builds never wait on each other in a cycle. A type
// the plans cannot describe gets a broken plan.
func (p *msgPlan) build() {
	defer func() {
		if recover() != nil {
			p.broken, p.fields, p.oneof, p.refOneof, p.required = true, nil, nil, nil, nil
			p.check, p.prim, p.writeOK = checkNone, primUnsupported, false
		}
		p.byNumber = nil
		p.ready.Store(true)
	}()
	p.layout()
	p.finish()
}

var (
	referenceType = reflect.TypeFor[dpb.Reference]()
	anyType       = reflect.TypeFor[anypb.Any]()
)

// shape panics, and so switches the plans off, when the generated code is
// not what the plans expect.
func shape(ok bool, format string, args ...any) {
	if !ok {
		panic(fmt.Sprintf("fhir plans: "+format, args...))
	}
}

// layout maps the proto fields to the struct: field offsets, the shells
// of the fields' types, the cases of oneofs.
func (p *msgPlan) layout() {
	st, md := p.typ, p.desc
	msg := reflect.New(st).Interface().(proto.Message)
	// Struct field of each field number and oneof.
	byNumber := map[protoreflect.FieldNumber]int{}
	p.byNumber = byNumber
	byOneof := map[protoreflect.Name]int{}
	for i := range st.NumField() {
		sf := st.Field(i)
		if tag := sf.Tag.Get("protobuf"); tag != "" {
			n, ok := tagNumber(tag)
			shape(ok, "%v.%s: tag %q", st, sf.Name, tag)
			byNumber[n] = i
		}
		if tag := sf.Tag.Get("protobuf_oneof"); tag != "" {
			shape(sf.Type.Kind() == reflect.Interface, "%v.%s is not an interface", st, sf.Name)
			byOneof[protoreflect.Name(tag)] = i
		}
	}
	fds := md.Fields()
	seenOneof := map[protoreflect.Name]bool{}
	for i := range fds.Len() {
		fd := fds.Get(i)
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if seenOneof[od.Name()] {
				continue
			}
			seenOneof[od.Name()] = true
			idx, ok := byOneof[od.Name()]
			shape(ok, "no struct field for oneof %s", od.FullName())
			fp := p.set.oneof(msg, od, idx)
			p.fields = append(p.fields, fp)
			if od.Name() == "reference" {
				p.refOneof = fp
			}
			if p.kind == kindChoice || p.kind == kindContained {
				p.oneof = fp
			}
			continue
		}
		idx, ok := byNumber[fd.Number()]
		shape(ok, "no struct field for %s", fd.FullName())
		sf := st.Field(idx)
		if fd.Message() == nil || fd.IsMap() {
			if p.kind != kindPrimitive {
				p.scalars = true
			}
			continue
		}
		fp := &fieldPlan{fd: fd, owner: st, index: idx, offset: sf.Offset, list: fd.IsList(), allowed: allowedRefs(fd)}
		ft := sf.Type // *T or []*T
		if fp.list {
			shape(ft.Kind() == reflect.Slice, "%s is not a slice", fd.FullName())
			ft = ft.Elem()
		}
		shape(ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct, "%s is not a message pointer", fd.FullName())
		fp.shell = p.set.shell(ft.Elem())
		p.fields = append(p.fields, fp)
	}
	offset := func(name protoreflect.Name, kinds ...reflect.Kind) uintptr {
		fd := fds.ByName(name)
		if fd == nil || fd.ContainingOneof() != nil {
			return noField
		}
		i, ok := byNumber[fd.Number()]
		if !ok {
			return noField
		}
		sf := st.Field(i)
		if !slices.Contains(kinds, sf.Type.Kind()) {
			return noField
		}
		return sf.Offset
	}
	p.idOff, p.extOff = offset("id", reflect.Pointer), offset("extension", reflect.Slice)
	if p.kind == kindPrimitive {
		p.valueOff = offset("value", reflect.String, reflect.Bool, reflect.Int32, reflect.Uint32, reflect.Slice)
		p.stringVal = offset("value", reflect.String) != noField
		p.usOff, p.tzOff, p.precOff = offset("value_us", reflect.Int64), offset("timezone", reflect.String), offset("precision", reflect.Int32)
		p.historyOff = offset("history", reflect.Pointer)
	}
	p.urlOff = offset("url", reflect.Pointer)
}

// oneof plans one oneof: its cases, from the wrapper types the generated
// code lists (protoimpl.MessageInfo.OneofWrappers), each matched to its
// field by the number in its struct tag.
func (set *planSet) oneof(msg proto.Message, od protoreflect.OneofDescriptor, index int) *fieldPlan {
	st := reflect.TypeOf(msg).Elem()
	fp := &fieldPlan{fd: od.Fields().Get(0), owner: st, index: index, offset: st.Field(index).Offset,
		cases: map[reflect.Type]*casePlan{}, byTab: map[unsafe.Pointer]*casePlan{}}
	mi, ok := msg.ProtoReflect().Type().(*protoimpl.MessageInfo)
	shape(ok, "%v: no protoimpl.MessageInfo", st)
	scratch := reflect.New(st).Elem().Field(index) // an interface field to read type words from
	for _, w := range mi.OneofWrappers {
		wrapper := reflect.TypeOf(w) // *Type_Case
		shape(wrapper.Kind() == reflect.Pointer && wrapper.Elem().Kind() == reflect.Struct && wrapper.Elem().NumField() == 1,
			"%v: unexpected oneof wrapper %v", st, wrapper)
		n, ok := tagNumber(wrapper.Elem().Field(0).Tag.Get("protobuf"))
		shape(ok, "%v: wrapper %v has no field number", st, wrapper)
		fd := od.Fields().ByNumber(n)
		if fd == nil {
			continue // a case of another oneof of the same message
		}
		scratch.Set(reflect.Zero(wrapper))
		tab := ifaceWords(scratch.Addr().UnsafePointer())[0]
		ord := 0
		for ord < od.Fields().Len() && od.Fields().Get(ord) != fd {
			ord++
		}
		cp := &casePlan{fd: fd, ord: ord, wrapper: wrapper, allowed: allowedRefs(fd), refType: set.refTypeByName[fd.Name()]}
		if fd.Message() != nil {
			inner := wrapper.Elem().Field(0)
			shape(inner.Offset == 0 && inner.Type.Kind() == reflect.Pointer && inner.Type.Elem().Kind() == reflect.Struct,
				"%s: unexpected case field %v", fd.FullName(), inner.Type)
			cp.shell = set.shell(inner.Type.Elem())
		}
		fp.cases[wrapper] = cp
		if tab != nil {
			fp.byTab[tab] = cp
		}
	}
	shape(len(fp.cases) == od.Fields().Len(), "%s: %d wrappers for %d cases", od.FullName(), len(fp.cases), od.Fields().Len())
	return fp
}

// ifaceWords returns the two words of the interface value at ptr: its
// type word (an itab for a oneof interface) and its data word (here the
// wrapper pointer). whichCase only trusts a type word it recorded itself
// when the plan was built, and asks reflect about any other.
func ifaceWords(ptr unsafe.Pointer) [2]unsafe.Pointer { return *(*[2]unsafe.Pointer)(ptr) }

// tagNumber reads the field number of a protobuf struct tag ("bytes,3,opt,name=type,proto3").
func tagNumber(tag string) (protoreflect.FieldNumber, bool) {
	_, rest, ok := strings.Cut(tag, ",")
	if !ok {
		return 0, false
	}
	num, _, _ := strings.Cut(rest, ",")
	n, err := strconv.Atoi(num)
	return protoreflect.FieldNumber(n), err == nil
}

func allowedRefs(fd protoreflect.FieldDescriptor) []string {
	allowed, _ := proto.GetExtension(fd.Options(), apb.E_ValidReferenceType).([]string)
	return allowed
}

// finish computes the rest: the shells of id, extension, url and history,
// validation facts, primitive layouts and JSON keys.
func (p *msgPlan) finish() {
	md := p.desc
	shellAt := func(off uintptr) *msgPlan {
		for _, fp := range p.fields {
			if fp.cases == nil && fp.offset == off {
				return fp.shell
			}
		}
		return nil
	}
	p.idShell, p.extShell, p.urlShell, p.historyShell = shellAt(p.idOff), shellAt(p.extOff), shellAt(p.urlOff), shellAt(p.historyOff)
	for i := range md.Fields().Len() {
		fd := md.Fields().Get(i)
		if req, _ := proto.GetExtension(fd.Options(), apb.E_ValidationRequirement).(apb.Requirement); req == apb.Requirement_REQUIRED_BY_FHIR {
			p.required = append(p.required, p.presenceOf(fd))
		}
	}
	stringValue := p.stringVal
	switch md.FullName() {
	case fullName(&dpb.String{}):
		p.check = checkString
	case fullName(&dpb.UnsignedInt{}), fullName(&dpb.PositiveInt{}):
		p.check = checkUint
		shape(p.valueOff != noField && md.Fields().ByName("value").Kind() == protoreflect.Uint32Kind, "%s value", md.FullName())
	case fullName(&dpb.Oid{}), fullName(&dpb.Id{}), fullName(&dpb.Uuid{}), fullName(&dpb.Code{}):
		p.check = checkRegex
		p.regex = valueRegex(md)
	case fullName(&dpb.Uri{}), fullName(&dpb.Url{}), fullName(&dpb.Canonical{}):
		p.check = checkURL
	}
	shape(p.check == checkNone || p.check == checkUint || stringValue, "%s value", md.FullName())
	if p.kind == kindPrimitive {
		p.primitive()
	}
	p.keys()
}

func fullName(m proto.Message) protoreflect.FullName { return m.ProtoReflect().Descriptor().FullName() }

func (p *msgPlan) presenceOf(fd protoreflect.FieldDescriptor) presence {
	if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
		for _, fp := range p.fields {
			if fp.cases == nil || fp.fd.ContainingOneof() != od {
				continue
			}
			for wt, cp := range fp.cases {
				if cp.fd == fd {
					return presence{owner: p.typ, index: fp.index, offset: fp.offset, kind: reflect.Interface, oneofCase: wt}
				}
			}
		}
		shape(false, "oneof case not planned: %s", fd.FullName())
	}
	i, ok := p.byNumber[fd.Number()]
	shape(ok, "no struct field for %s", fd.FullName())
	sf := p.typ.Field(i)
	return presence{owner: p.typ, index: i, offset: sf.Offset, kind: sf.Type.Kind()}
}

// has reports whether the field is set in the struct at ptr, as
// protoreflect.Message.Has does for proto3 fields.
func (pr presence) has(ptr unsafe.Pointer) bool {
	at := unsafe.Add(ptr, pr.offset)
	switch pr.kind {
	case reflect.Pointer, reflect.Map:
		return *(*unsafe.Pointer)(at) != nil
	case reflect.Slice:
		return len(*(*[]byte)(at)) > 0 // any slice header: only its length is read
	case reflect.String:
		return len(*(*string)(at)) > 0
	case reflect.Interface:
		w := reflect.NewAt(pr.owner, ptr).Elem().Field(pr.index)
		if w.IsNil() {
			return false
		}
		return w.Elem().Type() == pr.oneofCase && !w.Elem().IsNil()
	}
	return !reflect.NewAt(pr.owner, ptr).Elem().Field(pr.index).IsZero()
}

// valueRegex returns the matcher of a type's value_regex, as google/fhir
// compiles it ("^" + regex + "$"). The regexes of Id and Code have exact
// hand-written equivalents, since they are checked on nearly every element.
func valueRegex(md protoreflect.MessageDescriptor) func(string) bool {
	re, _ := proto.GetExtension(md.Options(), apb.E_ValueRegex).(string)
	switch re {
	case `[A-Za-z0-9\-\.]{1,64}`:
		return validIDString
	case `[^\s]+(\s[^\s]+)*`:
		return validCodeString
	}
	return regexp.MustCompile("^" + re + "$").MatchString
}

// validCodeString is the regex [^\s]+(\s[^\s]+)* of FHIR's code: not
// empty, no leading or trailing whitespace, no two whitespace characters in
// a row. \s is RE2's ASCII whitespace [\t\n\f\r ], and multi-byte UTF-8
// sequences never contain ASCII bytes, so bytes can be compared one by one.
func validCodeString(s string) bool {
	if s == "" || isRE2Space(s[0]) || isRE2Space(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if isRE2Space(s[i]) && isRE2Space(s[i-1]) {
			return false
		}
	}
	return true
}

func isRE2Space(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}

// primitive fills in how a primitive is written, checking the Go types of
// the fields it reads.
func (p *msgPlan) primitive() {
	md := p.desc
	valueKind := reflect.Invalid
	if p.valueOff != noField {
		valueKind = p.typ.Field(fieldIndex(p.typ, p.valueOff)).Type.Kind()
	}
	switch md.Name() {
	case "Base64Binary":
		if valueKind == reflect.Slice && p.typ.Field(fieldIndex(p.typ, p.valueOff)).Type.Elem().Kind() == reflect.Uint8 {
			p.prim = primBase64
		}
	case "Canonical", "Code", "Markdown", "Oid", "String", "Uri", "Url", "Uuid", "Xhtml", "Id":
		if valueKind == reflect.String {
			p.prim = primString
		}
	case "ReferenceId":
		if valueKind == reflect.String {
			p.prim = primReferenceID
		}
	case "Boolean":
		if valueKind == reflect.Bool {
			p.prim = primBool
		}
	case "Integer":
		if valueKind == reflect.Int32 {
			p.prim = primInt
		}
	case "PositiveInt", "UnsignedInt":
		if valueKind == reflect.Uint32 {
			p.prim = primUint
		}
	case "Decimal":
		if valueKind == reflect.String {
			p.prim = primDecimal
		}
	case "Date":
		p.prim = primDate
		p.layouts = precisionLayouts(md, map[string][2]string{
			"DAY": {"2006-01-02", "2006-01-02"}, "MONTH": {"2006-01", "2006-01"}, "YEAR": {"2006", "2006"},
		})
	case "DateTime":
		p.prim = primDateTime
		p.layouts = precisionLayouts(md, map[string][2]string{
			"SECOND":      {"2006-01-02T15:04:05-07:00", "2006-01-02T15:04:05Z"},
			"MILLISECOND": {"2006-01-02T15:04:05.000-07:00", "2006-01-02T15:04:05.000Z"},
			"MICROSECOND": {"2006-01-02T15:04:05.000000-07:00", "2006-01-02T15:04:05.000000Z"},
			"DAY":         {"2006-01-02", "2006-01-02"}, "MONTH": {"2006-01", "2006-01"}, "YEAR": {"2006", "2006"},
		})
	case "Time":
		p.prim = primTime
		p.layouts = precisionLayouts(md, map[string][2]string{
			"SECOND": {"15:04:05", "15:04:05"}, "MILLISECOND": {"15:04:05.000", "15:04:05.000"}, "MICROSECOND": {"15:04:05.000000", "15:04:05.000000"},
		})
	case "Instant":
		p.prim = primInstant
		p.layouts = precisionLayouts(md, map[string][2]string{
			"SECOND":      {"2006-01-02T15:04:05-07:00", "2006-01-02T15:04:05Z"},
			"MILLISECOND": {"2006-01-02T15:04:05.000-07:00", "2006-01-02T15:04:05.000Z"},
			"MICROSECOND": {"2006-01-02T15:04:05.000000-07:00", "2006-01-02T15:04:05.000000Z"},
		})
	default:
		if !proto.HasExtension(md.Options(), apb.E_FhirValuesetUrl) {
			break
		}
		switch fd := md.Fields().ByName("value"); {
		case valueKind == reflect.String:
			p.prim = primCodeString
		case valueKind == reflect.Int32 && fd.Enum() != nil:
			p.prim = primCodeEnum
			p.codes = map[int32]string{}
			values := fd.Enum().Values()
			for i := range values.Len() {
				ev := values.Get(i)
				code, _ := proto.GetExtension(ev.Options(), apb.E_FhirOriginalCode).(string)
				if code == "" {
					code = strings.ReplaceAll(strings.ToLower(string(ev.Name())), "_", "-")
				}
				p.codes[int32(ev.Number())] = string(appendJSONString(nil, code))
			}
		}
	}
	if p.layouts != nil && (p.usOff == noField || p.precOff == noField || (p.prim != primTime && p.tzOff == noField)) {
		p.prim = primUnsupported
	}
	if p.layouts == nil && p.valueOff == noField {
		p.prim = primUnsupported
	}
}

// fieldIndex returns the index of the struct field at offset off.
func fieldIndex(st reflect.Type, off uintptr) int {
	for i := range st.NumField() {
		if sf := st.Field(i); sf.Offset == off && sf.Type.Size() > 0 {
			return i
		}
	}
	shape(false, "%v: no field at offset %d", st, off)
	return -1
}

// precisionLayouts maps the numbers of a precision enum to time layouts, by
// value name; a precision without a layout is left out (google/fhir refuses it).
func precisionLayouts(md protoreflect.MessageDescriptor, byName map[string][2]string) map[int32][2]string {
	fd := md.Fields().ByName("precision")
	if fd == nil || fd.Enum() == nil {
		return nil
	}
	out := map[int32][2]string{}
	values := fd.Enum().Values()
	for i := range values.Len() {
		if l, ok := byName[string(values.Get(i).Name())]; ok {
			out[int32(values.Get(i).Number())] = l
		}
	}
	return out
}

// keys computes the JSON keys of a type and their rank in sorted order.
func (p *msgPlan) keys() {
	if p.kind == kindPrimitive || p.kind == kindAny || p.kind == kindContained {
		p.writeOK = p.kind != kindAny
		return
	}
	type owned struct {
		name  string
		owner int
		key   **jsonKey
	}
	var all []owned
	add := func(owner int, name string, key **jsonKey) {
		all = append(all, owned{name, owner, key})
	}
	p.writeOK = !p.scalars
	for n, fp := range p.fields {
		if fp.cases != nil {
			if p.kind == kindChoice {
				continue // a choice type's cases are keyed by the field that holds it
			}
			for _, cp := range fp.cases {
				name := cp.fd.JSONName()
				if p.refType && fp == p.refOneof {
					name = p.refOneofKey()
				}
				add(n, name, &cp.key)
				add(n, "_"+name, &cp.ext)
			}
			continue
		}
		if fp.shell.kind == kindChoice && !fp.list && fp.plan().oneof != nil {
			fp.keys = make([]*jsonKey, 2*len(fp.plan().oneof.cases))
			for _, cp := range fp.plan().oneof.cases {
				name := snakeToLowerCamel(string(fp.fd.Name()) + "_" + camelToSnake(cp.fd.JSONName()))
				add(n, name, &fp.keys[2*cp.ord])
				add(n, "_"+name, &fp.keys[2*cp.ord+1])
			}
			continue
		}
		add(n, fp.fd.JSONName(), &fp.key)
		add(n, "_"+fp.fd.JSONName(), &fp.ext)
	}
	slices.SortStableFunc(all, func(a, b owned) int { return strings.Compare(a.name, b.name) })
	rank := 0
	for i, o := range all {
		if !plainKey(o.name) {
			p.writeOK = false
		}
		if i > 0 && all[i-1].name == o.name {
			if all[i-1].owner != o.owner {
				p.writeOK = false // two fields would write the same key
			}
			*o.key = *all[i-1].key
			continue
		}
		rank++
		*o.key = &jsonKey{rank: rank, quoted: `"` + o.name + `":`}
	}
}

// refOneofKey is the key every literal reference is written under: the
// JSON name of the uri case, which google/fhir's marshaller turns typed and
// fragment references into.
func (p *msgPlan) refOneofKey() string {
	if fd := p.desc.Fields().ByName("uri"); fd != nil {
		return fd.JSONName()
	}
	return "reference"
}

func plainKey(s string) bool {
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return s != ""
}

// snakeToLowerCamel and camelToSnake are google/fhir's choice-key spelling
// (jsonpbhelper.SnakeToLowerCamel and CamelToSnake): "value" + "_" +
// "date_time" becomes "valueDateTime".
func snakeToLowerCamel(s string) string {
	if s == "" {
		return s
	}
	camel := make([]rune, 0, len(s))
	upper := true
	for _, c := range s {
		switch {
		case c == '_':
			upper = true
		case upper:
			upper = false
			camel = append(camel, unicode.ToUpper(c))
		default:
			camel = append(camel, unicode.ToLower(c))
		}
	}
	cs := string(camel)
	return strings.ToLower(cs[:1]) + cs[1:]
}

func camelToSnake(s string) string {
	snake := make([]rune, 0, len(s))
	for _, c := range s {
		if !unicode.IsLower(c) && len(snake) > 0 {
			snake = append(snake, '_')
		}
		snake = append(snake, unicode.ToLower(c))
	}
	return string(snake)
}

// Reading the structs. ptr is always a non-nil pointer to a struct of the
// plan's type, and off an offset the plan checked for the Go type read.

func ptrAt(ptr unsafe.Pointer, off uintptr) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Add(ptr, off))
}

// listAt reads a []*T field as pointers.
func listAt(ptr unsafe.Pointer, off uintptr) []unsafe.Pointer {
	return *(*[]unsafe.Pointer)(unsafe.Add(ptr, off))
}

func stringAt(ptr unsafe.Pointer, off uintptr) string { return *(*string)(unsafe.Add(ptr, off)) }
func int32At(ptr unsafe.Pointer, off uintptr) int32   { return *(*int32)(unsafe.Add(ptr, off)) }
func uint32At(ptr unsafe.Pointer, off uintptr) uint32 { return *(*uint32)(unsafe.Add(ptr, off)) }
func int64At(ptr unsafe.Pointer, off uintptr) int64   { return *(*int64)(unsafe.Add(ptr, off)) }
func boolAt(ptr unsafe.Pointer, off uintptr) bool     { return *(*bool)(unsafe.Add(ptr, off)) }
func bytesAt(ptr unsafe.Pointer, off uintptr) []byte  { return *(*[]byte)(unsafe.Add(ptr, off)) }

// stringValue reads the value of a primitive with a string value (the id
// of an element, the url of an extension), "" when ptr is nil.
func (p *msgPlan) stringValue(ptr unsafe.Pointer) string {
	if ptr == nil || p == nil || !p.stringVal {
		return ""
	}
	return stringAt(ptr, p.valueOff)
}

// messagePtr returns the struct behind a generated message pointer, and
// its plan; ok is false for nil or an unplanned type.
func messagePtr(m proto.Message) (unsafe.Pointer, *msgPlan, bool) {
	v := reflect.ValueOf(m)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return nil, nil, false
	}
	p := planOf(v.Type().Elem())
	if p == nil {
		return nil, nil, false
	}
	return v.UnsafePointer(), p, true
}

// whichCase returns the case set in a oneof field of the struct at ptr and
// the case's message; cp is nil when the oneof is unset, inner is nil when
// the case is a scalar or set to a nil message; known is false for a
// wrapper type the plan does not know.
func (fp *fieldPlan) whichCase(ptr unsafe.Pointer) (cp *casePlan, inner unsafe.Pointer, known bool) {
	words := ifaceWords(unsafe.Add(ptr, fp.offset))
	if words[0] == nil {
		return nil, nil, true
	}
	if cp := fp.byTab[words[0]]; cp != nil {
		switch {
		case words[1] == nil:
			return nil, nil, true // a typed nil wrapper: protoreflect sees no case either
		case cp.shell == nil:
			return cp, nil, true
		}
		return cp, *(*unsafe.Pointer)(words[1]), true // the wrapper's only field, at offset 0
	}
	x := reflect.NewAt(fp.owner, ptr).Elem().Field(fp.index).Interface()
	if x == nil {
		return nil, nil, true
	}
	w := reflect.ValueOf(x)
	if w.IsNil() {
		return nil, nil, true // a typed nil wrapper: protoreflect sees no case either
	}
	cp, known = fp.cases[w.Type()]
	if !known || cp.shell == nil {
		return cp, nil, known
	}
	return cp, *(*unsafe.Pointer)(w.UnsafePointer()), true // the wrapper's only field, at offset 0
}

// unwrapFast is Unwrap on the plans; ok is false when they cannot say.
func unwrapFast(cr *ContainedResource) (proto.Message, bool) {
	set := plans()
	if set == nil {
		return nil, false
	}
	cp, inner, known := set.contained.oneof.whichCase(unsafe.Pointer(cr))
	switch {
	case !known:
		return nil, false
	case cp == nil:
		return nil, true
	case cp.shell == nil:
		return nil, false
	}
	return reflect.NewAt(cp.shell.typ, inner).Interface().(proto.Message), true
}

// wrapFast is Wrap on the plans; ok is false when they cannot say.
func wrapFast(res proto.Message) (*ContainedResource, bool) {
	set := plans()
	v := reflect.ValueOf(res)
	if set == nil || v.Kind() != reflect.Pointer || v.IsNil() {
		return nil, false
	}
	cp, ok := set.byResource[v.Type().Elem()]
	if !ok {
		return nil, false
	}
	w := reflect.New(cp.wrapper.Elem())
	w.Elem().Field(0).Set(v)
	cr := &ContainedResource{}
	reflect.ValueOf(cr).Elem().Field(set.contained.oneof.index).Set(w)
	return cr, true
}

// idFast is IDOf for a resource message (not a ContainedResource).
func idFast(res proto.Message) (string, bool) {
	ptr, p, ok := messagePtr(res)
	if !ok || p.idOff == noField || p.idPlan() == nil || !p.idPlan().stringVal {
		return "", false
	}
	return p.idPlan().stringValue(ptrAt(ptr, p.idOff)), true
}
