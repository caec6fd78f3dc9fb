package connectors

import (
	"bytes"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// HL7Delimiters are the delimiters of one HL7 v2 message, from MSH-1 (the
// field separator) and MSH-2 (the encoding characters).
type HL7Delimiters struct {
	Field        byte // MSH-1, usually |
	Component    byte // usually ^
	Repetition   byte // usually ~
	Escape       byte // usually \
	Subcomponent byte // usually &
	Truncation   byte // usually # from v2.7; 0 when MSH-2 has four characters
}

// HL7Message is one parsed HL7 v2 message. Segments hold their fields as
// written; Get, All and HL7Segment.Value split them into repetitions,
// components and subcomponents and decode escape sequences on the way
// out.
type HL7Message struct {
	Segments   []HL7Segment
	Delimiters HL7Delimiters
}

// HL7Segment is one segment of a message.
type HL7Segment struct {
	Name string // "PID"
	// Fields are the fields as written, escape sequences and all:
	// Fields[0] is field 1. For MSH, Fields[0] is MSH-1 (the field
	// separator itself) and Fields[1] is MSH-2 (the encoding characters),
	// as the standard numbers them.
	Fields []string
	// Line is the physical line the segment is on, counted from the
	// start of the input (of b, for ParseHL7Message).
	Line int

	d HL7Delimiters
}

// An HL7Path addresses one value in a message:
//
//	SEG[o]-F[r].C.S
//
// SEG is a segment name (PID, PRD, ZXY); [o] picks its o-th occurrence
// (PRD[2] is the second PRD segment); F is the field number; [r] picks the
// r-th repetition of the field; C and S are the component and subcomponent
// numbers. Every number counts from 1, as the standard does: "PID-3[2].1"
// is the first component of the second repetition of PID-3, "PRD[2]-2.1.1"
// the first subcomponent of PRD-2.1 in the second PRD segment, "MSH-9.2"
// the trigger event. Omitted parts are 0 in HL7Path.
//
// Get reads an omitted occurrence, repetition, component or subcomponent
// as 1, so "PID-5" is the first component of the first repetition of
// PID-5 (like HAPI's Terser). All also reads an omitted component or
// subcomponent as 1, but ranges over every occurrence of the segment and
// every repetition of the field when those are omitted.
type HL7Path struct {
	Segment      string
	Occurrence   int
	Field        int
	Repetition   int
	Component    int
	Subcomponent int
}

// ParseHL7Path parses a path such as "PID-3[2].1". Check paths from
// configuration with it once: Get and All return nothing for a path that
// does not parse.
func ParseHL7Path(path string) (HL7Path, error) {
	var p HL7Path
	bad := func(why string) (HL7Path, error) {
		return HL7Path{}, fmt.Errorf("HL7 v2 path %q: %s (want SEG-F, SEG-F.C, SEG-F.C.S, with optional [n] after SEG or F, such as PID-3[2].1)", path, why)
	}
	s := path
	if len(s) < 3 || !validSegmentName(s[:3]) {
		return bad("it does not start with a segment name")
	}
	p.Segment, s = s[:3], s[3:]
	var ok bool
	if strings.HasPrefix(s, "[") {
		if p.Occurrence, s, ok = pathIndex(s); !ok {
			return bad("the segment occurrence is not [n] with n from 1")
		}
	}
	if !strings.HasPrefix(s, "-") {
		return bad("no field number")
	}
	if p.Field, s, ok = pathNumber(s[1:]); !ok {
		return bad("the field number is not a number from 1")
	}
	if strings.HasPrefix(s, "[") {
		if p.Repetition, s, ok = pathIndex(s); !ok {
			return bad("the repetition is not [n] with n from 1")
		}
	}
	if strings.HasPrefix(s, ".") {
		if p.Component, s, ok = pathNumber(s[1:]); !ok {
			return bad("the component is not a number from 1")
		}
		if strings.HasPrefix(s, ".") {
			if p.Subcomponent, s, ok = pathNumber(s[1:]); !ok {
				return bad("the subcomponent is not a number from 1")
			}
		}
	}
	if s != "" {
		return bad("unexpected text after the path")
	}
	return p, nil
}

func pathIndex(s string) (int, string, bool) {
	n, rest, ok := pathNumber(s[1:])
	if !ok || !strings.HasPrefix(rest, "]") {
		return 0, s, false
	}
	return n, rest[1:], true
}

func pathNumber(s string) (int, string, bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 6 || s[0] == '0' {
		return 0, s, false
	}
	n, _ := strconv.Atoi(s[:i])
	return n, s[i:], true
}

// String writes the path back in the syntax ParseHL7Path reads.
func (p HL7Path) String() string {
	var b strings.Builder
	b.WriteString(p.Segment)
	if p.Occurrence > 0 {
		fmt.Fprintf(&b, "[%d]", p.Occurrence)
	}
	fmt.Fprintf(&b, "-%d", p.Field)
	if p.Repetition > 0 {
		fmt.Fprintf(&b, "[%d]", p.Repetition)
	}
	if p.Component > 0 {
		fmt.Fprintf(&b, ".%d", p.Component)
		if p.Subcomponent > 0 {
			fmt.Fprintf(&b, ".%d", p.Subcomponent)
		}
	}
	return b.String()
}

// Get returns the decoded value at path, or "" when the path does not
// parse or the message has nothing there. See HL7Path for the syntax. The
// HL7 null, written "", is returned as the two characters "".
func (m *HL7Message) Get(path string) string {
	p, err := ParseHL7Path(path)
	if err != nil {
		return ""
	}
	return m.GetPath(p)
}

// GetPath is Get with a parsed path.
func (m *HL7Message) GetPath(p HL7Path) string {
	occ := max(p.Occurrence, 1)
	for i := range m.Segments {
		if m.Segments[i].Name == p.Segment {
			if occ--; occ == 0 {
				return m.Segments[i].Value(p.Field, p.Repetition, p.Component, p.Subcomponent)
			}
		}
	}
	return ""
}

// All returns the decoded values at path: one per repetition of the field
// in each occurrence of the segment, unless the path names a repetition or
// an occurrence. An empty repetition gives "" (positions are kept); an
// empty or missing field gives nothing.
func (m *HL7Message) All(path string) []string {
	p, err := ParseHL7Path(path)
	if err != nil {
		return nil
	}
	return m.AllPath(p)
}

// AllPath is All with a parsed path.
func (m *HL7Message) AllPath(p HL7Path) []string {
	var out []string
	occ := 0
	for i := range m.Segments {
		seg := &m.Segments[i]
		if seg.Name != p.Segment {
			continue
		}
		occ++
		if p.Occurrence > 0 && occ != p.Occurrence {
			continue
		}
		n := seg.Repeats(p.Field)
		switch {
		case p.Repetition > 0:
			if p.Repetition <= n {
				out = append(out, seg.Value(p.Field, p.Repetition, p.Component, p.Subcomponent))
			}
		case n == 1:
			out = append(out, seg.Value(p.Field, 1, p.Component, p.Subcomponent))
		case n > 1:
			// One pass over the repetitions, not one from the start for each.
			rest := seg.Fields[p.Field-1]
			for r := 0; r < n; r++ {
				rep := rest
				if i := strings.IndexByte(rest, seg.d.Repetition); i >= 0 {
					rep, rest = rest[:i], rest[i+1:]
				}
				out = append(out, seg.d.Unescape(piece(piece(rep, seg.d.Component, max(p.Component, 1)), seg.d.Subcomponent, max(p.Subcomponent, 1))))
			}
		}
	}
	return out
}

// Segment returns the first segment with the name, or nil.
func (m *HL7Message) Segment(name string) *HL7Segment {
	for i := range m.Segments {
		if m.Segments[i].Name == name {
			return &m.Segments[i]
		}
	}
	return nil
}

// SegmentsNamed returns every segment with the name, in order (every PRD
// of a referral, say, to read each with HL7Segment.Value).
func (m *HL7Message) SegmentsNamed(name string) []*HL7Segment {
	var out []*HL7Segment
	for i := range m.Segments {
		if m.Segments[i].Name == name {
			out = append(out, &m.Segments[i])
		}
	}
	return out
}

// MessageCode returns MSH-9.1, the message code ("REF").
func (m *HL7Message) MessageCode() string { return m.msh(9, 1) }

// TriggerEvent returns MSH-9.2, the trigger event ("I12").
func (m *HL7Message) TriggerEvent() string { return m.msh(9, 2) }

// MessageStructure returns MSH-9.3, the message structure ("REF_I12"),
// often empty before v2.4.
func (m *HL7Message) MessageStructure() string { return m.msh(9, 3) }

// MessageType returns "code^event" ("REF^I12"), or the code alone when
// MSH-9 has no trigger event: a short label fit for logs.
func (m *HL7Message) MessageType() string {
	if e := m.TriggerEvent(); e != "" {
		return m.MessageCode() + "^" + e
	}
	return m.MessageCode()
}

// ControlID returns MSH-10, the message control id.
func (m *HL7Message) ControlID() string { return m.msh(10, 1) }

// Version returns MSH-12.1, the HL7 version ("2.5.1").
func (m *HL7Message) Version() string { return m.msh(12, 1) }

func (m *HL7Message) msh(field, comp int) string {
	if len(m.Segments) == 0 || m.Segments[0].Name != "MSH" {
		return ""
	}
	return m.Segments[0].Value(field, 1, comp, 1)
}

// LogValue logs the message as its type and control id, never its content.
func (m *HL7Message) LogValue() slog.Value {
	return slog.GroupValue(slog.String("type", m.MessageType()), slog.String("control_id", m.ControlID()))
}

// Repeats returns how many repetitions field n has: 0 when it is empty or
// absent. MSH-1 and MSH-2 never repeat.
func (s *HL7Segment) Repeats(n int) int {
	if n < 1 || n > len(s.Fields) || s.Fields[n-1] == "" {
		return 0
	}
	if s.literal(n) {
		return 1
	}
	return strings.Count(s.Fields[n-1], string(s.d.Repetition)) + 1
}

// Value returns the decoded value of field n, repetition r, component c,
// subcomponent sc, each from 1 (0 reads as 1). It returns "" when the
// segment has nothing there. MSH-1 and MSH-2 are returned as written.
func (s *HL7Segment) Value(n, r, c, sc int) string {
	if n < 1 || n > len(s.Fields) {
		return ""
	}
	v := s.Fields[n-1]
	if s.literal(n) {
		if max(r, 1) == 1 && max(c, 1) == 1 && max(sc, 1) == 1 {
			return v
		}
		return ""
	}
	v = piece(v, s.d.Repetition, max(r, 1))
	v = piece(v, s.d.Component, max(c, 1))
	v = piece(v, s.d.Subcomponent, max(sc, 1))
	return s.d.Unescape(v)
}

// literal says field n is MSH-1 or MSH-2 (or their batch and file header
// twins), which hold the delimiters themselves.
func (s *HL7Segment) literal(n int) bool {
	return n <= 2 && (s.Name == "MSH" || s.Name == "BHS" || s.Name == "FHS")
}

// piece returns the n-th (from 1) sep-separated piece of s.
func piece(s string, sep byte, n int) string {
	for ; n > 1; n-- {
		i := strings.IndexByte(s, sep)
		if i < 0 {
			return ""
		}
		s = s[i+1:]
	}
	if i := strings.IndexByte(s, sep); i >= 0 {
		return s[:i]
	}
	return s
}

// Unescape decodes the escape sequences in a value: \F\ \S\ \T\ \R\ \E\
// give the delimiters (and \P\ the truncation character), \Xhh...\ the
// bytes hh..., \.br\ a line break, \.sp\ (or \.spN\) N line breaks and
// \.skN\ N spaces. Highlighting (\H\ \N\), other formatting commands,
// character-set switches (\C..\ \M..\) and local escapes (\Z..\) are
// dropped. Anything else, and an escape character with no closing one,
// is kept as written. When hex escapes give bytes that are not UTF-8,
// those bytes are read as Latin-1.
func (d HL7Delimiters) Unescape(v string) string {
	if d.Escape == 0 || strings.IndexByte(v, d.Escape) < 0 {
		return v
	}
	var b strings.Builder
	b.Grow(len(v))
	hex := false
	for i := 0; i < len(v); {
		c := v[i]
		if c != d.Escape {
			b.WriteByte(c)
			i++
			continue
		}
		j := strings.IndexByte(v[i+1:], d.Escape)
		if j < 0 {
			b.WriteString(v[i:])
			break
		}
		seq := v[i+1 : i+1+j]
		whole := v[i : i+j+2]
		i += j + 2
		switch {
		case seq == "F":
			b.WriteByte(d.Field)
		case seq == "S":
			b.WriteByte(d.Component)
		case seq == "T":
			b.WriteByte(d.Subcomponent)
		case seq == "R":
			b.WriteByte(d.Repetition)
		case seq == "E":
			b.WriteByte(d.Escape)
		case seq == "P":
			if d.Truncation != 0 {
				b.WriteByte(d.Truncation)
			} else {
				b.WriteString(whole)
			}
		case seq == "H" || seq == "N":
		case len(seq) > 1 && seq[0] == 'X':
			if !writeHex(&b, seq[1:]) {
				b.WriteString(whole)
			} else {
				hex = true
			}
		case seq == ".br":
			b.WriteByte('\n')
		case strings.HasPrefix(seq, ".sp"):
			b.WriteString(strings.Repeat("\n", formatCount(seq[3:])))
		case strings.HasPrefix(seq, ".sk"):
			b.WriteString(strings.Repeat(" ", formatCount(seq[3:])))
		case isFormatCommand(seq):
		case len(seq) > 1 && (seq[0] == 'C' || seq[0] == 'M' || seq[0] == 'Z'):
		default:
			b.WriteString(whole)
		}
	}
	out := b.String()
	if hex && !utf8.ValidString(out) {
		out = latin1Fix(out)
	}
	return out
}

func writeHex(b *strings.Builder, h string) bool {
	if len(h)%2 != 0 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if hexVal(h[i]) < 0 {
			return false
		}
	}
	for i := 0; i < len(h); i += 2 {
		b.WriteByte(byte(hexVal(h[i])<<4 | hexVal(h[i+1])))
	}
	return true
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// formatCount reads the N of \.spN\ and \.skN\: 1 when absent, at most 99.
func formatCount(s string) int {
	s = strings.TrimPrefix(strings.TrimSpace(s), "+")
	if s == "" {
		return 1
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 1
	}
	return min(n, 99)
}

func isFormatCommand(seq string) bool {
	switch {
	case seq == ".fi", seq == ".nf", seq == ".ce":
		return true
	case strings.HasPrefix(seq, ".in"), strings.HasPrefix(seq, ".ti"):
		return true
	}
	return false
}

// latin1Fix keeps the valid UTF-8 of s and reads every other byte as
// Latin-1.
func latin1Fix(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(rune(s[i]))
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// ParseHL7Message parses one HL7 v2 message: segments separated by CR,
// LF or CRLF, the first an MSH. A problem is returned as an error wrapping
// ErrMalformedMessage or ErrInvalidUTF8, with the message as far as it
// could be read when its MSH segment was readable. Use OpenHL7v2 for
// files, which may hold many messages, batches and envelopes.
func ParseHL7Message(b []byte) (*HL7Message, error) {
	b = bytes.TrimPrefix(b, utf8BOM)
	text := make([]byte, 0, len(b))
	lines := make([]int, 0, 32)
	for line := 1; len(b) > 0; line++ {
		var seg []byte
		i := indexLineEnd(b)
		switch {
		case i < 0:
			seg, b = b, nil
		case b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n':
			seg, b = b[:i], b[i+2:]
		default:
			seg, b = b[:i], b[i+1:]
		}
		if seg = trimFraming(seg); len(bytes.TrimSpace(seg)) > 0 {
			if len(text) > 0 {
				text = append(text, '\r')
			}
			text = append(text, seg...)
			lines = append(lines, line)
		}
	}
	m, reason, kind := parseHL7(text, lines)
	if kind != nil {
		return m, fmt.Errorf("%w: %s", kind, reason)
	}
	return m, nil
}

// trimFraming removes what may surround a segment without being part of
// it: MLLP framing (VT before, FS after) and a byte order mark at the start
// of a message in concatenated files.
func trimFraming(seg []byte) []byte {
	seg = bytes.TrimLeft(seg, "\x0b\x1c")
	seg = bytes.TrimPrefix(seg, utf8BOM)
	return bytes.TrimRight(seg, "\x1c")
}

func validSegmentName(n string) bool {
	if len(n) != 3 || n[0] < 'A' || n[0] > 'Z' {
		return false
	}
	for i := 1; i < 3; i++ {
		if !(n[i] >= 'A' && n[i] <= 'Z' || n[i] >= '0' && n[i] <= '9') {
			return false
		}
	}
	return true
}

// validDelimiter says c may be a delimiter: printable ASCII, not a letter,
// digit or space.
func validDelimiter(c byte) bool {
	return c > ' ' && c < 0x7f && !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9')
}

// headerDelimiters reads MSH-1 and MSH-2 (or BHS-, FHS-) from a header
// segment.
func headerDelimiters(seg []byte) (HL7Delimiters, string) {
	name := string(seg[:min(3, len(seg))])
	if len(seg) < 4 {
		return HL7Delimiters{}, fmt.Sprintf("the %s segment is truncated: it has no field separator (%s-1)", name, name)
	}
	d := HL7Delimiters{Field: seg[3]}
	if !validDelimiter(d.Field) {
		return HL7Delimiters{}, fmt.Sprintf("%s-1: the field separator must be a printable character other than a letter, digit or space", name)
	}
	enc := seg[4:]
	if i := bytes.IndexByte(enc, d.Field); i >= 0 {
		enc = enc[:i]
	}
	if len(enc) < 4 || len(enc) > 5 {
		return HL7Delimiters{}, fmt.Sprintf("%s-2: there are %d encoding characters, want 4 (component, repetition, escape, subcomponent) or 5 (and truncation, from v2.7)", name, len(enc))
	}
	for i, c := range enc {
		if !validDelimiter(c) {
			return HL7Delimiters{}, fmt.Sprintf("%s-2: encoding character %d must be a printable character other than a letter, digit or space", name, i+1)
		}
		if c == d.Field || bytes.IndexByte(enc[:i], c) >= 0 {
			return HL7Delimiters{}, fmt.Sprintf("%s-2: encoding character %d repeats another delimiter", name, i+1)
		}
	}
	d.Component, d.Repetition, d.Escape, d.Subcomponent = enc[0], enc[1], enc[2], enc[3]
	if len(enc) == 5 {
		d.Truncation = enc[4]
	}
	return d, ""
}

// parseHL7 parses a message whose segments are joined by CR; lines are
// their line numbers. On a problem it returns its kind and reason, and the
// message as far as it could be read when its MSH was readable.
func parseHL7(text []byte, lines []int) (m *HL7Message, reason string, kind error) {
	if len(text) < 3 || string(text[:3]) != "MSH" {
		return nil, "the message does not start with an MSH segment", ErrMalformedMessage
	}
	first := text
	if i := bytes.IndexByte(text, '\r'); i >= 0 {
		first = text[:i]
	}
	d, reason := headerDelimiters(first)
	if reason != "" {
		return nil, reason, ErrMalformedMessage
	}
	// A message in a declared single-byte character set is decoded; one
	// in no declared set must be UTF-8 (or ASCII).
	if !utf8.Valid(text) {
		if cm := hl7Charset(first, d); cm != nil {
			if dec, err := cm.NewDecoder().Bytes(text); err == nil {
				text = dec
			}
		}
	}
	m = split(string(text), lines, d)
	if m.MessageCode() == "" {
		return m, "MSH-9 (message type) is empty: the message is truncated or not HL7 v2", ErrMalformedMessage
	}
	for i := range m.Segments {
		if m.Segments[i].Name == "" {
			return m, fmt.Sprintf("line %d is not a segment (a segment starts with a three-character name such as PID, then a field separator)", m.Segments[i].Line), ErrMalformedMessage
		}
	}
	if !utf8.Valid(text) {
		for i := range m.Segments {
			seg := &m.Segments[i]
			for f, v := range seg.Fields {
				if !utf8.ValidString(v) {
					return m, fmt.Sprintf("%s-%d (line %d): invalid UTF-8, and MSH-18 declares no other character set", seg.Name, f+1, seg.Line), ErrInvalidUTF8
				}
			}
		}
	}
	return m, "", nil
}

// split cuts a CR-joined message into segments and fields. The fields are
// substrings of text, sliced from one backing array. A line that is not a
// segment gets an empty Name.
func split(text string, lines []int, d HL7Delimiters) *HL7Message {
	nseg := strings.Count(text, "\r") + 1
	arena := make([]string, 0, strings.Count(text, string(d.Field))+2*nseg)
	m := &HL7Message{Segments: make([]HL7Segment, 0, nseg), Delimiters: d}
	for k := 0; text != ""; k++ {
		seg := text
		if i := strings.IndexByte(text, '\r'); i >= 0 {
			seg, text = text[:i], text[i+1:]
		} else {
			text = ""
		}
		s := HL7Segment{d: d}
		if k < len(lines) {
			s.Line = lines[k]
		}
		if len(seg) < 3 || !validSegmentName(seg[:3]) || (len(seg) > 3 && seg[3] != d.Field) {
			m.Segments = append(m.Segments, s)
			continue
		}
		s.Name = seg[:3]
		if len(seg) == 3 {
			m.Segments = append(m.Segments, s)
			continue
		}
		start := len(arena)
		rest := seg[4:]
		if s.literal(1) {
			arena = append(arena, seg[3:4])
			enc := rest
			if i := strings.IndexByte(rest, d.Field); i >= 0 {
				enc, rest = rest[:i], rest[i+1:]
				arena = append(arena, enc)
			} else {
				arena = append(arena, enc)
				s.Fields = arena[start:len(arena):len(arena)]
				m.Segments = append(m.Segments, s)
				continue
			}
		}
		for {
			i := strings.IndexByte(rest, d.Field)
			if i < 0 {
				arena = append(arena, rest)
				break
			}
			arena = append(arena, rest[:i])
			rest = rest[i+1:]
		}
		s.Fields = arena[start:len(arena):len(arena)]
		m.Segments = append(m.Segments, s)
	}
	return m
}

// hl7Charsets maps MSH-18 values to the single-byte character sets a
// message may declare.
var hl7Charsets = map[string]*charmap.Charmap{
	"8859/1": charmap.ISO8859_1, "8859/2": charmap.ISO8859_2, "8859/3": charmap.ISO8859_3,
	"8859/4": charmap.ISO8859_4, "8859/5": charmap.ISO8859_5, "8859/6": charmap.ISO8859_6,
	"8859/7": charmap.ISO8859_7, "8859/8": charmap.ISO8859_8, "8859/9": charmap.ISO8859_9,
	"8859/15": charmap.ISO8859_15,
}

// hl7Charset returns the character set MSH-18 declares, if it is one of
// hl7Charsets.
func hl7Charset(msh []byte, d HL7Delimiters) *charmap.Charmap {
	fields := bytes.Split(msh, []byte{d.Field})
	// fields[0] is "MSH", fields[1] MSH-2, so MSH-n is fields[n-1].
	if len(fields) < 18 {
		return nil
	}
	v := fields[17]
	if i := bytes.IndexByte(v, d.Repetition); i >= 0 {
		v = v[:i]
	}
	if i := bytes.IndexByte(v, d.Component); i >= 0 {
		v = v[:i]
	}
	return hl7Charsets[strings.TrimSpace(string(v))]
}
