package audit

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The verifier reads leaves with parseLeaf, which does not write the
// entry's canonical form again to compare it with the bytes read. These
// tests hold it to the reference parser (parse_ref_test.go: the parser,
// validation and canonical comparison as they were before): on valid
// leaves and on every mutation of them, both accept or both refuse, and
// what they accept they read alike.

// randomEntry returns a valid, normalized entry of any kind, with a random
// choice of its optional members.
func randomEntry(r *rand.Rand) Entry {
	tok := func(prefix string) string { return fmt.Sprintf("%s%d", prefix, r.IntN(1000)) }
	hash := func() (h [32]byte) {
		for i := range h {
			h[i] = byte(r.UintN(256))
		}
		return h
	}
	e := Entry{
		ID:       tok("e-"),
		Time:     time.Date(1+r.IntN(9999), time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1_000_000)*1000, time.UTC),
		Actor:    "Organization/" + tok("o"),
		Observer: "Device/pathway",
	}
	maybe := func(s string) string {
		if r.IntN(2) == 0 {
			return ""
		}
		return s
	}
	e.Patient = maybe("Patient/" + tok("p"))
	e.Site = maybe("pathway.example.org")
	e.Endpoint = maybe("https://fhir.example.org/" + tok("r"))
	for range r.IntN(4) {
		e.Inputs = append(e.Inputs, Input{Ref: fmt.Sprintf("Consent/c%d/_history/%d", r.IntN(100), 1+r.IntN(9)), Hash: hash()})
	}
	bundle := &Input{Ref: "Bundle/" + tok("b"), Hash: hash()}
	switch r.IntN(3) {
	case 0:
		e.Kind, e.Exchange, e.Purpose = KindDecision, tok("x-"), "COC"
		e.Effect = []Effect{EffectPermit, EffectDeny}[r.IntN(2)]
		for range r.IntN(3) {
			e.Obligations = append(e.Obligations, []string{"NORDSCLCD", "REDACT", "MASK"}[r.IntN(3)])
		}
		for range r.IntN(3) {
			e.Trail = append(e.Trail, tok("Consent/c1/_history/1#provision@")+"=permit")
		}
		if r.IntN(2) == 0 {
			e.Bundle = bundle
		}
	case 1:
		e.Kind, e.Exchange, e.Purpose, e.Bundle = KindDisclosure, tok("x-"), "TREAT", bundle
		e.Interaction = maybe("transaction")
	default:
		e.Kind, e.Interaction = KindAccess, []string{"read", "search-type", "create"}[r.IntN(3)]
		e.Effect = []Effect{EffectPermit, EffectDeny}[r.IntN(2)]
		e.Exchange, e.Purpose = maybe(tok("x-")), maybe("TREAT")
	}
	return e.Normalized()
}

// mutations returns b changed in every way a byte at a time, and some
// structural ways, each result different from b.
func mutations(b []byte) [][]byte {
	const alphabet = "\x00 \"\\,:{}[]01fFaAZz-/._~\x7f\xff"
	var out [][]byte
	add := func(m []byte) {
		if string(m) != string(b) {
			out = append(out, m)
		}
	}
	for i := range b {
		add(append(append([]byte(nil), b[:i]...), b[i+1:]...)) // deleted
		add(append([]byte(nil), b[:i]...))                     // truncated
		for _, c := range []byte(alphabet) {
			changed := append([]byte(nil), b...)
			changed[i] = c
			add(changed)
			add(append(append(append([]byte(nil), b[:i]...), c), b[i:]...)) // inserted
		}
		if i > 0 {
			swapped := append([]byte(nil), b...)
			swapped[i-1], swapped[i] = swapped[i], swapped[i-1]
			add(swapped)
		}
	}
	s := string(b)
	for _, r := range []struct{ old, new string }{
		{`":"`, `":""`},    // a value made empty, the old one left behind
		{`":"`, `":"","x`}, // an empty value, then junk
	} {
		if i := strings.Index(s, r.old); i >= 0 {
			add([]byte(s[:i] + r.new + s[i+len(r.old):]))
		}
	}
	// Empty values of members that may be left out, and upper-case hashes.
	for _, k := range canonicalKeys {
		if k == "v" {
			continue
		}
		if i := strings.Index(s, `"`+k+`":`); i >= 0 {
			// the member with an empty string instead of its value
			j := i + len(k) + 3
			end := valueEnd(s, j)
			add([]byte(s[:j] + `""` + s[end:]))
			add([]byte(s[:j] + `[]` + s[end:]))
			add([]byte(s[:j] + `[""]` + s[end:]))
		} else {
			// the member added, empty, where it belongs
			add(insertMember(s, k, `""`))
			add(insertMember(s, k, `[]`))
		}
	}
	if i := strings.Index(s, `"hash":"`); i >= 0 {
		j := i + len(`"hash":"`)
		add([]byte(s[:j] + strings.ToUpper(s[j:j+64]) + s[j+64:]))
		add([]byte(s[:j] + strings.ToUpper(s[j:j+1]) + s[j+1:]))
	}
	return out
}

// valueEnd returns the end of the JSON value of a leaf starting at j.
func valueEnd(s string, j int) int {
	depth := 0
	for k := j; k < len(s); k++ {
		switch s[k] {
		case '"':
			e := strings.IndexByte(s[k+1:], '"')
			k += e + 1
			if depth == 0 {
				return k + 1
			}
		case '[', '{':
			depth++
		case ']', '}':
			depth--
			if depth == 0 {
				return k + 1
			}
			if depth < 0 {
				return k
			}
		case ',':
			if depth == 0 {
				return k
			}
		default:
			if depth == 0 && s[k] != '1' {
				return k
			}
		}
	}
	return len(s)
}

// insertMember inserts "k":value before the first member that sorts after k.
func insertMember(s, k, value string) []byte {
	for _, later := range canonicalKeys {
		if later > k {
			if i := strings.Index(s, `"`+later+`":`); i >= 0 {
				return []byte(s[:i] + `"` + k + `":` + value + `,` + s[i:])
			}
		}
	}
	return []byte(s)
}

// checkSameVerdict fails t when parseLeaf, parseLeafShared, ParseEntry and
// the reference parser disagree on b.
func checkSameVerdict(t *testing.T, b []byte) {
	t.Helper()
	want, wantErr := refParseEntry(b, map[string]string{})
	got, gotErr := parseLeaf(b)
	pub, pubErr := ParseEntry(b)
	shared, sharedErr := parseLeafShared(bytes.Clone(b))
	if (wantErr == nil) != (gotErr == nil) || (wantErr == nil) != (pubErr == nil) || (wantErr == nil) != (sharedErr == nil) {
		t.Fatalf("%q: reference parser: %v; parseLeaf: %v; ParseEntry: %v; parseLeafShared: %v", b, wantErr, gotErr, pubErr, sharedErr)
	}
	if wantErr != nil {
		if !errors.Is(gotErr, ErrNotCanonical) || !errors.Is(pubErr, ErrNotCanonical) || !errors.Is(sharedErr, ErrNotCanonical) {
			t.Fatalf("%q: errors %v, %v, %v do not wrap ErrNotCanonical", b, gotErr, pubErr, sharedErr)
		}
		return
	}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(pub, want) || !reflect.DeepEqual(shared, want) {
		t.Fatalf("%q: parseLeaf read %+v, ParseEntry %+v, parseLeafShared %+v, the reference parser %+v", b, got, pub, shared, want)
	}
}

func TestParseLeafDifferential(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	n := 24 // about 25,000 mutations each
	if testing.Short() {
		n = 6
	}
	accepted, refused := 0, 0
	for range n {
		e := randomEntry(r)
		b, err := e.Canonical()
		if err != nil {
			t.Fatalf("generated entry: %v", err)
		}
		checkSameVerdict(t, b)
		if got, err := parseLeaf(b); err != nil || !reflect.DeepEqual(got, e) {
			t.Fatalf("%s: parseLeaf = %+v, %v; want %+v", b, got, err, e)
		}
		for _, m := range mutations(b) {
			checkSameVerdict(t, m)
			if _, err := parseLeaf(m); err == nil {
				accepted++
			} else {
				refused++
			}
		}
	}
	// Most mutations break the leaf; some (a digit of a hash or a time, a
	// letter of an id) make another valid leaf, which both must accept.
	t.Logf("%d mutations accepted by both, %d refused by both", accepted, refused)
	if accepted == 0 || refused == 0 {
		t.Fatalf("the mutations did not exercise both verdicts")
	}
}

func TestMemberIndexes(t *testing.T) {
	for i, k := range map[int]string{
		keyActor: "actor", keyBundle: "bundle", keyEffect: "effect", keyEndpoint: "endpoint", keyExchange: "exchange",
		keyID: "id", keyInputs: "inputs", keyInteraction: "interaction", keyKind: "kind", keyObligations: "obligations",
		keyObserver: "observer", keyPatient: "patient", keyPurpose: "purpose", keySite: "site", keyTime: "time",
		keyTrail: "trail", keyV: "v",
	} {
		if canonicalKeys[i] != k {
			t.Errorf("canonicalKeys[%d] = %q, want %q", i, canonicalKeys[i], k)
		}
	}
	if len(canonicalKeys) != keyV+1 {
		t.Errorf("%d canonical keys, want %d", len(canonicalKeys), keyV+1)
	}
}

// FuzzParseLeaf: on any bytes, parseLeaf and ParseEntry give the verdict
// of the reference parser, and read what it reads.
func FuzzParseLeaf(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		e := randomEntry(r)
		b, err := e.Canonical()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"actor":"Organization/a","endpoint":"","id":"a1","interaction":"read","kind":"access","effect":"permit","observer":"Device/p","time":"2025-05-01T09:30:00.000000Z","v":1}`))
	f.Fuzz(func(t *testing.T, data []byte) { checkSameVerdict(t, data) })
}

// BenchmarkParseLeaf compares parseLeaf with the reference parser on the
// entries of BenchmarkVerify's log (a decision and a disclosure).
func BenchmarkParseLeaf(b *testing.B) {
	h := HashBytes([]byte("consent"))
	at := time.Date(2025, 5, 1, 9, 30, 0, 123456000, time.UTC)
	bundle := &Input{Ref: "Bundle/b-00000001", Hash: HashBytes([]byte("bundle"))}
	var leaves [][]byte
	for _, e := range []Entry{
		{ID: "d-00000001", Kind: KindDecision, Time: at, Exchange: "x-00000001", Actor: "Organization/clinic-a", Patient: "Patient/p-000001",
			Purpose: "COC", Effect: EffectPermit, Obligations: []string{"NORDSCLCD"}, Trail: []string{"Consent/c1/_history/1"},
			Inputs: []Input{{Ref: "Consent/c1/_history/1", Hash: h}}, Bundle: bundle, Observer: "Device/pathway", Site: "pathway.example.org"},
		{ID: "s-00000001", Kind: KindDisclosure, Time: at, Exchange: "x-00000001", Actor: "Organization/clinic-a", Patient: "Patient/p-000001",
			Purpose: "COC", Inputs: []Input{{Ref: "Bundle/b-00000001/_history/1", Hash: h}}, Bundle: bundle, Interaction: "transaction",
			Endpoint: "https://clinic-a.example.org/fhir", Observer: "Device/pathway", Site: "pathway.example.org"},
	} {
		leaf, err := e.Canonical()
		if err != nil {
			b.Fatal(err)
		}
		leaves = append(leaves, leaf)
	}
	for _, p := range []struct {
		name  string
		parse func([]byte) (Entry, error)
	}{
		{"parseLeaf", parseLeaf},
		{"parseLeafShared", parseLeafShared},
		{"ParseEntry", ParseEntry},
		{"reference", func(b []byte) (Entry, error) { return refParseEntry(b, map[string]string{}) }},
	} {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := p.parse(leaves[i%len(leaves)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
