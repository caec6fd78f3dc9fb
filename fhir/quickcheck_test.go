package fhir

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	apb "github.com/google/fhir/go/proto/google/fhir/proto/annotations_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	ppb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/patient_go_proto"
)

// validateDiff checks that Validate (with its fast path) gives exactly the
// issues of validateFull, and Parse's rules exactly those of checkRules,
// and reports whether the fast path decided.
func validateDiff(t *testing.T, name string, cr *ContainedResource) (fast bool) {
	t.Helper()
	want := validateFull(cr)
	got := Validate(cr)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: Validate differs from the full checks:\n got %v\nwant %v", name, got, want)
	}
	if got, want := checkRulesQuick(cr), checkRules(cr); !reflect.DeepEqual(got, want) {
		t.Errorf("%s: Parse's rules differ from the full rules:\n got %v\nwant %v", name, got, want)
	}
	return quickValid(cr)
}

// TestValidateMatchesFull runs Validate and the full checks on every
// example resource, on the mapping goldens, and on copies of the examples
// broken in the ways each check looks for (a control character in a
// string, whitespace or a bad port in a URI, a malformed id or code, an
// integer out of range, a missing required element, a reference to a type
// the element does not allow, a urn: reference to no entry, a nil list
// item, a contained resource). The issues must be identical, and the fast
// path must decide the goldens (they are what Pathway validates).
func TestValidateMatchesFull(t *testing.T) {
	var total, fast, mutated int
	perResource := 10
	if os.Getenv("PATHWAY_CORPUS") != "" {
		perResource = 4
	}
	for _, dir := range append(corpusDirs(t), "../testdata/google-fhir/jsonformat", "../testdata/demo") {
		for name, data := range jsonResources(t, dir) {
			r := Parse(data)
			if r.Resource == nil {
				continue
			}
			total++
			if validateDiff(t, name, r.Resource) {
				fast++
			}
			n := len(collectSites(proto.Clone(r.Resource).(*ContainedResource)))
			for k := range min(n, perResource) {
				clone := proto.Clone(r.Resource).(*ContainedResource)
				sites := collectSites(clone)
				site := sites[k*len(sites)/min(n, perResource)]
				site.apply()
				mutated++
				if validateDiff(t, name+" with "+site.what, clone) && len(validateFull(clone).Errors()) > 0 {
					t.Errorf("%s with %s: the fast path passed a resource with errors", name, site.what)
				}
			}
		}
	}
	t.Logf("%d resources (%d decided by the fast path), %d broken copies", total, fast, mutated)
	if total < 140 || mutated < 500 {
		t.Errorf("only %d resources and %d broken copies compared", total, mutated)
	}
	goldens := jsonResources(t, "../testdata/mappings/golden")
	if len(goldens) < 4 {
		t.Fatal("no mapping goldens")
	}
	for g, data := range goldens {
		r := Parse(data)
		if r.Resource == nil {
			continue // a rejects file
		}
		if !validateDiff(t, g, r.Resource) {
			t.Errorf("%s: the fast path did not decide a mapping golden", g)
		}
	}
}

// FuzzValidateMatchesFull: for whatever parses, Validate gives the issues
// of the full checks.
func FuzzValidateMatchesFull(f *testing.F) {
	for _, pattern := range []string{"../testdata/fhir-r4-examples/*/*.json", "../testdata/mappings/golden/*.json"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil && len(data) < 64<<10 {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if r := Parse(data); r.Resource != nil {
			validateDiff(t, "fuzz input", r.Resource)
		}
	})
}

// site is one way to break a resource.
type site struct {
	what  string
	apply func()
}

// collectSites lists the ways to break m, found with protoreflect (not
// with the plans the fast paths use).
func collectSites(cr *ContainedResource) []site {
	var out []site
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		md := m.Descriptor()
		value := md.Fields().ByName("value")
		setString := func(what, v string) {
			out = append(out, site{what, func() { m.Set(value, protoreflect.ValueOfString(v)) }})
		}
		switch md.FullName() {
		case fullName(&dpb.String{}):
			setString("a control character", "a\x01b")
		case fullName(&dpb.Uri{}), fullName(&dpb.Url{}), fullName(&dpb.Canonical{}):
			setString("whitespace in a uri", "http://example.org/a b")
			setString("a bad port", "http://example.org:port/x")
			setString("a missing scheme", "://x")
		case fullName(&dpb.Id{}):
			setString("a bad id", "not an id!")
		case fullName(&dpb.Code{}):
			setString("a bad code", "two  spaces")
		case fullName(&dpb.PositiveInt{}), fullName(&dpb.UnsignedInt{}):
			out = append(out, site{"an integer out of range", func() { m.Set(value, protoreflect.ValueOfUint32(1<<31+5)) }})
		case fullName(&dpb.Reference{}):
			ref := m.Interface().(*dpb.Reference)
			out = append(out,
				site{"a reference to Basic", func() { ref.Reference = &dpb.Reference_BasicId{BasicId: &dpb.ReferenceId{Value: "b1"}} }},
				site{"a urn reference to no entry", func() {
					ref.Reference = &dpb.Reference_Uri{Uri: &dpb.String{Value: "urn:uuid:00000000-0000-4000-8000-000000000000"}}
				}})
		}
		for i := range md.Fields().Len() {
			fd := md.Fields().Get(i)
			if req, _ := proto.GetExtension(fd.Options(), apb.E_ValidationRequirement).(apb.Requirement); req == apb.Requirement_REQUIRED_BY_FHIR && m.Has(fd) {
				out = append(out, site{"no " + string(fd.Name()), func() { m.Clear(fd) }})
			}
			if fd.Name() == "contained" && fd.IsList() {
				out = append(out, site{"an invalid contained resource", func() {
					a, _ := anypb.New(&rpb.ContainedResource{OneofResource: &rpb.ContainedResource_Patient{Patient: &ppb.Patient{Id: &dpb.Id{Value: "not an id!"}}}})
					m.Mutable(fd).List().Append(protoreflect.ValueOfMessage(a.ProtoReflect()))
				}}, site{"an unreadable contained resource", func() {
					m.Mutable(fd).List().Append(protoreflect.ValueOfMessage((&anypb.Any{TypeUrl: "x", Value: []byte{1}}).ProtoReflect()))
				}})
			}
			if fd.IsList() && fd.Message() != nil && m.Has(fd) {
				out = append(out, site{"a nil " + string(fd.Name()), func() { appendNil(m.Interface(), fd) }})
			}
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Message() == nil {
				return true
			}
			if fd.IsList() {
				for i := range v.List().Len() {
					walk(v.List().Get(i).Message())
				}
			} else {
				walk(v.Message())
			}
			return true
		})
	}
	walk(cr.ProtoReflect())
	return out
}

// appendNil appends a nil item to a repeated message field, through the
// generated struct (protoreflect cannot hold nil items).
func appendNil(m proto.Message, fd protoreflect.FieldDescriptor) {
	sv := reflect.ValueOf(m).Elem()
	for i := range sv.NumField() {
		if n, ok := tagNumber(sv.Type().Field(i).Tag.Get("protobuf")); ok && n == fd.Number() {
			f := sv.Field(i)
			f.Set(reflect.Append(f, reflect.Zero(f.Type().Elem())))
			return
		}
	}
}

// TestRefChecksMatch holds the builders' fast reference checks to the walks
// they stand in for, on every example resource and its broken copies.
func TestRefChecksMatch(t *testing.T) {
	var refs int
	check := func(name string, cr *ContainedResource) {
		m := Unwrap(cr).ProtoReflect()
		c := &specCheck{}
		eachReference(m, c.refType)
		if got, want := refsOK(m.Interface(), refTypeAllowed), len(c.problems) == 0; got != want {
			t.Errorf("%s: fast reference type check %v, walk %v (%v)", name, got, want, c.problems)
		}
		fullURLs := map[string]bool{}
		if b, ok := Unwrap(cr).(*rpb.Bundle); ok {
			for _, e := range b.GetEntry() {
				fullURLs[e.GetFullUrl().GetValue()] = true
			}
		}
		c = &specCheck{}
		bundleURNRefs(c, "x", Unwrap(cr), fullURLs)
		if got, want := refsOK(cr, func(ref *Reference, _ []string) bool { refs++; return urnRefOK(ref, fullURLs) }), len(c.problems) == 0; got != want {
			t.Errorf("%s: fast urn check %v, walk %v", name, got, want)
		}
	}
	for name, data := range jsonResources(t, "../testdata/fhir-r4-examples") {
		r := Parse(data)
		if r.Resource == nil {
			continue
		}
		check(name, r.Resource)
		for _, s := range collectSites(proto.Clone(r.Resource).(*ContainedResource)) {
			if strings.Contains(s.what, "reference") {
				clone := proto.Clone(r.Resource).(*ContainedResource)
				for _, s2 := range collectSites(clone) {
					if s2.what == s.what {
						s2.apply()
						break
					}
				}
				check(name+" with "+s.what, clone)
				break
			}
		}
	}
	if refs < 100 {
		t.Errorf("only %d references seen", refs)
	}
	// A builder still names the element of a reference it refuses.
	s := btTask()
	s.Owner = Ref("Location", "l1")
	var se *SpecError
	if _, err := s.Build(); !errors.As(err, &se) || !se.Has("owner") {
		t.Errorf("a Task owner that is a Location: %v", err)
	}
}

// TestQuickValueChecks holds the hand-written value checks to what they
// replace: the value_regex of Id and Code, and url.Parse.
func TestQuickValueChecks(t *testing.T) {
	values := []string{"", "a", "A-1.b", strings.Repeat("x", 64), strings.Repeat("x", 65), "a b", "a  b", " a", "a ", "a\tb", "a\t\tb",
		"a\fb", "a\vb", "é", "\xff", "x\u00a0y", "a\nb", "a\r\nb", "two  spaces", "ok-code"}
	for _, typ := range []proto.Message{&dpb.Id{}, &dpb.Code{}, &dpb.Oid{}, &dpb.Uuid{}} {
		md := typ.ProtoReflect().Descriptor()
		re := regexp.MustCompile("^" + proto.GetExtension(md.Options(), apb.E_ValueRegex).(string) + "$")
		fast := valueRegex(md)
		for _, v := range values {
			if fast(v) != re.MatchString(v) {
				t.Errorf("%s %q: fast check %v, regex %v", md.Name(), v, fast(v), re.MatchString(v))
			}
		}
	}
	for _, u := range []string{"http://snomed.info/sct", "urn:uuid:3b7c3d7e-0d6f-4c0a-9c1e-2f7f9b2a1d00", "https://a.example:8080/x",
		"http://user@host/p?q#f", "mailto:a@b", "a:b", "1a:b", ":x", "x", "/rel/path", "http://[::1]/", "http://h:x/", "http://a%zz",
		"http://a b", "urn:oid:1.2.3", "http://h/p|1.0", "ftp://h/#frag", "http://h:1:2/"} {
		_, err := url.Parse(u)
		if surelyParses(u) && err != nil {
			t.Errorf("surelyParses(%q) but url.Parse: %v", u, err)
		}
		if parsesAsURL(u) != (err == nil) {
			t.Errorf("parsesAsURL(%q) = %v, url.Parse error %v", u, parsesAsURL(u), err)
		}
	}
	if !surelyParses("http://snomed.info/sct") || !surelyParses("urn:uuid:3b7c3d7e-0d6f-4c0a-9c1e-2f7f9b2a1d00") {
		t.Error("the common URLs must not need url.Parse")
	}
	for i := range 0x20 {
		s := "a" + string(rune(i)) + "b"
		if want := regexp.MustCompile("[\x00-\x08\x0B\x0C\x0E-\x1F]").MatchString(s); hasControlChar(s) != want {
			t.Errorf("hasControlChar(%s) = %v", strconv.Quote(s), !want)
		}
	}
}

func FuzzSurelyParses(f *testing.F) {
	f.Add("http://example.org/a")
	f.Add("urn:uuid:x")
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := url.Parse(s); surelyParses(s) && err != nil {
			t.Errorf("surelyParses(%q) but url.Parse: %v", s, err)
		}
	})
}

func FuzzValueRegex(f *testing.F) {
	f.Add("a b")
	f.Fuzz(func(t *testing.T, s string) {
		for _, typ := range []proto.Message{&dpb.Id{}, &dpb.Code{}} {
			md := typ.ProtoReflect().Descriptor()
			re := regexp.MustCompile("^" + proto.GetExtension(md.Options(), apb.E_ValueRegex).(string) + "$")
			if valueRegex(md)(s) != re.MatchString(s) {
				t.Errorf("%s %q: fast check differs from the regex", md.Name(), s)
			}
		}
	})
}
