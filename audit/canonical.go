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
)

// ErrNotCanonical is returned (wrapped) by ParseEntry for bytes that are not
// exactly the canonical form of a valid entry.
var ErrNotCanonical = errors.New("not a canonical audit entry")

// ParseEntry reads a leaf: it accepts exactly the bytes Entry.Canonical
// writes for a valid entry, and nothing else (no whitespace, members in
// order, no unknown members, no trailing bytes, format version 1).
func ParseEntry(b []byte) (Entry, error) { return parseEntry(b, nil) }

// parseEntry is ParseEntry sharing the strings of repeated values (kinds,
// partners, purposes, consent versions...) through intern, when not nil.
func parseEntry(b []byte, intern map[string]string) (Entry, error) {
	p := entryParser{b: b, intern: intern}
	e, err := p.entry()
	if err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrNotCanonical, err)
	}
	if err := e.Validate(); err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrNotCanonical, err)
	}
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	*buf = e.appendCanonical((*buf)[:0])
	if !bytes.Equal(*buf, b) {
		return Entry{}, fmt.Errorf("%w: the bytes differ from the entry's canonical form", ErrNotCanonical)
	}
	return e, nil
}

// keyIndex maps each member name to its place in canonicalKeys.
var keyIndex = func() map[string]int {
	m := make(map[string]int, len(canonicalKeys))
	for i, k := range canonicalKeys {
		m[k] = i
	}
	return m
}()

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// entryParser reads the JSON subset leaves use: one object of known
// members, string values without escapes, arrays of strings or of
// {hash, ref} objects, and the integer 1.
type entryParser struct {
	b      []byte
	i      int
	intern map[string]string
}

// maxInterned bounds the strings an intern table keeps.
const maxInterned = 4096

// shared returns the string of b, shared through the intern table.
func (p *entryParser) shared(b []byte) string {
	if p.intern == nil {
		return string(b)
	}
	if s, ok := p.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(p.intern) < maxInterned {
		p.intern[s] = s
	}
	return s
}

// sharedStr reads a string of token bytes, shared through the intern table.
func (p *entryParser) sharedStr() (string, error) {
	start := p.i + 1
	if _, err := p.rawStr(); err != nil {
		return "", err
	}
	return p.shared(p.b[start : p.i-1]), nil
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

// str reads a string of token bytes.
func (p *entryParser) str() (string, error) {
	b, err := p.rawStr()
	return string(b), err
}

// rawStr reads a string of token bytes and returns them, without copying.
func (p *entryParser) rawStr() ([]byte, error) {
	if err := p.expect('"'); err != nil {
		return nil, err
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			p.i++
			return p.b[start : p.i-1], nil
		}
		if c <= ' ' || c > '~' || c == '\\' {
			return nil, p.fail("a string holds a byte outside printable ASCII, a space or an escape")
		}
		p.i++
	}
	return nil, p.fail("unterminated string")
}

func (p *entryParser) strs() ([]string, error) {
	if err := p.expect('['); err != nil {
		return nil, err
	}
	var out []string
	for {
		s, err := p.sharedStr()
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
	h, err := p.rawStr()
	if err != nil {
		return in, err
	}
	if len(h) != 64 {
		return in, p.fail("a hash is not 64 hex digits")
	}
	if _, err := hex.Decode(in.Hash[:], h); err != nil {
		return in, p.fail("a hash is not hex")
	}
	if err := p.expectLit(`,"ref":`); err != nil {
		return in, err
	}
	if in.Ref, err = p.sharedStr(); err != nil {
		return in, err
	}
	return in, p.expect('}')
}

func (p *entryParser) expectLit(lit string) error {
	if !bytes.HasPrefix(p.b[p.i:], []byte(lit)) {
		return p.fail(fmt.Sprintf("want %s", lit))
	}
	p.i += len(lit)
	return nil
}

func (p *entryParser) entry() (Entry, error) {
	var e Entry
	if err := p.expect('{'); err != nil {
		return e, err
	}
	next := 0 // index into canonicalKeys of the next member allowed
	for {
		kb, err := p.rawStr()
		if err != nil {
			return e, err
		}
		idx, known := keyIndex[string(kb)]
		if !known || idx < next {
			return e, p.fail(fmt.Sprintf("member %q is unknown, repeated or out of order", kb))
		}
		k := canonicalKeys[idx]
		next = idx + 1
		if err := p.expect(':'); err != nil {
			return e, err
		}
		if err := p.member(&e, k); err != nil {
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

func (p *entryParser) member(e *Entry, k string) error {
	var err error
	switch k {
	case "actor":
		e.Actor, err = p.sharedStr()
	case "bundle":
		var in Input
		in, err = p.input()
		e.Bundle = &in
	case "effect":
		var s string
		s, err = p.sharedStr()
		e.Effect = Effect(s)
	case "endpoint":
		e.Endpoint, err = p.sharedStr()
	case "exchange":
		e.Exchange, err = p.str()
	case "id":
		e.ID, err = p.str()
	case "inputs":
		if err = p.expect('['); err != nil {
			return err
		}
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
	case "interaction":
		e.Interaction, err = p.sharedStr()
	case "kind":
		var s string
		s, err = p.sharedStr()
		e.Kind = Kind(s)
	case "obligations":
		e.Obligations, err = p.strs()
	case "observer":
		e.Observer, err = p.sharedStr()
	case "patient":
		e.Patient, err = p.str()
	case "purpose":
		e.Purpose, err = p.sharedStr()
	case "site":
		e.Site, err = p.sharedStr()
	case "time":
		var s []byte
		if s, err = p.rawStr(); err != nil {
			return err
		}
		var ok bool
		if e.Time, ok = parseTime(s); !ok {
			return p.fail("time is not in the layout " + timeLayout)
		}
	case "trail":
		e.Trail, err = p.strs()
	case "v":
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
