package fhir

// Fast paths of the checks, on the plans of plan.go.
//
// Each one answers a yes/no question in one allocation-free walk: "does
// this resource pass?". When the answer is yes, the result is known (no
// issue, no problem) and the general code, with its paths and messages,
// does not need to run. When it is no, or when the walk meets something it
// does not model, the general code runs as before and gives the result.
// So the fast paths may be conservative (say no when the general code
// would find nothing) but never the other way round.

import (
	"math"
	"net/url"
	"strings"
	"sync"
	"unsafe"

	"google.golang.org/protobuf/proto"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// refsOK walks m as eachReference does (every message field, contained
// resources held as Any not entered, references not entered) and calls ok
// for every Reference with the valid_reference_type list of the element
// that holds it. It returns false as soon as ok does, and when m is not a
// planned message.
func refsOK(m proto.Message, ok func(ref *Reference, allowed []string) bool) bool {
	ptr, p, valid := messagePtr(m)
	return valid && refsOKIn(p, ptr, ok)
}

func refsOKIn(p *msgPlan, ptr unsafe.Pointer, ok func(*Reference, []string) bool) bool {
	if p.broken {
		return false
	}
	visit := func(child *msgPlan, cv unsafe.Pointer, allowed []string) bool {
		if child.isReference {
			return ok((*Reference)(cv), allowed)
		}
		return refsOKIn(child, cv, ok)
	}
	for _, fp := range p.fields {
		switch {
		case fp.cases != nil:
			cp, inner, known := fp.whichCase(ptr)
			if !known {
				return false
			}
			if cp != nil && cp.shell != nil && inner != nil && !visit(cp.plan(), inner, cp.allowed) {
				return false
			}
		case fp.list:
			list := listAt(ptr, fp.offset)
			if len(list) == 0 {
				continue
			}
			child := fp.plan()
			for _, e := range list {
				if e != nil && !visit(child, e, fp.allowed) {
					return false
				}
			}
		default:
			if cv := ptrAt(ptr, fp.offset); cv != nil && !visit(fp.plan(), cv, fp.allowed) {
				return false
			}
		}
	}
	return true
}

// refTypeAllowed is refType's test without the message: a typed reference
// must be to a type of allowed (or allowed must be empty or name Resource).
func refTypeAllowed(ref *Reference, allowed []string) bool {
	if len(allowed) == 0 {
		return true
	}
	t, typed := refTypeOf(ref)
	if !typed {
		return true
	}
	for _, a := range allowed {
		if a == t || a == "Resource" {
			return true
		}
	}
	return false
}

// refTypeOf is typedRef on the plans: the resource type of a typed
// reference, and whether it is one (with a ReferenceId).
func refTypeOf(ref *Reference) (string, bool) {
	if set := plans(); set != nil && set.reference != nil && ref != nil {
		if cp, inner, known := set.reference.refOneof.whichCase(unsafe.Pointer(ref)); known {
			if cp == nil || cp.refType == "" || inner == nil {
				return "", false
			}
			return cp.refType, true
		}
	}
	t, rid := typedRef(ref)
	return t, rid != nil
}

// quickValid reports whether Validate's full checks would find no issue
// but those of the shallow rules (checkResource without its walks): it
// repeats, in one walk, google/fhir's fhirvalidate checks (primitive
// formats, required elements, reference types) and looks for what the
// walks of rules.go report (uri values with whitespace, contained
// resources, urn: references to no entry, nested bundles).
func quickValid(cr *ContainedResource) bool {
	ptr, p, ok := messagePtr(cr)
	if !ok {
		return false
	}
	s := scanPool.Get().(*quickScan)
	defer func() {
		clear(s.urns)
		s.urns, s.dirty, s.bundles = s.urns[:0], false, 0
		scanPool.Put(s)
	}()
	s.message(p, ptr, nil)
	if s.dirty {
		return false
	}
	b, isBundle := Unwrap(cr).(*rpb.Bundle)
	if !isBundle {
		return s.bundles == 0
	}
	if s.bundles != 1 {
		return false // a bundle inside: its rules are the general code's
	}
	if t := b.GetType().GetValue(); (t != cpb.BundleTypeCode_TRANSACTION && t != cpb.BundleTypeCode_BATCH) || len(s.urns) == 0 {
		return true
	}
	// Every urn: reference anywhere must name an entry's fullUrl (checkBundle
	// checks those inside entries; any other one only makes this conservative).
	entries := b.GetEntry()
	var fullURLs map[string]bool
	if len(entries) > 8 {
		fullURLs = make(map[string]bool, len(entries))
		for _, e := range entries {
			fullURLs[e.GetFullUrl().GetValue()] = true
		}
	}
	for _, u := range s.urns {
		found := false
		if fullURLs != nil {
			found = fullURLs[u]
		} else {
			for _, e := range entries {
				if e.GetFullUrl().GetValue() == u {
					found = true
					break
				}
			}
		}
		if !found {
			return false
		}
	}
	return true
}

var scanPool = sync.Pool{New: func() any { return &quickScan{} }}

type quickScan struct {
	dirty   bool
	bundles int      // Bundle resources met
	urns    []string // urn:uuid: and urn:oid: reference values met
}

// message checks one message reached through an element whose
// valid_reference_type list is allowed, then its fields.
func (s *quickScan) message(p *msgPlan, ptr unsafe.Pointer, allowed []string) {
	if p.broken {
		s.dirty = true
		return
	}
	switch p.check {
	case checkString:
		if v := stringAt(ptr, p.valueOff); len(v) > 1<<20 || hasControlChar(v) {
			s.dirty = true
		}
	case checkUint:
		if uint32At(ptr, p.valueOff) > math.MaxInt32 {
			s.dirty = true
		}
	case checkRegex:
		if !p.regex(stringAt(ptr, p.valueOff)) {
			s.dirty = true
		}
	case checkURL:
		if v := stringAt(ptr, p.valueOff); !surelyParses(v) && (strings.ContainsAny(v, " \t\r\n") || !parsesAsURL(v)) {
			s.dirty = true
		}
	}
	for _, r := range p.required {
		if !r.has(ptr) {
			s.dirty = true
		}
	}
	switch {
	case p.kind == kindAny:
		s.dirty = true // a contained resource: the general code checks it
	case p.kind == kindContained:
		if cp, _, _ := p.oneof.whichCase(ptr); cp != nil && cp.shell != nil && cp.shell.name == "Bundle" {
			s.bundles++
		}
	case p.refType:
		s.reference(p, ptr, allowed)
	}
	if s.dirty {
		return
	}
	for _, fp := range p.fields {
		switch {
		case fp.cases != nil:
			cp, inner, known := fp.whichCase(ptr)
			switch {
			case !known:
				s.dirty = true
			case cp == nil || cp.shell == nil:
			case inner == nil:
				s.dirty = true // a case set to a nil message
			default:
				s.message(cp.plan(), inner, cp.allowed)
			}
		case fp.list:
			list := listAt(ptr, fp.offset)
			if len(list) == 0 {
				continue
			}
			child := fp.plan()
			for _, e := range list {
				if e == nil {
					s.dirty = true
					break
				}
				s.message(child, e, fp.allowed)
			}
		default:
			if cv := ptrAt(ptr, fp.offset); cv != nil {
				s.message(fp.plan(), cv, fp.allowed)
			}
		}
		if s.dirty {
			return
		}
	}
}

// reference repeats google/fhir's ValidateReferenceType and collects urn: literals.
func (s *quickScan) reference(p *msgPlan, ptr unsafe.Pointer, allowed []string) {
	if p.refOneof == nil {
		s.dirty = len(allowed) > 0 // google/fhir: "unexpected reference"
		return
	}
	cp, inner, known := p.refOneof.whichCase(ptr)
	if !known {
		s.dirty = true
		return
	}
	if cp == nil {
		return
	}
	name := string(cp.fd.Name())
	if p.isReference && name == "uri" && inner != nil {
		if u := cp.plan().stringValue(inner); strings.HasPrefix(u, "urn:uuid:") || strings.HasPrefix(u, "urn:oid:") {
			s.urns = append(s.urns, u)
		}
	}
	if len(allowed) == 0 || !strings.HasSuffix(name, "_id") {
		return
	}
	if cp.refType == "" {
		s.dirty = true // a typed case this table does not know
		return
	}
	for _, a := range allowed {
		if a == "Resource" || a == cp.refType {
			return
		}
	}
	s.dirty = true
}

// hasControlChar reports whether s has a character google/fhir's
// ValidateString refuses: [\x00-\x08\x0B\x0C\x0E-\x1F].
func hasControlChar(s string) bool {
	for i := range len(s) {
		if c := s[i]; c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return true
		}
	}
	return false
}

// parsesAsURL reports whether url.Parse(s) succeeds, without calling it
// for the common shapes that surely parse.
func parsesAsURL(s string) bool {
	if surelyParses(s) {
		return true
	}
	_, err := url.Parse(s)
	return err == nil
}

// surelyParses reports true only for URLs net/url surely parses: only
// characters that never need escaping (no '%', no brackets, no spaces or
// controls, ASCII only), a scheme, and either no authority or one whose
// host has no ':' (ports and colons in hosts are left to url.Parse).
// FuzzSurelyParses holds it to url.Parse.
func surelyParses(s string) bool {
	for i := range len(s) {
		if !urlSafe[s[i]] {
			return false
		}
	}
	u, _, _ := strings.Cut(s, "#")
	colon := strings.IndexByte(u, ':')
	if colon < 1 || !isLetter(u[0]) {
		return false
	}
	for i := 1; i < colon; i++ {
		if c := u[i]; !isLetter(c) && !isDigit(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	rest, _, _ := strings.Cut(u[colon+1:], "?")
	if !strings.HasPrefix(rest, "//") {
		return true // opaque ("urn:uuid:...") or a path
	}
	authority := rest[2:]
	if i := strings.IndexByte(authority, '/'); i >= 0 {
		authority = authority[:i]
	}
	host := authority[strings.LastIndexByte(authority, '@')+1:]
	return !strings.Contains(host, ":")
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// urlSafe holds the unreserved and sub-delimiter characters of RFC 3986
// plus ':', '/', '?', '#' and '@'.
var urlSafe = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#@!$&'()*+,;=") {
		t[c] = true
	}
	return t
}()
