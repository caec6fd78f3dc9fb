package fhir

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

// issueKey is how tests name an expected issue: "severity path code".
func issueKeys(is Issues) []string {
	out := make([]string, len(is))
	for i, x := range is {
		out[i] = fmt.Sprintf("%s %s %s", x.Severity, x.Path, x.Code)
	}
	return out
}

const task = `"resourceType":"Task","id":"t1","status":"requested","intent":"order"`

func TestParseIssues(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		valid bool
		want  []string // exactly these issues, in order
	}{
		{"valid task", `{` + task + `}`, true, nil},
		{"empty string", `{` + task + `,"description":""}`, false, []string{"error Task.description ele-1"}},
		{"empty status is not silently dropped", `{"resourceType":"Task","status":"","intent":"order"}`, false,
			[]string{"error Task.status ele-1"}},
		{"null value", `{` + task + `,"description":null}`, false, []string{"error Task.description ele-1"}},
		{"empty object", `{` + task + `,"note":[{}]}`, false, []string{"error Task.note[0] ele-1", "error Task.note[0].text required"}},
		{"empty array", `{` + task + `,"note":[]}`, false, []string{"error Task.note ele-1"}},
		{"null in array without sibling", `{"resourceType":"Patient","name":[{"given":["a",null]}]}`, false,
			[]string{"error Patient.name[0].given[1] ele-1"}},
		{"null in array aligned with extensions", `{"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,{"extension":[{"url":"http://e.org/x","valueString":"b"}]}]}]}`, true, nil},
		{"unknown element names an R4 element", `{` + task + `,"birthDate":"2000"}`, false, []string{"error Task.birthDate unknown-element"}},
		{"a key that is no R4 element stays out of the path", `{` + task + `,"Zahra Ahmadi":"red"}`, false, []string{"error Task.(unknown) unknown-element"}},
		{"empty value under an unknown key", `{` + task + `,"note":[{"Zahra":""}]}`, false,
			[]string{"error Task.note[0].(unknown) ele-1", "error Task.note[0].(unknown) unknown-element"}},
		{"unknown nested resource type", `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Zahra"}}]}`, false,
			[]string{"fatal Bundle.entry[0].resource.(unknown) unknown-resource-type"}},
		{"duplicate key", `{` + task + `,"status":"accepted"}`, false, []string{"error Task.status duplicate-key"}},
		{"null in both aligned arrays", `{"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,null]}]}`, false,
			[]string{"error Patient.name[0].given[1] ele-1"}},
		{"wrong JSON type is not a JSON syntax error", `{"resourceType":"Patient","text":{"status":"generated","div":["x"]}}`, false,
			[]string{"error Patient.text.div value"}},
		{"missing required names the element", `{"resourceType":"Task","intent":"order"}`, false, []string{"error Task.status required"}},
		{"bad code", `{"resourceType":"Task","status":"maybe","intent":"order"}`, false, []string{"error Task.status code-invalid"}},
		{"bad date", `{` + task + `,"authoredOn":"2020-13-01"}`, false, []string{"error Task.authoredOn value"}},
		{"two choice values", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"a","valueBoolean":true}`, false,
			[]string{"error Observation choice"}},
		{"uri with a space", `{"resourceType":"Patient","identifier":[{"system":"http://a b","value":"1"}]}`, false,
			[]string{"error Patient.identifier[0].system value"}},
		{"uri in choice value names the choice", `{"resourceType":"Patient","extension":[{"url":"http://e.org/x","valueUri":"a b"}]}`, false,
			[]string{"error Patient.extension[0].valueUri value"}},
		{"contained resource path has its type", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o1","name":""}]}`, false,
			[]string{"error Patient.contained[0].Organization.name ele-1"}},
		{"Task inv-1", `{` + task + `,"authoredOn":"2024-05-02T10:00:00Z","lastModified":"2024-05-01T10:00:00Z"}`, false,
			[]string{"error Task.lastModified inv-1"}},
		{"rejected Task needs a reason (warning)", `{"resourceType":"Task","status":"rejected","intent":"order"}`, true,
			[]string{"warning Task.statusReason.text pathway-task-reason"}},
		{"rejected Task with reason", `{"resourceType":"Task","status":"rejected","intent":"order","statusReason":{"text":"no capacity"}}`, true, nil},
		{"fulfill Task needs focus (warning)", `{` + task + `,"code":{"coding":[{"system":"http://hl7.org/fhir/CodeSystem/task-code","code":"fulfill"}]}}`, true,
			[]string{"warning Task.focus pathway-task-focus"}},
		{"ServiceRequest prr-1", `{"resourceType":"ServiceRequest","status":"active","intent":"order","subject":{"reference":"Patient/p"},"orderDetail":[{"text":"x"}]}`, false,
			[]string{"error ServiceRequest.orderDetail prr-1"}},
		{"transaction entry without request", `{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:6f1c1c5e-0000-4000-8000-000000000001","resource":{` + task + `}}]}`, false,
			[]string{"error Bundle.entry[0].request bdl-3"}},
		{"collection entry with request", `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{` + task + `},"request":{"method":"POST","url":"Task"}}]}`, false,
			[]string{"error Bundle.entry[0].request bdl-3"}},
		{"duplicate fullUrl", `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:6f1c1c5e-0000-4000-8000-000000000001","resource":{` + task + `}},{"fullUrl":"urn:uuid:6f1c1c5e-0000-4000-8000-000000000001","resource":{` + task + `}}]}`, false,
			[]string{"error Bundle.entry[1].fullUrl bdl-7"}},
		{"unresolved urn reference in a transaction", `{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:6f1c1c5e-0000-4000-8000-000000000001","resource":{` + task + `,"for":{"reference":"urn:uuid:6f1c1c5e-0000-4000-8000-000000000002"}},"request":{"method":"POST","url":"Task"}}]}`, false,
			[]string{"error Bundle.entry[0].resource.Task.for bundle-ref"}},
		{"total outside a searchset", `{"resourceType":"Bundle","type":"collection","total":1}`, false, []string{"error Bundle.total bdl-1"}},
		{"entry resource issue has the bundle path", `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Task","status":"done","intent":"order"}}]}`, false,
			[]string{"error Bundle.entry[0].resource.Task.status code-invalid"}},
		{"natural order of paths", `{"resourceType":"Patient","name":[{"given":["a"]},{"given":["b"]},{"given":["c"]},{"given":["d"]},{"given":["e"]},{"given":["f"]},{"given":["g"]},{"given":["h"]},{"given":["i"]},{"given":["j"]},{"given":[""]}],"telecom":[{"value":""}]}`, false,
			[]string{"error Patient.name[10].given[0] ele-1", "error Patient.telecom[0].value ele-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Parse([]byte(tt.in))
			if r.Valid() != tt.valid {
				t.Errorf("Valid() = %v, want %v", r.Valid(), tt.valid)
			}
			got := issueKeys(r.Issues)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("issues:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestParseFatal(t *testing.T) {
	tests := []struct {
		name, in, code, details string
	}{
		{"empty", "", "json", "empty input"},
		{"whitespace", " \n", "json", "empty input"},
		{"array", `[{"resourceType":"Task"}]`, "json", "a JSON array"},
		{"scalar", `42`, "json", "not a JSON object"},
		{"not JSON", `{"resourceType":"Task",}`, "json", "not valid JSON"},
		{"truncated", `{"resourceType":"Task","status":"req`, "json", "not valid JSON"},
		{"no resourceType", `{"id":"x"}`, "required", `missing "resourceType"`},
		{"unknown resourceType", `{"resourceType":"Referral","id":"x"}`, "unknown-resource-type", "unknown resourceType"},
		{"lower-case resourceType", `{"resourceType":"task"}`, "unknown-resource-type", "not a FHIR resource type name"},
		{"a name as resourceType", `{"resourceType":"ZahraAhmadi"}`, "unknown-resource-type", "unknown resourceType"},
		{"a million nulls", `{"resourceType":"Patient","name":[{"given":[` + strings.Repeat("null,", 1000000) + `null]}]}`, "too-many-issues", "more than 100 issues"},
		{"too deep", strings.Repeat(`{"resourceType":"Parameters","parameter":[{"name":"p","resource":`, 70) + strings.Repeat(`}]}`, 70), "too-deep", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Parse([]byte(tt.in))
			if r.Valid() || r.Resource != nil {
				t.Fatalf("want invalid with no resource, got valid=%v resource=%v", r.Valid(), r.Resource != nil)
			}
			var found bool
			for _, is := range r.Issues {
				if is.Code == tt.code && strings.Contains(is.Details, tt.details) {
					found = true
				}
			}
			if !found {
				t.Errorf("no issue %s %q in %v", tt.code, tt.details, r.Issues)
			}
		})
	}
}

// Personal data must not reach anything meant for logs: paths, codes,
// details, Issue.String and InvalidError.Error. It goes only into
// Diagnostics and, from there, the OperationOutcome.
func TestIssuesNeverCarryValues(t *testing.T) {
	const secret = "Zahra-Ahmadi-asylum"
	const secret2 = "ZahraAhmadiAsylum"
	inputs := []string{
		`{"resourceType":"Task","status":"` + secret + `","intent":"order"}`,
		`{"resourceType":"Task","status":"requested","intent":"order","authoredOn":"` + secret + `"}`,
		`{"resourceType":"Patient","gender":"` + secret + `"}`,
		`{"resourceType":"` + secret + `"}`,
		`{"resourceType":"Patient","id":"` + secret + ` x"}`,
		`{"resourceType":"Patient","identifier":[{"system":"http://x y/` + secret + `","value":"1"}]}`,
		`{"resourceType":"Patient","name":[{"text":"` + secret + `", }]}`,
		`{"resourceType":"Patient","ZahraAhmadiAsylum":""}`,
		`{"resourceType":"Patient","name":[{"ZahraAhmadiAsylum":""}]}`,
		`{"resourceType":"ZahraAhmadiAsylum","id":"x"}`,
		`{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"ZahraAhmadiAsylum"}}]}`,
		`{"resourceType":"Patient","contained":[{"resourceType":"ZahraAhmadiAsylum"}]}`,
	}
	for _, in := range inputs {
		r := Parse([]byte(in))
		if r.Valid() {
			t.Fatalf("%s: want invalid", in)
		}
		var diag bool
		for _, is := range r.Issues {
			for _, s := range []string{is.Path, is.Code, is.Details, is.String()} {
				if strings.Contains(s, secret) || strings.Contains(s, secret2) {
					t.Errorf("value leaked into a loggable field: %q", s)
				}
			}
			diag = diag || strings.Contains(is.Diagnostics, secret)
		}
		if err := r.Err(); strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), secret2) || strings.Contains(r.ID, secret) || r.ResourceType == secret2 {
			t.Errorf("value leaked into the error or id: %v / %q", err, r.ID)
		}
		if strings.Contains(in, `"gender"`) && !diag {
			t.Errorf("%s: the caller should see the offending value in Diagnostics", in)
		}
	}
}

func TestDecode(t *testing.T) {
	cr, err := Decode([]byte(`{` + task + `}`))
	if err != nil || Key(cr) != "Task/t1" {
		t.Fatalf("Decode = %v, %v", Key(cr), err)
	}
	_, err = Decode([]byte(`{"resourceType":"Task","id":"t2","intent":"order"}`))
	var ie *InvalidError
	if !errors.As(err, &ie) || ie.ResourceType != "Task" || ie.ID != "t2" || !strings.Contains(err.Error(), "Task.status [required]") {
		t.Fatalf("Decode of invalid Task: %v", err)
	}
}

func TestMarshalResourceTypeFirst(t *testing.T) {
	in := `{"resourceType":"Bundle","id":"b","type":"collection","entry":[{"fullUrl":"urn:uuid:6f1c1c5e-0000-4000-8000-000000000001","resource":{"resourceType":"Patient","id":"p","contained":[{"resourceType":"Organization","id":"o","name":"Clinic"}],"managingOrganization":{"reference":"#o"}}}]}`
	cr, err := Decode([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(cr)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`{"resourceType":"Bundle",`, `"resource":{"resourceType":"Patient",`, `"contained":[{"resourceType":"Organization",`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	if diff := roundTrip([]byte(in), cr); diff != "" {
		t.Error(diff)
	}
	ind, err := MarshalIndent(cr)
	if err != nil || !bytes.HasPrefix(ind, []byte("{\n  \"resourceType\": \"Bundle\",")) {
		t.Errorf("MarshalIndent: %v\n%s", err, ind)
	}
}

func TestHoistResourceType(t *testing.T) {
	tests := map[string]string{
		`{"a":1,"resourceType":"X"}`:                                `{"resourceType":"X","a":1}`,
		`{"resourceType":"X","a":1}`:                                `{"resourceType":"X","a":1}`,
		`{"a":{"b":"}\"","resourceType":"Y"},"resourceType":"X"}`:   `{"resourceType":"X","a":{"resourceType":"Y","b":"}\""}}`,
		`{"a":[{"z":[1,2],"resourceType":"Y"}],"b":"resourceType"}`: `{"a":[{"resourceType":"Y","z":[1,2]}],"b":"resourceType"}`,
	}
	for in, want := range tests {
		if got := string(hoistResourceType([]byte(in))); got != want {
			t.Errorf("hoist(%s) = %s, want %s", in, got, want)
		}
	}
}

// Lossless round trip of what google/fhir is known to be delicate about.
func TestRoundTripLossless(t *testing.T) {
	inputs := []string{
		// decimals as written, partial dates, time zones, primitive extensions
		`{"resourceType":"Observation","id":"o","status":"final","code":{"text":"PHQ-9"},"valueQuantity":{"value":1.50,"unit":"mg"},"effectiveDateTime":"2020-03","issued":"2020-03-04T10:00:00.123+05:30","_status":{"extension":[{"url":"http://e.org/x","valueString":"y"}]}}`,
		`{"resourceType":"Patient","id":"p","birthDate":"1990","name":[{"given":["Олена","فاطمه"],"_given":[null,{"id":"g2"}]}],"deceasedDateTime":"2021-02-03T04:05:06-03:00"}`,
		`{"resourceType":"Observation","id":"o2","status":"final","code":{"text":"x"},"valueQuantity":{"value":0.000100},"effectiveInstant":"2015-02-07T13:28:17.239+02:00"}`,
		`{"resourceType":"Task","id":"t","status":"requested","intent":"order","note":[{"text":"ትግርኛ ምስ ተርጓሚ"}],"authoredOn":"2024-01-01"}`,
	}
	for _, in := range inputs {
		cr, err := Decode([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if diff := roundTrip([]byte(in), cr); diff != "" {
			t.Errorf("%s: %s", in, diff)
		}
	}
}

// TestLibraryErrorShape pins the fields libIssues reads by reflection from
// google/fhir's internal error type: if an upgrade renames them, issues
// would lose their paths, and this test says so.
func TestLibraryErrorShape(t *testing.T) {
	r := Parse([]byte(`{"resourceType":"Patient","gender":"x","birthDate":"nope"}`))
	for _, is := range r.Issues {
		if is.Code == "internal" || is.Path == "" || is.Path == "(root)" {
			t.Fatalf("google/fhir error not understood: %+v", is)
		}
	}
	if len(r.Issues) != 2 {
		t.Fatalf("want 2 issues, got %v", r.Issues)
	}
	if got := libIssues(errors.New("plain"), SeverityError); got[0].Code != "internal" || got[0].Diagnostics != "plain" {
		t.Fatalf("unknown error shape: %+v", got)
	}
}

func TestNDJSONReader(t *testing.T) {
	in := "{" + task + "}\r\n\n   \n" + `{"resourceType":"Task","id":"t2","intent":"order"}` + "\nnot json\n" + `{"resourceType":"Patient","id":"p"}`
	nr := NewNDJSONReader(strings.NewReader(in))
	type got struct {
		line  int
		key   string
		valid bool
	}
	var all []got
	for {
		line, r, err := nr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, got{line, r.ResourceType + "/" + r.ID, r.Valid()})
	}
	want := []got{{1, "Task/t1", true}, {4, "Task/t2", false}, {5, "/", false}, {6, "Patient/p", true}}
	if fmt.Sprint(all) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", all, want)
	}
}

func TestNDJSONReaderLongLine(t *testing.T) {
	long := `{"resourceType":"Patient","id":"p","text":{"status":"generated","div":"<div>` + strings.Repeat("x", MaxLineBytes) + `</div>"}}`
	nr := NewNDJSONReader(strings.NewReader(long + "\n{" + task + "}\n"))
	_, r, err := nr.Next()
	if err != nil || r.Valid() || r.Issues[0].Code != "too-large" {
		t.Fatalf("long line: %v %v", err, r.Issues)
	}
	line, r, err := nr.Next()
	if err != nil || line != 2 || !r.Valid() {
		t.Fatalf("line after the long one: %d %v %v", line, err, r.Issues)
	}
}

func TestReadAllLimited(t *testing.T) {
	if _, err := ReadAllLimited(strings.NewReader("12345"), 4); !errors.As(err, new(*TooLargeError)) {
		t.Fatalf("want TooLargeError, got %v", err)
	}
	if b, err := ReadAllLimited(strings.NewReader("1234"), 4); err != nil || string(b) != "1234" {
		t.Fatalf("at the limit: %q %v", b, err)
	}
}

func TestSplitBundle(t *testing.T) {
	in := `{"resourceType":"Bundle","type":"transaction","entry":[` +
		`{"fullUrl":"urn:uuid:6f1c1c5e-0000-4000-8000-000000000001","resource":{` + task + `},"request":{"method":"POST","url":"Task"}},` +
		`{"resource":{"resourceType":"Task","id":"t2","status":"bogus","intent":"order","authoredOn":"x"},"request":{"method":"POST","url":"Task"}},` +
		`{"resource":{"resourceType":"Patient","id":"p","gender":"female","active":""},"request":{"method":"POST","url":"Patient"}}]}`
	r := Parse([]byte(in))
	bundle, entries := SplitBundle([]byte(in), r)
	if len(bundle) != 0 || len(entries) != 3 {
		t.Fatalf("bundle issues %v, %d entries", bundle, len(entries))
	}
	if !entries[0].Valid() || entries[0].ID != "t1" {
		t.Errorf("entry 0: %+v", entries[0])
	}
	// The bundle fails to parse, so entry 1 is parsed on its own to find
	// both of its problems, not just the first one google/fhir stopped at.
	want1 := []string{"error Bundle.entry[1].resource.Task.authoredOn value", "error Bundle.entry[1].resource.Task.status code-invalid"}
	if got := issueKeys(entries[1].Issues); fmt.Sprint(got) != fmt.Sprint(want1) {
		t.Errorf("entry 1: %v, want %v", got, want1)
	}
	if entries[2].Valid() || entries[2].ResourceType != "Patient" {
		t.Errorf("entry 2: %+v", entries[2])
	}
}

func TestOperationOutcome(t *testing.T) {
	r := Parse([]byte(`{"resourceType":"Patient","gender":"Zahra"}`))
	oo := OperationOutcome(r.Issues)
	b, err := Marshal(oo)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"resourceType":"OperationOutcome"`, `"severity":"error"`, `"code":"code-invalid"`, `"expression":["Patient.gender"]`, `Zahra`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("OperationOutcome lacks %s: %s", want, b)
		}
	}
	if res := Parse(b); !res.Valid() {
		t.Errorf("OperationOutcome is not valid FHIR: %v", res.Issues)
	}
	ok, _ := Marshal(OperationOutcome(nil))
	if !bytes.Contains(ok, []byte(`"code":"informational"`)) {
		t.Errorf("empty outcome: %s", ok)
	}
}

// Marshal must not change its input: google/fhir's marshaller rewrites
// typed references in place, and builders share datatypes between resources.
func TestMarshalLeavesInputAlone(t *testing.T) {
	cr, err := Decode([]byte(`{"resourceType":"Task","id":"t","status":"requested","intent":"order","for":{"reference":"Patient/p1"},"focus":{"reference":"ServiceRequest/s1"}}`))
	if err != nil {
		t.Fatal(err)
	}
	before := proto.Clone(cr)
	if _, err := Marshal(cr); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(before, cr) {
		t.Fatal("Marshal changed the resource it was given")
	}
}

// Cases from the review of the first version: each was accepted wrongly,
// or rejected wrongly.
func TestReviewRegressions(t *testing.T) {
	const u1 = "urn:uuid:6f1c1c5e-0000-4000-8000-000000000001"
	tests := []struct {
		name  string
		in    string
		valid bool
		want  []string
	}{
		{"contained resource is validated", `{"resourceType":"Patient","contained":[{"resourceType":"Task","id":"t"}]}`, false,
			[]string{"error Patient.contained[0].Task.intent required", "error Patient.contained[0].Task.status required"}},
		{"contained ServiceRequest rules apply", `{"resourceType":"Patient","id":"p","contained":[{"resourceType":"ServiceRequest","id":"s","status":"active","intent":"order","subject":{"reference":"Patient/p"},"orderDetail":[{"text":"x"}]}]}`, false,
			[]string{"error Patient.contained[0].ServiceRequest.orderDetail prr-1"}},
		{"bdl-9 needs system and value", `{"resourceType":"Bundle","type":"document","identifier":{"use":"official"},"timestamp":"2020-01-01T00:00:00Z","entry":[{"fullUrl":"` + u1 + `","resource":{"resourceType":"Composition","status":"final","type":{"text":"x"},"date":"2020","author":[{"display":"a"}],"title":"t"}}]}`, false,
			[]string{"error Bundle.identifier bdl-9"}},
		{"bdl-7 compares every entry, not the latest", `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"` + u1 + `","resource":{` + task + `}},{"fullUrl":"` + u1 + `","resource":{"resourceType":"Task","id":"t1","meta":{"versionId":"2"},"status":"requested","intent":"order"}},{"fullUrl":"` + u1 + `","resource":{` + task + `}}]}`, false,
			[]string{"error Bundle.entry[2].fullUrl bdl-7"}},
		{"inv-1 does not compare a date with a date-time", `{` + task + `,"authoredOn":"2020-01-02","lastModified":"2020-01-02T05:00:00+10:00"}`, true, nil},
		{"bundle paths name resource types in their case", `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"ServiceRequest","status":"active","intent":"order","subject":{"reference":"Practitioner/x"}}}]}`, false,
			[]string{"error Bundle.entry[0].resource.ServiceRequest.subject reference"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Parse([]byte(tt.in))
			if r.Valid() != tt.valid {
				t.Errorf("Valid() = %v, want %v (%v)", r.Valid(), tt.valid, r.Issues)
			}
			got := issueKeys(r.Issues.Errors())
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("issues:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}
