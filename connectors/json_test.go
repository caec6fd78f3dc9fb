package connectors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestJSONArray(t *testing.T) {
	src, err := OpenJSONArray(openFixture(t, "json/kobo-export.json"), "kobo-export.json")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	recs := readAll(t, src)
	if len(recs) != 4 {
		t.Fatalf("%d records, want 4", len(recs))
	}
	wantLines := []int{2, 13, 25, 26}
	for i, r := range recs {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		if r.Pos != (Position{File: "kobo-export.json", Unit: UnitElement, Row: i + 1, Line: wantLines[i]}) {
			t.Errorf("element %d: position %+v", i+1, r.Pos)
		}
		if r.Fields != nil || r.HL7 != nil {
			t.Errorf("element %d: Fields or HL7 set", i+1)
		}
	}
	if got := recs[0].Pos.String(); got != "kobo-export.json:element 1" {
		t.Errorf("String() = %q", got)
	}
	first := recs[0].JSON
	// Numbers are kept as written.
	if first["_id"] != json.Number("101") || first["grp_screen/weight_kg"] != json.Number("61.50") || recs[1].JSON["big"] != json.Number("12345678901234567890") {
		t.Errorf("numbers: %#v %#v %#v", first["_id"], first["grp_screen/weight_kg"], recs[1].JSON["big"])
	}
	if first["grp_needs/needs"] != "housing legal_advice language_support" || first["note"] != "تحتاج إلى معالجة نفسية ناطقة بالعربية" {
		t.Errorf("strings: %q", first)
	}
	if got := recs[1].JSON["_geolocation"]; !reflect.DeepEqual(got, []any{nil, nil}) {
		t.Errorf("_geolocation = %#v", got)
	}
	if recs[2].JSON["note"] != "شب\u200cها خواب بد می\u200cبیند" || recs[3].JSON["note"] != "ናይ ትግርኛ ተርጓሚ የድሊ" {
		t.Errorf("notes: %q %q", recs[2].JSON["note"], recs[3].JSON["note"])
	}
	if got := string(recs[2].Raw); got != "{\"_id\": 103, \"grp_person/language\": \"prs\", \"note\": \"شب\u200cها خواب بد می\u200cبیند\"}" {
		t.Errorf("Raw = %q", got)
	}
}

func TestJSONArrayBadElements(t *testing.T) {
	in := "\xEF\xBB\xBF[\n {\"id\":1},\n 42,\n [1,2],\n null,\n \"Jane\",\n {\"name\":\"Jos\xe9\"},\n {\"id\":7}\n]\n"
	src, err := OpenJSONArray(strings.NewReader(in), "a.json")
	if err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, src)
	want := []string{"id 1", "!a.json:element 2: the element is a number, not an object", "!a.json:element 3: the element is an array, not an object",
		"!a.json:element 4: the element is null, not an object", "!a.json:element 5: the element is a string, not an object",
		"!a.json:element 6: the element is not valid UTF-8 (at byte 13)", "id 7"}
	var got []string
	for _, r := range recs {
		if r.Err != nil {
			got = append(got, "!"+r.Err.Error())
		} else {
			got = append(got, fmt.Sprint("id ", r.JSON["id"]))
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("\n got %q\nwant %q", got, want)
	}
	if !errors.Is(recs[1].Err, ErrNotObject) || !errors.Is(recs[5].Err, ErrInvalidUTF8) {
		t.Errorf("kinds: %v %v", recs[1].Err, recs[5].Err)
	}
	if recs[6].Pos.Line != 8 {
		t.Errorf("last element on line %d", recs[6].Pos.Line)
	}
}

func TestJSONArrayFatal(t *testing.T) {
	tests := []struct {
		name string
		in   string
		recs int // elements returned before the error
		kind error
		msg  string
	}{
		{"syntax error", "[\n{\"a\":1},\n{\"name\": Jane},\n{\"a\":3}\n]", 1, ErrInvalidJSON, `reading "f.json": line 3 (element 2): invalid JSON: invalid character looking for beginning of value`},
		{"missing comma", "[{\"a\":1}\n{\"a\":2}]", 1, ErrInvalidJSON, `line 2 (element 2): invalid JSON: expected comma after array element`},
		{"truncated", "[{\"a\":1},\n{\"a\":", 1, ErrInvalidJSON, "the input ends inside the array"},
		{"not closed", "[{\"a\":1}", 1, ErrInvalidJSON, "the input ends inside the array"},
		{"trailing data", "[{\"a\":1}]\n{\"b\":2}", 1, ErrInvalidJSON, "after the array"},
		{"empty array", "[]", 0, io.EOF, ""},
		{"empty array and spaces", " [ ] \n", 0, io.EOF, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := OpenJSONArray(strings.NewReader(tt.in), "f.json")
			if err != nil {
				t.Fatal(err)
			}
			recs, err := drain(src, 100)
			if tt.kind == io.EOF {
				if err != nil || len(recs) != 0 {
					t.Errorf("%v %v", recs, err)
				}
				return
			}
			if len(recs) != tt.recs {
				t.Errorf("%d records before the error, want %d", len(recs), tt.recs)
			}
			if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %v, want %v saying %q", err, tt.kind, tt.msg)
			}
			if strings.Contains(fmt.Sprint(err), "Jane") {
				t.Errorf("err shows content: %v", err)
			}
			if _, again := src.Next(); again != err {
				t.Errorf("the error is not sticky: %v", again)
			}
		})
	}
	for in, want := range map[string]string{
		"":               "the file is empty",
		"  \n":           "the file is empty",
		`{"a":1}`:        "(it is an object)",
		`"text"`:         "(it is a string)",
		`12`:             "(it is a number)",
		"\xEF\xBB\xBF{}": "(it is an object)",
	} {
		if _, err := OpenJSONArray(strings.NewReader(in), "f.json"); !errors.Is(err, ErrNotArray) || !strings.Contains(err.Error(), want) {
			t.Errorf("OpenJSONArray(%q) = %v, want ErrNotArray %s", in, err, want)
		}
	}
	if _, err := OpenJSONArray(strings.NewReader("{x"), "f.json"); err == nil {
		t.Errorf("OpenJSONArray of invalid JSON: no error")
	}
}

func TestJSONArrayTooLarge(t *testing.T) {
	in := `[{"a":1},{"note":"` + strings.Repeat("x", 200_000) + `"},{"a":3}]`
	src, err := openJSONArray(strings.NewReader(in), "big.json", 1000)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := drain(src, 10)
	if len(recs) != 1 || !errors.Is(err, ErrRecordTooLarge) || !strings.Contains(err.Error(), "element 2") {
		t.Errorf("%d records, err %v", len(recs), err)
	}
}

// genJSONArray writes an array of n objects, one per line.
func genJSONArray(n int) []byte {
	var b bytes.Buffer
	b.WriteString("[\n")
	for i := 1; i <= n; i++ {
		if i > 1 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"Layla","note":"تحتاج إلى معالجة نفسية ناطقة بالعربية","needs":"housing legal_advice","score":14}`, i)
	}
	b.WriteString("\n]\n")
	return b.Bytes()
}

func TestJSONArrayStreaming(t *testing.T) {
	data := genJSONArray(30000) // about 4 MB
	src, err := OpenJSONArray(&failingReader{data: data[:1<<20], err: errDisk}, "big.json")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := drain(src, 1<<20)
	if !errors.Is(err, errDisk) {
		t.Fatalf("err = %v, want the reader's error", err)
	}
	if len(recs) < 7000 {
		t.Errorf("%d elements before the failure", len(recs))
	}
	cr := &countingReader{r: bytes.NewReader(data)}
	src, _ = OpenJSONArray(cr, "big.json")
	n, consumed := 0, int64(0)
	for {
		r, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil || r.Err != nil {
			t.Fatal(err, r.Err)
		}
		n++
		if r.Pos.Line != n+1 {
			t.Fatalf("element %d on line %d", n, r.Pos.Line)
		}
		consumed += int64(bytes.Index(data[consumed:], r.Raw) + len(r.Raw))
		if cr.n-consumed > 2*readBufferSize {
			t.Fatalf("after element %d the source has read %d bytes ahead", n, cr.n-consumed)
		}
	}
	if n != 30000 {
		t.Errorf("%d elements", n)
	}
	if lc := src.(*jsonArraySource).lc; lc != nil && len(lc.buf) > 2*readBufferSize {
		t.Errorf("line counter holds %d bytes", len(lc.buf))
	}
}

func TestNDJSON(t *testing.T) {
	src, err := OpenNDJSON(openFixture(t, "json/referrals.ndjson"), "referrals.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	recs := readAll(t, src)
	type want struct {
		line int
		id   string
		kind error
		msg  string
	}
	wants := []want{
		{line: 1, id: "R-1"},
		{line: 3, id: "R-2"},
		{line: 4, kind: ErrInvalidJSON, msg: "referrals.ndjson:4: invalid character looking for beginning of value at byte 33 of the line"},
		{line: 5, kind: ErrNotObject, msg: "referrals.ndjson:5: the line is an array, not an object"},
		{line: 6, id: "R-5"},
		{line: 7, kind: ErrInvalidJSON, msg: "referrals.ndjson:7: data after the value, which ends at byte 21 of the line"},
		{line: 8, id: "R-7"},
	}
	if len(recs) != len(wants) {
		t.Fatalf("%d records, want %d: %v", len(recs), len(wants), recs)
	}
	for i, w := range wants {
		r := recs[i]
		if r.Pos != (Position{File: "referrals.ndjson", Unit: UnitLine, Row: w.line, Line: w.line}) {
			t.Errorf("record %d: position %+v", i, r.Pos)
		}
		if w.kind != nil {
			if !errors.Is(r.Err, w.kind) || r.Err.Error() != w.msg || r.JSON != nil {
				t.Errorf("record %d: Err = %v\nwant %v: %s", i, r.Err, w.kind, w.msg)
			}
			continue
		}
		if r.Err != nil || r.JSON["referral_id"] != w.id {
			t.Errorf("record %d: %v %v", i, r.Err, r.JSON)
		}
	}
	if recs[0].JSON["note"] != "تحتاج إلى معالجة" || recs[1].JSON["score"] != json.Number("9.50") || recs[6].JSON["note"] != "ሰላም" {
		t.Errorf("values: %q %#v %q", recs[0].JSON["note"], recs[1].JSON["score"], recs[6].JSON["note"])
	}
	if got := string(recs[0].Raw); got != `{"referral_id":"R-1","score":14,"note":"تحتاج إلى معالجة"}` {
		t.Errorf("Raw = %q", got)
	}
}

func TestNDJSONBadLines(t *testing.T) {
	in := "{\"a\":1}\n{\"name\":\"Jos\xe9\"}\n{\"a\":\n\n{\"a\":4}\n" + `{"note":"` + strings.Repeat("x", 300) + `"}` + "\n{\"a\":6}\n   \n"
	src, _ := openNDJSON(strings.NewReader(in), "b.ndjson", 100)
	recs := readAll(t, src)
	var got []string
	for _, r := range recs {
		if r.Err != nil {
			got = append(got, r.Err.Error())
		} else {
			got = append(got, fmt.Sprintf("%s a=%v", r.Pos, r.JSON["a"]))
		}
	}
	want := []string{
		"b.ndjson:1 a=1",
		"b.ndjson:2: the line is not valid UTF-8 (at byte 13)",
		"b.ndjson:3: the line ends inside a value",
		"b.ndjson:5 a=4",
		"b.ndjson:6: the line is longer than 100 bytes",
		"b.ndjson:7 a=6",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("\n got %q\nwant %q", got, want)
	}
	if !recs[4].RawTruncated {
		t.Error("a too long line's Raw is not marked truncated")
	}
	// A failing reader is fatal and names the line.
	src, _ = OpenNDJSON(&failingReader{data: []byte("{\"a\":1}\n{\"a\""), err: errDisk}, "f.ndjson")
	recs, err := drain(src, 10)
	if len(recs) != 1 || !errors.Is(err, errDisk) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("%v %v", recs, err)
	}
}

func TestNDJSONStreaming(t *testing.T) {
	var b bytes.Buffer
	for i := 1; b.Len() < 4<<20; i++ {
		fmt.Fprintf(&b, `{"id":%d,"note":"Хоче знайти групу підтримки для матерів"}`+"\n", i)
	}
	cr := &countingReader{r: bytes.NewReader(b.Bytes())}
	src, _ := OpenNDJSON(cr, "big.ndjson")
	var consumed int64
	for {
		r, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil || r.Err != nil {
			t.Fatal(err, r.Err)
		}
		consumed += int64(len(r.Raw)) + 1
		if cr.n-consumed > readBufferSize {
			t.Fatalf("%s: read %d bytes ahead", r.Pos, cr.n-consumed)
		}
	}
	if consumed != int64(b.Len()) {
		t.Errorf("consumed %d of %d", consumed, b.Len())
	}
}

func TestJSONObject(t *testing.T) {
	bundle := `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","name":[{"given":["Олена"]}]}}],"total":1.0}`
	src, err := OpenJSONObject(strings.NewReader("\xEF\xBB\xBF"+bundle+"\n"), "bundle.json")
	if err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, src)
	if len(recs) != 1 || recs[0].Err != nil || recs[0].JSON["resourceType"] != "Bundle" || recs[0].JSON["total"] != json.Number("1.0") {
		t.Fatalf("%v", recs)
	}
	if recs[0].Pos.String() != "bundle.json" {
		t.Errorf("position %q", recs[0].Pos)
	}
	for in, kind := range map[string]error{"[1]": ErrNotObject, "{": ErrInvalidJSON, "": ErrInvalidJSON, "{}{}": ErrInvalidJSON, "{\"a\":\"\xff\"}": ErrInvalidUTF8} {
		src, _ := OpenJSONObject(strings.NewReader(in), "d.json")
		recs := readAll(t, src)
		if len(recs) != 1 || !errors.Is(recs[0].Err, kind) {
			t.Errorf("%q: %v", in, recs)
		}
	}
	src, _ = OpenJSONObject(&failingReader{err: errDisk}, "d.json")
	if _, err := src.Next(); !errors.Is(err, errDisk) {
		t.Errorf("reader failure: %v", err)
	}
}

func TestJSONClose(t *testing.T) {
	a, _ := OpenJSONArray(strings.NewReader("[]"), "a")
	n, _ := OpenNDJSON(strings.NewReader(""), "n")
	o, _ := OpenJSONObject(strings.NewReader("{}"), "o")
	for _, src := range []Source{a, n, o} {
		for i := 0; i < 2; i++ { // Close is idempotent
			if err := src.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := src.Next(); !errors.Is(err, ErrClosed) {
			t.Errorf("%T: Next after Close = %v", src, err)
		}
	}
}
