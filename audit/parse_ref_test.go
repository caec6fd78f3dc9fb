package audit

// The reference parser: ParseEntry and Entry.Validate exactly as they were
// before the verifier got its fast path (commit bed38e0), kept here, and
// only here, so that the differential tests compare the parser of today
// with the parser whose strictness docs/audit.md describes. Do not
// optimise this file: it is the yardstick.

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// refParseEntry is ParseEntry sharing the strings of repeated values (kinds,
// partners, purposes, consent versions...) through intern, when not nil.
func refParseEntry(b []byte, intern map[string]string) (Entry, error) {
	p := refEntryParser{b: b, intern: intern}
	e, err := p.entry()
	if err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrNotCanonical, err)
	}
	if err := refValidate(e); err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrNotCanonical, err)
	}
	buf := refBufPool.Get().(*[]byte)
	defer refBufPool.Put(buf)
	*buf = e.appendCanonical((*buf)[:0])
	if !bytes.Equal(*buf, b) {
		return Entry{}, fmt.Errorf("%w: the bytes differ from the entry's canonical form", ErrNotCanonical)
	}
	return e, nil
}

// refKeyIndex maps each member name to its place in canonicalKeys.
var refKeyIndex = func() map[string]int {
	m := make(map[string]int, len(canonicalKeys))
	for i, k := range canonicalKeys {
		m[k] = i
	}
	return m
}()

var refBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// refEntryParser reads the JSON subset leaves use: one object of known
// members, string values without escapes, arrays of strings or of
// {hash, ref} objects, and the integer 1.
type refEntryParser struct {
	b      []byte
	i      int
	intern map[string]string
}

// refMaxInterned bounds the strings an intern table keeps.
const refMaxInterned = 4096

// shared returns the string of b, shared through the intern table.
func (p *refEntryParser) shared(b []byte) string {
	if p.intern == nil {
		return string(b)
	}
	if s, ok := p.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(p.intern) < refMaxInterned {
		p.intern[s] = s
	}
	return s
}

// sharedStr reads a string of token bytes, shared through the intern table.
func (p *refEntryParser) sharedStr() (string, error) {
	start := p.i + 1
	if _, err := p.rawStr(); err != nil {
		return "", err
	}
	return p.shared(p.b[start : p.i-1]), nil
}

func (p *refEntryParser) fail(what string) error {
	return fmt.Errorf("byte %d: %s", p.i, what)
}

func (p *refEntryParser) expect(c byte) error {
	if p.i >= len(p.b) || p.b[p.i] != c {
		return p.fail(fmt.Sprintf("want %q", c))
	}
	p.i++
	return nil
}

// str reads a string of token bytes.
func (p *refEntryParser) str() (string, error) {
	b, err := p.rawStr()
	return string(b), err
}

// rawStr reads a string of token bytes and returns them, without copying.
func (p *refEntryParser) rawStr() ([]byte, error) {
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

func (p *refEntryParser) strs() ([]string, error) {
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

func (p *refEntryParser) input() (Input, error) {
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

func (p *refEntryParser) expectLit(lit string) error {
	if !bytes.HasPrefix(p.b[p.i:], []byte(lit)) {
		return p.fail(fmt.Sprintf("want %s", lit))
	}
	p.i += len(lit)
	return nil
}

func (p *refEntryParser) entry() (Entry, error) {
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
		idx, known := refKeyIndex[string(kb)]
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

func (p *refEntryParser) member(e *Entry, k string) error {
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
		if e.Time, ok = refParseTime(s); !ok {
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

// refParseTime reads a time in timeLayout (2006-01-02T15:04:05.000000Z).
func refParseTime(b []byte) (time.Time, bool) {
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

// refValidate is Entry.Validate as it was; it checks a normalized entry and returns every problem found, joined.
// Messages name fields, never their values.
func refValidate(e Entry) error {
	var errs []error
	bad := func(field, why string) { errs = append(errs, fmt.Errorf("%s: %s", field, why)) }
	token := func(field, s string, required bool) {
		switch {
		case s == "":
			if required {
				bad(field, "required")
			}
		case !validToken(s):
			bad(field, fmt.Sprintf("not a token (1 to %d bytes of printable ASCII without spaces, quotes or backslashes)", maxToken))
		}
	}
	if !validFHIRID(e.ID) {
		bad("id", "not a FHIR id (1 to 64 of A-Z a-z 0-9 - .)")
	}
	if !e.Kind.valid() {
		bad("kind", "not decision, disclosure or access")
	}
	switch {
	case e.Time.IsZero():
		bad("time", "required")
	case !e.Time.Equal(normTime(e.Time)) || e.Time.Location() != time.UTC:
		bad("time", "not normalized (UTC, microseconds)")
	case e.Time.Year() < 1 || e.Time.Year() > 9999:
		bad("time", "outside years 1 to 9999")
	}
	token("exchange", e.Exchange, e.Kind == KindDecision || e.Kind == KindDisclosure)
	if !validLiteralRef(e.Actor, "") {
		bad("actor", "required, a reference Type/id")
	}
	if e.Patient != "" && !validLiteralRef(e.Patient, "Patient") {
		bad("patient", "not a reference Patient/id")
	}
	token("purpose", e.Purpose, e.Kind == KindDecision || e.Kind == KindDisclosure)
	switch {
	case e.Kind == KindDisclosure && e.Effect != "":
		bad("effect", "a disclosure has no effect")
	case e.Kind != KindDisclosure && !e.Effect.valid():
		bad("effect", "required: permit or deny")
	}
	if e.Kind != KindDecision && (len(e.Obligations) > 0 || len(e.Trail) > 0) {
		bad("obligations", "only decisions have obligations and a trail")
	}
	for i, o := range e.Obligations {
		token(fmt.Sprintf("obligations[%d]", i), o, true)
		if i > 0 && e.Obligations[i-1] >= o {
			bad("obligations", "not sorted without repeats")
		}
	}
	for i, s := range e.Trail {
		token(fmt.Sprintf("trail[%d]", i), s, true)
	}
	for i, in := range e.Inputs {
		token(fmt.Sprintf("inputs[%d].ref", i), in.Ref, true)
		if i > 0 && e.Inputs[i-1].Ref >= in.Ref {
			bad("inputs", "not sorted by ref without repeats")
		}
	}
	switch {
	case e.Bundle == nil:
		if e.Kind == KindDisclosure {
			bad("bundle", "required for a disclosure")
		}
	case e.Kind == KindAccess:
		bad("bundle", "an access has no bundle")
	case !validLiteralRef(e.Bundle.Ref, "Bundle"):
		bad("bundle.ref", "not a reference Bundle/id")
	}
	switch {
	case e.Interaction == "":
		if e.Kind == KindAccess {
			bad("interaction", "required for an access")
		}
	case e.Kind == KindDecision:
		bad("interaction", "a decision has no interaction")
	default:
		if _, ok := restfulInteractions[e.Interaction]; !ok {
			bad("interaction", "not a code of http://hl7.org/fhir/restful-interaction")
		}
	}
	token("endpoint", e.Endpoint, false)
	if !validLiteralRef(e.Observer, "") {
		bad("observer", "required, a reference Type/id")
	}
	token("site", e.Site, false)
	return errors.Join(errs...)
}
