package audit

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// memTree keeps every completed node in memory, as the store keeps them in
// its rows: the same proof code reads it.
type memTree struct {
	rng   *compact.Range
	nodes map[compact.NodeID][]byte
	data  [][]byte
}

func newMemTree() *memTree {
	return &memTree{rng: rangeFactory.NewEmptyRange(0), nodes: map[compact.NodeID][]byte{}}
}

func (m *memTree) append(data []byte) {
	m.data = append(m.data, data)
	if err := m.rng.Append(LeafHash(data), func(id compact.NodeID, h []byte) { m.nodes[id] = h }); err != nil {
		panic(err)
	}
}

func (m *memTree) source() nodeSource {
	return func(_ context.Context, ids []compact.NodeID) ([][]byte, error) {
		out := make([][]byte, len(ids))
		for i, id := range ids {
			h, ok := m.nodes[id]
			if !ok {
				return nil, fmt.Errorf("node %+v not stored", id)
			}
			out[i] = h
		}
		return out, nil
	}
}

func fuzzTree(n int) *memTree {
	m := newMemTree()
	for i := range n {
		m.append(binary.BigEndian.AppendUint32([]byte("leaf "), uint32(i)))
	}
	return m
}

func flipBit(p [][]byte, bit int) [][]byte {
	out := make([][]byte, len(p))
	for i, h := range p {
		out[i] = append([]byte(nil), h...)
	}
	total := 0
	for _, h := range out {
		total += 8 * len(h)
	}
	bit %= total
	for _, h := range out {
		if bit < 8*len(h) {
			h[bit/8] ^= 1 << (bit % 8)
			break
		}
		bit -= 8 * len(h)
	}
	return out
}

// inclusionLen is how many hashes an inclusion proof has in this shape.
func inclusionLen(index, size uint64) int {
	n, err := proof.Inclusion(index, size)
	if err != nil {
		return -1
	}
	return len(n.IDs) - max(0, func() int { _, b, e := n.Ephem(); return e - b - 1 }())
}

// FuzzProofs checks that every inclusion and consistency proof built from
// stored nodes verifies, and that every mutation of it does not: a flipped
// bit in the proof, the leaf or the root, another index, a size with
// another proof shape, a hash added or removed.
func FuzzProofs(f *testing.F) {
	for _, s := range [][4]uint16{{1, 0, 0, 0}, {7, 3, 2, 9}, {8, 7, 5, 100}, {300, 123, 77, 1000}, {33, 32, 1, 3}} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, n, m, k, bit uint16) {
		ctx := context.Background()
		size := uint64(n%400) + 1
		index := uint64(m) % size
		tree := fuzzTree(int(size))
		root, err := rootAt(ctx, tree.source(), size)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := tree.rng.GetRootHash(nil); string(root) != string(want) {
			t.Fatal("root from stored nodes differs from the compact range's")
		}
		leaf := tree.data[index]
		p, err := inclusionProof(ctx, tree.source(), index, size)
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyInclusion(leaf, index, size, p, root); err != nil {
			t.Fatalf("inclusion of %d in %d: %v", index, size, err)
		}
		if len(p) > 0 {
			if VerifyInclusion(leaf, index, size, flipBit(p, int(bit)), root) == nil {
				t.Errorf("inclusion of %d in %d verified with a flipped bit in the proof", index, size)
			}
			if VerifyInclusion(leaf, index, size, p[:len(p)-1], root) == nil {
				t.Errorf("inclusion of %d in %d verified with a hash removed", index, size)
			}
		}
		if VerifyInclusion(leaf, index, size, append(p[:len(p):len(p)], root), root) == nil {
			t.Errorf("inclusion of %d in %d verified with a hash added", index, size)
		}
		if VerifyInclusion(flipBit([][]byte{leaf}, int(bit))[0], index, size, p, root) == nil {
			t.Errorf("inclusion of %d in %d verified with a flipped bit in the leaf", index, size)
		}
		if VerifyInclusion(leaf, index, size, p, flipBit([][]byte{root}, int(bit))[0]) == nil {
			t.Errorf("inclusion of %d in %d verified with a flipped bit in the root", index, size)
		}
		if size > 1 {
			other := (index + 1 + uint64(k)%(size-1)) % size
			if VerifyInclusion(leaf, other, size, p, root) == nil {
				t.Errorf("inclusion of %d in %d verified at index %d", index, size, other)
			}
		}
		for s2 := index + 1; s2 < size+64; s2++ {
			if s2 != size && inclusionLen(index, s2) != len(p) {
				if VerifyInclusion(leaf, index, s2, p, root) == nil {
					t.Errorf("inclusion of %d in %d verified as a tree of %d", index, size, s2)
				}
				break
			}
		}

		// Consistency from size1 = k+1 (bounded by size) to size.
		size1 := uint64(k)%size + 1
		root1, err := rootAt(ctx, tree.source(), size1)
		if err != nil {
			t.Fatal(err)
		}
		c, err := consistencyProof(ctx, tree.source(), size1, size)
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyConsistency(size1, size, c, root1, root); err != nil {
			t.Fatalf("consistency %d..%d: %v", size1, size, err)
		}
		if len(c) > 0 {
			if VerifyConsistency(size1, size, flipBit(c, int(bit)), root1, root) == nil {
				t.Errorf("consistency %d..%d verified with a flipped bit", size1, size)
			}
			if VerifyConsistency(size1, size, c[:len(c)-1], root1, root) == nil {
				t.Errorf("consistency %d..%d verified with a hash removed", size1, size)
			}
		}
		if VerifyConsistency(size1, size, append(c[:len(c):len(c)], root), root1, root) == nil {
			t.Errorf("consistency %d..%d verified with a hash added", size1, size)
		}
		if VerifyConsistency(size1, size, c, flipBit([][]byte{root1}, int(bit))[0], root) == nil {
			t.Errorf("consistency %d..%d verified with a flipped bit in the first root", size1, size)
		}
		if size1 < size && VerifyConsistency(size1, size, c, root1, flipBit([][]byte{root}, int(bit))[0]) == nil {
			t.Errorf("consistency %d..%d verified with a flipped bit in the second root", size1, size)
		}
	})
}

// FuzzParseEntry: whatever ParseEntry accepts is exactly the canonical form
// of what it returns, so no two byte strings are the same entry.
func FuzzParseEntry(f *testing.F) {
	f.Add([]byte(`{"actor":"Organization/a","id":"a1","interaction":"read","kind":"access","effect":"permit","observer":"Device/p","time":"2025-05-01T09:30:00.000000Z","v":1}`))
	f.Add([]byte(`{"actor":"Organization/a","effect":"permit","id":"a1","interaction":"read","kind":"access","observer":"Device/p","time":"2025-05-01T09:30:00.000000Z","v":1}`))
	f.Add([]byte(`{"actor":"Organization/a","bundle":{"hash":"00000000000000000000000000000000000000000000000000000000000000ff","ref":"Bundle/b"},"exchange":"x","id":"s1","kind":"disclosure","observer":"Device/p","purpose":"COC","time":"2025-05-01T09:30:00.000000Z","v":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEntry(data)
		if err != nil {
			return
		}
		b, err := e.Canonical()
		if err != nil {
			t.Fatalf("accepted entry is not valid: %v", err)
		}
		if string(b) != string(data) {
			t.Fatalf("accepted %q, canonical form %q", data, b)
		}
	})
}

func TestNodeHasherIsRFC6962(t *testing.T) {
	nh := newNodeHasher()
	l, r := LeafHash([]byte("left")), LeafHash([]byte("right"))
	for range 3 { // the digest is reused
		if got, want := nh.hashChildren(l, r), hasher.HashChildren(l, r); string(got) != string(want) {
			t.Fatalf("hashChildren = %x, want %x", got, want)
		}
		l, r = r, nh.hashChildren(l, r)
	}
}
