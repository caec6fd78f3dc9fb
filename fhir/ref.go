package fhir

import (
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	apb "github.com/google/fhir/go/proto/google/fhir/proto/annotations_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
)

// Reference is google/fhir's R4 Reference datatype.
//
// google/fhir holds a relative reference ("Patient/123") in a typed field
// of the reference oneof (PatientId: ReferenceId{Value: "123"}), a
// fragment ("#c1") in Fragment without the '#', and anything else (absolute
// URLs, "urn:uuid:...") in Uri. The parser normalises to the typed form;
// note that the marshaller turns typed references back into Uri in the
// message it marshals. The functions here read all three forms.
type Reference = dpb.Reference

// refFields maps resource type names to the typed reference field for them
// and back, read from google/fhir's referenced_fhir_type annotations.
var refFields = sync.OnceValue(func() (m struct {
	byType map[string]protoreflect.FieldDescriptor
	byName map[protoreflect.Name]string
}) {
	m.byType = map[string]protoreflect.FieldDescriptor{}
	m.byName = map[protoreflect.Name]string{}
	od := (&Reference{}).ProtoReflect().Descriptor().Oneofs().ByName("reference")
	fields := od.Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		t, _ := proto.GetExtension(f.Options(), apb.E_ReferencedFhirType).(string)
		if t == "" {
			continue
		}
		m.byType[t] = f
		m.byName[f.Name()] = t
	}
	return m
})

// IsResourceType reports whether name is an R4 resource type ("Task").
func IsResourceType(name string) bool {
	_, ok := refFields().byType[name]
	return ok && name != "Resource" && name != "DomainResource"
}

// Ref returns a relative reference "resourceType/id" in google/fhir's typed
// form, which Marshal writes as {"reference":"Patient/123"}. A resourceType
// that is not an R4 resource type is kept as a plain "type/id" string.
func Ref(resourceType, id string) *Reference {
	ref := &Reference{}
	if f, ok := refFields().byType[resourceType]; ok {
		ref.ProtoReflect().Set(f, protoreflect.ValueOfMessage((&dpb.ReferenceId{Value: id}).ProtoReflect()))
		return ref
	}
	ref.Reference = &dpb.Reference_Uri{Uri: &dpb.String{Value: resourceType + "/" + id}}
	return ref
}

// RefURN returns a reference to a Bundle entry by its fullUrl
// ("urn:uuid:..."), or to any absolute URL, kept as written.
func RefURN(fullURL string) *Reference {
	return &Reference{Reference: &dpb.Reference_Uri{Uri: &dpb.String{Value: fullURL}}}
}

// RefFragment returns a reference to a contained resource: "#" + id.
func RefFragment(id string) *Reference {
	return &Reference{Reference: &dpb.Reference_Fragment{Fragment: &dpb.String{Value: id}}}
}

// ParseRef reads a literal reference as FHIR JSON writes it ("Patient/1",
// "Patient/1/_history/2", "#c1", "urn:uuid:...", an absolute URL) into the
// form the parser would produce.
func ParseRef(literal string) *Reference {
	if frag, ok := strings.CutPrefix(literal, "#"); ok {
		return RefFragment(frag)
	}
	parts := strings.Split(literal, "/")
	if len(parts) == 2 || len(parts) == 4 && parts[2] == "_history" {
		if f, ok := refFields().byType[parts[0]]; ok && validIDString(parts[1]) {
			rid := &dpb.ReferenceId{Value: parts[1]}
			if len(parts) == 4 {
				rid.History = &dpb.Id{Value: parts[3]}
			}
			ref := &Reference{}
			ref.ProtoReflect().Set(f, protoreflect.ValueOfMessage(rid.ProtoReflect()))
			return ref
		}
	}
	return RefURN(literal)
}

// WithDisplay sets the reference's display text and returns the reference:
// fhir.WithDisplay(fhir.Ref("Organization", "o1"), "Community Link Service").
// Never put a person's name in a display that may reach a log.
func WithDisplay(ref *Reference, display string) *Reference {
	if ref != nil {
		if display == "" {
			ref.Display = nil
		} else {
			ref.Display = &dpb.String{Value: display}
		}
	}
	return ref
}

// RefString returns the literal reference as FHIR JSON writes it:
// "Patient/123", "Patient/123/_history/2", "#c1", "urn:uuid:...", or "" for
// a reference with no literal part (identifier or display only).
func RefString(ref *Reference) string {
	if ref == nil {
		return ""
	}
	switch r := ref.GetReference().(type) {
	case nil:
		return ""
	case *dpb.Reference_Uri:
		return r.Uri.GetValue()
	case *dpb.Reference_Fragment:
		return "#" + r.Fragment.GetValue()
	}
	t, rid := typedRef(ref)
	if rid == nil {
		return ""
	}
	s := t + "/" + rid.GetValue()
	if h := rid.GetHistory().GetValue(); h != "" {
		s += "/_history/" + h
	}
	return s
}

// typedRef returns the resource type and ReferenceId of a typed reference.
func typedRef(ref *Reference) (string, *dpb.ReferenceId) {
	m := ref.ProtoReflect()
	f := m.WhichOneof(m.Descriptor().Oneofs().ByName("reference"))
	if f == nil {
		return "", nil
	}
	t, ok := refFields().byName[f.Name()]
	if !ok {
		return "", nil
	}
	rid, _ := m.Get(f).Message().Interface().(*dpb.ReferenceId)
	return t, rid
}

// RefType returns the resource type a reference points to: from a typed or
// RESTful literal (relative or absolute, "…/Patient/123"), else from
// Reference.type; "" when neither says.
func RefType(ref *Reference) string {
	if t, _ := splitRef(ref); t != "" {
		return t
	}
	t := ref.GetType().GetValue()
	t = strings.TrimPrefix(t, "http://hl7.org/fhir/StructureDefinition/")
	return t
}

// RefID returns the logical id of a typed or RESTful reference
// ("Patient/123" and "https://x/fhir/Patient/123" give "123"); "" for
// fragments, urn: references and references without a literal.
func RefID(ref *Reference) string {
	_, id := splitRef(ref)
	return id
}

// splitRef returns type and id of a typed or RESTful literal reference.
func splitRef(ref *Reference) (string, string) {
	if ref == nil {
		return "", ""
	}
	switch r := ref.GetReference().(type) {
	case nil, *dpb.Reference_Fragment:
		return "", ""
	case *dpb.Reference_Uri:
		u := r.Uri.GetValue()
		if strings.HasPrefix(u, "urn:") {
			return "", ""
		}
		parts := strings.Split(u, "/")
		n := len(parts)
		if n >= 4 && parts[n-2] == "_history" {
			parts, n = parts[:n-2], n-2
		}
		if n < 2 || !IsResourceType(parts[n-2]) || !validIDString(parts[n-1]) {
			return "", ""
		}
		return parts[n-2], parts[n-1]
	}
	t, rid := typedRef(ref)
	if rid == nil {
		return "", ""
	}
	return t, rid.GetValue()
}

// validIDString reports whether s is a valid FHIR id: 1 to 64 of A-Z a-z 0-9 - .
func validIDString(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// Identifier returns a business identifier: a value in the namespace system.
func Identifier(system, value string) *dpb.Identifier {
	id := &dpb.Identifier{Value: &dpb.String{Value: value}}
	if system != "" {
		id.System = &dpb.Uri{Value: system}
	}
	return id
}

// IdentifierQuery returns the search that finds a resource by identifier,
// "identifier=system|value", escaped for a query string and for FHIR search
// (a '|', ',', '$' or '\' inside system or value is backslash-escaped). Use
// it as a Bundle entry's ifNoneExist for a conditional create.
func IdentifierQuery(id *dpb.Identifier) string {
	var b strings.Builder
	b.WriteString("identifier=")
	if s := id.GetSystem().GetValue(); s != "" {
		queryEscape(&b, s)
		b.WriteByte('|')
	}
	queryEscape(&b, id.GetValue().GetValue())
	return b.String()
}

// queryEscape writes s escaped as a FHIR token search value in a URL query.
func queryEscape(b *strings.Builder, s string) {
	const hexDigits = "0123456789ABCDEF"
	for i := range len(s) {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == ':', c == '/', c == '@':
			b.WriteByte(c)
		default:
			if c == '|' || c == ',' || c == '$' || c == '\\' {
				b.WriteString("%5C") // FHIR search escape, itself percent-encoded
			}
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
}
