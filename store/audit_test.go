package store

import (
	"math/bits"
	"testing"
)

// TestAuditNodeLayout checks the row layout of node hashes against its
// definition: node (l, k) covers leaves k*2^l .. (k+1)*2^l-1 and is stored
// with its last leaf, which completes exactly the nodes of levels 0 to
// trailing_zeros(seq+1).
func TestAuditNodeLayout(t *testing.T) {
	completes := map[int64][]AuditNodeID{}
	for level := uint(0); level < 10; level++ {
		for k := uint64(0); (k+1)<<level <= 300; k++ {
			id := AuditNodeID{Level: level, Index: k}
			row, ok := id.row()
			if !ok {
				t.Fatalf("node %+v has no row", id)
			}
			if want := int64((k+1)<<level) - 1; row != want {
				t.Fatalf("node %+v in row %d, want %d", id, row, want)
			}
			completes[row] = append(completes[row], id)
		}
	}
	for seq := int64(0); seq < 300; seq++ {
		got := completes[seq]
		if len(got) != AuditNodeCount(seq) || AuditNodeCount(seq) != 1+bits.TrailingZeros64(uint64(seq+1)) {
			t.Fatalf("row %d stores %d nodes, AuditNodeCount says %d", seq, len(got), AuditNodeCount(seq))
		}
		for l, id := range got {
			if id.Level != uint(l) || id.Index != uint64(seq)>>l {
				t.Errorf("row %d, position %d: node %+v, want (%d, %d)", seq, l, id, l, uint64(seq)>>l)
			}
		}
	}
	for _, id := range []AuditNodeID{{Level: 63}, {Level: 1, Index: 1 << 62}, {Level: 0, Index: 1<<63 - 1}} {
		if _, ok := id.row(); ok {
			t.Errorf("node %+v beyond int64 rows has a row", id)
		}
	}
}
