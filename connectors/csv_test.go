package connectors

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestCSVMultilingual(t *testing.T) {
	src, err := OpenCSV(openFixture(t, "csv/multilingual.csv"), "multilingual.csv", CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	recs := readAll(t, src)
	want := []map[string]string{
		{"referral_id": "R-1", "given_name": "فاطمة", "language": "ar", "notes": "تحتاج إلى معالجة نفسية ناطقة بالعربية", "reason": "Low mood, poor sleep"},
		{"referral_id": "R-2", "given_name": "Олена", "language": "uk", "notes": "Хоче знайти групу підтримки для матерів\nПрацює вдома", "reason": `Says "isolated"`},
		{"referral_id": "R-3", "given_name": "ذکیه", "language": "prs", "notes": "شب\u200cها خواب بد می\u200cبیند", "reason": ""},
		{"referral_id": "R-4", "given_name": "ሰላም", "language": "ti", "notes": "ናይ ትግርኛ ተርጓሚ የድሊ", "reason": "Needs an interpreter; GP registration"},
	}
	wantLines := []int{2, 3, 5, 6}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	for i, r := range recs {
		if r.Err != nil {
			t.Fatalf("row %d: %v", i+1, r.Err)
		}
		if !reflect.DeepEqual(r.Fields, want[i]) {
			t.Errorf("row %d:\n got %q\nwant %q", i+1, r.Fields, want[i])
		}
		if r.Pos != (Position{File: "multilingual.csv", Unit: UnitRow, Row: i + 1, Line: wantLines[i]}) {
			t.Errorf("row %d: position %+v", i+1, r.Pos)
		}
		if r.JSON != nil || r.HL7 != nil {
			t.Errorf("row %d: JSON or HL7 set", i+1)
		}
	}
	// Raw is the row as written: quotes, CRLF and all.
	if got := string(recs[1].Raw); got != "R-2,Олена,uk,\"Хоче знайти групу підтримки для матерів\r\nПрацює вдома\",\"Says \"\"isolated\"\"\"\r\n" {
		t.Errorf("Raw = %q", got)
	}
}

func TestCSVEncodings(t *testing.T) {
	tests := []struct {
		file string
		opts CSVOptions
		want []map[string]string
	}{
		{"csv/semicolon-1252.csv", CSVOptions{Delimiter: ';', Encoding: "windows-1252"}, []map[string]string{
			{"id": "1", "name": "José Müller", "city": "Genève", "note": "costs 20 €"},
			{"id": "2", "name": "Zoë O’Brien", "city": "Kraków", "note": "“urgent” – today"},
		}},
		{"csv/semicolon-1252.csv", CSVOptions{Delimiter: ';', Encoding: "CP1252"}, []map[string]string{
			{"id": "1", "name": "José Müller", "city": "Genève", "note": "costs 20 €"},
			{"id": "2", "name": "Zoë O’Brien", "city": "Kraków", "note": "“urgent” – today"},
		}},
		{"csv/latin1.tsv", CSVOptions{Delimiter: '\t', Encoding: "latin-1"}, []map[string]string{
			{"id": "1", "name": "José Müller", "city": "Genève"},
			{"id": "2", "name": "Anaïs Çelik", "city": "São Paulo"},
		}},
		{"csv/latin1.tsv", CSVOptions{Delimiter: '\t', Encoding: "ISO-8859-1"}, []map[string]string{
			{"id": "1", "name": "José Müller", "city": "Genève"},
			{"id": "2", "name": "Anaïs Çelik", "city": "São Paulo"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file+" "+tt.opts.Encoding, func(t *testing.T) {
			src, err := OpenCSV(openFixture(t, tt.file), tt.file, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			recs := readAll(t, src)
			var got []map[string]string
			for _, r := range recs {
				if r.Err != nil {
					t.Fatal(r.Err)
				}
				got = append(got, r.Fields)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("\n got %q\nwant %q", got, tt.want)
			}
		})
	}
	// Undecoded, the Windows-1252 file is invalid UTF-8: each row is rejected
	// naming the columns, never the values.
	src, _ := OpenCSV(openFixture(t, "csv/semicolon-1252.csv"), "x.csv", CSVOptions{Delimiter: ';'})
	recs := readAll(t, src)
	if len(recs) != 2 || !errors.Is(recs[0].Err, ErrInvalidUTF8) || recs[0].Err.Error() != `x.csv:1: columns "name", "city", "note": invalid UTF-8` {
		t.Errorf("records %v", recs)
	}
	// A byte order mark wins over the option: UTF-8 and UTF-16 files.
	boms := map[string][]byte{
		"utf-8 BOM":    append([]byte("\xEF\xBB\xBF"), "id,name\n1,Zoë\n"...),
		"utf-16le BOM": {0xFF, 0xFE, 'i', 0, 'd', 0, ',', 0, 'n', 0, 'a', 0, 'm', 0, 'e', 0, '\n', 0, '1', 0, ',', 0, 'Z', 0, 'o', 0, 0xEB, 0, '\n', 0},
		"utf-16be BOM": {0xFE, 0xFF, 0, 'i', 0, 'd', 0, ',', 0, 'n', 0, 'a', 0, 'm', 0, 'e', 0, '\n', 0, '1', 0, ',', 0, 'Z', 0, 'o', 0, 0xEB, 0, '\n'},
	}
	for name, b := range boms {
		src, err := OpenCSV(bytes.NewReader(b), name, CSVOptions{Encoding: "windows-1252"})
		if err != nil {
			t.Fatal(name, err)
		}
		recs := readAll(t, src)
		if len(recs) != 1 || recs[0].Err != nil || recs[0].Fields["name"] != "Zoë" {
			t.Errorf("%s: %v", name, recs)
		}
	}
}

func TestCSVDelimiters(t *testing.T) {
	for _, d := range []rune{',', ';', '\t', '|'} {
		in := strings.ReplaceAll("id,name,note\n1,Jane,\"a,b;c\td|e\"\n2,Amir,plain\n", ",", string(d))
		// the quoted cell keeps every delimiter but its own
		src, err := OpenCSV(strings.NewReader(in), "d.csv", CSVOptions{Delimiter: d})
		if err != nil {
			t.Fatal(err)
		}
		recs := readAll(t, src)
		if len(recs) != 2 || recs[0].Err != nil || recs[1].Err != nil {
			t.Fatalf("%q: %v", d, recs)
		}
		wantNote := strings.ReplaceAll("a,b;c\td|e", ",", string(d))
		if recs[0].Fields["note"] != wantNote || recs[1].Fields["name"] != "Amir" {
			t.Errorf("%q: %q", d, recs[0].Fields)
		}
	}
}

func TestCSVBadRows(t *testing.T) {
	src, err := OpenCSV(openFixture(t, "csv/bad-rows.csv"), "bad-rows.csv", CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, src)
	type want struct {
		line   int
		id     string // the id of a good row
		kind   error
		reason string
	}
	wants := []want{
		{line: 2, id: "1"},
		{line: 3, kind: ErrColumnCount, reason: "bad-rows.csv:2: expected 3 columns, found 2"},
		{line: 4, kind: ErrColumnCount, reason: "bad-rows.csv:3: expected 3 columns, found 4"},
		{line: 5, kind: ErrInvalidUTF8, reason: `bad-rows.csv:4: column "name": invalid UTF-8`},
		{line: 6, kind: ErrUnbalancedQuote, reason: `bad-rows.csv:5: column "notes": a quote inside a quoted cell must be doubled (line 6)`},
		{line: 7, kind: ErrUnbalancedQuote, reason: `bad-rows.csv:6: column "name": the quoted cell opened on line 7 is broken (a quote on line 8 is neither doubled nor followed by a delimiter)`},
		{line: 8, id: "7"},
		{line: 10, id: "8"},
		{line: 12, id: "9"},
	}
	if len(recs) != len(wants) {
		t.Fatalf("%d records, want %d: %v", len(recs), len(wants), recs)
	}
	for i, w := range wants {
		r := recs[i]
		if r.Pos.Row != i+1 || r.Pos.Line != w.line {
			t.Errorf("record %d: position %+v, want row %d line %d", i, r.Pos, i+1, w.line)
		}
		if len(r.Raw) == 0 {
			t.Errorf("record %d: no Raw", i)
		}
		if w.kind == nil {
			if r.Err != nil || r.Fields["id"] != w.id {
				t.Errorf("record %d: %v %q, want id %s", i, r.Err, r.Fields, w.id)
			}
			continue
		}
		if !errors.Is(r.Err, w.kind) || r.Err.Error() != w.reason {
			t.Errorf("record %d: Err = %v\nwant %v: %s", i, r.Err, w.kind, w.reason)
		}
		if r.Fields != nil {
			t.Errorf("record %d: rejected with Fields", i)
		}
		for _, secret := range []string{"Jane", "Jos", "never closed", " twice"} {
			if strings.Contains(r.Err.(*RecordError).Reason, secret) {
				t.Errorf("record %d: Err shows %q: %v", i, secret, r.Err)
			}
		}
	}
	if got := recs[6].Fields["notes"]; got != "two\nlines" {
		t.Errorf("notes after the broken quote = %q", got)
	}
	if got := recs[7].Fields["notes"]; got != `5'10" tall` {
		t.Errorf("bare quote = %q", got)
	}
	if got := string(recs[5].Raw); got != "6,\"Jane,never closed\n" {
		t.Errorf("Raw of the broken row = %q", got)
	}
}

func TestCSVQuotes(t *testing.T) {
	const header = "a,b,c\n"
	tests := []struct {
		name string
		in   string
		want []string // per record: "a|b|c" or "!kind"
	}{
		{"doubled quotes", `1,"say ""hi""",""` + "\n", []string{`1|say "hi"|`}},
		{"quoted delimiter and newline", "1,\"x,y\nz\",3\n", []string{"1|x,y\nz|3"}},
		{"CRLF inside a quoted cell becomes LF", "1,\"x\r\ny\",3\r\n", []string{"1|x\ny|3"}},
		{"lone CR kept", "1,x\ry,3\n", []string{"1|x\ry|3"}},
		{"empty cells", ",,\n", []string{"||"}},
		{"quote opened at the end", "1,2,\"\n", []string{"!" + ErrUnbalancedQuote.Error()}},
		{"never closed, later rows read again", "1,\"x,3\n2,b,c\n3,b,c\n", []string{"!" + ErrUnbalancedQuote.Error(), "2|b|c", "3|b|c"}},
		{"never closed, later quoted rows read again", "1,\"x,3\n2,\"b\",c\n3,b,\"c\"\n", []string{"!" + ErrUnbalancedQuote.Error(), "2|b|c", "3|b|c"}},
		{"broken by a later row's quote", "1,\"x,3\n2,b,\"c\n", []string{"!" + ErrUnbalancedQuote.Error(), "!" + ErrUnbalancedQuote.Error()}},
		{"closed by a later row's quote", "1,\"x\n2,b\",c\n", []string{"1|x\n2,b|c"}}, // indistinguishable from a real multi-line cell
		{"text after a closing quote", "1,\"x\"y,3\n2,b,c\n", []string{"!" + ErrUnbalancedQuote.Error(), "2|b|c"}},
		{"space before a quote is data", "1, \"x\",3\n", []string{`1| "x"|3`}},
		{"trailing delimiter", "1,2,3,\n", []string{"!" + ErrColumnCount.Error()}},
		{"whitespace-only line is a row", "  \n1,2,3\n", []string{"!" + ErrColumnCount.Error(), "1|2|3"}},
		{"blank lines", "\n\r\n1,2,3\n\n", []string{"1|2|3"}},
		{"no final newline", "1,2,3", []string{"1|2|3"}},
		{"final CR", "1,2,3\r", []string{"1|2|3"}},
		{"quoted last cell at EOF", "1,2,\"3\"", []string{"1|2|3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := OpenCSV(strings.NewReader(header+tt.in), "q.csv", CSVOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range readAll(t, src) {
				if r.Err != nil {
					got = append(got, "!"+r.Err.(*RecordError).Kind.Error())
					continue
				}
				got = append(got, r.Fields["a"]+"|"+r.Fields["b"]+"|"+r.Fields["c"])
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestCSVComments(t *testing.T) {
	in := "# exported 2026-11-20\nid,name\n# a note\n1,\"#not a comment\"\n#2,skipped\n3,x\n"
	src, err := OpenCSV(strings.NewReader(in), "c.csv", CSVOptions{Comment: '#'})
	if err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, src)
	if len(recs) != 2 || recs[0].Fields["name"] != "#not a comment" || recs[1].Fields["id"] != "3" || recs[1].Pos.Line != 6 || recs[1].Pos.Row != 2 {
		t.Errorf("records %v", recs)
	}
}

func TestCSVLimits(t *testing.T) {
	long := strings.Repeat("x", 300)
	in := "id,note\n1,short\n2," + long + "\n3,short\n"
	src, err := OpenCSV(strings.NewReader(in), "l.csv", CSVOptions{MaxRecordBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, src)
	if len(recs) != 3 || recs[0].Err != nil || !errors.Is(recs[1].Err, ErrRecordTooLarge) || recs[2].Fields["id"] != "3" || recs[2].Pos.Line != 4 {
		t.Fatalf("records %v", recs)
	}
	// An unclosed quote stops at the limit; the rows after it are read again.
	var b strings.Builder
	b.WriteString("id,note\n1,\"never closed\n")
	for i := 2; i <= 50; i++ {
		fmt.Fprintf(&b, "%d,row\n", i)
	}
	src, _ = OpenCSV(strings.NewReader(b.String()), "l.csv", CSVOptions{MaxRecordBytes: 100})
	recs = readAll(t, src)
	if len(recs) != 50 || !errors.Is(recs[0].Err, ErrUnbalancedQuote) || !strings.Contains(recs[0].Err.Error(), "not closed within 100 bytes") {
		t.Fatalf("%d records, first %v", len(recs), recs[0].Err)
	}
	for i, r := range recs[1:] {
		if r.Err != nil || r.Fields["id"] != fmt.Sprint(i+2) || r.Pos.Line != i+3 {
			t.Errorf("record %d: %v %v %+v", i+2, r.Err, r.Fields, r.Pos)
		}
	}
}

func TestCSVHeaderErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		opts CSVOptions
		kind error
		msg  string
	}{
		{"empty", "", CSVOptions{}, ErrNoHeader, `reading "h.csv": no CSV header row: the file is empty`},
		{"only blank lines", "\n\n", CSVOptions{}, ErrNoHeader, "no CSV header row"},
		{"duplicate", "id,name, id\n", CSVOptions{}, ErrBadHeader, `reading "h.csv": line 1: unusable CSV header: columns 1 and 3 are both named "id"`},
		{"empty name", "id,,name\n", CSVOptions{}, ErrBadHeader, "column 2 has no name"},
		{"invalid UTF-8", "id,n\xe4me\n", CSVOptions{}, ErrBadHeader, "the name of column 2 is not valid UTF-8"},
		{"unclosed quote", "id,\"name\n1,2\n", CSVOptions{}, ErrBadHeader, "line 1: unusable CSV header: column 2: the quoted cell opened on line 1 is never closed"},
		{"unknown encoding", "id\n", CSVOptions{Encoding: "ebcdic"}, ErrUnknownEncoding, `unknown encoding "ebcdic"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := OpenCSV(strings.NewReader(tt.in), "h.csv", tt.opts)
			if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %v, want %v saying %q", err, tt.kind, tt.msg)
			}
		})
	}
	for _, opts := range []CSVOptions{{Delimiter: '"'}, {Delimiter: '\n'}, {Delimiter: '€'}, {Comment: ','}, {Comment: '"'}} {
		if _, err := OpenCSV(strings.NewReader("a\n"), "h.csv", opts); err == nil {
			t.Errorf("%+v: no error", opts)
		}
	}
	// A header alone is a file with no rows.
	src, err := OpenCSV(strings.NewReader("\xEF\xBB\xBF id , name \n"), "h.csv", CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Next(); err != io.EOF {
		t.Errorf("Next = %v, want io.EOF", err)
	}
	if _, err := src.Next(); err != io.EOF {
		t.Errorf("second Next = %v, want io.EOF", err)
	}
	if got := src.(*csvSource).header; !reflect.DeepEqual(got, []string{"id", "name"}) {
		t.Errorf("header = %q", got)
	}
}

// genCSV writes a CSV with a header and rows rows of 25 columns.
func genCSV(rows int) []byte {
	var b bytes.Buffer
	for c := 0; c < 25; c++ {
		if c > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "col%02d", c)
	}
	b.WriteByte('\n')
	for r := 1; r <= rows; r++ {
		fmt.Fprintf(&b, "R-%d,C-%d,Layla,Haddad,F,03/1991,Arabic;English,arabic,yes,+30 210 000 0000,,Phone,SY,Kurdish,forced-migrant,asylum-seeker,2024,\"Crossed via Türkiye, 8 months in a camp\",mental-health,housing,moderate,\"Low mood and poor sleep\",ngo-harbour,20/11/2026 09:30,تحتاج إلى معالجة نفسية ناطقة بالعربية\n", r, r)
	}
	return b.Bytes()
}

func TestCSVStreaming(t *testing.T) {
	data := genCSV(12000) // about 4 MB
	// The reader fails after 1 MB: every row before it is still returned.
	src, err := OpenCSV(&failingReader{data: data[:1<<20], err: errDisk}, "big.csv", CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := drain(src, 1<<20)
	if !errors.Is(err, errDisk) || !strings.Contains(err.Error(), `reading "big.csv": line `) {
		t.Fatalf("err = %v, want the reader's error with the line", err)
	}
	if len(recs) < 2500 {
		t.Errorf("%d rows before the failure", len(recs))
	}
	if _, err2 := src.Next(); err2 != err {
		t.Errorf("the fatal error is not sticky: %v", err2)
	}
	// The source reads no further ahead than its buffer, however large the file.
	cr := &countingReader{r: bytes.NewReader(data)}
	src, _ = OpenCSV(cr, "big.csv", CSVOptions{})
	consumed := int64(bytes.IndexByte(data, '\n') + 1)
	rows := 0
	for {
		r, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil || r.Err != nil {
			t.Fatal(err, r.Err)
		}
		rows++
		consumed += int64(len(r.Raw))
		if ahead := cr.n - consumed; ahead > readBufferSize {
			t.Fatalf("after row %d the source has read %d bytes ahead", rows, ahead)
		}
	}
	if rows != 12000 || consumed != int64(len(data)) {
		t.Errorf("%d rows, %d of %d bytes", rows, consumed, len(data))
	}
}

func TestCSVManyBrokenQuotes(t *testing.T) {
	// Every row opens a quote that a later row's quote breaks: each is
	// reported and reading still ends, in linear time.
	var b strings.Builder
	b.WriteString("a,b\n")
	for i := 0; i < 20000; i++ {
		b.WriteString("1,\"x\n")
	}
	src, err := OpenCSV(strings.NewReader(b.String()), "q.csv", CSVOptions{MaxRecordBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := drain(src, 1<<20)
	if err != nil && !errors.Is(err, ErrUnrecoverable) {
		t.Fatal(err)
	}
	if len(recs) == 0 {
		t.Fatal("no records")
	}
	for _, r := range recs {
		if r.Err == nil {
			t.Fatalf("%s: accepted %q", r.Pos, r.Fields)
		}
	}
}

func TestCSVClose(t *testing.T) {
	src, _ := OpenCSV(strings.NewReader("a\n1\n"), "c.csv", CSVOptions{})
	for i := 0; i < 2; i++ { // Close is idempotent
		if err := src.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := src.Next(); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close = %v", err)
	}
}
