package connectors

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

// CSVOptions say how to read a CSV file. The zero value reads
// comma-separated UTF-8.
type CSVOptions struct {
	// Delimiter separates cells: ',' (default), ';', '\t', '|' or another
	// ASCII character other than a quote, CR or LF.
	Delimiter rune
	// Encoding of the file: "utf-8" (default), "windows-1252" (also
	// "cp1252"), or "latin-1" (also "latin1", "iso-8859-1"). Latin-1 is
	// decoded as Windows-1252, as the WHATWG Encoding Standard and every
	// browser do: the two agree on every printable Latin-1 character, and
	// files labelled Latin-1 that use bytes 0x80-0x9F mean Windows-1252's
	// euro sign, quotes and dashes, not C1 control codes. Whatever the
	// option, a file that starts with a byte order mark is read in the
	// encoding the mark names (UTF-8, UTF-16LE or UTF-16BE).
	Encoding string
	// Comment, when not 0, starts a line that is skipped. Only at the start
	// of a record: inside a quoted cell it is data.
	Comment rune
	// MaxRecordBytes caps a row (all its lines); 0 means
	// DefaultMaxRecordBytes. A longer row is rejected and reading goes on.
	MaxRecordBytes int
}

// OpenCSV reads a CSV file with a header row, one record per data row.
//
// The format is RFC 4180 with the usual extensions: a header row names
// the columns (names are trimmed; a byte order mark is removed; empty and
// duplicate names are refused); cells may be quoted, and quoted cells may
// hold delimiters, doubled quotes and line breaks (CRLF inside a quoted
// cell becomes LF); lines end in LF or CRLF; empty lines are skipped; a
// quote inside an unquoted cell is data (5'10" stays as written).
//
// Each data row becomes a Record with Fields keyed by header name and
// Pos.Row counting data rows from 1. A row with the wrong number of cells,
// a cell that is not valid UTF-8, a quoted cell that is never closed or
// whose closing quote is followed by something other than a delimiter, or
// a row longer than MaxRecordBytes is returned with Record.Err, and reading
// goes on. When a quoted cell runs on over several lines and then turns
// out to be broken, the rows after the line where the quote opened are
// read again as rows, so one stray quote costs one row, not the rest of
// the file.
//
// Multilingual text passes through byte for byte in UTF-8 files; files in
// Windows-1252 or Latin-1 are decoded to UTF-8. Memory stays flat: the
// source holds one row and a 64 KiB read buffer (and, after a broken
// quote, at most MaxRecordBytes to read again).
//
// OpenCSV reads the header before it returns, and fails when there is no
// header row or the header is unusable.
func OpenCSV(r io.Reader, name string, opts CSVOptions) (Source, error) {
	s := &csvSource{name: name, max: opts.MaxRecordBytes}
	if s.max <= 0 {
		s.max = DefaultMaxRecordBytes
	}
	d := opts.Delimiter
	if d == 0 {
		d = ','
	}
	if d >= utf8.RuneSelf || d == '"' || d == '\r' || d == '\n' {
		return nil, fmt.Errorf("reading %q: delimiter %q is not allowed (an ASCII character other than a quote, CR or LF)", name, d)
	}
	s.delim = byte(d)
	if c := opts.Comment; c != 0 {
		if c >= utf8.RuneSelf || c == '"' || c == '\r' || c == '\n' || c == d {
			return nil, fmt.Errorf("reading %q: comment character %q is not allowed", name, c)
		}
		s.comment = byte(c)
	}
	dec, err := csvDecoder(opts.Encoding)
	if err != nil {
		return nil, fmt.Errorf("reading %q: %w", name, err)
	}
	br := bufio.NewReaderSize(r, readBufferSize)
	switch head, _ := br.Peek(3); {
	case bytes.HasPrefix(head, utf8BOM):
		br.Discard(len(utf8BOM))
		dec = nil
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}), bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		dec = unicode.UTF16(unicode.LittleEndian, unicode.ExpectBOM).NewDecoder()
	}
	s.utf8Input = dec == nil
	if dec == nil {
		s.in = br
	} else {
		s.in = bufio.NewReaderSize(transform.NewReader(br, dec), readBufferSize)
	}
	if err := s.readHeader(); err != nil {
		return nil, err
	}
	return s, nil
}

const readBufferSize = 64 << 10

// csvDecoder returns the decoder for an encoding name, nil for UTF-8.
func csvDecoder(enc string) (transform.Transformer, error) {
	switch strings.ToLower(strings.TrimSpace(enc)) {
	case "", "utf-8", "utf8":
		return nil, nil
	case "windows-1252", "cp1252", "latin-1", "latin1", "iso-8859-1", "iso8859-1":
		return charmap.Windows1252.NewDecoder(), nil
	}
	return nil, fmt.Errorf("%w %q (want utf-8, windows-1252 or latin-1)", ErrUnknownEncoding, enc)
}

type csvSource struct {
	name      string
	delim     byte
	comment   byte
	max       int
	utf8Input bool // the cells come from the file's bytes unchanged, so they can be invalid UTF-8

	in      *bufio.Reader
	inErr   error  // sticky error from in (io.EOF at the end)
	pending []byte // bytes to read again before in, after a broken quote
	line    int    // physical line number of the next line, from 1

	consumed  int64 // bytes read from in
	rescanned int64 // bytes pushed back into pending

	header []string
	row    int
	err    error // fatal, sticky
	closed bool

	rec  []byte // the current record's bytes as read
	cell []byte // the current record's cells, unescaped, back to back
	ends []int  // end offset of each cell in cell
}

// csvProblem is why the current record is rejected.
type csvProblem struct {
	kind   error
	reason string
}

func (s *csvSource) fatal(line int, err error) error {
	return fmt.Errorf("reading %q: line %d: %w", s.name, line, err)
}

func (s *csvSource) readHeader() error {
	s.line = 1
	start, prob, err := s.parse()
	if err == io.EOF {
		return fmt.Errorf("reading %q: %w: the file is empty", s.name, ErrNoHeader)
	}
	if err != nil {
		return err
	}
	if prob != nil {
		return s.fatal(start, fmt.Errorf("%w: %s", ErrBadHeader, prob.reason))
	}
	text := string(s.cell)
	seen := make(map[string]int, len(s.ends))
	prev := 0
	for i, end := range s.ends {
		h := strings.TrimSpace(text[prev:end])
		prev = end
		switch {
		case !utf8.ValidString(h):
			return s.fatal(start, fmt.Errorf("%w: the name of column %d is not valid UTF-8", ErrBadHeader, i+1))
		case h == "":
			return s.fatal(start, fmt.Errorf("%w: column %d has no name", ErrBadHeader, i+1))
		}
		if j, dup := seen[h]; dup {
			return s.fatal(start, fmt.Errorf("%w: columns %d and %d are both named %q", ErrBadHeader, j+1, i+1, h))
		}
		seen[h] = i
		s.header = append(s.header, h)
	}
	return nil
}

// Next returns the next data row.
func (s *csvSource) Next() (Record, error) {
	if s.closed {
		return Record{}, ErrClosed
	}
	if s.err != nil {
		return Record{}, s.err
	}
	start, prob, err := s.parse()
	if err != nil {
		s.err = err
		return Record{}, err
	}
	s.row++
	rec := Record{Pos: Position{File: s.name, Unit: UnitRow, Row: s.row, Line: start}}
	rec.Raw, rec.RawTruncated = rawCopy(s.rec)
	if prob == nil && len(s.ends) != len(s.header) {
		prob = &csvProblem{ErrColumnCount, fmt.Sprintf("expected %d columns, found %d", len(s.header), len(s.ends))}
	}
	if prob != nil {
		rec.Err = recordErr(rec.Pos, prob.kind, prob.reason)
		return rec, nil
	}
	if s.utf8Input {
		// Cell by cell: two invalid halves can make a valid whole.
		var bad []string
		prev := 0
		for i, end := range s.ends {
			if !utf8.Valid(s.cell[prev:end]) {
				bad = append(bad, strconv.Quote(s.header[i]))
			}
			prev = end
		}
		if len(bad) > 0 {
			noun := "column"
			if len(bad) > 1 {
				noun = "columns"
			}
			rec.Err = recordErr(rec.Pos, ErrInvalidUTF8, fmt.Sprintf("%s %s: invalid UTF-8", noun, strings.Join(bad, ", ")))
			return rec, nil
		}
	}
	text := string(s.cell)
	rec.Fields = make(map[string]string, len(s.header))
	prev := 0
	for i, end := range s.ends {
		rec.Fields[s.header[i]] = text[prev:end]
		prev = end
	}
	return rec, nil
}

// Close releases the source's buffers.
// Header returns the header row's column names (trimmed), in order.
func (s *csvSource) Header() []string { return append([]string(nil), s.header...) }

func (s *csvSource) Close() error {
	s.closed = true
	s.in, s.pending, s.rec, s.cell, s.ends = nil, nil, nil, nil, nil
	return nil
}

// parse reads the next record into s.rec, s.cell and s.ends. It returns
// the line the record starts on; a problem that rejects the record; or
// io.EOF or a fatal error.
func (s *csvSource) parse() (start int, prob *csvProblem, err error) {
	s.rec, s.cell, s.ends = s.rec[:0], s.cell[:0], s.ends[:0]
	// Skip empty and comment lines.
	for {
		start = s.line
		n, partial, err := s.readLine(s.max)
		if err != nil {
			return start, nil, err
		}
		if n == 0 {
			return start, nil, io.EOF
		}
		if partial {
			// One line longer than the limit: reject it and skip the rest.
			if err := s.skipLine(); err != nil {
				return start, nil, err
			}
			s.line++
			return start, &csvProblem{ErrRecordTooLarge, fmt.Sprintf("the row is longer than %d bytes", s.max)}, nil
		}
		s.line++
		l := s.rec
		if isBlankLine(l) || (s.comment != 0 && l[0] == s.comment) {
			s.rec = s.rec[:0]
			continue
		}
		break
	}

	pos, lineEnd, lineNo := 0, len(s.rec), start
	for { // one cell per turn
		if pos < lineEnd && s.rec[pos] == '"' {
			quoteLine, quoteLineEnd := lineNo, lineEnd
			pos++
			for {
				i := bytes.IndexByte(s.rec[pos:lineEnd], '"')
				if i >= 0 {
					s.cell = append(s.cell, s.rec[pos:pos+i]...)
					pos += i + 1
					switch {
					case pos < lineEnd && s.rec[pos] == '"': // a doubled quote
						s.cell = append(s.cell, '"')
						pos++
						continue
					case pos < lineEnd && s.rec[pos] == s.delim:
						s.ends = append(s.ends, len(s.cell))
						pos++
					case atLineEnd(s.rec[pos:lineEnd]):
						s.ends = append(s.ends, len(s.cell))
						return start, nil, nil
					default:
						reason := fmt.Sprintf("column %s: a quote inside a quoted cell must be doubled (line %d)", s.columnName(len(s.ends)), lineNo)
						if quoteLine == lineNo {
							// The rest of this line belongs to the broken row.
							return start, &csvProblem{ErrUnbalancedQuote, reason}, nil
						}
						reason = fmt.Sprintf("column %s: the quoted cell opened on line %d is broken (a quote on line %d is neither doubled nor followed by a delimiter)", s.columnName(len(s.ends)), quoteLine, lineNo)
						return start, &csvProblem{ErrUnbalancedQuote, reason}, s.reread(quoteLine, quoteLineEnd)
					}
					break
				}
				// No quote on the rest of the line: the cell goes on to the next line.
				rest := s.rec[pos:lineEnd]
				if bytes.HasSuffix(rest, []byte("\r\n")) {
					s.cell = append(s.cell, rest[:len(rest)-2]...)
					s.cell = append(s.cell, '\n')
				} else {
					s.cell = append(s.cell, rest...)
				}
				unclosed := fmt.Sprintf("column %s: the quoted cell opened on line %d is never closed", s.columnName(len(s.ends)), quoteLine)
				if len(rest) == 0 || rest[len(rest)-1] != '\n' {
					return start, &csvProblem{ErrUnbalancedQuote, unclosed}, s.reread(quoteLine, quoteLineEnd)
				}
				n, partial, err := s.readLine(s.max - len(s.rec))
				if err != nil {
					return start, nil, err
				}
				if partial {
					unclosed = fmt.Sprintf("column %s: the quoted cell opened on line %d is not closed within %d bytes", s.columnName(len(s.ends)), quoteLine, s.max)
					return start, &csvProblem{ErrUnbalancedQuote, unclosed}, s.reread(quoteLine, quoteLineEnd)
				}
				if n == 0 { // end of input
					return start, &csvProblem{ErrUnbalancedQuote, unclosed}, s.reread(quoteLine, quoteLineEnd)
				}
				s.line++
				lineNo++
				pos, lineEnd = lineEnd, len(s.rec)
			}
			continue
		}
		i := bytes.IndexByte(s.rec[pos:lineEnd], s.delim)
		if i >= 0 {
			s.cell = append(s.cell, s.rec[pos:pos+i]...)
			s.ends = append(s.ends, len(s.cell))
			pos += i + 1
			continue
		}
		s.cell = append(s.cell, trimLineEnd(s.rec[pos:lineEnd])...)
		s.ends = append(s.ends, len(s.cell))
		return start, nil, nil
	}
}

// columnName names column i (from 0) for messages: its header name, or
// its number while the header itself is read or beyond the header.
func (s *csvSource) columnName(i int) string {
	if i < len(s.header) {
		return strconv.Quote(s.header[i])
	}
	return strconv.Itoa(i + 1)
}

// reread pushes back everything read after the line a broken quote opened
// on, so those lines are read again as rows, and keeps only the record up
// to that line for Raw. It fails when rereading would no longer make
// progress in linear time.
func (s *csvSource) reread(quoteLine, quoteLineEnd int) error {
	again := s.rec[quoteLineEnd:]
	s.rescanned += int64(len(again))
	if s.rescanned > 4*s.consumed+int64(s.max) {
		return s.fatal(quoteLine, fmt.Errorf("%w: too many broken quotes to read the rows after them again", ErrUnrecoverable))
	}
	p := make([]byte, 0, len(again)+len(s.pending))
	p = append(p, again...)
	s.pending = append(p, s.pending...)
	s.line = quoteLine + 1
	s.rec = s.rec[:quoteLineEnd]
	return nil
}

// readLine appends the next physical line, with its LF, to s.rec, and
// returns how many bytes it appended (0 at the end of the input). When
// the line is longer than max it appends max bytes and reports partial;
// the rest of the line is read next.
func (s *csvSource) readLine(max int) (n int, partial bool, err error) {
	if max <= 0 {
		return 0, true, nil
	}
	for len(s.pending) > 0 {
		i := bytes.IndexByte(s.pending, '\n')
		take := len(s.pending)
		if i >= 0 {
			take = i + 1
		}
		if n+take > max {
			take = max - n
			s.rec = append(s.rec, s.pending[:take]...)
			s.pending = s.pending[take:]
			return max, true, nil
		}
		s.rec = append(s.rec, s.pending[:take]...)
		s.pending = s.pending[take:]
		n += take
		if i >= 0 {
			return n, false, nil
		}
	}
	for s.inErr == nil {
		chunk, err := s.in.ReadSlice('\n')
		s.consumed += int64(len(chunk))
		if err != nil && err != bufio.ErrBufferFull {
			s.inErr = err
		}
		if n+len(chunk) > max {
			take := max - n
			s.rec = append(s.rec, chunk[:take]...)
			s.pending = append(s.pending, chunk[take:]...)
			return max, true, nil
		}
		s.rec = append(s.rec, chunk...)
		n += len(chunk)
		if err == nil {
			return n, false, nil
		}
	}
	if s.inErr != io.EOF {
		return n, false, s.fatal(s.line, s.inErr)
	}
	return n, false, nil
}

// skipLine discards the rest of the current physical line.
func (s *csvSource) skipLine() error {
	if i := bytes.IndexByte(s.pending, '\n'); i >= 0 {
		s.pending = s.pending[i+1:]
		return nil
	}
	s.pending = s.pending[:0]
	for s.inErr == nil {
		chunk, err := s.in.ReadSlice('\n')
		s.consumed += int64(len(chunk))
		if err == nil {
			return nil
		}
		if err != bufio.ErrBufferFull {
			s.inErr = err
		}
	}
	if s.inErr != io.EOF {
		return s.fatal(s.line, s.inErr)
	}
	return nil
}

func isBlankLine(l []byte) bool {
	return len(trimLineEnd(l)) == 0
}

// atLineEnd says b is what is left of a line after a closing quote: LF,
// CRLF, a lone CR at the end of the input, or nothing.
func atLineEnd(b []byte) bool {
	return len(trimLineEnd(b)) == 0
}

func trimLineEnd(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}
