package connectors

import (
	"errors"
	"log/slog"
	"strconv"
)

// Limits that keep memory flat whatever the input holds.
const (
	// DefaultMaxRecordBytes is the largest record a source reads: a CSV row
	// with all its lines, a JSON element, an NDJSON line, an HL7 v2
	// message. A larger one is rejected (CSV, NDJSON, HL7 v2) or stops the
	// input (a JSON array element, which cannot be skipped safely).
	DefaultMaxRecordBytes = 16 << 20
	// MaxRawBytes caps Record.Raw. A longer record keeps its first
	// MaxRawBytes bytes and sets Record.RawTruncated.
	MaxRawBytes = 64 << 10
)

// PositionUnit says what Position.Row or Position.Message counts.
type PositionUnit string

const (
	UnitRow      PositionUnit = "row"      // a CSV data row, from 1 (the header is not counted)
	UnitLine     PositionUnit = "line"     // an NDJSON line, from 1 (blank lines are counted, never returned)
	UnitElement  PositionUnit = "element"  // an element of a top-level JSON array, from 1
	UnitMessage  PositionUnit = "message"  // an HL7 v2 message, from 1 (see OpenHL7v2)
	UnitDocument PositionUnit = "document" // the whole input is one record (OpenJSONObject)
)

// Position is where a record comes from. It is stable: reading the same
// input again gives the same positions, so File and String() identify the
// record in rejects files, logs and audit entries. It never holds data
// from the record itself.
type Position struct {
	File string       // the name given to Open..., usually the path
	Unit PositionUnit // what Row or Message counts
	// Row is the CSV data row (from 1, header excluded), the NDJSON line
	// (from 1) or the JSON array element (from 1).
	Row int
	// Message is the HL7 v2 message, from 1.
	Message int
	// Line is the physical line where the record starts, from 1, for
	// humans opening the file in an editor. HL7 v2 counts a CR, an LF or
	// a CRLF as one line end.
	Line int
}

// String gives the position as people quote it: "file.csv:12" (row),
// "file.ndjson:12" (line), "file.json:element 4", "file.hl7:message 3",
// or "file.json" for a whole document.
func (p Position) String() string {
	f := p.File
	if f == "" {
		f = "input"
	}
	switch p.Unit {
	case UnitRow, UnitLine:
		return f + ":" + strconv.Itoa(p.Row)
	case UnitElement:
		return f + ":element " + strconv.Itoa(p.Row)
	case UnitMessage:
		return f + ":message " + strconv.Itoa(p.Message)
	case UnitDocument:
		return f
	}
	return f
}

// Record is one input record. Exactly one of Fields, JSON and HL7 is set,
// by the format of the source, unless Err is set: a rejected record
// carries its Pos, Raw and Err, and its data field is nil (an HL7 v2
// message whose MSH segment could be read keeps HL7, so a caller can
// still acknowledge it by control id). Never map a record whose Err is
// set.
type Record struct {
	Pos Position

	// Fields is a CSV row: header name (trimmed) -> cell.
	Fields map[string]string
	// JSON is a JSON array element, an NDJSON line or a JSON document,
	// decoded with UseNumber: numbers are json.Number, kept as written.
	JSON map[string]any
	// HL7 is an HL7 v2 message.
	HL7 *HL7Message

	// Raw is the record as read, for rejects files: the CSV row's lines
	// (decoded to UTF-8 when the file was Windows-1252 or Latin-1), the
	// JSON element or line, the HL7 v2 message's segments with their line
	// ends. At most MaxRawBytes long. It holds personal data: write it
	// only where the record itself may go, never to logs.
	Raw []byte
	// RawTruncated says Raw holds only the first MaxRawBytes bytes.
	RawTruncated bool

	// Err is why this record cannot be used (a wrong column count,
	// invalid UTF-8, bad JSON on this line, a malformed HL7 v2 message...).
	// Reading goes on with the next record. It is a *RecordError; its
	// text names the position, columns, keys, segments and fields, never
	// a value.
	Err error
}

// LogValue logs a record as its position and error only, never its data.
func (r Record) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("pos", r.Pos.String())}
	if r.Err != nil {
		attrs = append(attrs, slog.String("err", r.Err.Error()))
	}
	return slog.GroupValue(attrs...)
}

// Source yields the records of one input, in order.
//
// Next returns the next record, or io.EOF after the last one. A problem
// with one record is reported in Record.Err and Next goes on with the
// next; any other error is fatal for the whole input (the reader failed,
// the CSV header is unusable, a JSON array is syntactically broken) and
// Next keeps returning it.
//
// Close releases the source. It does not close the io.Reader passed to
// Open... (the caller owns it). Close is idempotent; Next after Close
// returns ErrClosed.
//
// A Source is not safe for concurrent use.
type Source interface {
	Next() (Record, error)
	Close() error
}

// Headed is a Source with a header row naming its fields (OpenCSV's): a
// caller can check the names before reading any record. Header names are
// the file's structure, not personal data.
type Headed interface {
	Source
	Header() []string
}

// Kinds of record problems, for errors.Is on Record.Err.
var (
	ErrColumnCount      = errors.New("wrong column count")
	ErrUnbalancedQuote  = errors.New("unbalanced quote")
	ErrInvalidUTF8      = errors.New("invalid UTF-8")
	ErrInvalidJSON      = errors.New("invalid JSON")
	ErrNotObject        = errors.New("not a JSON object")
	ErrRecordTooLarge   = errors.New("record too large")
	ErrMalformedMessage = errors.New("malformed HL7 v2 message")
	ErrEnvelope         = errors.New("malformed HL7 v2 batch or file envelope")
)

// Fatal input problems, for errors.Is on the error of Next or Open....
var (
	ErrClosed          = errors.New("source closed")
	ErrNoHeader        = errors.New("no CSV header row")
	ErrBadHeader       = errors.New("unusable CSV header")
	ErrNotArray        = errors.New("top-level JSON value is not an array")
	ErrUnrecoverable   = errors.New("cannot recover the following records")
	ErrUnknownEncoding = errors.New("unknown encoding")
)

// RecordError is a problem with one record. Reason names columns, keys,
// segments and fields, never values, so it is safe to log.
type RecordError struct {
	Pos    Position
	Kind   error  // one of the Err... record kinds above
	Reason string // what is wrong, without the position
}

func (e *RecordError) Error() string { return e.Pos.String() + ": " + e.Reason }

// Unwrap returns Kind.
func (e *RecordError) Unwrap() error { return e.Kind }

func recordErr(pos Position, kind error, reason string) *RecordError {
	return &RecordError{Pos: pos, Kind: kind, Reason: reason}
}

// rawCopy copies b for Record.Raw, capped at MaxRawBytes.
func rawCopy(b []byte) ([]byte, bool) {
	if len(b) > MaxRawBytes {
		return append([]byte(nil), b[:MaxRawBytes]...), true
	}
	return append([]byte(nil), b...), false
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}
