package connectors

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestPositionString(t *testing.T) {
	tests := []struct {
		pos  Position
		want string
	}{
		{Position{File: "referrals.csv", Unit: UnitRow, Row: 12, Line: 14}, "referrals.csv:12"},
		{Position{File: "cases.ndjson", Unit: UnitLine, Row: 3, Line: 3}, "cases.ndjson:3"},
		{Position{File: "kobo.json", Unit: UnitElement, Row: 4, Line: 40}, "kobo.json:element 4"},
		{Position{File: "ref.hl7", Unit: UnitMessage, Message: 3, Line: 20}, "ref.hl7:message 3"},
		{Position{File: "bundle.json", Unit: UnitDocument, Line: 1}, "bundle.json"},
		{Position{Unit: UnitRow, Row: 1}, "input:1"},
	}
	for _, tt := range tests {
		if got := tt.pos.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.pos, got, tt.want)
		}
	}
}

func TestRecordLogValue(t *testing.T) {
	src, _ := OpenCSV(strings.NewReader("name,dob\nJane Doe,1990-01-01\nJane\n"), "r.csv", CSVOptions{})
	recs := readAll(t, src)
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	for _, r := range recs {
		log.Info("record", "record", r)
	}
	out := buf.String()
	if strings.Contains(out, "Jane") || strings.Contains(out, "1990") {
		t.Errorf("the log shows record data:\n%s", out)
	}
	if !strings.Contains(out, "record.pos=r.csv:1") || !strings.Contains(out, `record.err="r.csv:2: expected 2 columns, found 1"`) {
		t.Errorf("log:\n%s", out)
	}
	m, _ := ParseHL7Message([]byte("MSH|^~\\&|S||R||2024||REF^I12|C77|P|2.5\rPID|1||X||Doe^Jane"))
	buf.Reset()
	log.Info("message", "hl7", m)
	if got := buf.String(); strings.Contains(got, "Jane") || !strings.Contains(got, "hl7.type=REF^I12 hl7.control_id=C77") {
		t.Errorf("log: %s", got)
	}
}

func TestRecordErrorKinds(t *testing.T) {
	e := recordErr(Position{File: "f.csv", Unit: UnitRow, Row: 2}, ErrColumnCount, "expected 3 columns, found 2")
	var err error = e
	if !errors.Is(err, ErrColumnCount) || errors.Is(err, ErrInvalidUTF8) {
		t.Errorf("errors.Is: %v", err)
	}
	var re *RecordError
	if !errors.As(err, &re) || re.Reason != "expected 3 columns, found 2" || re.Pos.Row != 2 {
		t.Errorf("errors.As: %+v", re)
	}
}

func TestRawCap(t *testing.T) {
	row := strings.Repeat("x", MaxRawBytes+10)
	src, _ := OpenCSV(strings.NewReader("a\n"+row+"\n"), "r.csv", CSVOptions{})
	recs := readAll(t, src)
	if len(recs) != 1 || recs[0].Err != nil || len(recs[0].Raw) != MaxRawBytes || !recs[0].RawTruncated || len(recs[0].Fields["a"]) != len(row) {
		t.Errorf("Raw %d bytes, truncated %v, err %v", len(recs[0].Raw), recs[0].RawTruncated, recs[0].Err)
	}
}
