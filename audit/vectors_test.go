package audit_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/store"
)

var update = flag.Bool("update", false, "rewrite testdata/audit/vectors.json")

const vectorsFile = "../testdata/audit/vectors.json"

// vectors is testdata/audit/vectors.json: proofs over a small log, each
// valid one followed by systematic mutations that must not verify. Hashes
// and proofs are base64 (standard, padded), as in checkpoints.
type vectors struct {
	Comment     string              `json:"comment"`
	VerifierKey string              `json:"verifier_key"`
	Leaves      []string            `json:"leaves"`
	Inclusion   []inclusionVector   `json:"inclusion"`
	Consistency []consistencyVector `json:"consistency"`
	Receipts    []receiptVector     `json:"receipts"`
}

type inclusionVector struct {
	Name     string   `json:"name"`
	Index    uint64   `json:"index"`
	Size     uint64   `json:"size"`
	LeafHash []byte   `json:"leaf_hash"`
	Proof    [][]byte `json:"proof"`
	Root     []byte   `json:"root"`
	Valid    bool     `json:"valid"`
}

type consistencyVector struct {
	Name  string   `json:"name"`
	Size1 uint64   `json:"size1"`
	Size2 uint64   `json:"size2"`
	Root1 []byte   `json:"root1"`
	Root2 []byte   `json:"root2"`
	Proof [][]byte `json:"proof"`
	Valid bool     `json:"valid"`
}

type receiptVector struct {
	Name    string `json:"name"`
	Receipt string `json:"receipt"`
	Bundle  []byte `json:"bundle,omitempty"`
	Valid   bool   `json:"valid"`
}

// vectorLeaves are the canonical bytes of seven entries of a small log.
func vectorLeaves(t *testing.T) [][]byte {
	c := store.Resource{Type: "Consent", ID: "c1", Version: 1, Data: consentData("c1", 1, "permit COC Organization/clinic-a", "obligation NORDSCLCD")}
	c.Hash = audit.HashBytes(c.Data)
	es := []audit.Entry{
		decide(t, 0, []store.Resource{c}, "COC", "Organization/clinic-a"), disclose(0, "Organization/clinic-a"),
		decide(t, 1, []store.Resource{c}, "COC", "Organization/ngo-b"), access(2),
		decide(t, 3, []store.Resource{c}, "COC", "Organization/clinic-a"), disclose(3, "Organization/clinic-a"), access(4),
	}
	var out [][]byte
	for _, e := range es {
		b, err := e.Normalized().Canonical()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func flip(b []byte, bit int) []byte {
	out := append([]byte(nil), b...)
	out[(bit/8)%len(out)] ^= 1 << (bit % 8)
	return out
}

func cloneHashes(p [][]byte) [][]byte {
	out := make([][]byte, len(p))
	for i, h := range p {
		out[i] = append([]byte(nil), h...)
	}
	return out
}

// otherSize returns the size nearest to size, at least min, whose RFC 6962
// proof for the given shape has another length: with it, any proof is of
// the wrong length, so invalid by construction.
func otherSize(size, min uint64, length func(uint64) int) uint64 {
	n := length(size)
	for d := uint64(1); d < 64; d++ {
		if size+d >= min && length(size+d) != n {
			return size + d
		}
		if size >= d && size-d >= min && length(size-d) != n {
			return size - d
		}
	}
	panic("no size with another proof length")
}

// fakeLeaves stands for a tree of n leaves when only proof shapes matter.
func fakeLeaves(n uint64) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte{byte(i)}
	}
	return out
}

func buildVectors(t *testing.T) *vectors {
	leaves := vectorLeaves(t)
	v := &vectors{
		Comment: "Pathway audit log proof vectors (docs/audit.md). Leaves are canonical entries; hashes and proofs are standard base64. " +
			"Each valid vector is followed by mutations that must not verify. Regenerate with: go test ./audit -run TestVectors -update",
		VerifierKey: testVKey,
	}
	for _, l := range leaves {
		v.Leaves = append(v.Leaves, string(l))
	}
	for _, c := range [][2]uint64{{0, 1}, {0, 7}, {3, 7}, {6, 7}, {4, 5}, {2, 4}} {
		idx, size := c[0], c[1]
		base := inclusionVector{
			Name: fmt.Sprintf("leaf %d in tree %d", idx, size), Index: idx, Size: size,
			LeafHash: refLeaf(leaves[idx]), Proof: refPath(int(idx), leaves[:size]), Root: refMTH(leaves[:size]), Valid: true,
		}
		if base.Proof == nil {
			base.Proof = [][]byte{}
		}
		v.Inclusion = append(v.Inclusion, base)
		mut := func(name string, f func(*inclusionVector)) {
			m := base
			m.Proof = cloneHashes(base.Proof)
			m.Name, m.Valid = base.Name+": "+name, false
			f(&m)
			v.Inclusion = append(v.Inclusion, m)
		}
		for j := range base.Proof {
			mut(fmt.Sprintf("flipped bit in proof[%d]", j), func(m *inclusionVector) { m.Proof[j] = flip(m.Proof[j], 8*j+3) })
		}
		mut("flipped bit in leaf hash", func(m *inclusionVector) { m.LeafHash = flip(m.LeafHash, 77) })
		mut("flipped bit in root", func(m *inclusionVector) { m.Root = flip(m.Root, 200) })
		if size > 1 {
			mut("wrong index", func(m *inclusionVector) { m.Index = (idx + 1) % size })
		}
		pathLen := func(n uint64) int { return len(refPath(int(idx), fakeLeaves(n))) }
		mut("wrong size", func(m *inclusionVector) { m.Size = otherSize(size, idx+1, pathLen) })
		mut("trailing hash", func(m *inclusionVector) { m.Proof = append(m.Proof, refLeaf([]byte("extra"))) })
		if len(base.Proof) > 0 {
			mut("trailing byte on the last hash", func(m *inclusionVector) { m.Proof[len(m.Proof)-1] = append(m.Proof[len(m.Proof)-1], 0) })
			mut("proof cut short", func(m *inclusionVector) { m.Proof = m.Proof[:len(m.Proof)-1] })
		}
	}
	for _, c := range [][2]uint64{{1, 7}, {3, 7}, {4, 7}, {6, 7}, {2, 5}, {7, 7}} {
		s1, s2 := c[0], c[1]
		base := consistencyVector{
			Name: fmt.Sprintf("tree %d to tree %d", s1, s2), Size1: s1, Size2: s2,
			Root1: refMTH(leaves[:s1]), Root2: refMTH(leaves[:s2]), Proof: refProof(int(s1), leaves[:s2]), Valid: true,
		}
		if base.Proof == nil {
			base.Proof = [][]byte{}
		}
		v.Consistency = append(v.Consistency, base)
		mut := func(name string, f func(*consistencyVector)) {
			m := base
			m.Proof = cloneHashes(base.Proof)
			m.Name, m.Valid = base.Name+": "+name, false
			f(&m)
			v.Consistency = append(v.Consistency, m)
		}
		for j := range base.Proof {
			mut(fmt.Sprintf("flipped bit in proof[%d]", j), func(m *consistencyVector) { m.Proof[j] = flip(m.Proof[j], 8*j+5) })
		}
		mut("flipped bit in root1", func(m *consistencyVector) { m.Root1 = flip(m.Root1, 9) })
		mut("flipped bit in root2", func(m *consistencyVector) { m.Root2 = flip(m.Root2, 250) })
		if s1 < s2 {
			proofLen1 := func(n uint64) int {
				if n > s2 {
					return -1
				}
				return len(refProof(int(n), fakeLeaves(s2)))
			}
			mut("wrong size1", func(m *consistencyVector) { m.Size1 = otherSize(s1, 1, proofLen1) })
			proofLen2 := func(n uint64) int { return len(refProof(int(s1), fakeLeaves(n))) }
			mut("wrong size2", func(m *consistencyVector) { m.Size2 = otherSize(s2, s1+1, proofLen2) })
		}
		mut("trailing hash", func(m *consistencyVector) { m.Proof = append(m.Proof, refLeaf([]byte("extra"))) })
	}
	v.Receipts = buildReceiptVectors(t, leaves)
	return v
}

func buildReceiptVectors(t *testing.T, leaves [][]byte) []receiptVector {
	signer := testSigner(t)
	const idx, size = 5, 7 // the disclosure of exchange 3
	cp, err := audit.SignCheckpoint(signer, size, refMTH(leaves[:size]))
	if err != nil {
		t.Fatal(err)
	}
	receipt := func(cpNote []byte, index uint64, leaf []byte, proof [][]byte) string {
		rc := audit.Receipt{Format: audit.ReceiptFormat, Checkpoint: string(cpNote), Entries: []audit.ReceiptEntry{{Index: index, Leaf: leaf, Proof: proof, Entry: leaf}}}
		b, err := rc.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	proof := refPath(idx, leaves[:size])
	good := receipt(cp.Note, idx, leaves[idx], proof)
	out := []receiptVector{
		{Name: "receipt of entry 5 in tree 7", Receipt: good, Valid: true},
		{Name: "receipt of entry 5 with the bundle sent", Receipt: good, Bundle: bundleBytes(3), Valid: true},
	}
	bad := func(name, r string, bundle []byte) {
		out = append(out, receiptVector{Name: "receipt of entry 5: " + name, Receipt: r, Bundle: bundle})
	}
	// 'C' (0x43) to 'B' (0x42) flips one bit and keeps a canonical entry.
	changed := []byte(strings.Replace(string(leaves[idx]), `"purpose":"COC"`, `"purpose":"COB"`, 1))
	bad("flipped bit in the leaf (and its readable copy)", receipt(cp.Note, idx, changed, proof), nil)
	for j := range proof {
		p := cloneHashes(proof)
		p[j] = flip(p[j], 8*j+1)
		bad(fmt.Sprintf("flipped bit in proof[%d]", j), receipt(cp.Note, idx, leaves[idx], p), nil)
	}
	sig := bytes.LastIndex(cp.Note, []byte(" ")) + 10
	note := append([]byte(nil), cp.Note...)
	note[sig] ^= 1 // a base64 letter of the signature, one bit off
	bad("flipped bit in the checkpoint signature", receipt(note, idx, leaves[idx], proof), nil)
	rootLine := strings.Split(string(cp.Note), "\n")[2]
	root, _ := base64.StdEncoding.DecodeString(rootLine)
	bad("flipped bit in the checkpoint root", receipt([]byte(strings.Replace(string(cp.Note), rootLine, base64.StdEncoding.EncodeToString(flip(root, 0)), 1)), idx, leaves[idx], proof), nil)
	bad("wrong index", receipt(cp.Note, idx-1, leaves[idx], proof), nil)
	smaller, err := audit.SignCheckpoint(signer, size-1, refMTH(leaves[:size-1]))
	if err != nil {
		t.Fatal(err)
	}
	bad("wrong size (a valid checkpoint of another size)", receipt(smaller.Note, idx, leaves[idx], proof), nil)
	bad("trailing bytes after the receipt", good+"{}\n", nil)
	bad("trailing byte in the leaf", receipt(cp.Note, idx, append(append([]byte(nil), leaves[idx]...), ' '), proof), nil)
	bad("trailing hash in the proof", receipt(cp.Note, idx, leaves[idx], append(cloneHashes(proof), refLeaf(nil))), nil)
	other, err := audit.NewSigner(attackerSKey)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := audit.SignCheckpoint(other, size, refMTH(leaves[:size]))
	if err != nil {
		t.Fatal(err)
	}
	bad("checkpoint signed by another key", receipt(forged.Note, idx, leaves[idx], proof), nil)
	bad("another bundle", good, append(bundleBytes(3), '\n'))
	readable := strings.Replace(good, `"purpose": "COC"`, `"purpose": "COB"`, 1)
	if readable == good {
		t.Fatal("receipt vectors: readable copy not found")
	}
	bad("readable copy differs from the leaf", readable, nil)
	return out
}

func TestVectors(t *testing.T) {
	v := buildVectors(t)
	want, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	if *update {
		if err := os.MkdirAll(filepath.Dir(vectorsFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatalf("%v (run go test ./audit -run TestVectors -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not what the generator writes: review the change and run go test ./audit -run TestVectors -update", vectorsFile)
	}

	// Check every vector in the file, as an outside verifier would.
	var file vectors
	if err := json.Unmarshal(got, &file); err != nil {
		t.Fatal(err)
	}
	ver, err := audit.NewVerifier(file.VerifierKey)
	if err != nil {
		t.Fatal(err)
	}
	count := map[bool]int{}
	for _, c := range file.Inclusion {
		// VerifyInclusion takes the leaf bytes; check with the hash as the
		// RFC's verifier does, through the same library call path.
		err := verifyInclusionHash(c.LeafHash, c.Index, c.Size, c.Proof, c.Root)
		if (err == nil) != c.Valid {
			t.Errorf("inclusion %q: err = %v, want valid %v", c.Name, err, c.Valid)
		}
		count[c.Valid]++
	}
	for i, l := range file.Leaves {
		if _, err := audit.ParseEntry([]byte(l)); err != nil {
			t.Errorf("leaf %d: %v", i, err)
		}
	}
	for _, c := range file.Consistency {
		err := audit.VerifyConsistency(c.Size1, c.Size2, c.Proof, c.Root1, c.Root2)
		if (err == nil) != c.Valid {
			t.Errorf("consistency %q: err = %v, want valid %v", c.Name, err, c.Valid)
		}
		count[c.Valid]++
	}
	for _, c := range file.Receipts {
		_, err := audit.CheckReceipt([]byte(c.Receipt), ver, c.Bundle)
		if (err == nil) != c.Valid {
			t.Errorf("receipt %q: err = %v, want valid %v", c.Name, err, c.Valid)
		}
		count[c.Valid]++
	}
	if count[true] < 10 || count[false] < 50 {
		t.Errorf("only %d valid and %d invalid vectors checked", count[true], count[false])
	}
}

// verifyInclusionHash checks an inclusion proof given the leaf hash: the
// vectors carry hashes so that other verifiers can use them without an
// entry parser.
func verifyInclusionHash(leafHash []byte, index, size uint64, proof [][]byte, root []byte) error {
	return audit.VerifyInclusionHash(leafHash, index, size, proof, root)
}
