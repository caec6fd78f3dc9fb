package fhir

// The JSON writer behind Marshal.
//
// It writes google/fhir's R4 protos as FHIR JSON straight into a buffer,
// walking the generated structs with the plans of plan.go, and produces
// exactly the bytes google/fhir's jsonformat marshaller followed by
// hoistResourceType produce (marshalGoogle below, kept as the reference):
//
//   - keys in encoding/json's order (sorted bytewise), resourceType first in
//     every resource;
//   - a primitive as its value under "name" and its id and extensions under
//     "_name"; a primitive without a value (google/fhir's
//     primitiveHasNoValue extension) only under "_name", without that
//     extension; lists of primitives with null where an item has no value
//     or no extension;
//   - choice types as "value" + the case ("valueDateTime"), spelt as
//     google/fhir spells them;
//   - typed references ("Patient/1", with "/_history/v") and fragments
//     ("#c1") under "reference";
//   - contained resources, held as Any, unpacked;
//   - codes by their FHIR spelling (the fhir_original_code option, else the
//     enum name in lower case with '-' for '_'), an unset enum code left out;
//   - decimals as written, dates, dateTimes, instants and times at their
//     precision and in their time zone, base64Binary in standard encoding;
//   - strings escaped as encoding/json escapes them without HTML escaping.
//
// Whatever it does not reproduce exactly (a value google/fhir refuses, a
// time zone given by name, a nil item in a list, a base64Binary with
// extensions...) makes it give up, and Marshal falls back to marshalGoogle.
// TestMarshalMatchesGoogle and FuzzMarshalMatchesGoogle compare the two.

import (
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// primitiveHasNoValueURL marks a primitive that has extensions but no value
// (google/fhir's jsonpbhelper.PrimitiveHasNoValueURL).
const primitiveHasNoValueURL = "https://g.co/fhir/StructureDefinition/primitiveHasNoValue"

// marshalGoogle is the reference marshaller: google/fhir's jsonformat, then
// resourceType moved to the front of every resource.
func marshalGoogle(c *codec, cr *ContainedResource) ([]byte, error) {
	// google/fhir's marshaller rewrites typed references in place; marshal
	// a copy so the caller's resource (which builders may share between
	// resources, and other goroutines may be reading) is never changed.
	cr = proto.Clone(cr).(*ContainedResource)
	b, err := c.m.Marshal(cr)
	if err != nil {
		return nil, err
	}
	return hoistResourceType(b), nil
}

// marshalFast writes cr as marshalGoogle would; ok is false when it cannot.
func marshalFast(cr *ContainedResource) ([]byte, bool) { return marshalFastRefs(cr, nil) }

// marshalFastRefs is marshalFast writing each Reference.reference whose
// uri is a key of refs as the literal refs holds for it ("Type/id"), as if
// the reference had been replaced by that typed reference first (the
// uri's own id and extensions go with it). With refs it gives up on
// contained resources, which the callers rewrite otherwise.
func marshalFastRefs(cr *ContainedResource, refs map[string]string) ([]byte, bool) {
	ptr, p, ok := messagePtr(cr)
	if !ok {
		return nil, false
	}
	w := writerPool.Get().(*jsonWriter)
	w.buf, w.ents, w.ok, w.refs = w.buf[:0], w.ents[:0], true, refs
	w.message(p, ptr, "")
	w.refs = nil
	ok = w.ok
	var out []byte
	if ok {
		out = make([]byte, len(w.buf))
		copy(out, w.buf)
	}
	if cap(w.buf) <= 1<<20 {
		clear(w.ents[:cap(w.ents)]) // drop pointers into the caller's resource
		writerPool.Put(w)
	}
	return out, ok
}

var writerPool = sync.Pool{New: func() any { return &jsonWriter{buf: make([]byte, 0, 8<<10)} }}

type jsonWriter struct {
	buf  []byte
	ents []entry // the members of the objects being written, innermost last
	ok   bool
	refs map[string]string // references to rewrite (marshalFastRefs), or nil
}

// entryKind says what one object member holds.
type entryKind uint8

const (
	entPrimValue   entryKind = iota // a primitive's value
	entPrimExt                      // a primitive's "_name" object
	entPrimList                     // the values of a list of primitives
	entPrimExtList                  // the "_name" objects of a list of primitives
	entMessage                      // an object (or a contained resource)
	entMessageList                  // a list of objects
	entRefLiteral                   // a typed or fragment reference, as a string
	entRefString                    // a rewritten reference: the string in field
)

type entry struct {
	key   *jsonKey
	kind  entryKind
	p     *msgPlan
	v     unsafe.Pointer   // the struct
	list  []unsafe.Pointer // for lists, the items
	field string           // the JSON name of the field (for Any: only "contained" is unpacked)
	cs    *casePlan        // entRefLiteral: the reference case
}

func (w *jsonWriter) fail() { w.ok = false }

// message writes a value that is an object: a resource (inside
// ContainedResource), a datatype or backbone element, or a contained
// resource held as Any.
func (w *jsonWriter) message(p *msgPlan, ptr unsafe.Pointer, field string) {
	if p.broken {
		w.fail()
		return
	}
	switch p.kind {
	case kindContained:
		cp, inner, known := p.oneof.whichCase(ptr)
		if !known || cp == nil || cp.shell == nil || inner == nil || cp.shell.kind != kindComplex {
			w.fail()
			return
		}
		w.object(cp.plan(), inner, true)
	case kindAny:
		if field != "contained" || w.refs != nil {
			w.fail()
			return
		}
		cr := &ContainedResource{}
		if err := (*anypb.Any)(ptr).UnmarshalTo(cr); err != nil {
			w.fail()
			return
		}
		cptr, cp, ok := messagePtr(cr)
		if !ok {
			w.fail()
			return
		}
		w.message(cp, cptr, "")
	case kindComplex:
		w.object(p, ptr, false)
	default:
		w.fail()
	}
}

// object writes the fields of a complex type in sorted key order,
// resourceType first for a resource.
func (w *jsonWriter) object(p *msgPlan, ptr unsafe.Pointer, resource bool) {
	if !p.writeOK {
		w.fail()
		return
	}
	start := len(w.ents)
	for _, fp := range p.fields {
		switch {
		case fp.cases != nil:
			w.oneofMember(p, fp, ptr)
		case fp.list:
			w.listMember(fp, listAt(ptr, fp.offset))
		default:
			if cv := ptrAt(ptr, fp.offset); cv != nil {
				w.singleMember(fp, cv)
			}
		}
		if !w.ok {
			return
		}
	}
	ents := w.ents[start:]
	for i := 1; i < len(ents); i++ { // insertion sort by key rank: objects are small
		for j := i; j > 0 && ents[j].key.rank < ents[j-1].key.rank; j-- {
			ents[j], ents[j-1] = ents[j-1], ents[j]
		}
	}
	end := len(w.ents)
	w.buf = append(w.buf, '{')
	if resource {
		w.buf = append(w.buf, `"resourceType":"`...)
		w.buf = append(w.buf, p.name...)
		w.buf = append(w.buf, '"')
	}
	for i := start; i < end; i++ {
		e := w.ents[i] // copied: writing the value may grow w.ents
		if i > start || resource {
			w.buf = append(w.buf, ',')
		}
		w.buf = append(w.buf, e.key.quoted...)
		w.entry(&e)
		if !w.ok {
			return
		}
	}
	w.buf = append(w.buf, '}')
	w.ents = w.ents[:start]
}

func (w *jsonWriter) push(e entry) { w.ents = append(w.ents, e) }

// singleMember adds a singular field: zoomed into its case for a choice type.
func (w *jsonWriter) singleMember(fp *fieldPlan, cv unsafe.Pointer) {
	child := fp.plan()
	if child.kind != kindChoice {
		w.member(child, cv, fp.key, fp.ext, fp.fd.JSONName())
		return
	}
	if child.oneof == nil || fp.keys == nil {
		w.fail()
		return
	}
	cp, inner, known := child.oneof.whichCase(cv)
	if !known || cp == nil || cp.shell == nil || inner == nil || cp.shell.kind == kindChoice {
		w.fail() // google/fhir: "no oneof set in choice type"
		return
	}
	w.member(cp.plan(), inner, fp.keys[2*cp.ord], fp.keys[2*cp.ord+1], cp.fd.JSONName())
}

// member adds one value: a primitive's value and extensions, or an object.
func (w *jsonWriter) member(child *msgPlan, cv unsafe.Pointer, key, ext *jsonKey, field string) {
	if child.kind == kindPrimitive {
		hasValue, hasExt, ok := primState(child, cv)
		if !ok {
			w.fail()
			return
		}
		if hasValue {
			w.push(entry{key: key, kind: entPrimValue, p: child, v: cv})
		}
		if hasExt {
			w.push(entry{key: ext, kind: entPrimExt, p: child, v: cv})
		}
		return
	}
	w.push(entry{key: key, kind: entMessage, p: child, v: cv, field: field})
}

// oneofMember adds the set case of a oneof of a complex type: in R4 only
// Reference.reference, whose typed and fragment cases google/fhir writes
// as a literal reference string.
func (w *jsonWriter) oneofMember(p *msgPlan, fp *fieldPlan, ptr unsafe.Pointer) {
	cp, inner, known := fp.whichCase(ptr)
	switch {
	case !known:
		w.fail()
		return
	case cp == nil:
		return
	case cp.shell == nil || inner == nil:
		w.fail()
		return
	}
	child := cp.plan()
	if p.refType {
		if !p.isReference || fp != p.refOneof {
			w.fail()
			return
		}
		switch name := string(cp.fd.Name()); {
		case name == "uri":
			if w.refs != nil && child.prim == primString {
				if to, ok := w.refs[stringAt(inner, child.valueOff)]; ok {
					w.push(entry{key: cp.key, kind: entRefString, field: to})
					return
				}
			}
		case name == "fragment" && child.prim == primString:
			w.push(entry{key: cp.key, kind: entRefLiteral, p: child, v: inner, cs: cp})
			return
		case cp.refType != "" && strings.HasSuffix(name, "_id") && child.prim == primReferenceID:
			w.push(entry{key: cp.key, kind: entRefLiteral, p: child, v: inner, cs: cp})
			return
		default:
			w.fail()
			return
		}
	}
	if child.kind == kindChoice {
		w.fail()
		return
	}
	w.member(child, inner, cp.key, cp.ext, cp.fd.JSONName())
}

// listMember adds a repeated field.
func (w *jsonWriter) listMember(fp *fieldPlan, list []unsafe.Pointer) {
	if len(list) == 0 {
		return
	}
	child := fp.plan()
	switch child.kind {
	case kindPrimitive:
		hasValue, hasExt := false, false
		for _, ev := range list {
			if ev == nil {
				w.fail()
				return
			}
			v, e, ok := primState(child, ev)
			if !ok {
				w.fail()
				return
			}
			hasValue, hasExt = hasValue || v, hasExt || e
		}
		if hasValue {
			w.push(entry{key: fp.key, kind: entPrimList, p: child, list: list})
		}
		if hasExt {
			w.push(entry{key: fp.ext, kind: entPrimExtList, p: child, list: list})
		}
	case kindChoice:
		w.fail()
	default:
		for _, ev := range list {
			if ev == nil {
				w.fail()
				return
			}
		}
		w.push(entry{key: fp.key, kind: entMessageList, p: child, list: list, field: fp.fd.JSONName()})
	}
}

func (w *jsonWriter) entry(e *entry) {
	switch e.kind {
	case entPrimValue:
		w.primValue(e.p, e.v)
	case entPrimExt:
		w.primExt(e.p, e.v)
	case entPrimList:
		w.buf = append(w.buf, '[')
		for i, ev := range e.list {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			if hasValue, _, _ := primState(e.p, ev); hasValue {
				w.primValue(e.p, ev)
			} else {
				w.buf = append(w.buf, "null"...)
			}
		}
		w.buf = append(w.buf, ']')
	case entPrimExtList:
		w.buf = append(w.buf, '[')
		for i, ev := range e.list {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			if _, hasExt, _ := primState(e.p, ev); hasExt {
				w.primExt(e.p, ev)
			} else {
				w.buf = append(w.buf, "null"...)
			}
		}
		w.buf = append(w.buf, ']')
	case entMessage:
		w.message(e.p, e.v, e.field)
	case entMessageList:
		w.buf = append(w.buf, '[')
		for i, ev := range e.list {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.message(e.p, ev, e.field)
			if !w.ok {
				return
			}
		}
		w.buf = append(w.buf, ']')
	case entRefLiteral:
		w.refLiteral(e.cs, e.p, e.v)
	case entRefString:
		w.buf = appendJSONString(w.buf, e.field)
	}
}

// refLiteral writes a typed reference as "Type/id[/_history/v]" and a
// fragment as "#id", as google/fhir's DenormalizeReference makes them.
func (w *jsonWriter) refLiteral(cp *casePlan, p *msgPlan, ptr unsafe.Pointer) {
	value := stringAt(ptr, p.valueOff)
	if cp.refType == "" {
		w.buf = appendJSONString(w.buf, "#"+value)
		return
	}
	s := cp.refType + "/" + value
	if p.historyOff != noField {
		if h := p.historyPlan().stringValue(ptrAt(ptr, p.historyOff)); h != "" {
			s += "/_history/" + h
		}
	}
	w.buf = appendJSONString(w.buf, s)
}

// primState reports whether a primitive writes a value and a "_name"
// object; ok is false when the writer cannot reproduce google/fhir.
func primState(p *msgPlan, ptr unsafe.Pointer) (hasValue, hasExt, ok bool) {
	if p.idOff == noField || p.prim == primUnsupported || p.prim == primReferenceID {
		return false, false, false // google/fhir: "primitive type has no id field", or an unknown type
	}
	noValue, exts, ok := primExtensions(p, ptr)
	if !ok {
		return false, false, false
	}
	switch {
	case noValue:
	case p.prim == primCodeEnum:
		hasValue = int32At(ptr, p.valueOff) != 0
	case p.prim == primBase64:
		if exts > 0 {
			return false, false, false // separator and stride extensions: not reproduced
		}
		hasValue = true
	default:
		hasValue = true
	}
	hasExt = exts > 0 || ptrAt(ptr, p.idOff) != nil
	return hasValue, hasExt, true
}

// primExtensions reports whether a primitive has google/fhir's
// primitiveHasNoValue extension, and how many extensions are written
// (without that one when it is there).
func primExtensions(p *msgPlan, ptr unsafe.Pointer) (noValue bool, written int, ok bool) {
	if p.extOff == noField {
		return false, 0, true
	}
	list := listAt(ptr, p.extOff)
	if len(list) == 0 {
		return false, 0, true
	}
	ep := p.extPlan()
	if ep == nil || ep.urlOff == noField || ep.urlPlan() == nil {
		return false, 0, false
	}
	marked := 0
	for _, ev := range list {
		if ev == nil {
			return false, 0, false
		}
		if isNoValueExt(ep, ev) {
			marked++
		}
	}
	if marked > 0 {
		return true, len(list) - marked, true
	}
	return false, len(list), true
}

func isNoValueExt(ep *msgPlan, ev unsafe.Pointer) bool {
	return ep.urlPlan().stringValue(ptrAt(ev, ep.urlOff)) == primitiveHasNoValueURL
}

// primExt writes a primitive's "_name" object: its extensions (without
// primitiveHasNoValue) and its id.
func (w *jsonWriter) primExt(p *msgPlan, ptr unsafe.Pointer) {
	noValue, exts, _ := primExtensions(p, ptr)
	w.buf = append(w.buf, '{')
	if exts > 0 {
		w.buf = append(w.buf, `"extension":[`...)
		first := true
		for _, ev := range listAt(ptr, p.extOff) {
			if noValue && isNoValueExt(p.extPlan(), ev) {
				continue
			}
			if !first {
				w.buf = append(w.buf, ',')
			}
			first = false
			w.message(p.extPlan(), ev, "extension")
			if !w.ok {
				return
			}
		}
		w.buf = append(w.buf, ']')
	}
	if id := ptrAt(ptr, p.idOff); id != nil {
		if p.idPlan() == nil || !p.idPlan().stringVal {
			w.fail()
			return
		}
		if exts > 0 {
			w.buf = append(w.buf, ',')
		}
		w.buf = append(w.buf, `"id":`...)
		w.buf = appendJSONString(w.buf, p.idPlan().stringValue(id))
	}
	w.buf = append(w.buf, '}')
}

// primValue writes a primitive's value.
func (w *jsonWriter) primValue(p *msgPlan, ptr unsafe.Pointer) {
	switch p.prim {
	case primString, primCodeString:
		w.buf = appendJSONString(w.buf, stringAt(ptr, p.valueOff))
	case primBool:
		w.buf = strconv.AppendBool(w.buf, boolAt(ptr, p.valueOff))
	case primInt:
		w.buf = strconv.AppendInt(w.buf, int64(int32At(ptr, p.valueOff)), 10)
	case primUint:
		w.buf = strconv.AppendUint(w.buf, uint64(uint32At(ptr, p.valueOff)), 10)
	case primDecimal:
		s := stringAt(ptr, p.valueOff)
		if !isJSONNumber(s) {
			w.fail() // encoding/json would refuse it, or rewrite it
			return
		}
		w.buf = append(w.buf, s...)
	case primBase64:
		w.buf = append(w.buf, '"')
		w.buf = base64.StdEncoding.AppendEncode(w.buf, bytesAt(ptr, p.valueOff))
		w.buf = append(w.buf, '"')
	case primDate, primDateTime, primTime, primInstant:
		w.timeValue(p, ptr)
	case primCodeEnum:
		code, ok := p.codes[int32At(ptr, p.valueOff)]
		if !ok {
			w.fail()
			return
		}
		w.buf = append(w.buf, code...)
	default:
		w.fail()
	}
}

// timeValue writes a date, dateTime, instant or time as google/fhir does:
// the microseconds since the epoch, seen in the value's time zone, in the
// layout of its precision ("Z" rather than "+00:00" when the zone is "Z").
func (w *jsonWriter) timeValue(p *msgPlan, ptr unsafe.Pointer) {
	layouts, ok := p.layouts[int32At(ptr, p.precOff)]
	if !ok {
		w.fail()
		return
	}
	loc, utc := time.UTC, false
	if p.prim != primTime {
		tz := stringAt(ptr, p.tzOff)
		if loc, ok = zoneOf(tz); !ok {
			w.fail()
			return
		}
		utc = tz == "Z"
	}
	layout := layouts[0]
	if utc {
		layout = layouts[1]
	}
	us := int64At(ptr, p.usOff)
	t := time.Unix(us/1e6, (us%1e6)*1000).In(loc)
	w.buf = append(w.buf, '"')
	w.buf = t.AppendFormat(w.buf, layout)
	w.buf = append(w.buf, '"')
}

// zoneOf returns the location google/fhir's GetLocation gives a timezone
// string, for the forms the parser and the builders store: "Z", "UTC", ""
// and "+hh:mm"/"-hh:mm". Named zones are left to google/fhir (ok false).
// The layouts print offsets only, never zone names, so an unnamed fixed
// zone prints as google/fhir's named one does.
func zoneOf(tz string) (*time.Location, bool) {
	switch tz {
	case "Z", "UTC", "":
		return time.UTC, true
	}
	if len(tz) != 6 || (tz[0] != '+' && tz[0] != '-') || tz[3] != ':' ||
		!isDigit(tz[1]) || !isDigit(tz[2]) || !isDigit(tz[4]) || !isDigit(tz[5]) {
		return nil, false
	}
	off := int(tz[1]-'0')*36000 + int(tz[2]-'0')*3600 + int(tz[4]-'0')*600 + int(tz[5]-'0')*60
	if tz[0] == '-' {
		off = -off
	}
	return time.FixedZone("", off), true
}

// isJSONNumber reports whether s is a JSON number as RFC 8259 spells it,
// which encoding/json copies unchanged.
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i == len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i == len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	return i == len(s)
}

// appendJSONString appends s as a JSON string exactly as encoding/json
// writes a string with HTML escaping off: '"' and '\\' escaped, \b \f \n \r
// \t short, other control bytes as \u00XX, invalid UTF-8 bytes as \ufffd,
// U+2028 and U+2029 as \u2028 and \u2029.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
