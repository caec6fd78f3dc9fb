package connectors

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// addFixtures seeds a fuzz test with the files of a fixture folder.
func addFixtures(f *testing.F, pattern string, add func([]byte)) {
	files, err := filepath.Glob(filepath.Join(fixtures, pattern))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures %s: %v", pattern, err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		add(b)
	}
}

// checkProgress checks what every source promises whatever its input: it
// ends (at most one record per line, plus one; a JSON array can have
// several elements on a line, but each takes two bytes), positions go
// forward, a rejected record carries a *RecordError at its own position.
func checkProgress(t *testing.T, data []byte, recs []Record) {
	t.Helper()
	lines := bytes.Count(data, []byte{'\n'}) + bytes.Count(data, []byte{'\r'}) + 1
	if len(recs) > 0 && recs[0].Pos.Unit == UnitElement {
		lines = len(data)/2 + 1
	}
	if len(recs) > lines {
		t.Fatalf("%d records from %d lines", len(recs), lines)
	}
	prevLine := 0
	for i, r := range recs {
		if r.Pos.Line < prevLine || r.Pos.Line < 1 {
			t.Fatalf("record %d starts on line %d, after line %d", i, r.Pos.Line, prevLine)
		}
		prevLine = r.Pos.Line
		if r.Err != nil {
			var re *RecordError
			if !errors.As(r.Err, &re) || re.Pos != r.Pos || re.Kind == nil {
				t.Fatalf("record %d: Err %#v", i, r.Err)
			}
		}
		if len(r.Raw) > MaxRawBytes {
			t.Fatalf("record %d: Raw is %d bytes", i, len(r.Raw))
		}
	}
}

func FuzzCSV(f *testing.F) {
	addFixtures(f, "csv/*", func(b []byte) { f.Add(b, uint8(0)) })
	for _, s := range []string{
		"a,b\n1,\"x\n2,y\n", "a,b\n1,\"x\"y\n", "a,b\n\"\"\"\",\"\n\"\n", "a\n\xff\n", "\xef\xbb\xbfa;b\r\n1;2\r\n",
		"a,b\n1,\"" + strings.Repeat("x\n", 100), "a,a\n", ",\n", "",
	} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		opts := CSVOptions{Delimiter: []rune{',', ';', '\t', '|'}[mode%4]}
		if mode&4 != 0 {
			opts.Encoding = "windows-1252"
		}
		if mode&8 != 0 {
			opts.Comment = '#'
		}
		if mode&16 != 0 {
			opts.MaxRecordBytes = 64
		}
		src, err := OpenCSV(bytes.NewReader(data), "fuzz.csv", opts)
		if err != nil {
			if src != nil {
				t.Fatal("a source and an error")
			}
			return
		}
		header := src.(*csvSource).header
		recs, err := drain(src, len(data)+1)
		if err != nil && !errors.Is(err, ErrUnrecoverable) {
			t.Fatal(err)
		}
		checkProgress(t, data, recs)
		for i, r := range recs {
			if r.Pos.Row != i+1 {
				t.Fatalf("record %d has row %d", i, r.Pos.Row)
			}
			if r.Err != nil {
				if r.Fields != nil {
					t.Fatalf("row %d: rejected with Fields", r.Pos.Row)
				}
				continue
			}
			if len(r.Fields) != len(header) {
				t.Fatalf("row %d: %d fields for %d columns", r.Pos.Row, len(r.Fields), len(header))
			}
			for k, v := range r.Fields {
				if !utf8.ValidString(v) {
					t.Fatalf("row %d: column %q is not UTF-8", r.Pos.Row, k)
				}
			}
		}
		if mode&31 == 0 {
			compareWithEncodingCSV(t, data, header, recs)
		}
	})
}

// compareWithEncodingCSV checks that, on input the standard library reads
// without any error, both readers agree on every row.
func compareWithEncodingCSV(t *testing.T, data []byte, header []string, recs []Record) {
	if !utf8.Valid(data) || bytes.HasPrefix(data, utf8BOM) {
		return
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	want, err := r.ReadAll()
	if err != nil || len(want) == 0 {
		return
	}
	want = want[1:]
	if len(want) != len(recs) {
		t.Fatalf("%d rows, encoding/csv reads %d", len(recs), len(want))
	}
	for i, row := range want {
		if len(row) != len(header) {
			if !errors.Is(recs[i].Err, ErrColumnCount) {
				t.Fatalf("row %d: %d cells for %d columns, but Err = %v", i+1, len(row), len(header), recs[i].Err)
			}
			continue
		}
		if recs[i].Err != nil {
			t.Fatalf("row %d: %v, but encoding/csv reads it", i+1, recs[i].Err)
		}
		for c, h := range header {
			if recs[i].Fields[h] != row[c] {
				t.Fatalf("row %d column %q: %q, encoding/csv reads %q", i+1, h, recs[i].Fields[h], row[c])
			}
		}
	}
}

func FuzzJSONArray(f *testing.F) {
	addFixtures(f, "json/*.json", func(b []byte) { f.Add(b) })
	for _, s := range []string{`[]`, `[1,{"a":2},[3],null,"x"]`, `[{"a":1}`, `[{"a":1}]]`, "[{\"a\":\"\xff\"}]", `[{"a":1e999}]`, `{"a":[]}`, `[{"a":{"b":[{"c":1}]}} , {}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		src, err := openJSONArray(bytes.NewReader(data), "fuzz.json", 4096)
		if err != nil {
			return
		}
		recs, fatal := drain(src, len(data)+1)
		checkProgress(t, data, recs)
		for i, r := range recs {
			if r.Pos.Row != i+1 {
				t.Fatalf("record %d is element %d", i, r.Pos.Row)
			}
			if (r.Err == nil) == (r.JSON == nil) {
				t.Fatalf("element %d: Err %v and JSON %v", r.Pos.Row, r.Err, r.JSON)
			}
		}
		// On a valid array, every element is returned and decodes as encoding/json decodes it.
		body := bytes.TrimPrefix(data, utf8BOM)
		if !json.Valid(body) || !utf8.Valid(body) || len(body) > 4096 {
			return
		}
		d := json.NewDecoder(bytes.NewReader(body))
		d.UseNumber()
		var all []any
		if d.Decode(&all) != nil {
			return
		}
		if fatal != nil || len(recs) != len(all) {
			t.Fatalf("valid array: %d of %d elements, err %v", len(recs), len(all), fatal)
		}
		for i, v := range all {
			if m, ok := v.(map[string]any); ok && !reflect.DeepEqual(recs[i].JSON, m) {
				t.Fatalf("element %d: %v, encoding/json reads %v", i+1, recs[i].JSON, m)
			}
		}
	})
}

func FuzzNDJSON(f *testing.F) {
	addFixtures(f, "json/*.ndjson", func(b []byte) { f.Add(b) })
	f.Add([]byte("{}\n\n[]\n{\"a\":1}{}\n\xff\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		src, _ := openNDJSON(bytes.NewReader(data), "fuzz.ndjson", 256)
		recs, err := drain(src, len(data)+1)
		if err != nil {
			t.Fatal(err)
		}
		checkProgress(t, data, recs)
		prev := 0
		for _, r := range recs {
			if r.Pos.Row <= prev {
				t.Fatalf("line %d after line %d", r.Pos.Row, prev)
			}
			prev = r.Pos.Row
			if (r.Err == nil) == (r.JSON == nil) {
				t.Fatalf("line %d: Err %v and JSON %v", r.Pos.Row, r.Err, r.JSON)
			}
		}
	})
}

var fuzzPaths = []string{"MSH-9", "MSH-9.2", "MSH-1", "MSH-2", "PID-3[2].1", "PID-5.1.2", "PRD[2]-2.1.1", "OBX[3]-5[2].3.1", "NTE-3"}

func FuzzHL7v2(f *testing.F) {
	addFixtures(f, "hl7v2/*.hl7", func(b []byte) { f.Add(b) })
	for _, s := range []string{
		"MSH|^~\\&#|A||||||ADT^A01|1|P|2.7\rPID|1||\\X41\\\\.br\\\\E\\~x^y&z\r",
		"MSH|^~\\&\rBHS|^~\\&\rBTS|0\rFTS|1\r", "MSH\r", "MSH|\r", "MSH||\r", "\x0bMSH|^~\\&|||||||A^B|1\r\x1c\r",
		"FHS|^~\\&\rFHS|^~\\&\rBHS|^~\\&\rBHS|^~\\&\rPID|1\rBTS|x\r",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		src := openHL7v2(bytes.NewReader(data), "fuzz.hl7", 4096)
		recs, err := drain(src, len(data)+1)
		if err != nil {
			t.Fatal(err)
		}
		checkProgress(t, data, recs)
		raw := 0
		for i, r := range recs {
			if r.Pos.Message != i+1 {
				t.Fatalf("record %d is message %d", i, r.Pos.Message)
			}
			raw += len(r.Raw)
			if r.Err == nil {
				if r.HL7 == nil || r.HL7.MessageCode() == "" || r.HL7.Segments[0].Name != "MSH" {
					t.Fatalf("message %d accepted without MSH-9", r.Pos.Message)
				}
				for _, seg := range r.HL7.Segments {
					if !validSegmentName(seg.Name) {
						t.Fatalf("message %d accepted with segment %q", r.Pos.Message, seg.Name)
					}
				}
			}
			if r.HL7 != nil {
				for _, p := range fuzzPaths {
					r.HL7.Get(p)
					r.HL7.All(p)
				}
			}
		}
		if raw > len(data) {
			t.Fatalf("Raw totals %d bytes of %d", raw, len(data))
		}
		if m, err := ParseHL7Message(data); m != nil {
			for _, p := range fuzzPaths {
				m.Get(p)
			}
			_ = err
		}
	})
}

func FuzzHL7Path(f *testing.F) {
	for _, p := range append(fuzzPaths, "PID", "PID-0", "PID[0]-1", "ZZ1-999999", "PID-1.2.3.4") {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseHL7Path(s)
		if err != nil {
			return
		}
		again, err := ParseHL7Path(p.String())
		if err != nil || again != p {
			t.Fatalf("%q parses to %+v, which prints as %q and parses to %+v, %v", s, p, p.String(), again, err)
		}
	})
}

func FuzzHL7Unescape(f *testing.F) {
	for _, s := range []string{`A\F\B`, `\X41\`, `\XE9\`, `\.sp99\`, `\.sk5\`, `\`, `\\`, `\H\x\N\`, `\Cxx\`} {
		f.Add(s)
	}
	d := HL7Delimiters{'|', '^', '~', '\\', '&', '#'}
	f.Fuzz(func(t *testing.T, s string) {
		out := d.Unescape(s)
		if !strings.Contains(s, `\`) && out != s {
			t.Fatalf("Unescape changed %q without an escape to %q", s, out)
		}
		if utf8.ValidString(s) && !utf8.ValidString(out) {
			t.Fatalf("Unescape(%q) = %q is not UTF-8", s, out)
		}
		if len(out) > 100*len(s)+100 {
			t.Fatalf("Unescape(%q) grew to %d bytes", s, len(out))
		}
	})
}
