package fhir

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	obspb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/observation_go_proto"
	ppb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/patient_go_proto"
	tpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/task_go_proto"
	vspb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/valuesets_go_proto"
)

// marshalDiff compares the fast writer and Marshal with the reference
// marshaller (google/fhir plus hoistResourceType) on one resource. It
// reports whether the fast writer handled the resource itself.
func marshalDiff(t *testing.T, name string, cr *ContainedResource) (fast bool) {
	t.Helper()
	want, wantErr := marshalGoogle(theCodec(), cr)
	got, ok := marshalFast(cr)
	if ok {
		switch {
		case wantErr != nil:
			t.Errorf("%s: the fast writer wrote what google/fhir refuses (%v):\n%s", name, wantErr, got)
		case !bytes.Equal(got, want):
			t.Errorf("%s: the fast writer differs from google/fhir:\n%s", name, firstDiff(got, want))
		}
	}
	pub, err := Marshal(cr)
	switch {
	case (err != nil) != (wantErr != nil):
		t.Errorf("%s: Marshal error %v, google/fhir error %v", name, err, wantErr)
	case err == nil && !bytes.Equal(pub, want):
		t.Errorf("%s: Marshal differs from google/fhir:\n%s", name, firstDiff(pub, want))
	}
	return ok
}

// firstDiff shows where two outputs part, with some context.
func firstDiff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	from := max(0, i-80)
	return "got:  ..." + string(got[from:min(len(got), i+80)]) + "\nwant: ..." + string(want[from:min(len(want), i+80)])
}

// jsonResources returns every JSON resource below dir: .json files (not
// lists) and the lines of .ndjson files, by name.
func jsonResources(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(path) {
		case ".json":
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if !bytes.HasPrefix(bytes.TrimSpace(data), []byte("[")) {
				out[path] = data
			}
		case ".ndjson":
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sc := bufio.NewScanner(bytes.NewReader(data))
			sc.Buffer(nil, MaxResourceBytes)
			for n := 1; sc.Scan(); n++ {
				if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 && line[0] == '{' {
					out[path+":"+strconv.Itoa(n)] = append([]byte(nil), line...)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMarshalMatchesGoogle is the differential test of the JSON writer:
// every resource of the public examples (the whole shared corpus when
// PATHWAY_CORPUS names it), of google/fhir's corner cases, every valid
// primitive value of google/fhir's primitive_validity files, and the
// mapping goldens must marshal to the same bytes as google/fhir's
// marshaller. The goldens must take the fast path: they are what Pathway
// writes.
func TestMarshalMatchesGoogle(t *testing.T) {
	var total, fast int
	dirs := append(corpusDirs(t), "../testdata/google-fhir/jsonformat", "../testdata/demo")
	for _, dir := range dirs {
		for name, data := range jsonResources(t, dir) {
			r := Parse(data)
			if r.Resource == nil {
				continue
			}
			total++
			if marshalDiff(t, name, r.Resource) {
				fast++
			}
		}
	}
	if total < 140 {
		t.Fatalf("only %d resources compared", total)
	}
	t.Logf("corpus: %d resources, %d by the fast writer", total, fast)
	// The writer leaves to google/fhir only what it cannot reproduce; on the
	// public examples that is a few uncommon shapes at most.
	if fast < total*95/100 {
		t.Errorf("the fast writer handled only %d of %d resources", fast, total)
	}

	goldenResources := jsonResources(t, "../testdata/mappings/golden")
	for name, data := range goldenResources {
		if r := Parse(data); r.Resource != nil && !marshalDiff(t, name, r.Resource) {
			t.Errorf("%s: the fast writer gave up on a mapping golden", name)
		}
	}
	goldens, _ := filepath.Glob("../testdata/mappings/golden/*.json")
	if len(goldens) == 0 {
		t.Fatal("no mapping goldens")
	}
	for _, g := range goldens {
		data, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		r := Parse(data)
		if r.Resource == nil {
			t.Fatalf("%s: %v", g, r.Issues)
		}
		if !marshalDiff(t, g, r.Resource) {
			t.Errorf("%s: the fast writer gave up on a mapping golden", g)
		}
		indented, err := MarshalIndent(r.Resource)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(bytes.TrimSpace(indented), bytes.TrimSpace(data)) {
			t.Errorf("%s: MarshalIndent does not give the golden back", g)
		}
	}

	// Every valid primitive value, in the element that holds it.
	dir := edgeCaseDir("primitive_validity")
	files, _ := filepath.Glob(filepath.Join(dir, "*.valid.ndjson"))
	if len(files) == 0 {
		t.Fatalf("no primitive cases in %s", dir)
	}
	var prims int
	for _, f := range files {
		typ, _, _ := strings.Cut(filepath.Base(f), ".")
		host := hostFor[typ]
		if host == nil {
			field := extensionValue[typ]
			host = func(v string) string {
				return `{"resourceType":"Patient","extension":[{"url":"http://example.org/x","` + field + `":` + v + `}]}`
			}
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for n, v := range strings.Split(string(data), "\n") {
			if v = strings.TrimSpace(v); v == "" {
				continue
			}
			if r := Parse([]byte(host(v))); r.Resource != nil {
				prims++
				marshalDiff(t, f+":"+strconv.Itoa(n+1), r.Resource)
			}
		}
	}
	if prims < 50 {
		t.Errorf("only %d primitive values compared", prims)
	}
}

// TestMarshalEdgeCases builds protos the parser never makes (built in Go,
// or changed after parsing) and checks that Marshal still gives google/fhir's
// bytes, or fails where google/fhir fails; and that it leaves its input alone.
func TestMarshalEdgeCases(t *testing.T) {
	str := func(s string) *dpb.String { return &dpb.String{Value: s} }
	noValue := &dpb.Extension{Url: &dpb.Uri{Value: primitiveHasNoValueURL}, Value: &dpb.Extension_ValueX{
		Choice: &dpb.Extension_ValueX_Boolean{Boolean: &dpb.Boolean{Value: true}}}}
	other := &dpb.Extension{Url: &dpb.Uri{Value: "http://example.org/x"}, Value: &dpb.Extension_ValueX{
		Choice: &dpb.Extension_ValueX_StringValue{StringValue: str("x")}}}
	contained, err := anypb.New(&ContainedResource{OneofResource: &rpb.ContainedResource_Patient{Patient: &ppb.Patient{Id: &dpb.Id{Value: "c1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	patient := func(f func(p *ppb.Patient)) *ContainedResource {
		p := &ppb.Patient{Id: &dpb.Id{Value: "p1"}}
		f(p)
		return &ContainedResource{OneofResource: &rpb.ContainedResource_Patient{Patient: p}}
	}
	observation := func(f func(o *obspb.Observation)) *ContainedResource {
		o := &obspb.Observation{
			Status: &obspb.Observation_StatusCode{Value: cpb.ObservationStatusCode_FINAL},
			Code:   &dpb.CodeableConcept{Text: str("x")},
		}
		f(o)
		return &ContainedResource{OneofResource: &rpb.ContainedResource_Observation{Observation: o}}
	}
	decimal := func(v string) *ContainedResource {
		return observation(func(o *obspb.Observation) {
			o.Value = &obspb.Observation_ValueX{Choice: &obspb.Observation_ValueX_Quantity{Quantity: &dpb.Quantity{Value: &dpb.Decimal{Value: v}}}}
		})
	}
	dateTime := func(tz string, prec dpb.DateTime_Precision) *ContainedResource {
		return observation(func(o *obspb.Observation) {
			o.Issued = &dpb.Instant{ValueUs: 1700000000123456, Timezone: tz, Precision: dpb.Instant_MICROSECOND}
			o.Effective = &obspb.Observation_EffectiveX{Choice: &obspb.Observation_EffectiveX_DateTime{
				DateTime: &dpb.DateTime{ValueUs: -86400000001, Timezone: tz, Precision: prec}}}
		})
	}
	cases := map[string]*ContainedResource{
		"no value, extension and id": patient(func(p *ppb.Patient) {
			p.BirthDate = &dpb.Date{Id: str("b"), Extension: []*dpb.Extension{noValue, other}, Timezone: "UTC", Precision: dpb.Date_DAY}
		}),
		"no value only": patient(func(p *ppb.Patient) {
			p.BirthDate = &dpb.Date{Extension: []*dpb.Extension{noValue}, Timezone: "UTC", Precision: dpb.Date_DAY}
		}),
		"list of primitives with gaps": patient(func(p *ppb.Patient) {
			p.Name = []*dpb.HumanName{{Given: []*dpb.String{str("a"), {Extension: []*dpb.Extension{noValue, other}}, {Id: str("i"), Value: "c"}}}}
		}),
		"control characters and invalid UTF-8": patient(func(p *ppb.Patient) {
			p.Name = []*dpb.HumanName{{Text: str("a\x00\x01\b\f\n\r\t\"\\/<>&\u2028\u2029\x7f\xff\xe2\x80 é 😀 \xed\xa0\x80")}}
		}),
		"unset code":       patient(func(p *ppb.Patient) { p.Gender = &ppb.Patient_GenderCode{Id: str("g")} }),
		"code":             patient(func(p *ppb.Patient) { p.Gender = &ppb.Patient_GenderCode{Value: cpb.AdministrativeGenderCode_FEMALE} }),
		"nil list item":    patient(func(p *ppb.Patient) { p.Name = []*dpb.HumanName{nil} }),
		"nil string item":  patient(func(p *ppb.Patient) { p.Name = []*dpb.HumanName{{Given: []*dpb.String{nil}}} }),
		"empty complex":    patient(func(p *ppb.Patient) { p.Name = []*dpb.HumanName{{}} }),
		"contained":        patient(func(p *ppb.Patient) { p.Contained = []*anypb.Any{contained} }),
		"contained broken": patient(func(p *ppb.Patient) { p.Contained = []*anypb.Any{{TypeUrl: "x", Value: []byte{1}}} }),
		"typed nil choice wrapper": patient(func(p *ppb.Patient) {
			p.Deceased = &ppb.Patient_DeceasedX{Choice: (*ppb.Patient_DeceasedX_Boolean)(nil)}
		}),
		"choice with nil inner": patient(func(p *ppb.Patient) {
			p.Deceased = &ppb.Patient_DeceasedX{Choice: &ppb.Patient_DeceasedX_Boolean{}}
		}),
		"choice unset": patient(func(p *ppb.Patient) { p.Deceased = &ppb.Patient_DeceasedX{} }),
		"references": patient(func(p *ppb.Patient) {
			history := ParseRef("Organization/o1/_history/3")
			frag := RefFragment("c1")
			frag.GetFragment().Extension = []*dpb.Extension{other}
			uri := RefURN("urn:uuid:3b7c3d7e-0d6f-4c0a-9c1e-2f7f9b2a1d00")
			uri.GetUri().Id = str("u")
			typed := Ref("Organization", "o2")
			typed.GetOrganizationId().Extension = []*dpb.Extension{other}
			p.GeneralPractitioner = []*Reference{history, frag, uri, typed, {Display: str("d")}, {}}
			p.ManagingOrganization = Ref("Organization", "o3")
		}),
		"reference case with nil inner": patient(func(p *ppb.Patient) {
			p.ManagingOrganization = &Reference{Reference: &dpb.Reference_OrganizationId{}}
		}),
		"decimal":          decimal("-0.000100e+10"),
		"decimal integer":  decimal("100"),
		"decimal leading":  decimal("01"),
		"decimal space":    decimal(" 1"),
		"decimal dot":      decimal("1."),
		"decimal text":     decimal("true"),
		"decimal empty":    decimal(""),
		"zone Z":           dateTime("Z", dpb.DateTime_MILLISECOND),
		"zone UTC":         dateTime("UTC", dpb.DateTime_SECOND),
		"zone offset":      dateTime("+05:30", dpb.DateTime_MICROSECOND),
		"zone negative":    dateTime("-03:00", dpb.DateTime_DAY),
		"zone minus zero":  dateTime("-00:00", dpb.DateTime_SECOND),
		"zone empty":       dateTime("", dpb.DateTime_MONTH),
		"zone named":       dateTime("Europe/Paris", dpb.DateTime_SECOND),
		"zone short":       dateTime("+5:30", dpb.DateTime_SECOND),
		"zone garbage":     dateTime("nowhere", dpb.DateTime_YEAR),
		"precision unset":  dateTime("Z", dpb.DateTime_PRECISION_UNSPECIFIED),
		"time":             observation(func(o *obspb.Observation) { o.Value = timeValue(86399999999, dpb.Time_MICROSECOND) }),
		"time seconds":     observation(func(o *obspb.Observation) { o.Value = timeValue(3600000000, dpb.Time_SECOND) }),
		"time unspecified": observation(func(o *obspb.Observation) { o.Value = timeValue(1, dpb.Time_PRECISION_UNSPECIFIED) }),
		"integers": observation(func(o *obspb.Observation) {
			o.Value = &obspb.Observation_ValueX{Choice: &obspb.Observation_ValueX_Integer{Integer: &dpb.Integer{Value: -2147483648}}}
			o.Component = []*obspb.Observation_Component{{Code: &dpb.CodeableConcept{Text: str("b")},
				Value: &obspb.Observation_Component_ValueX{Choice: &obspb.Observation_Component_ValueX_Boolean{Boolean: &dpb.Boolean{}}}}}
		}),
		"base64": observation(func(o *obspb.Observation) {
			o.Value = &obspb.Observation_ValueX{Choice: &obspb.Observation_ValueX_SampledData{SampledData: &dpb.SampledData{Data: str("1 2")}}}
			o.Extension = []*dpb.Extension{{Url: &dpb.Uri{Value: "http://example.org/b"}, Value: &dpb.Extension_ValueX{
				Choice: &dpb.Extension_ValueX_Base64Binary{Base64Binary: &dpb.Base64Binary{Value: []byte("\x00\xffhello")}}}}}
		}),
		"base64 with extension": observation(func(o *obspb.Observation) {
			o.Extension = []*dpb.Extension{{Url: &dpb.Uri{Value: "http://example.org/b"}, Value: &dpb.Extension_ValueX{
				Choice: &dpb.Extension_ValueX_Base64Binary{Base64Binary: &dpb.Base64Binary{Value: []byte("abc"), Extension: []*dpb.Extension{other}}}}}}
		}),
		"extension without url": observation(func(o *obspb.Observation) {
			o.Extension = []*dpb.Extension{{Value: &dpb.Extension_ValueX{Choice: &dpb.Extension_ValueX_StringValue{StringValue: str("x")}}}}
		}),
		"task for": {OneofResource: &rpb.ContainedResource_Task{Task: &tpb.Task{
			Status:   &tpb.Task_StatusCode{Value: cpb.TaskStatusCode_REQUESTED},
			Intent:   &tpb.Task_IntentCode{Value: vspb.TaskIntentValueSet_ORDER},
			ForValue: Ref("Patient", "p1"),
			Input: []*tpb.Task_Parameter{{Type: &dpb.CodeableConcept{Text: str("t")},
				Value: &tpb.Task_Parameter_ValueX{Choice: &tpb.Task_Parameter_ValueX_Reference{Reference: RefURN("urn:uuid:x")}}}},
		}}},
	}
	for name, cr := range cases {
		before := proto.Clone(cr)
		marshalDiff(t, name, cr)
		if !proto.Equal(before, cr) {
			t.Errorf("%s: Marshal changed its input", name)
		}
	}
	// The shapes Pathway writes must not need google/fhir.
	for _, name := range []string{"references", "no value, extension and id", "list of primitives with gaps",
		"control characters and invalid UTF-8", "zone offset", "zone UTC", "decimal", "time", "task for", "contained"} {
		if _, ok := marshalFast(cases[name]); !ok {
			t.Errorf("%s: the fast writer gave up", name)
		}
	}
}

func timeValue(us int64, p dpb.Time_Precision) *obspb.Observation_ValueX {
	return &obspb.Observation_ValueX{Choice: &obspb.Observation_ValueX_Time{Time: &dpb.Time{ValueUs: us, Precision: p}}}
}

// FuzzMarshalMatchesGoogle: whatever parses must marshal to google/fhir's bytes.
func FuzzMarshalMatchesGoogle(f *testing.F) {
	for _, pattern := range []string{
		"../testdata/fhir-r4-examples/*/*.json",
		"../testdata/google-fhir/jsonformat/*.json",
		"../testdata/mappings/golden/*.json",
	} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil && len(data) < 64<<10 {
				f.Add(data)
			}
		}
	}
	f.Add([]byte(`{"resourceType":"Patient","_birthDate":{"id":"x"},"name":[{"given":["a",null],"_given":[null,{"extension":[{"url":"u","valueCode":"c"}]}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if r := Parse(data); r.Resource != nil {
			marshalDiff(t, "fuzz input", r.Resource)
		}
	})
}

// TestAppendJSONString checks the string escaper against encoding/json with
// HTML escaping off, which google/fhir's marshaller renders through.
func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", "\x00\x1f\x7f", "\"\\/", "<>&", "\u2028\u2029", "\xff\xfe", "\xe2\x80", "é😀", "\xed\xa0\x80", "a\tb\nc\rd\be\ff"} {
		checkJSONString(t, s)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add("a\x00\u2028\xff")
	f.Fuzz(checkJSONString)
}

func checkJSONString(t *testing.T, s string) {
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	if got := appendJSONString(nil, s); !bytes.Equal(got, bytes.TrimSuffix(want.Bytes(), []byte("\n"))) {
		t.Errorf("appendJSONString(%q) = %s, want %s", s, got, want.Bytes())
	}
}

// TestIsJSONNumber checks the decimal check against encoding/json: a
// string is accepted exactly when encoding/json would copy it unchanged.
func TestIsJSONNumber(t *testing.T) {
	for _, s := range []string{"0", "-0", "1", "-1.5", "1e5", "1E+5", "1.0e-05", "01", "1.", ".5", "+1", "1e", "--1", "", " 1", "1 ", "true", "0x1", "1.5.5", "Infinity", "NaN", "-", "0.000000000000000000000000000001"} {
		want := json.Valid([]byte(s)) && regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`).MatchString(s)
		if got := isJSONNumber(s); got != want {
			t.Errorf("isJSONNumber(%q) = %v, want %v", s, got, want)
		}
	}
}
