package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"github.com/google/fhir/go/jsonformat/fhirvalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// ContainedResource is google/fhir's R4 wrapper that holds any one resource.
// Pathway passes resources around as this type.
type ContainedResource = rpb.ContainedResource

// MaxResourceBytes is the largest single JSON resource the readers accept.
// FHIR servers commonly refuse far smaller bodies; a larger file is almost
// always NDJSON mislabelled as .json, or not FHIR at all.
const MaxResourceBytes = 64 << 20

type codec struct {
	um      *jsonformat.Unmarshaller
	m       *jsonformat.Marshaller
	initErr error
}

var theCodec = sync.OnceValue(func() *codec {
	um, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		return &codec{initErr: fmt.Errorf("creating FHIR unmarshaller: %w", err)}
	}
	um.MaxNestingDepth = maxDepth
	m, err := jsonformat.NewMarshaller(false, "", "", fhirversion.R4)
	if err != nil {
		return &codec{initErr: fmt.Errorf("creating FHIR marshaller: %w", err)}
	}
	return &codec{um: um, m: m}
})

// Result is what Parse learned about one JSON resource.
type Result struct {
	// Resource is the parsed resource; nil when the JSON could not be read
	// as a resource at all (not JSON, not an object, unknown type, a
	// structural error google/fhir cannot recover from).
	Resource *ContainedResource
	// ResourceType and ID are read from the JSON even when parsing fails,
	// so reports can name the resource.
	ResourceType, ID string
	// Issues lists every problem found, sorted by path.
	Issues Issues
}

// Valid reports whether the resource parsed and has no error issues.
func (r Result) Valid() bool { return r.Resource != nil && !r.Issues.HasErrors() }

// Err returns an *InvalidError when the result is not valid, else nil.
func (r Result) Err() error {
	if r.Valid() {
		return nil
	}
	return &InvalidError{ResourceType: r.ResourceType, ID: r.ID, Issues: r.Issues}
}

// Parse reads one FHIR R4 resource (a Bundle included) from JSON and
// validates it: google/fhir's strict parsing and validation (types,
// cardinality, required elements, code bindings of required strength,
// reference types) plus the rules it misses (see rules.go and scan.go).
// Parse never panics on any input.
func Parse(data []byte) Result {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var r Result
	if msg := notAnObject(data); msg != "" {
		r.Issues = Issues{{Severity: SeverityFatal, Path: "(root)", Code: "json", Details: msg}}
		return r
	}
	c := theCodec()
	if c.initErr != nil {
		r.Issues = Issues{{Severity: SeverityFatal, Path: "(root)", Code: "internal", Details: c.initErr.Error()}}
		return r
	}
	s := &scanner{data: data}
	r.ResourceType = s.topLevelString("resourceType")
	r.ID = s.topLevelString("id")
	if r.ResourceType == "" {
		r.Issues = Issues{{Severity: SeverityFatal, Code: "required", Path: "resourceType",
			Details: `missing "resourceType": every FHIR JSON resource names its type`}}
		if !json.Valid(data) {
			r.Issues[0] = Issue{Severity: SeverityFatal, Path: "(root)", Code: "json", Details: "not valid JSON"}
		}
		return r
	}
	if !IsResourceType(r.ResourceType) {
		// Never echo an unknown type: it is input, and could be anything.
		details := "unknown resourceType: not a FHIR R4 resource"
		if !validTypeName.MatchString(r.ResourceType) {
			details = "resourceType is not a FHIR resource type name"
		}
		r.Issues = Issues{{Severity: SeverityFatal, Code: "unknown-resource-type", Path: "resourceType",
			Details: details, Diagnostics: strconv.Quote(r.ResourceType)}}
		r.ResourceType = ""
		return r
	}
	if !validID.MatchString(r.ID) {
		r.ID = "" // never echo an id that is not a FHIR id into logs
	}

	// The scanner runs first: it is cheap, and input with more problems
	// than maxIssues is refused before google/fhir builds it in memory.
	scanned := scanElements(data, r.ResourceType)
	if len(scanned) >= maxIssues {
		r.Issues = append(scanned, tooManyIssues())
		return r
	}
	rep := &reporter{}
	msg, err := c.um.UnmarshalWithErrorReporter(data, rep)
	r.Issues = append(r.Issues, rep.issues...)
	if err != nil {
		r.Issues = append(r.Issues, libIssues(err, SeverityError)...)
	}
	if cr, ok := msg.(*ContainedResource); ok && err == nil {
		r.Resource = cr
	}
	validJSON := -1 // unknown until needed
	for i := range r.Issues {
		is := &r.Issues[i]
		if is.Code == "json" {
			if validJSON < 0 {
				validJSON = boolInt(json.Valid(data))
			}
			if validJSON == 1 {
				// google/fhir says "invalid JSON" for a value of the wrong
				// JSON type (an array where a string belongs) or beyond its
				// limits (1e999, extreme nesting): the JSON itself is fine.
				is.Code, is.Details = "value", "a value of the wrong JSON type, or beyond the parser's limits"
				continue
			}
		}
		if is.Code == "unknown-resource-type" || is.Code == "json" {
			r.Resource = nil
			is.Severity = SeverityFatal
		}
	}
	r.Issues = append(r.Issues, scanned...)
	if r.Resource != nil {
		r.Issues = append(r.Issues, checkRulesQuick(r.Resource)...)
	}
	r.Issues = dedupe(r.Issues)
	r.Issues.sort()
	if len(r.Issues) > maxIssues {
		r.Issues = append(r.Issues[:maxIssues], tooManyIssues())
	}
	return r
}

func tooManyIssues() Issue {
	return Issue{Severity: SeverityFatal, Path: "(root)", Code: "too-many-issues",
		Details: fmt.Sprintf("more than %d issues: only the first are listed", maxIssues)}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Decode parses and validates one resource and returns it, or an
// *InvalidError listing every error issue.
func Decode(data []byte) (*ContainedResource, error) {
	r := Parse(data)
	if err := r.Err(); err != nil {
		return nil, err
	}
	return r.Resource, nil
}

// Validate checks a resource built in Go (not read from JSON): google/fhir's
// validation (required elements, reference types, primitive formats) and
// Pathway's rules. JSON-only checks (ele-1 on nulls and empty values,
// unknown elements) do not apply to protos. A resource that passes is
// checked in one walk (quickcheck.go); one that does not goes through
// google/fhir's validator for its exact issues.
func Validate(res proto.Message) Issues {
	cr, err := Wrap(res)
	if err != nil {
		return Issues{{Severity: SeverityFatal, Path: "(root)", Code: "unknown-resource-type", Details: "not an R4 resource"}}
	}
	if quickValid(cr) {
		// google/fhir's validator and the walking rules would find nothing:
		// only the rules that do not walk remain.
		var is Issues
		checkResource(&is, "", cr, false)
		is = dedupe(is)
		is.sort()
		return is
	}
	return validateFull(cr)
}

// validateFull is Validate without the fast path: google/fhir's validator
// and every rule.
func validateFull(cr *ContainedResource) Issues {
	rep := &reporter{}
	if err := fhirvalidate.ValidateWithErrorReporter(cr, rep); err != nil {
		rep.issues = append(rep.issues, libIssues(err, SeverityError)...)
	}
	is := append(rep.issues, checkRules(cr)...)
	is = dedupe(is)
	is.sort()
	return is
}

var (
	validTypeName = regexp.MustCompile(`^[A-Z][A-Za-z]{1,63}$`)
	validID       = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	requiredField = regexp.MustCompile(`^missing required field "([A-Za-z0-9_]+)"$`)
)

// notAnObject returns a message when data cannot be a JSON resource.
func notAnObject(data []byte) string {
	i := 0
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	switch {
	case i == len(data):
		return "empty input: expected a JSON object with a resourceType"
	case data[i] == '[':
		return "a JSON array, not a resource: send one resource per object, a Bundle, or NDJSON (one resource per line)"
	case data[i] != '{':
		return "not a JSON object: expected a FHIR resource such as {\"resourceType\": \"Task\", ...}"
	}
	return ""
}

// reporter collects google/fhir's validation errors and warnings as Issues.
type reporter struct{ issues Issues }

func (r *reporter) ReportValidationError(_ string, err error) error {
	r.issues = append(r.issues, libIssues(err, SeverityError)...)
	return nil
}

func (r *reporter) ReportValidationWarning(_ string, err error) error {
	r.issues = append(r.issues, libIssues(err, SeverityWarning)...)
	return nil
}

// libIssues turns google/fhir's errors into Issues. Its error type lives in
// an internal package, so its exported fields (Path, Details, Diagnostics,
// Type) are read by reflection; TestLibraryErrorShape pins that shape so an
// upgrade that changes it fails loudly.
func libIssues(err error, sev Severity) Issues {
	v := reflect.ValueOf(err)
	if v.Kind() == reflect.Slice {
		var out Issues
		for i := range v.Len() {
			if e, ok := v.Index(i).Interface().(error); ok {
				out = append(out, libIssues(e, sev)...)
			}
		}
		return out
	}
	if v.Kind() == reflect.Pointer && !v.IsNil() && v.Elem().Kind() == reflect.Struct {
		s := v.Elem()
		path, pok := stringField(s, "Path")
		details, dok := stringField(s, "Details")
		diag, _ := stringField(s, "Diagnostics")
		typ, _ := stringField(s, "Type")
		if pok && dok {
			return Issues{libIssue(sev, path, details, diag, typ)}
		}
	}
	return Issues{{Severity: SeverityFatal, Code: "internal", Details: "FHIR parser failed", Diagnostics: err.Error()}}
}

func stringField(s reflect.Value, name string) (string, bool) {
	f := s.FieldByName(name)
	if !f.IsValid() || f.Kind() != reflect.String {
		return "", false
	}
	return f.String(), true
}

func libIssue(sev Severity, path, details, diag, typ string) Issue {
	is := Issue{Severity: sev, Path: path, Details: details, Diagnostics: diag}
	switch {
	case details == "unknown field":
		is.Code = "unknown-element"
		is.Details = "unknown element: not part of this resource in FHIR R4"
		key, err := strconv.Unquote(diag)
		if err != nil || !IsElementName(key) {
			key = unknownSegment // the key is kept in Diagnostics only
		}
		is.Path = joinPath(path, key)
	case details == "unknown resource type":
		is.Code = "unknown-resource-type"
		is.Details = "unknown resourceType: not a FHIR R4 resource"
	case strings.HasPrefix(details, "invalid JSON"):
		is.Code = "json"
		is.Details = "not valid JSON"
	case typ == "RequiredFieldError" || strings.HasPrefix(details, "missing required field"):
		is.Code = "required"
		if m := requiredField.FindStringSubmatch(details); m != nil {
			is.Path = joinPath(path, m[1])
			is.Details = "required element is missing"
		}
	case typ == "ReferenceTypeError" || strings.HasPrefix(details, "invalid reference"):
		is.Code = "reference"
	case details == "code type mismatch" || details == "expected code":
		is.Code = "code-invalid"
		is.Details = "code is not in the required value set"
	case strings.HasPrefix(details, "cannot accept multiple values"):
		is.Code = "choice"
	case strings.HasPrefix(details, "field exceeded the maximum nesting depth"):
		is.Code = "too-deep"
	case strings.HasPrefix(details, "string "):
		is.Code = "value"
	default:
		is.Code = "value"
	}
	if is.Path == "" {
		is.Path = "(root)"
	}
	is.Path = cleanPath(is.Path)
	return is
}

func joinPath(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// dedupe drops issues reported twice for the same path and rule (the
// scanner and google/fhir can both notice an empty primitive).
func dedupe(is Issues) Issues {
	if len(is) < 2 {
		return is
	}
	type key struct{ path, code string }
	seen := make(map[key]bool, len(is))
	out := is[:0]
	for _, i := range is {
		k := key{i.Path, i.Code}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, i)
	}
	return out
}

// topLevelString returns the string value of key in the root object, or "".
func (s *scanner) topLevelString(key string) string {
	i := s.ws(0)
	if i >= len(s.data) || s.data[i] != '{' {
		return ""
	}
	i = s.ws(i + 1)
	for i < len(s.data) && s.data[i] == '"' {
		kEnd := s.str(i)
		if s.bad {
			return ""
		}
		k := s.data[i+1 : kEnd-1]
		i = s.ws(kEnd)
		if i >= len(s.data) || s.data[i] != ':' {
			return ""
		}
		i = s.ws(i + 1)
		if string(k) == key {
			if i < len(s.data) && s.data[i] == '"' {
				end := s.str(i)
				if s.bad {
					return ""
				}
				var v string
				if json.Unmarshal(s.data[i:end], &v) != nil {
					return ""
				}
				return v
			}
			return ""
		}
		i = s.ws(s.skip(i))
		if i < len(s.data) && s.data[i] == ',' {
			i = s.ws(i + 1)
		}
	}
	return ""
}

// Marshal writes a resource as compact FHIR JSON with resourceType first in
// every resource (contained and bundled ones too). Primitive extensions,
// decimals as written, partial dates and time zones are kept. The output is
// google/fhir's jsonformat output byte for byte (marshal.go writes it
// directly; what that writer does not cover goes through google/fhir).
func Marshal(res proto.Message) ([]byte, error) {
	c := theCodec()
	if c.initErr != nil {
		return nil, c.initErr
	}
	cr, err := Wrap(res)
	if err != nil {
		return nil, err
	}
	if b, ok := marshalFast(cr); ok {
		return b, nil
	}
	b, err := marshalGoogle(c, cr)
	if err != nil {
		return nil, fmt.Errorf("marshalling %s: %w", Key(cr), err)
	}
	return b, nil
}

// MarshalIndent is Marshal with two-space indentation, for people and golden files.
func MarshalIndent(res proto.Message) ([]byte, error) {
	b, err := Marshal(res)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Grow(len(b) * 2)
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return nil, fmt.Errorf("indenting JSON: %w", err)
	}
	return out.Bytes(), nil
}

// Wrap puts a resource message (a *task_go_proto.Task, say) into a
// ContainedResource. A ContainedResource is returned as it is.
func Wrap(res proto.Message) (*ContainedResource, error) {
	if res == nil {
		return nil, errors.New("nil resource")
	}
	if cr, ok := res.(*ContainedResource); ok {
		return cr, nil
	}
	if cr, ok := wrapFast(res); ok {
		return cr, nil
	}
	cr := &ContainedResource{}
	rm := cr.ProtoReflect()
	od := rm.Descriptor().Oneofs().ByName("oneof_resource")
	want := res.ProtoReflect().Descriptor().FullName()
	fields := od.Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		if f.Message() != nil && f.Message().FullName() == want {
			rm.Set(f, protoreflect.ValueOfMessage(res.ProtoReflect()))
			return cr, nil
		}
	}
	return nil, fmt.Errorf("%s is not an R4 resource", want)
}

// Unwrap returns the resource message inside a ContainedResource, or nil.
func Unwrap(cr *ContainedResource) proto.Message {
	if cr == nil {
		return nil
	}
	if res, ok := unwrapFast(cr); ok {
		return res
	}
	rm := cr.ProtoReflect()
	f := rm.WhichOneof(rm.Descriptor().Oneofs().ByName("oneof_resource"))
	if f == nil {
		return nil
	}
	return rm.Get(f).Message().Interface()
}

// TypeOf returns the resource type name ("Task") of a resource message or ContainedResource.
func TypeOf(res proto.Message) string {
	if cr, ok := res.(*ContainedResource); ok {
		res = Unwrap(cr)
	}
	if res == nil {
		return ""
	}
	return string(res.ProtoReflect().Descriptor().Name())
}

// IDOf returns the logical id of a resource message or ContainedResource.
func IDOf(res proto.Message) string {
	if cr, ok := res.(*ContainedResource); ok {
		res = Unwrap(cr)
	}
	if res == nil {
		return ""
	}
	if id, ok := idFast(res); ok {
		return id
	}
	m := res.ProtoReflect()
	f := m.Descriptor().Fields().ByName("id")
	if f == nil || !m.Has(f) {
		return ""
	}
	v := m.Get(f).Message()
	vf := v.Descriptor().Fields().ByName("value")
	if vf == nil {
		return ""
	}
	return v.Get(vf).String()
}

// Key returns "Type/id", the only way Pathway names a resource in logs.
func Key(res proto.Message) string {
	t, id := TypeOf(res), IDOf(res)
	if id == "" {
		return t
	}
	return t + "/" + id
}

// hoistResourceType moves every "resourceType" member to the front of its
// object. google/fhir renders through encoding/json maps, which sort keys,
// while FHIR convention (and every human reader) expects resourceType first.
// The input is the marshaller's own compact output, so the walk is simple;
// the move is done in place.
func hoistResourceType(b []byte) []byte {
	h := hoister{b: b}
	h.value(0)
	return h.b
}

type hoister struct {
	b []byte
}

func (h *hoister) value(i int) int {
	if i >= len(h.b) {
		return i
	}
	switch h.b[i] {
	case '{':
		return h.object(i)
	case '[':
		i++
		for i < len(h.b) && h.b[i] != ']' {
			i = h.value(i)
			if i < len(h.b) && h.b[i] == ',' {
				i++
			}
		}
		return i + 1
	case '"':
		return h.str(i)
	default:
		for i < len(h.b) && h.b[i] != ',' && h.b[i] != '}' && h.b[i] != ']' {
			i++
		}
		return i
	}
}

func (h *hoister) str(i int) int {
	for j := i + 1; j < len(h.b); j++ {
		switch h.b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(h.b)
}

var resourceTypeKey = []byte(`"resourceType"`)

func (h *hoister) object(start int) int {
	i := start + 1
	first := true
	for i < len(h.b) && h.b[i] != '}' {
		keyStart := i
		keyEnd := h.str(i)
		i = h.value(keyEnd + 1) // skip ':'
		if !first && bytes.Equal(h.b[keyStart:keyEnd], resourceTypeKey) {
			// h.b[start+1:keyStart-1] are the earlier members, h.b[keyStart-1] is a comma.
			member := append([]byte(nil), h.b[keyStart:i]...)
			copy(h.b[start+1+len(member)+1:i], h.b[start+1:keyStart-1])
			copy(h.b[start+1:], member)
			h.b[start+1+len(member)] = ','
		}
		first = false
		if i < len(h.b) && h.b[i] == ',' {
			i++
		}
	}
	return i + 1
}
