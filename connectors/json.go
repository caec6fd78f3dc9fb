package connectors

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// OpenJSONArray reads a file holding one JSON array of objects (a
// case-management or KoboToolbox export), one record per element, with
// Pos.Row counting elements from 1. It streams: a json.Decoder reads the
// brackets with Token and each element with Decode, so the source never
// holds more than one element and a read buffer.
//
// An element that is not an object, or not valid UTF-8, is returned with
// Record.Err and reading goes on. A syntax error breaks the array: it is a
// fatal error naming the element and line, after every element before it
// has been returned. So is an element larger than DefaultMaxRecordBytes,
// or data after the closing bracket. A leading UTF-8 byte order mark is
// skipped.
func OpenJSONArray(r io.Reader, name string) (Source, error) {
	return openJSONArray(r, name, DefaultMaxRecordBytes)
}

func openJSONArray(r io.Reader, name string, max int) (Source, error) {
	br := bufio.NewReaderSize(r, readBufferSize)
	if head, _ := br.Peek(3); bytes.HasPrefix(head, utf8BOM) {
		br.Discard(len(utf8BOM))
	}
	lc := &lineCounter{r: br, line: 1, max: max + readBufferSize}
	s := &jsonArraySource{name: name, lc: lc, dec: json.NewDecoder(lc)}
	tok, err := s.dec.Token()
	switch {
	case err == io.EOF:
		return nil, fmt.Errorf("reading %q: %w: the file is empty", name, ErrNotArray)
	case err != nil:
		return nil, s.fatalf(err, "")
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("reading %q: %w (it is %s)", name, ErrNotArray, tokenKind(tok))
	}
	return s, nil
}

type jsonArraySource struct {
	name    string
	lc      *lineCounter
	dec     *json.Decoder
	element int
	err     error
	closed  bool
}

func (s *jsonArraySource) fatalf(err error, what string) error {
	line := s.lc.lineAt(s.dec.InputOffset())
	if what != "" {
		what = " " + what
	}
	var syn *json.SyntaxError
	switch {
	case errors.Is(err, errTooLarge):
		return fmt.Errorf("reading %q: element %d (line %d): %w: larger than %d bytes", s.name, s.element+1, line, ErrRecordTooLarge, s.lc.max-readBufferSize)
	case errors.As(err, &syn):
		line = s.lc.lineAt(syn.Offset)
		return fmt.Errorf("reading %q: line %d%s: %w: %s", s.name, line, what, ErrInvalidJSON, syntaxReason(syn))
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		return fmt.Errorf("reading %q: line %d%s: %w: the input ends inside the array", s.name, line, what, ErrInvalidJSON)
	}
	return fmt.Errorf("reading %q: line %d%s: %w", s.name, line, what, err)
}

// Next returns the next element of the array.
func (s *jsonArraySource) Next() (Record, error) {
	if s.closed {
		return Record{}, ErrClosed
	}
	if s.err != nil {
		return Record{}, s.err
	}
	if !s.dec.More() {
		tok, err := s.dec.Token()
		if err != nil {
			s.err = s.fatalf(err, fmt.Sprintf("(element %d)", s.element+1))
			return Record{}, s.err
		}
		if d, ok := tok.(json.Delim); !ok || d != ']' {
			s.err = s.fatalf(fmt.Errorf("%w: unexpected %s", ErrInvalidJSON, tokenKind(tok)), "")
			return Record{}, s.err
		}
		if _, err := s.dec.Token(); err != io.EOF {
			if err == nil {
				err = fmt.Errorf("%w: data after the array", ErrInvalidJSON)
			}
			s.err = s.fatalf(err, "after the array")
			return Record{}, s.err
		}
		s.err = io.EOF
		return Record{}, io.EOF
	}
	var raw json.RawMessage
	if err := s.dec.Decode(&raw); err != nil {
		s.err = s.fatalf(err, fmt.Sprintf("(element %d)", s.element+1))
		return Record{}, s.err
	}
	s.element++
	start := s.dec.InputOffset() - int64(len(raw))
	rec := Record{Pos: Position{File: s.name, Unit: UnitElement, Row: s.element, Line: s.lc.lineAt(start)}}
	s.lc.forget(s.dec.InputOffset())
	if len(raw) <= MaxRawBytes {
		rec.Raw = raw // Decode made it for us
	} else {
		rec.Raw, rec.RawTruncated = rawCopy(raw)
	}
	rec.JSON, rec.Err = decodeObject(raw, rec.Pos, "element")
	return rec, nil
}

// Close releases the source.
func (s *jsonArraySource) Close() error {
	s.closed = true
	s.dec, s.lc = nil, nil
	return nil
}

// OpenNDJSON reads newline-delimited JSON: one object per line, one record
// per line, with Pos.Row the line number from 1. Blank lines are skipped;
// lines may end in LF or CRLF; a leading UTF-8 byte order mark is skipped.
// A line that is not valid UTF-8, not valid JSON, not an object, or longer
// than DefaultMaxRecordBytes is returned with Record.Err and reading goes
// on with the next line.
func OpenNDJSON(r io.Reader, name string) (Source, error) {
	return openNDJSON(r, name, DefaultMaxRecordBytes)
}

func openNDJSON(r io.Reader, name string, max int) (Source, error) {
	br := bufio.NewReaderSize(r, readBufferSize)
	if head, _ := br.Peek(3); bytes.HasPrefix(head, utf8BOM) {
		br.Discard(len(utf8BOM))
	}
	return &ndjsonSource{name: name, in: br, max: max}, nil
}

type ndjsonSource struct {
	name   string
	in     *bufio.Reader
	max    int
	line   int
	buf    []byte
	err    error
	closed bool
}

// Next returns the next non-blank line.
func (s *ndjsonSource) Next() (Record, error) {
	if s.closed {
		return Record{}, ErrClosed
	}
	if s.err != nil {
		return Record{}, s.err
	}
	for {
		s.buf = s.buf[:0]
		tooLong := false
		var err error
		for {
			var chunk []byte
			chunk, err = s.in.ReadSlice('\n')
			if !tooLong {
				if len(s.buf)+len(chunk) > s.max {
					tooLong = true
					s.buf = append(s.buf, chunk[:min(len(chunk), MaxRawBytes)]...)
				} else {
					s.buf = append(s.buf, chunk...)
				}
			}
			if err != bufio.ErrBufferFull {
				break
			}
		}
		if err != nil && err != io.EOF {
			s.err = fmt.Errorf("reading %q: line %d: %w", s.name, s.line+1, err)
			return Record{}, s.err
		}
		if len(s.buf) == 0 && err == io.EOF {
			s.err = io.EOF
			return Record{}, io.EOF
		}
		s.line++
		line := bytes.TrimSpace(s.buf)
		if len(line) == 0 && !tooLong {
			if err == io.EOF {
				s.err = io.EOF
				return Record{}, io.EOF
			}
			continue
		}
		if err == io.EOF {
			s.err = io.EOF // return this line; the next call ends
		}
		rec := Record{Pos: Position{File: s.name, Unit: UnitLine, Row: s.line, Line: s.line}}
		rec.Raw, rec.RawTruncated = rawCopy(line)
		if tooLong {
			rec.RawTruncated = true
			rec.Err = recordErr(rec.Pos, ErrRecordTooLarge, fmt.Sprintf("the line is longer than %d bytes", s.max))
			return rec, nil
		}
		rec.JSON, rec.Err = decodeObject(line, rec.Pos, "line")
		return rec, nil
	}
}

// Close releases the source.
func (s *ndjsonSource) Close() error {
	s.closed = true
	s.in, s.buf = nil, nil
	return nil
}

// OpenJSONObject reads a file holding one JSON object, such as a FHIR
// resource or Bundle, as a single record (Pos.Unit is UnitDocument). The
// object must fit in DefaultMaxRecordBytes; a larger, invalid or non-object
// document is returned as a record with Record.Err.
func OpenJSONObject(r io.Reader, name string) (Source, error) {
	return &jsonObjectSource{name: name, r: r, max: DefaultMaxRecordBytes}, nil
}

type jsonObjectSource struct {
	name   string
	r      io.Reader
	max    int
	done   bool
	closed bool
}

// Next returns the document, then io.EOF.
func (s *jsonObjectSource) Next() (Record, error) {
	if s.closed {
		return Record{}, ErrClosed
	}
	if s.done {
		return Record{}, io.EOF
	}
	s.done = true
	b, err := io.ReadAll(io.LimitReader(s.r, int64(s.max)+1))
	if err != nil {
		return Record{}, fmt.Errorf("reading %q: %w", s.name, err)
	}
	b = bytes.TrimPrefix(b, utf8BOM)
	rec := Record{Pos: Position{File: s.name, Unit: UnitDocument, Line: 1}}
	rec.Raw, rec.RawTruncated = rawCopy(b)
	if len(b) > s.max {
		rec.RawTruncated = true
		rec.Err = recordErr(rec.Pos, ErrRecordTooLarge, fmt.Sprintf("the document is larger than %d bytes", s.max))
		return rec, nil
	}
	rec.JSON, rec.Err = decodeObject(bytes.TrimSpace(b), rec.Pos, "document")
	return rec, nil
}

// Close releases the source.
func (s *jsonObjectSource) Close() error {
	s.closed = true
	s.r = nil
	return nil
}

// decodeObject decodes one JSON value that must be an object. what names
// the value in reasons ("element", "line").
func decodeObject(b []byte, pos Position, what string) (map[string]any, error) {
	if !utf8.Valid(b) {
		return nil, recordErr(pos, ErrInvalidUTF8, fmt.Sprintf("the %s is not valid UTF-8 (at byte %d)", what, invalidUTF8At(b)+1))
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		var syn *json.SyntaxError
		reason := fmt.Sprintf("the %s ends inside a value", what)
		switch {
		case errors.As(err, &syn):
			reason = fmt.Sprintf("%s at byte %d of the %s", syntaxReason(syn), syn.Offset, what)
		case err == io.EOF:
			reason = fmt.Sprintf("the %s is empty", what)
		case err != io.ErrUnexpectedEOF:
			reason = err.Error()
		}
		return nil, recordErr(pos, ErrInvalidJSON, reason)
	}
	if rest := bytes.TrimSpace(b[d.InputOffset():]); len(rest) > 0 {
		return nil, recordErr(pos, ErrInvalidJSON, fmt.Sprintf("data after the value, which ends at byte %d of the %s", d.InputOffset(), what))
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, recordErr(pos, ErrNotObject, fmt.Sprintf("the %s is %s, not an object", what, valueKind(v)))
	}
	return m, nil
}

// syntaxReason rewords a json.SyntaxError without the character it quotes,
// which may come from personal data.
func syntaxReason(e *json.SyntaxError) string {
	const prefix = "invalid character "
	msg := e.Error()
	if strings.HasPrefix(msg, prefix) {
		// "invalid character 'x' after object key": drop the 'x'.
		if i := strings.Index(msg[len(prefix)+1:], "' "); i >= 0 {
			return "invalid character " + msg[len(prefix)+1+i+2:]
		}
		return "invalid character"
	}
	return msg
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

func valueKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func tokenKind(t json.Token) string {
	switch t := t.(type) {
	case json.Delim:
		switch t {
		case '{', '}':
			return "an object"
		case '[', ']':
			return "an array"
		}
	}
	return valueKind(t)
}

var errTooLarge = errors.New("record too large")

// lineCounter passes reads through and counts the lines before an offset.
// It keeps the bytes read since the end of the last element, which the
// json.Decoder holds anyway; more than max of them means one element is
// too large.
type lineCounter struct {
	r    io.Reader
	buf  []byte // bytes from base on
	base int64  // offset of buf[0]
	line int    // line number at base
	max  int
}

func (c *lineCounter) Read(p []byte) (int, error) {
	if len(c.buf) > c.max {
		return 0, errTooLarge
	}
	n, err := c.r.Read(p)
	c.buf = append(c.buf, p[:n]...)
	return n, err
}

// lineAt returns the line at offset off (not before the last forget).
func (c *lineCounter) lineAt(off int64) int {
	k := int(off - c.base)
	if k < 0 {
		return c.line
	}
	k = min(k, len(c.buf))
	return c.line + bytes.Count(c.buf[:k], []byte{'\n'})
}

// forget drops the bytes before off, counting their lines.
func (c *lineCounter) forget(off int64) {
	k := min(int(off-c.base), len(c.buf))
	if k <= 0 {
		return
	}
	c.line += bytes.Count(c.buf[:k], []byte{'\n'})
	c.base += int64(k)
	c.buf = c.buf[k:]
	if cap(c.buf) > 4*readBufferSize && len(c.buf) < cap(c.buf)/4 {
		c.buf = append([]byte(nil), c.buf...)
	}
}
