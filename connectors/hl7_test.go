package connectors

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The fixtures are copied from microsoft/FHIR-Converter and
// johnpaulett/python-hl7 (see testdata/NOTICE.md).
func TestHL7v2Fixtures(t *testing.T) {
	tests := []struct {
		file string
		// one entry per record: "TYPE CONTROLID" for a message, "!kind" for a rejected record
		want []string
	}{
		{"REF-I12-01.hl7", []string{"REF^I12 MSG00112"}},
		{"REF-I12-02.hl7", []string{"REF^I12 MSG00012"}},
		{"ADT04-251.hl7", []string{"ADT^A04 1270326314"}}, // UTF-8 BOM, LF line ends
		{"ORU-R01-01.hl7", []string{"ORU^R01 2.16.840.1.114222.4.3.3.5.1.2-20120314235954.325"}},
		{"sample_hl7.hl7", []string{"ORU^R01 CNTRL-3456"}},
		{"rep_sample_hl7.hl7", []string{"ORU^R01 CNTRL-3456"}},
		{"sample_msh.hl7", []string{"ADT^A01 Q150084616T145947960"}},
		{"sample_batch.hl7", []string{"ADT^A04 12334456778890"}},
		{"sample_batch1.hl7", []string{"ADT^A04 12334456778890", "ADT^A04 12334456778891"}},
		{"sample_batch2.hl7", []string{"ADT^A04 12334456778890", "ADT^A04 12334456778891"}},
		{"sample_batch3.hl7", []string{"ADT^A04 12334456778890"}}, // no BTS
		{"sample_batch4.hl7", []string{"ADT^A04 12334456778890"}}, // BTS without BHS
		{"sample_file.hl7", []string{"ADT^A04 12334456778890"}},
		{"sample_file1.hl7", []string{"ADT^A04 12334456778890", "ADT^A04 12334456778891", "ADT^A04 12334456778890"}},
		{"sample_file2.hl7", []string{"ADT^A04 12334456778890", "ADT^A04 12334456778891"}}, // no BHS/BTS
		{"sample_file3.hl7", []string{"ADT^A04 12334456778890"}},                           // no FTS
		{"sample_file4.hl7", []string{"ADT^A04 12334456778890"}},                           // FTS without FHS
		{"sample_file5.hl7", []string{"ADT^A04 12334456778890"}},                           // no BTS
		{"sample_file6.hl7", []string{"ADT^A04 12334456778890"}},                           // BTS without BHS
		// The malformed envelopes python-hl7 refuses.
		{"sample_bad_batch.hl7", []string{"!no MSH segment before the EVN segment on line 2"}},
		{"sample_bad_batch1.hl7", []string{"ADT^A04 12334456778890", "!BHS on line 4 opens a batch inside an open batch"}},
		{"sample_bad_file.hl7", []string{"!no MSH segment before the EVN segment on line 3"}},
		{"sample_bad_file1.hl7", []string{"ADT^A04 12334456778890", "!BHS on line 5 opens a batch inside an open batch"}},
		{"sample_bad_file2.hl7", []string{"ADT^A04 12334456778890", "!FHS on line 5 opens a file inside an open file"}},
		{"sample_bad_file3.hl7", []string{"!no MSH segment before the EVN segment on line 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			src, err := OpenHL7v2(openFixture(t, "hl7v2/"+tt.file), tt.file)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			recs := readAll(t, src)
			var got []string
			for i, r := range recs {
				if r.Pos.Message != i+1 || r.Pos.Unit != UnitMessage || r.Pos.File != tt.file || r.Pos.Line < 1 {
					t.Errorf("record %d: position %+v", i, r.Pos)
				}
				if len(r.Raw) == 0 {
					t.Errorf("record %d: no Raw", i)
				}
				if r.Err != nil {
					var re *RecordError
					if !errors.As(r.Err, &re) {
						t.Fatalf("record %d: Err is %T, want *RecordError", i, r.Err)
					}
					if i < len(tt.want) && strings.HasPrefix(tt.want[i], "!") && strings.Contains(re.Reason, tt.want[i][1:]) {
						got = append(got, tt.want[i])
					} else {
						got = append(got, "!"+re.Reason)
					}
					if strings.Contains(r.Err.Error(), "0000112234") || strings.Contains(r.Err.Error(), "RICHMOND") {
						t.Errorf("record %d: error shows message content: %v", i, r.Err)
					}
					continue
				}
				got = append(got, r.HL7.MessageType()+" "+r.HL7.ControlID())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("records\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestHL7v2Get(t *testing.T) {
	read := func(file string) *HL7Message {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(fixtures, "hl7v2", file))
		if err != nil {
			t.Fatal(err)
		}
		m, err := ParseHL7Message(b)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	rep := read("rep_sample_hl7.hl7")
	ref := read("REF-I12-01.hl7")
	msh := read("sample_msh.hl7")
	tests := []struct {
		m    *HL7Message
		path string
		want string
	}{
		{rep, "MSH-1", "|"},
		{rep, "MSH-2", `^~\&`},
		{rep, "MSH-2.2", ""},
		{rep, "MSH-3", "GHH LAB"},
		{rep, "MSH-9", "ORU"},
		{rep, "MSH-9.2", "R01"},
		{rep, "MSH-12", "2.4"},
		{rep, "PID-1", "Field1"},
		{rep, "PID-2", "Component1"},
		{rep, "PID-2.2", "Component2"},
		{rep, "PID-2.3", ""},
		{rep, "PID-3.2", "Sub-Component1"},
		{rep, "PID-3.2.1", "Sub-Component1"},
		{rep, "PID-3.2.2", "Sub-Component2"},
		{rep, "PID-3.2.3", ""},
		{rep, "PID-3.3", "Component3"},
		{rep, "PID-4", "Repeat1"},
		{rep, "PID-4[1]", "Repeat1"},
		{rep, "PID-4[2]", "Repeat2"},
		{rep, "PID-4[3]", ""},
		{rep, "PID[1]-4[2].1.1", "Repeat2"},
		{rep, "PID[2]-1", ""},
		{rep, "PID-5", ""},
		{rep, "ZZZ-1", ""},
		{rep, "PID-x", ""}, // does not parse
		{ref, "PRD-1", "RP"},
		{ref, "PRD-1.2", "Referring Provider"},
		{ref, "PRD[2]-1.1", "RT"},
		{ref, "PRD[2]-2.1", "McWILLIAMS"},
		{ref, "PID-3[2].1", "123456789"},
		{ref, "PID-3[2].6", "USSSA"},
		{ref, "PID-5.2", "ADAM"},
		{ref, "RF1-20.9.2", "Provider Master.Community Health and Hospitals"},
		{ref, "MSH-4.2", "2.16.840.1.122848.1.30"},
		{msh, "PID-3[2].4", "MSH_EMPI"},
		{msh, "PID-4[2].5", "DONOR "}, // trailing space kept
		{msh, "IN1[2]-2", "GMED"},
		{msh, "IN1[2]-3", `""`}, // the HL7 null as written
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if got := tt.m.Get(tt.path); got != tt.want {
				t.Errorf("Get(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}

	all := []struct {
		m    *HL7Message
		path string
		want []string
	}{
		{rep, "PID-4", []string{"Repeat1", "Repeat2"}},
		{rep, "PID-4[2]", []string{"Repeat2"}},
		{rep, "PID-4[3]", nil},
		{rep, "PID-5", nil},
		{ref, "PID-3.1", []string{"PATID1234", "123456789"}},
		{ref, "PRD-1.1", []string{"RP", "RT"}},
		{ref, "PRD[2]-1.1", []string{"RT"}},
		{ref, "NTE-3", []string{"Lab Test for Ulcer ", "Test Positive.Infection indicates presence of ulcer", "Lab test"}},
		{msh, "PID-3.4", []string{"MSH_MRN", "MSH_EMPI"}},
		{msh, "IN1-2", []string{"A10A", "GMED", "SLFJ"}},
	}
	for _, tt := range all {
		t.Run("All "+tt.path, func(t *testing.T) {
			if got := tt.m.All(tt.path); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("All(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}

	if got := ref.MessageCode() + "|" + ref.TriggerEvent() + "|" + ref.MessageStructure() + "|" + ref.ControlID() + "|" + ref.Version(); got != "REF|I12|REF_I12|MSG00112|2.8" {
		t.Errorf("MSH helpers = %q", got)
	}
	if prds := ref.SegmentsNamed("PRD"); len(prds) != 2 || prds[1].Value(1, 1, 1, 1) != "RT" || prds[0].Line != 5 {
		t.Errorf("SegmentsNamed(PRD) = %v", prds)
	}
	if s := ref.Segment("PID"); s == nil || s.Repeats(3) != 2 || s.Repeats(2) != 0 || s.Repeats(99) != 0 {
		t.Errorf("Segment(PID) repeats wrong")
	}
	if ref.Segment("ZZZ") != nil {
		t.Error("Segment(ZZZ) is not nil")
	}
	if d := ref.Delimiters; d != (HL7Delimiters{'|', '^', '~', '\\', '&', 0}) {
		t.Errorf("Delimiters = %q", []byte{d.Field, d.Component, d.Repetition, d.Escape, d.Subcomponent, d.Truncation})
	}
}

func TestHL7v2Escapes(t *testing.T) {
	d := HL7Delimiters{'|', '^', '~', '\\', '&', '#'}
	tests := []struct{ in, want string }{
		{`plain`, "plain"},
		{`A\F\B`, "A|B"},
		{`A\S\B`, "A^B"},
		{`A\T\B`, "A&B"},
		{`A\R\B`, "A~B"},
		{`A\E\B`, `A\B`},
		{`A\P\B`, "A#B"},
		{`\X41\`, "A"},
		{`\X4142\\X43\`, "ABC"},
		{`caf\XC3A9\`, "café"}, // hex that is UTF-8
		{`caf\XE9\`, "café"},   // hex that is not UTF-8 reads as Latin-1
		{`\XC3\\XA9\`, "é"},    // UTF-8 split over two escapes
		{`\X4\`, `\X4\`},       // odd hex is kept as written
		{`\XZZ\`, `\XZZ\`},     // not hex
		{`line1\.br\line2`, "line1\nline2"},
		{`a\.sp\b`, "a\nb"},
		{`a\.sp2\b`, "a\n\nb"},
		{`a\.sk3\b`, "a   b"},
		{`\H\bold\N\`, "bold"},
		{`\.in+4\x\.ti-2\`, "x"},
		{`\.ce\centred`, "centred"},
		{`\C2842\x`, "x"},                // character set switch dropped
		{`\Zlocal\x`, "x"},               // local escape dropped
		{`C:\path\file`, `C:\path\file`}, // unknown sequence kept
		{`dangling\`, `dangling\`},
		{`a\\b`, `a\\b`},
		{`тест \T\ اختبار`, "тест & اختبار"},
	}
	for _, tt := range tests {
		if got := d.Unescape(tt.in); got != tt.want {
			t.Errorf("Unescape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// Escapes are decoded after splitting, so an escaped delimiter stays in its component.
	m, err := ParseHL7Message([]byte("MSH|^~\\&|A||||||ADT^A01|1|P|2.7\rNTE|1||Fish \\T\\ chips\\S\\peas\\.br\\next^second~rep2\r"))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Get("NTE-3"); got != "Fish & chips^peas\nnext" {
		t.Errorf("NTE-3 = %q", got)
	}
	if got := m.Get("NTE-3.2"); got != "second" {
		t.Errorf("NTE-3.2 = %q", got)
	}
	if got := m.Get("NTE-3[2]"); got != "rep2" {
		t.Errorf("NTE-3[2] = %q", got)
	}
}

func TestHL7v2Delimiters(t *testing.T) {
	// Version 2.7 adds a truncation character; other separators are allowed.
	m, err := ParseHL7Message([]byte("MSH|^~\\&#|A||||||ADT^A01|1|P|2.7\rPID|1||ID1#||NAME\\P\\"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Delimiters.Truncation != '#' || m.Get("MSH-2") != `^~\&#` || m.Get("PID-3") != "ID1#" || m.Get("PID-5") != "NAME#" {
		t.Errorf("truncation: %+v %q %q %q", m.Delimiters, m.Get("MSH-2"), m.Get("PID-3"), m.Get("PID-5"))
	}
	m, err = ParseHL7Message([]byte("MSH*:!/$*A******ADT:A01*7*P*2.5\rPID*1**A:B$C!D*"))
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{m.Get("MSH-1"), m.Get("MSH-9.2"), m.Get("PID-3.2"), m.Get("PID-3.2.2"), m.Get("PID-3[2]"), m.ControlID()}; !reflect.DeepEqual(got, []string{"*", "A01", "B", "C", "D", "7"}) {
		t.Errorf("custom delimiters: %q", got)
	}
}

func TestHL7v2LineEnds(t *testing.T) {
	segs := []string{"MSH|^~\\&|SND||RCV||20240101||REF^I12^REF_I12|C1|P|2.5", "PID|1||ID^^^X||Doe^Jane", "NTE|1||note"}
	bodies := map[string]string{
		"CR":        strings.Join(segs, "\r") + "\r",
		"LF":        strings.Join(segs, "\n") + "\n",
		"CRLF":      strings.Join(segs, "\r\n") + "\r\n",
		"no end":    strings.Join(segs, "\r"),
		"BOM":       "\xEF\xBB\xBF" + strings.Join(segs, "\n"),
		"blank":     "\n\n" + strings.Join(segs, "\n\n") + "\n\n",
		"MLLP":      "\x0b" + strings.Join(segs, "\r") + "\r\x1c\r",
		"mixed":     segs[0] + "\r\n" + segs[1] + "\r" + segs[2] + "\n",
		"spaceline": segs[0] + "\n  \n" + segs[1] + "\n" + segs[2],
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			src, _ := OpenHL7v2(strings.NewReader(body+"\n"+body), "x.hl7")
			recs := readAll(t, src)
			if len(recs) != 2 {
				t.Fatalf("%d records, want 2", len(recs))
			}
			for _, r := range recs {
				if r.Err != nil {
					t.Fatal(r.Err)
				}
				var names []string
				for _, s := range r.HL7.Segments {
					names = append(names, s.Name)
				}
				if strings.Join(names, " ") != "MSH PID NTE" || r.HL7.Get("PID-5.2") != "Jane" || r.HL7.Get("NTE-3") != "note" {
					t.Errorf("segments %v, PID-5.2 %q, NTE-3 %q", names, r.HL7.Get("PID-5.2"), r.HL7.Get("NTE-3"))
				}
			}
			if !bytes.Contains(recs[0].Raw, []byte("Doe^Jane")) {
				t.Errorf("Raw = %q", recs[0].Raw)
			}
		})
	}
	// Line counts CR, LF and CRLF alike, for humans.
	src, _ := OpenHL7v2(strings.NewReader(strings.Join(segs, "\r\n")+"\r\n\r\n"+strings.Join(segs, "\r")), "x.hl7")
	recs := readAll(t, src)
	if len(recs) != 2 || recs[0].Pos.Line != 1 || recs[1].Pos.Line != 5 || recs[1].HL7.Segments[2].Line != 7 {
		t.Errorf("lines: %+v %+v", recs[0].Pos, recs[1].Pos)
	}
}

func TestHL7v2Malformed(t *testing.T) {
	good := "MSH|^~\\&|S||R||20240101||ADT^A01|OK1|P|2.5\rPID|1||X\r"
	tests := []struct {
		name   string
		in     string
		kind   error
		reason string
		hasMsg bool // HL7 is kept: the MSH was readable
	}{
		{"truncated MSH", "MSH|^~\\&\r", ErrMalformedMessage, "MSH-9 (message type) is empty", true},
		{"MSH only", "MSH\r", ErrMalformedMessage, "MSH segment is truncated", false},
		{"three encoding characters", "MSH|^~\\|S||R||2024||ADT^A01|1|P|2.5\r", ErrMalformedMessage, "MSH-2: there are 3 encoding characters", false},
		{"six encoding characters", "MSH|^~\\&#$|S||R||2024||ADT^A01|1|P|2.5\r", ErrMalformedMessage, "MSH-2: there are 6 encoding characters", false},
		{"repeated encoding character", "MSH|^~^&|S||R||2024||ADT^A01|1|P|2.5\r", ErrMalformedMessage, "MSH-2: encoding character 3 repeats", false},
		{"letter as separator", "MSHA^~\\&ASA\r", ErrMalformedMessage, "MSH-1: the field separator must be", false},
		{"letter as encoding character", "MSH|^~x&|S||R||2024||ADT^A01|1|P|2.5\r", ErrMalformedMessage, "encoding character 3 must be", false},
		{"no message type", "MSH|^~\\&|S||R||2024|||1|P|2.5\rPID|1\r", ErrMalformedMessage, "MSH-9 (message type) is empty", true},
		{"wrapped line", "MSH|^~\\&|S||R||2024||ORU^R01|1|P|2.5\rOBX|1|TX|||first part\rsecond part of Jane's note\r", ErrMalformedMessage, "line 3 is not a segment", true},
		{"lower-case segment", "MSH|^~\\&|S||R||2024||ORU^R01|1|P|2.5\rpid|1\r", ErrMalformedMessage, "line 2 is not a segment", true},
		{"invalid UTF-8", "MSH|^~\\&|S||R||2024||ADT^A01|1|P|2.5\rPID|1||X||Jos\xe9^M\r", ErrInvalidUTF8, "PID-5 (line 2): invalid UTF-8", true},
		{"segments before MSH", "PID|1||X||Jane\rPV1|1\r", ErrMalformedMessage, "no MSH segment before the PID segment on line 1", false},
		{"garbage", "Jane Doe, 12 Main St\r", ErrMalformedMessage, "no MSH segment before a line that is not a segment on line 1", false},
		{"nested batch", "BHS|^~\\&\rBHS|^~\\&\rEVN|1\r", ErrEnvelope, "BHS on line 2 opens a batch inside an open batch", false},
		{"nested file", "FHS|^~\\&\rFHS|^~\\&\r", ErrEnvelope, "FHS on line 2 opens a file inside an open file", false},
		{"file in batch", "BHS|^~\\&\rFHS|^~\\&\r", ErrEnvelope, "FHS on line 2 opens a file inside an open batch", false},
		{"bad batch header", "BHS|^~\r", ErrEnvelope, "BHS-2: there are 2 encoding characters", false},
		{"batch count", "BHS|^~\\&\r" + good + "BTS|2\r", ErrEnvelope, "BTS-1 on line 4 counts 2 messages, the batch holds 1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, _ := OpenHL7v2(strings.NewReader(tt.in+good), "bad.hl7")
			recs := readAll(t, src)
			var bad []Record
			oks := 0
			for _, r := range recs {
				if r.Err != nil {
					bad = append(bad, r)
				} else if r.HL7.ControlID() == "OK1" {
					oks++
				}
			}
			if len(bad) != 1 {
				t.Fatalf("%d rejected records, want 1: %v", len(bad), recs)
			}
			if oks < 1 {
				t.Errorf("the good message after the bad one was not read")
			}
			r := bad[0]
			if !errors.Is(r.Err, tt.kind) {
				t.Errorf("Err %v is not %v", r.Err, tt.kind)
			}
			if !strings.Contains(r.Err.Error(), tt.reason) {
				t.Errorf("Err = %q, want it to say %q", r.Err, tt.reason)
			}
			if (r.HL7 != nil) != tt.hasMsg {
				t.Errorf("HL7 = %v, want set %v", r.HL7, tt.hasMsg)
			}
			for _, secret := range []string{"Jane", "Jos", "Main St"} {
				if strings.Contains(r.Err.Error(), secret) {
					t.Errorf("Err shows content %q: %v", secret, r.Err)
				}
			}
			if len(r.Raw) == 0 {
				t.Error("no Raw")
			}
		})
	}
}

func TestHL7v2Charset(t *testing.T) {
	// MSH-18 8859/1 declares Latin-1: the message is decoded to UTF-8.
	in := "MSH|^~\\&|S||R||2024||ADT^A01|1|P|2.5||||||8859/1\rPID|1||X||Jos\xe9^Ana\xefs\r"
	src, _ := OpenHL7v2(strings.NewReader(in), "latin1.hl7")
	recs := readAll(t, src)
	if len(recs) != 1 || recs[0].Err != nil {
		t.Fatalf("records %v", recs)
	}
	if got := recs[0].HL7.Get("PID-5") + " " + recs[0].HL7.Get("PID-5.2"); got != "José Anaïs" {
		t.Errorf("PID-5 = %q", got)
	}
	// UTF-8 passes through byte for byte.
	names := "Аліна^فاطمة^ሰላም"
	m, err := ParseHL7Message([]byte("MSH|^~\\&|S||R||2024||ADT^A01|1|P|2.5||||||UNICODE UTF-8\rPID|1||X||" + names + "\r"))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Get("PID-5.1") + "^" + m.Get("PID-5.2") + "^" + m.Get("PID-5.3"); got != names {
		t.Errorf("PID-5 = %q, want %q", got, names)
	}
}

func TestHL7v2TooLarge(t *testing.T) {
	big := "MSH|^~\\&|S||R||2024||ORU^R01|BIG|P|2.5\rOBX|1|ED|||" + strings.Repeat("A", 5000) + "\r"
	good := "MSH|^~\\&|S||R||2024||ADT^A01|OK|P|2.5\rPID|1\r"
	src := openHL7v2(strings.NewReader(good+big+good), "big.hl7", 1000)
	recs := readAll(t, src)
	if len(recs) != 3 || recs[0].Err != nil || recs[2].Err != nil || !errors.Is(recs[1].Err, ErrRecordTooLarge) {
		t.Fatalf("records %v", recs)
	}
	if recs[2].HL7.ControlID() != "OK" {
		t.Errorf("message after the large one: %v", recs[2].HL7.ControlID())
	}
}

func TestHL7v2Streaming(t *testing.T) {
	var b bytes.Buffer
	for i := 0; b.Len() < 4<<20; i++ {
		fmt.Fprintf(&b, "MSH|^~\\&|S||R||2024||ADT^A01|C%d|P|2.5\rPID|1||%d||Doe^Jane\rNTE|1||%s\r", i, i, strings.Repeat("x", 200))
	}
	total := b.Len()
	// Fail after 1 MB: every message before it is still returned.
	fr := &failingReader{data: b.Bytes()[:1<<20], err: errDisk}
	src, _ := OpenHL7v2(fr, "big.hl7")
	recs, err := drain(src, 1<<20)
	if !errors.Is(err, errDisk) {
		t.Fatalf("err = %v, want the reader's error", err)
	}
	if len(recs) < 3000 {
		t.Errorf("%d messages before the failure", len(recs))
	}
	// The source reads no further ahead than its buffer.
	cr := &countingReader{r: bytes.NewReader(b.Bytes())}
	src, _ = OpenHL7v2(cr, "big.hl7")
	n, consumed := 0, 0
	for {
		r, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil || r.Err != nil {
			t.Fatal(err, r.Err)
		}
		n++
		consumed += len(r.Raw)
		// The source has seen the next MSH, so it has read past this
		// message, but by no more than a buffer and a message.
		if ahead := cr.n - int64(consumed); ahead > 2*readBufferSize {
			t.Fatalf("after message %d the source has read %d bytes ahead", n, ahead)
		}
	}
	if consumed != total {
		t.Errorf("Raw of all messages is %d bytes, the input %d", consumed, total)
	}
	if cr.n != int64(total) {
		t.Errorf("read %d bytes of %d", cr.n, total)
	}
}

func TestParseHL7Path(t *testing.T) {
	good := map[string]HL7Path{
		"PID-5":            {Segment: "PID", Field: 5},
		"PID-5.1":          {Segment: "PID", Field: 5, Component: 1},
		"PID-3[2].1":       {Segment: "PID", Field: 3, Repetition: 2, Component: 1},
		"PRD[2]-2.1.1":     {Segment: "PRD", Occurrence: 2, Field: 2, Component: 1, Subcomponent: 1},
		"ZX1-10":           {Segment: "ZX1", Field: 10},
		"OBX[12]-5[3].2":   {Segment: "OBX", Occurrence: 12, Field: 5, Repetition: 3, Component: 2},
		"MSH-9.2":          {Segment: "MSH", Field: 9, Component: 2},
		"IN1[1]-49[1].1.2": {Segment: "IN1", Occurrence: 1, Field: 49, Repetition: 1, Component: 1, Subcomponent: 2},
	}
	for s, want := range good {
		p, err := ParseHL7Path(s)
		if err != nil || p != want {
			t.Errorf("ParseHL7Path(%q) = %+v, %v; want %+v", s, p, err, want)
		}
		if p.String() != s {
			t.Errorf("%q.String() = %q", s, p.String())
		}
	}
	for _, s := range []string{"", "PID", "pid-5", "PID-", "PID-0", "PID-05", "PID-5.", "PID-5.0", "PID-5.1.1.1", "PID[0]-5", "PID[]-5", "PID[2-5", "PID-5[x]", "PID-5 ", "PID-1234567", "P1-5", "PID5", "PID.5"} {
		if p, err := ParseHL7Path(s); err == nil {
			t.Errorf("ParseHL7Path(%q) = %+v, want an error", s, p)
		} else if !strings.Contains(err.Error(), "HL7 v2 path") {
			t.Errorf("error %q does not name the path", err)
		}
	}
}

func TestHL7v2Close(t *testing.T) {
	src, _ := OpenHL7v2(strings.NewReader("MSH|^~\\&|S||R||2024||ADT^A01|1|P|2.5\r"), "x.hl7")
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if _, err := src.Next(); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close = %v", err)
	}
}

// TestHL7v2Corpus reads every HL7 v2 file of the shared corpus (make
// corpus): every message of a file not named *bad* parses and has MSH-9;
// every *bad* file has a rejected record.
func TestHL7v2Corpus(t *testing.T) {
	root := os.Getenv("PATHWAY_CORPUS")
	if root == "" {
		t.Skip("PATHWAY_CORPUS is not set (make corpus sets it)")
	}
	dir := filepath.Join(root, "hl7v2")
	files := 0
	messages := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".hl7" {
			return err
		}
		files++
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		rel, _ := filepath.Rel(dir, path)
		src, _ := OpenHL7v2(f, rel)
		recs := readAll(t, src)
		bad := strings.Contains(filepath.Base(path), "bad")
		rejected := 0
		for _, r := range recs {
			if r.Err != nil {
				rejected++
				if !bad {
					t.Errorf("%v", r.Err)
				}
				continue
			}
			messages++
			if r.HL7.MessageCode() == "" || r.HL7.TriggerEvent() == "" {
				t.Errorf("%s: MSH-9 is %q", r.Pos, r.HL7.MessageType())
			}
		}
		if len(recs) == 0 {
			t.Errorf("%s: no records", rel)
		}
		if bad && rejected == 0 {
			t.Errorf("%s: nothing rejected", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 150 {
		t.Errorf("only %d files under %s", files, dir)
	}
	t.Logf("%d files, %d messages", files, messages)
}
