package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"sync"
	"time"
	"unsafe"
)

// ErrNotCanonical is returned (wrapped) by ParseEntry for bytes that are not
// exactly the canonical form of a valid entry.
var ErrNotCanonical = errors.New("not a canonical audit entry")

// ParseEntry reads a leaf: it accepts exactly the bytes Entry.Canonical
// writes for a valid entry, and nothing else (no whitespace, members in
// order, no unknown members, no trailing bytes, format version 1).
//
// It parses and validates the entry (parseLeaf) and then, belt and braces,
// checks that the entry's canonical form is the given bytes. The verifier
// skips that last step: parseLeaf alone is already exactly as strict, which
// FuzzParseLeaf and TestParseLeafDifferential check against the parser as
// it was before that shortcut.
func ParseEntry(b []byte) (Entry, error) {
	e, err := parseLeaf(b)
	if err != nil {
		return Entry{}, err
	}
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	*buf = e.appendCanonical((*buf)[:0])
	if !bytes.Equal(*buf, b) {
		return Entry{}, fmt.Errorf("%w: the bytes differ from the entry's canonical form", ErrNotCanonical)
	}
	return e, nil
}

// parseLeaf reads a leaf as ParseEntry does, without writing the entry's
// canonical form again to compare: the parser only accepts what that form
// can be. It reads the JSON subset leaves use with members in their order,
// each string a non-empty run of token bytes and each hash lowercase hex,
// and the entry it reads must be valid (Entry.Validate). Such an entry is
// written back byte for byte: every member present is written, as read (a
// member is only left out when it is empty, and nothing read is empty), in
// the same order, times in the one layout they were read in, hashes in
// lowercase hex, and "v" last.
//
// Every string of the entry is a substring of one copy of b.
func parseLeaf(b []byte) (Entry, error) { return parseLeafAs(b, "") }

// parseLeafShared is parseLeaf for bytes that never change: the entry's
// strings share their memory instead of a copy. The verifier reads every
// leaf of the log into memory nothing writes to afterwards (the store's
// batches), so it parses them so.
func parseLeafShared(b []byte) (Entry, error) {
	if len(b) == 0 {
		return parseLeafAs(b, "")
	}
	return parseLeafAs(b, unsafe.String(unsafe.SliceData(b), len(b)))
}

// parseLeafAs is parseLeaf with s, if not empty, the string of b.
func parseLeafAs(b []byte, s string) (Entry, error) {
	p := entryParser{b: b, s: s}
	e, err := p.entry()
	if err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrNotCanonical, err)
	}
	if err := e.Validate(); err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrNotCanonical, err)
	}
	return e, nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// entryParser reads the JSON subset leaves use: one object of known
// members in canonical order, non-empty string values without escapes,
// arrays of strings or of {hash, ref} objects, and the integer 1.
type entryParser struct {
	b []byte
	s string // b as a string, made on first use: strings are its substrings
	i int
}

func (p *entryParser) fail(what string) error {
	return fmt.Errorf("byte %d: %s", p.i, what)
}

func (p *entryParser) expect(c byte) error {
	if p.i >= len(p.b) || p.b[p.i] != c {
		return p.fail(fmt.Sprintf("want %q", c))
	}
	p.i++
	return nil
}

// tokenByte marks the bytes a token may hold: printable ASCII other than
// space, '"' and '\\'.
var tokenByte = func() (t [256]bool) {
	for c := '!'; c <= '~'; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// span reads a string of token bytes and returns where its bytes start
// and end. An empty string is refused: no member of a leaf is ever empty
// (an empty member is left out).
func (p *entryParser) span() (int, int, error) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return 0, 0, p.fail(`want '"'`)
	}
	p.i++
	start := p.i
	for p.i < len(p.b) && tokenByte[p.b[p.i]] {
		p.i++
	}
	switch {
	case p.i == len(p.b):
		return 0, 0, p.fail("unterminated string")
	case p.b[p.i] != '"':
		return 0, 0, p.fail("a string holds a byte outside printable ASCII, a space or an escape")
	case p.i == start:
		return 0, 0, p.fail("an empty string (an empty member is left out)")
	}
	p.i++
	return start, p.i - 1, nil
}

// str reads a string of token bytes.
func (p *entryParser) str() (string, error) {
	start, end, err := p.span()
	if err != nil {
		return "", err
	}
	if p.s == "" {
		p.s = string(p.b)
	}
	return p.s[start:end], nil
}

func (p *entryParser) strs() ([]string, error) {
	if err := p.expect('['); err != nil {
		return nil, err
	}
	out := make([]string, 0, 1)
	for {
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
		if p.i < len(p.b) && p.b[p.i] == ',' {
			p.i++
			continue
		}
		return out, p.expect(']')
	}
}

func (p *entryParser) input() (Input, error) {
	var in Input
	if err := p.expectLit(`{"hash":`); err != nil {
		return in, err
	}
	start, end, err := p.span()
	if err != nil {
		return in, err
	}
	if end-start != 2*len(in.Hash) {
		return in, p.fail("a hash is not 64 hex digits")
	}
	if !decodeLowerHex(in.Hash[:], p.b[start:end]) {
		return in, p.fail("a hash is not lowercase hex")
	}
	if err := p.expectLit(`,"ref":`); err != nil {
		return in, err
	}
	if in.Ref, err = p.str(); err != nil {
		return in, err
	}
	return in, p.expect('}')
}

// decodeLowerHex decodes src, 2*len(dst) lowercase hexadecimal digits, into
// dst. Upper-case digits are refused: leaves write hashes in lowercase.
func decodeLowerHex(dst, src []byte) bool {
	src = src[:2*len(dst)]
	bad := byte(0)
	for i := range dst {
		hi, lo := lowerHex[src[2*i]], lowerHex[src[2*i+1]]
		bad |= hi | lo
		dst[i] = hi<<4 | lo&0xf
	}
	return bad&0xf0 == 0
}

// lowerHex maps lowercase hexadecimal digits to their value, and every
// other byte to 0xff.
var lowerHex = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "0123456789abcdef" {
		t[c] = byte(i)
	}
	return t
}()

func (p *entryParser) expectLit(lit string) error {
	if !p.hasLit(lit) {
		return p.fail(fmt.Sprintf("want %s", lit))
	}
	p.i += len(lit)
	return nil
}

// hasLit reports whether lit comes next.
func (p *entryParser) hasLit(lit string) bool {
	return len(p.b)-p.i >= len(lit) && string(p.b[p.i:p.i+len(lit)]) == lit
}

// keyLits are the members' names as they start a member: "name":.
var keyLits = func() []string {
	out := make([]string, len(canonicalKeys))
	for i, k := range canonicalKeys {
		out[i] = `"` + k + `":`
	}
	return out
}()

// Member indexes into canonicalKeys.
const (
	keyActor = iota
	keyBundle
	keyEffect
	keyEndpoint
	keyExchange
	keyID
	keyInputs
	keyInteraction
	keyKind
	keyObligations
	keyObserver
	keyPatient
	keyPurpose
	keySite
	keyTime
	keyTrail
	keyV
)

func (p *entryParser) entry() (Entry, error) {
	var e Entry
	if err := p.expect('{'); err != nil {
		return e, err
	}
	next := 0 // index into canonicalKeys of the next member allowed
	for {
		// The member is the next allowed one whose name, quoted, and
		// colon come next: a name ends at its quote, so at most one fits.
		idx := next
		for idx < len(keyLits) && !p.hasLit(keyLits[idx]) {
			idx++
		}
		if idx == len(keyLits) {
			// Not a member allowed here: say what it is.
			start, end, err := p.span()
			if err != nil {
				return e, err
			}
			if err := p.expect(':'); err != nil {
				return e, err
			}
			return e, p.fail(fmt.Sprintf("member %q is unknown, repeated or out of order", p.b[start:end]))
		}
		p.i += len(keyLits[idx])
		next = idx + 1
		if err := p.member(&e, idx); err != nil {
			return e, err
		}
		if p.i < len(p.b) && p.b[p.i] == ',' {
			p.i++
			continue
		}
		if err := p.expect('}'); err != nil {
			return e, err
		}
		if p.i != len(p.b) {
			return e, p.fail("trailing bytes after the entry")
		}
		if next != len(canonicalKeys) {
			return e, errors.New(`no "v" member`)
		}
		return e, nil
	}
}

func (p *entryParser) member(e *Entry, k int) error {
	var (
		s   string
		err error
	)
	switch k {
	case keyActor:
		e.Actor, err = p.str()
	case keyBundle:
		var in Input
		in, err = p.input()
		e.Bundle = &in
	case keyEffect:
		s, err = p.str()
		e.Effect = Effect(s)
	case keyEndpoint:
		e.Endpoint, err = p.str()
	case keyExchange:
		e.Exchange, err = p.str()
	case keyID:
		e.ID, err = p.str()
	case keyInputs:
		if err = p.expect('['); err != nil {
			return err
		}
		e.Inputs = make([]Input, 0, 1)
		for {
			var in Input
			if in, err = p.input(); err != nil {
				return err
			}
			e.Inputs = append(e.Inputs, in)
			if p.i < len(p.b) && p.b[p.i] == ',' {
				p.i++
				continue
			}
			return p.expect(']')
		}
	case keyInteraction:
		e.Interaction, err = p.str()
	case keyKind:
		s, err = p.str()
		e.Kind = Kind(s)
	case keyObligations:
		e.Obligations, err = p.strs()
	case keyObserver:
		e.Observer, err = p.str()
	case keyPatient:
		e.Patient, err = p.str()
	case keyPurpose:
		e.Purpose, err = p.str()
	case keySite:
		e.Site, err = p.str()
	case keyTime:
		var start, end int
		if start, end, err = p.span(); err != nil {
			return err
		}
		var ok bool
		if e.Time, ok = parseTime(p.b[start:end]); !ok {
			return p.fail("time is not in the layout " + timeLayout)
		}
	case keyTrail:
		e.Trail, err = p.strs()
	case keyV:
		if p.i < len(p.b) && p.b[p.i] == '1' && (p.i+1 == len(p.b) || p.b[p.i+1] == '}') {
			p.i++
			return nil
		}
		return p.fail(fmt.Sprintf("unknown format version (this verifier reads version %d)", FormatVersion))
	}
	return err
}

// parseTime reads a time in timeLayout (2006-01-02T15:04:05.000000Z).
func parseTime(b []byte) (time.Time, bool) {
	if len(b) != len(timeLayout) || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[19] != '.' || b[26] != 'Z' {
		return time.Time{}, false
	}
	num := func(from, to int) (int, bool) {
		n := 0
		for _, c := range b[from:to] {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	var v [7]int
	for i, r := range [7][2]int{{0, 4}, {5, 7}, {8, 10}, {11, 13}, {14, 16}, {17, 19}, {20, 26}} {
		n, ok := num(r[0], r[1])
		if !ok {
			return time.Time{}, false
		}
		v[i] = n
	}
	t := time.Date(v[0], time.Month(v[1]), v[2], v[3], v[4], v[5], v[6]*1000, time.UTC)
	// time.Date normalises out-of-range fields (February 30th): refuse them.
	if t.Year() != v[0] || int(t.Month()) != v[1] || t.Day() != v[2] || t.Hour() != v[3] || t.Minute() != v[4] || t.Second() != v[5] {
		return time.Time{}, false
	}
	return t, true
}

// entryJSON is an entry as any JSON holding the same members: receipts
// carry a readable copy of each leaf, which may have been re-indented.
type entryJSON struct {
	Actor       string       `json:"actor"`
	Bundle      *inputJSON   `json:"bundle"`
	Effect      string       `json:"effect"`
	Endpoint    string       `json:"endpoint"`
	Exchange    string       `json:"exchange"`
	ID          string       `json:"id"`
	Inputs      []*inputJSON `json:"inputs"`
	Interaction string       `json:"interaction"`
	Kind        string       `json:"kind"`
	Obligations []string     `json:"obligations"`
	Observer    string       `json:"observer"`
	Patient     string       `json:"patient"`
	Purpose     string       `json:"purpose"`
	Site        string       `json:"site"`
	Time        string       `json:"time"`
	Trail       []string     `json:"trail"`
	V           int          `json:"v"`
}

type inputJSON struct {
	Hash string `json:"hash"`
	Ref  string `json:"ref"`
}

// canonicalFromJSON returns the canonical bytes of an entry given as any
// JSON object with the leaf's members: the readable copy in a receipt.
func canonicalFromJSON(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var j entryJSON
	if err := dec.Decode(&j); err != nil {
		return nil, err
	}
	if j.V != FormatVersion {
		return nil, fmt.Errorf("format version %d, this verifier reads %d", j.V, FormatVersion)
	}
	t, err := time.Parse(timeLayout, j.Time)
	if err != nil {
		return nil, errors.New("time is not in the layout " + timeLayout)
	}
	e := Entry{
		ID: j.ID, Kind: Kind(j.Kind), Time: t, Exchange: j.Exchange, Actor: j.Actor, Patient: j.Patient,
		Purpose: j.Purpose, Effect: Effect(j.Effect), Obligations: j.Obligations, Trail: j.Trail,
		Interaction: j.Interaction, Endpoint: j.Endpoint, Observer: j.Observer, Site: j.Site,
	}
	conv := func(in *inputJSON) (Input, error) {
		var out Input
		if in == nil || len(in.Hash) != 64 {
			return out, errors.New("an input hash is not 64 hex digits")
		}
		if _, err := hex.Decode(out.Hash[:], []byte(in.Hash)); err != nil {
			return out, errors.New("an input hash is not hex")
		}
		out.Ref = in.Ref
		return out, nil
	}
	for _, in := range j.Inputs {
		c, err := conv(in)
		if err != nil {
			return nil, err
		}
		e.Inputs = append(e.Inputs, c)
	}
	if j.Bundle != nil {
		c, err := conv(j.Bundle)
		if err != nil {
			return nil, err
		}
		e.Bundle = &c
	}
	return e.Canonical()
}

// leafHasher hashes leaves as RFC 6962 does: SHA-256(0x00 || leaf).
type leafHasher struct{ h hash.Hash }

func newLeafHasher() *leafHasher { return &leafHasher{h: sha256.New()} }

func (l *leafHasher) sum(data []byte) []byte {
	l.h.Reset()
	l.h.Write([]byte{0})
	l.h.Write(data)
	return l.h.Sum(make([]byte, 0, sha256.Size))
}

// LeafHash returns the RFC 6962 leaf hash of canonical bytes:
// SHA-256(0x00 || data).
func LeafHash(data []byte) []byte { return newLeafHasher().sum(data) }
