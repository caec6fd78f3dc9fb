package connectors

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// OpenHL7v2 reads HL7 v2 messages: a single message, several messages one
// after the other, a batch (BHS ... BTS) or a file (FHS ... FTS) of
// batches, one record per message with Pos.Message counting records from 1.
//
// Segments may end in CR (the standard), LF or CRLF; blank lines, a UTF-8
// byte order mark (also at the start of each message of concatenated
// files) and MLLP framing characters are skipped. A message runs from its
// MSH segment to the next MSH or envelope segment (FHS, BHS, BTS, FTS) or
// the end of the input. Envelope segments are checked and consumed; they
// are not part of any record. As in python-hl7, a missing BTS or FTS at
// the end, or an FTS or BTS without its header, is accepted.
//
// These are returned as records with Record.Err, and reading goes on:
//   - a message whose MSH-1 or MSH-2 is not a valid set of delimiters,
//     whose MSH-9 is empty (truncated), with a line that is not a segment,
//     or that is not valid UTF-8 while MSH-18 declares no ISO 8859 character
//     set (ErrMalformedMessage, ErrInvalidUTF8);
//   - segments outside any message (before the first MSH, or after an
//     envelope segment), grouped into one record up to the next MSH
//     (ErrMalformedMessage);
//   - a BHS inside an open batch or an FHS inside an open file, with the
//     segments that follow it up to the next MSH (ErrEnvelope);
//   - a BTS whose message count (BTS-1) disagrees with the messages of its
//     batch (ErrEnvelope);
//   - a message larger than DefaultMaxRecordBytes (ErrRecordTooLarge).
//
// Each of those counts as a message in Pos.Message, so positions stay
// stable. Only a failing reader is fatal.
func OpenHL7v2(r io.Reader, name string) (Source, error) {
	return openHL7v2(r, name, DefaultMaxRecordBytes), nil
}

func openHL7v2(r io.Reader, name string, max int) *hl7Source {
	return &hl7Source{name: name, in: bufio.NewReaderSize(r, readBufferSize), line: 1, max: max, sep: '|'}
}

type hl7Source struct {
	name  string
	in    *bufio.Reader
	inErr error
	line  int // physical line of the next byte
	max   int

	seg      []byte // the segment being read
	segLine  int
	segTerm  []byte // its line end as read
	segLarge bool   // the segment did not fit in the message budget

	cur      *hl7Group
	queue    []Record
	count    int  // records made
	sep      byte // the last field separator seen, for envelope segments
	sizeHint int  // the size of the last message, to size the next one's buffers

	fileOpen     bool
	batchOpen    bool
	batchCount   int  // messages since the last envelope segment
	batchTrouble bool // an envelope problem in this batch: do not check BTS-1

	err    error
	closed bool
}

// hl7Group is the message (or run of stray segments) being gathered.
type hl7Group struct {
	line     int
	text     []byte // segments joined by CR
	lines    []int
	raw      []byte // as read, capped at MaxRawBytes
	rawCut   bool
	tooLarge bool
	kind     error  // nil for a message; the problem of a stray group
	reason   string // for a stray group
}

// Next returns the next message.
func (s *hl7Source) Next() (Record, error) {
	if s.closed {
		return Record{}, ErrClosed
	}
	for len(s.queue) == 0 {
		if s.err != nil {
			return Record{}, s.err
		}
		if err := s.step(); err != nil {
			s.err = err
			if err == io.EOF {
				s.flush()
			}
		}
	}
	rec := s.queue[0]
	s.queue[0] = Record{}
	s.queue = s.queue[1:]
	return rec, nil
}

// Close releases the source.
func (s *hl7Source) Close() error {
	s.closed = true
	s.in, s.cur, s.queue, s.seg = nil, nil, nil, nil
	return nil
}

// step reads one segment and files it.
func (s *hl7Source) step() error {
	if err := s.readSegment(); err != nil {
		return err
	}
	seg := s.seg
	name := ""
	if len(seg) >= 3 {
		name = string(seg[:3])
	}
	switch name {
	case "MSH":
		s.flush()
		if len(seg) > 3 {
			s.sep = seg[3]
		}
		s.cur = &hl7Group{line: s.segLine, text: make([]byte, 0, s.sizeHint), raw: make([]byte, 0, min(s.sizeHint, MaxRawBytes))}
		s.add()
	case "FHS", "BHS":
		s.flush()
		if len(seg) > 3 {
			s.sep = seg[3]
		}
		s.envelope(name)
		return nil
	case "BTS", "FTS":
		if len(seg) == 3 || seg[3] == s.sep {
			s.flush()
			s.envelope(name)
			return nil
		}
		fallthrough
	default:
		if s.cur == nil {
			what := "a line that is not a segment"
			if len(seg) >= 3 && validSegmentName(name) {
				what = "the " + name + " segment"
			}
			s.cur = &hl7Group{line: s.segLine, kind: ErrMalformedMessage,
				reason: fmt.Sprintf("no MSH segment before %s on line %d: the segments up to the next MSH are not in a message", what, s.segLine)}
		}
		s.add()
	}
	return nil
}

// envelope checks and consumes a batch or file header or trailer.
func (s *hl7Source) envelope(name string) {
	trouble := func(reason string) {
		s.batchTrouble = true
		s.cur = &hl7Group{line: s.segLine, kind: ErrEnvelope, reason: reason}
		s.add()
	}
	switch name {
	case "FHS":
		switch {
		case s.fileOpen:
			trouble(fmt.Sprintf("FHS on line %d opens a file inside an open file (no FTS before it); the segments up to the next MSH are not in a message", s.segLine))
			return
		case s.batchOpen:
			trouble(fmt.Sprintf("FHS on line %d opens a file inside an open batch (no BTS before it); the segments up to the next MSH are not in a message", s.segLine))
			return
		}
		if _, reason := headerDelimiters(s.seg); reason != "" {
			trouble(fmt.Sprintf("line %d: %s", s.segLine, reason))
			return
		}
		s.fileOpen = true
		s.batchCount, s.batchTrouble = 0, false
	case "BHS":
		if s.batchOpen {
			trouble(fmt.Sprintf("BHS on line %d opens a batch inside an open batch (no BTS before it); the segments up to the next MSH are not in a message", s.segLine))
			return
		}
		if _, reason := headerDelimiters(s.seg); reason != "" {
			trouble(fmt.Sprintf("line %d: %s", s.segLine, reason))
			return
		}
		s.batchOpen = true
		s.batchCount, s.batchTrouble = 0, false
	case "BTS":
		if !s.batchTrouble {
			if n, ok := envelopeCount(s.seg, s.sep); ok && n != s.batchCount {
				s.cur = &hl7Group{line: s.segLine, kind: ErrEnvelope,
					reason: fmt.Sprintf("BTS-1 on line %d counts %d messages, the batch holds %d: messages are missing or the batch is damaged", s.segLine, n, s.batchCount)}
				s.add()
				s.flush()
			}
		}
		s.batchOpen = false
		s.batchCount, s.batchTrouble = 0, false
	case "FTS":
		s.fileOpen, s.batchOpen = false, false
		s.batchCount, s.batchTrouble = 0, false
	}
}

// envelopeCount reads BTS-1.
func envelopeCount(seg []byte, sep byte) (int, bool) {
	if len(seg) < 5 {
		return 0, false
	}
	f := seg[4:]
	if i := bytes.IndexByte(f, sep); i >= 0 {
		f = f[:i]
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(f)))
	return n, err == nil && n >= 0
}

// add appends the current segment to the current group.
func (s *hl7Source) add() {
	g := s.cur
	if !g.rawCut {
		g.raw = append(g.raw, s.seg...)
		g.raw = append(g.raw, s.segTerm...)
		if len(g.raw) > MaxRawBytes {
			g.raw, g.rawCut = g.raw[:MaxRawBytes], true
		}
	}
	if g.tooLarge || s.segLarge || len(g.text)+1+len(s.seg) > s.max {
		g.tooLarge = true
		g.text = nil
		return
	}
	if g.kind != nil {
		return // a stray group is not parsed
	}
	if len(g.text) > 0 {
		g.text = append(g.text, '\r')
	}
	g.text = append(g.text, s.seg...)
	g.lines = append(g.lines, s.segLine)
}

// flush turns the current group into a record.
func (s *hl7Source) flush() {
	g := s.cur
	if g == nil {
		return
	}
	s.cur = nil
	s.count++
	s.batchCount++
	rec := Record{Pos: Position{File: s.name, Unit: UnitMessage, Message: s.count, Line: g.line}}
	rec.Raw, rec.RawTruncated = g.raw, g.rawCut
	switch {
	case g.tooLarge:
		rec.Err = recordErr(rec.Pos, ErrRecordTooLarge, fmt.Sprintf("the message is larger than %d bytes", s.max))
	case g.kind != nil:
		rec.Err = recordErr(rec.Pos, g.kind, g.reason)
	default:
		s.sizeHint = min(len(g.raw)+len(g.raw)/8, readBufferSize)
		m, reason, kind := parseHL7(g.text, g.lines)
		rec.HL7 = m
		if kind != nil {
			rec.Err = recordErr(rec.Pos, kind, reason)
		}
	}
	s.queue = append(s.queue, rec)
}

// readSegment reads the next non-blank segment into s.seg, with its line
// end in s.segTerm and its line in s.segLine. Only the part that fits in
// the message budget is kept (s.segLarge says the rest was dropped).
func (s *hl7Source) readSegment() error {
	for {
		s.seg, s.segTerm, s.segLarge = s.seg[:0], s.segTerm[:0], false
		s.segLine = s.line
		if s.inErr != nil {
			return s.inErr
		}
		for {
			buf, err := s.in.Peek(1)
			if len(buf) == 0 {
				if err == io.EOF {
					s.inErr = io.EOF
				} else {
					s.inErr = fmt.Errorf("reading %q: line %d: %w", s.name, s.line, err)
				}
				break
			}
			buf, _ = s.in.Peek(s.in.Buffered())
			i := indexLineEnd(buf)
			n := i
			if i < 0 {
				n = len(buf)
			}
			if len(s.seg)+n > s.max {
				s.segLarge = true
				s.seg = append(s.seg, buf[:max(0, min(n, s.max-len(s.seg)))]...)
			} else {
				s.seg = append(s.seg, buf[:n]...)
			}
			s.in.Discard(n)
			if i < 0 {
				continue
			}
			// The line end: CR, LF or CRLF.
			c, _ := s.in.ReadByte()
			s.segTerm = append(s.segTerm, c)
			if c == '\r' {
				if next, err := s.in.Peek(1); err == nil && next[0] == '\n' {
					s.in.Discard(1)
					s.segTerm = append(s.segTerm, '\n')
				}
			}
			s.line++
			break
		}
		if seg := trimFraming(s.seg); len(bytes.TrimSpace(seg)) > 0 {
			if len(seg) != len(s.seg) {
				s.seg = append(s.seg[:0], seg...)
			}
			return nil
		}
		if s.inErr != nil {
			return s.inErr
		}
	}
}

func indexLineEnd(b []byte) int {
	for i, c := range b {
		if c == '\r' || c == '\n' {
			return i
		}
	}
	return -1
}
