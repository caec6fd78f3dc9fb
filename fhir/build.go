package fhir

// Builders for the resources Pathway creates.
//
// Every builder follows one pattern: a plain struct of options in Go types,
// <Type>Spec, whose Build method checks the spec and returns google/fhir's
// message for the resource, or a *SpecError listing every problem found.
// Each spec has ID (a FHIR id; usually from NewID), Profile (meta.profile
// canonicals) and Security (meta.security labels). Zero values mean
// "absent": an empty string, a zero time.Time, a nil pointer or slice leave
// the element out. Where DESIGN.md fixes a value (Task.code fulfill, Consent
// scope patient-privacy, intent order), a zero value means that default.
//
// Build checks what the FHIR specification and Pathway's conventions require
// of the inputs (required elements, valid codes, reference target types,
// invariants such as Task inv-1 and Organization org-1); the result is
// valid FHIR R4 that Parse accepts. Build does not copy the datatypes it is
// given: the resource shares them with the spec.

import (
	"errors"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	apb "github.com/google/fhir/go/proto/google/fhir/proto/annotations_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
)

// ErrInvalidSpec is matched (errors.Is) by every *SpecError.
var ErrInvalidSpec = errors.New("invalid resource spec")

// SpecError lists every problem a builder found in a spec. Its message
// names elements and rules only, never values, so it is safe to log.
type SpecError struct {
	// ResourceType is the type being built ("Task").
	ResourceType string
	// Problems lists what is wrong, in the order found.
	Problems []SpecProblem
}

// SpecProblem is one problem with a spec.
type SpecProblem struct {
	// Field is the FHIR element path inside the resource, as FHIR JSON
	// spells it: "statusReason", "provision.actor[0].role".
	Field string
	// Reason says what is wrong, without the value.
	Reason string
}

// Error renders the problems: "invalid Task spec: status: required; ...".
func (e *SpecError) Error() string {
	var b strings.Builder
	b.WriteString("invalid ")
	b.WriteString(e.ResourceType)
	b.WriteString(" spec")
	for i, p := range e.Problems {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(p.Field)
		b.WriteString(": ")
		b.WriteString(p.Reason)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalidSpec) true.
func (e *SpecError) Is(target error) bool { return target == ErrInvalidSpec }

// Has reports whether a problem was found at field.
func (e *SpecError) Has(field string) bool {
	for _, p := range e.Problems {
		if p.Field == field {
			return true
		}
	}
	return false
}

// specCheck collects the problems of one spec.
type specCheck struct {
	typ      string
	problems []SpecProblem
}

func (c *specCheck) fail(field, reason string) {
	c.problems = append(c.problems, SpecProblem{Field: field, Reason: reason})
}

// err returns the *SpecError, or nil when no problem was found.
func (c *specCheck) err() error {
	if len(c.problems) == 0 {
		return nil
	}
	return &SpecError{ResourceType: c.typ, Problems: c.problems}
}

func specIndex(field string, i int) string { return field + "[" + strconv.Itoa(i) + "]" }

// id checks an optional logical id.
func (c *specCheck) id(field, id string) {
	if id != "" && !validIDString(id) {
		c.fail(field, "not a FHIR id (1 to 64 of A-Z a-z 0-9 - .)")
	}
}

// require fails field when ok is false.
func (c *specCheck) require(field string, ok bool) {
	if !ok {
		c.fail(field, "required")
	}
}

// text fails a required empty string.
func (c *specCheck) text(field, s string) { c.require(field, s != "") }

// status checks a required code of a typed enum.
func (c *specCheck) status(field string, empty, valid bool) {
	switch {
	case empty:
		c.fail(field, "required")
	case !valid:
		c.fail(field, "not a code of the element's value set")
	}
}

// optionalCode checks a code of a typed enum that may be empty.
func (c *specCheck) optionalCode(field string, empty, valid bool) {
	if !empty && !valid {
		c.fail(field, "not a code of the element's value set")
	}
}

// ref checks a reference: something to identify the target (a literal, an
// identifier or a display) and, for a literal, a well-formed id.
func (c *specCheck) ref(field string, r *Reference, required bool) {
	if r == nil {
		if required {
			c.fail(field, "required")
		}
		return
	}
	switch x := r.GetReference().(type) {
	case nil:
		if r.GetIdentifier() == nil && r.GetDisplay().GetValue() == "" {
			c.fail(field, "empty reference: give a literal reference, an identifier or a display")
		}
	case *dpb.Reference_Uri:
		if x.Uri.GetValue() == "" {
			c.fail(field, "empty reference")
		}
	case *dpb.Reference_Fragment:
		if !validIDString(x.Fragment.GetValue()) {
			c.fail(field, "a fragment reference needs the contained resource's id")
		}
	default:
		if _, rid := typedRef(r); !validIDString(rid.GetValue()) {
			c.fail(field, "reference id is not a FHIR id")
		}
	}
}

func (c *specCheck) refs(field string, rs []*Reference) {
	for i, r := range rs {
		c.ref(specIndex(field, i), r, true)
	}
}

// coding checks a Coding: system and code.
func (c *specCheck) coding(field string, cd *dpb.Coding, required bool) {
	if cd == nil {
		if required {
			c.fail(field, "required")
		}
		return
	}
	if cd.GetSystem().GetValue() == "" || cd.GetCode().GetValue() == "" {
		c.fail(field, "a coding needs a system and a code")
	}
}

func (c *specCheck) codings(field string, cds []*dpb.Coding) {
	for i, cd := range cds {
		c.coding(specIndex(field, i), cd, true)
	}
}

// concept checks a CodeableConcept: text or codings, each coding well formed.
func (c *specCheck) concept(field string, cc *CodeableConcept, required bool) {
	if cc == nil {
		if required {
			c.fail(field, "required")
		}
		return
	}
	if len(cc.GetCoding()) == 0 && cc.GetText().GetValue() == "" {
		c.fail(field, "a concept needs a coding or a text")
	}
	c.codings(field+".coding", cc.GetCoding())
}

func (c *specCheck) concepts(field string, ccs []*CodeableConcept) {
	for i, cc := range ccs {
		c.concept(specIndex(field, i), cc, true)
	}
}

// identifier checks a business identifier: system and value.
func (c *specCheck) identifier(field string, id *dpb.Identifier) {
	if id == nil {
		c.fail(field, "required")
		return
	}
	if id.GetSystem().GetValue() == "" || id.GetValue().GetValue() == "" {
		c.fail(field, "an identifier needs a system and a value")
	}
}

func (c *specCheck) identifiers(field string, ids []*dpb.Identifier) {
	for i, id := range ids {
		c.identifier(specIndex(field, i), id)
	}
}

// common checks the fields every spec has.
func (c *specCheck) common(id string, profile []string, security []*dpb.Coding) {
	c.id("id", id)
	for i, p := range profile {
		if p == "" {
			c.fail(specIndex("meta.profile", i), "empty")
		}
	}
	c.codings("meta.security", security)
}

// optID returns the Id datatype, nil for "".
func optID(id string) *dpb.Id {
	if id == "" {
		return nil
	}
	return &dpb.Id{Value: id}
}

// buildMeta returns meta with profiles and security labels, nil when both are empty.
func buildMeta(profile []string, security []*dpb.Coding) *dpb.Meta {
	if len(profile) == 0 && len(security) == 0 {
		return nil
	}
	m := &dpb.Meta{Security: security}
	for _, p := range profile {
		m.Profile = append(m.Profile, &dpb.Canonical{Value: p})
	}
	return m
}

// optString returns the String datatype, nil for "".
func optString(s string) *dpb.String {
	if s == "" {
		return nil
	}
	return &dpb.String{Value: s}
}

// buildNotes turns plain texts into annotations.
func buildNotes(texts []string) []*dpb.Annotation {
	var out []*dpb.Annotation
	for _, t := range texts {
		out = append(out, Annotation(t))
	}
	return out
}

// nonEmpty fails every empty string of a list (notes, aliases, URIs).
func (c *specCheck) nonEmpty(field string, texts []string) {
	for i, t := range texts {
		if t == "" {
			c.fail(specIndex(field, i), "empty")
		}
	}
}

// refTypes checks every typed reference in a built resource against the
// target types its element allows (google/fhir's valid_reference_type
// annotations, the same the parser checks).
func (c *specCheck) refTypes(m protoreflect.Message) {
	if refsOK(m.Interface(), refTypeAllowed) {
		return // one walk on the plans: every typed reference is allowed
	}
	eachReference(m, c.refType)
}

// eachReference calls fn with the path (FHIR JSON names), field and value
// of every Reference in m. Contained resources (held as Any) are not entered.
func eachReference(m protoreflect.Message, fn func(path string, fd protoreflect.FieldDescriptor, ref *Reference)) {
	var walk func(m protoreflect.Message, path string)
	walk = func(m protoreflect.Message, path string) {
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Message() == nil || fd.IsMap() {
				return true
			}
			p := fd.JSONName()
			if n := string(fd.Name()); strings.HasSuffix(n, "_value") {
				p = strings.TrimSuffix(p, "Value") // google/fhir's for_value is FHIR's "for"
			}
			if path != "" {
				p = path + "." + p
			}
			visit := func(p string, mv protoreflect.Message) {
				if ref, ok := mv.Interface().(*Reference); ok {
					fn(p, fd, ref)
					return
				}
				walk(mv, p)
			}
			if fd.IsList() {
				l := v.List()
				for i := range l.Len() {
					visit(specIndex(p, i), l.Get(i).Message())
				}
			} else {
				visit(p, v.Message())
			}
			return true
		})
	}
	walk(m, "")
}

func (c *specCheck) refType(path string, fd protoreflect.FieldDescriptor, ref *Reference) {
	t, rid := typedRef(ref)
	if rid == nil {
		return
	}
	allowed, _ := proto.GetExtension(fd.Options(), apb.E_ValidReferenceType).([]string)
	if len(allowed) == 0 {
		return
	}
	for _, a := range allowed {
		if a == t || a == "Resource" {
			return
		}
	}
	c.fail(path, "a reference to "+t+" is not allowed here (allowed: "+strings.Join(allowed, ", ")+")")
}

// specFinish runs the checks on the built resource and returns it, or the error.
func specFinish[T proto.Message](c *specCheck, res T) (T, error) {
	c.refTypes(res.ProtoReflect())
	if err := c.err(); err != nil {
		var zero T
		return zero, err
	}
	return res, nil
}

// period checks that a period does not end before it starts (per-1).
func (c *specCheck) period(field string, p *dpb.Period) {
	if p == nil {
		return
	}
	if p.GetStart() == nil && p.GetEnd() == nil {
		c.fail(field, "a period needs a start or an end")
		return
	}
	if s, e := p.GetStart(), p.GetEnd(); s != nil && e != nil && e.GetValueUs() < s.GetValueUs() {
		c.fail(field, "ends before it starts (per-1)")
	}
}
