package audit

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/pathway-fhir/pathway/store"
)

// hasher is the log's tree hasher: RFC 6962 with SHA-256.
var hasher = rfc6962.DefaultHasher

// rangeFactory builds compact ranges with the log's hasher.
var rangeFactory = &compact.RangeFactory{Hash: hasher.HashChildren}

// nodeSource reads stored hashes of perfect subtrees: the store, inside or
// outside a transaction, or a tree in memory.
type nodeSource func(ctx context.Context, ids []compact.NodeID) ([][]byte, error)

func storeIDs(ids []compact.NodeID) []store.AuditNodeID {
	out := make([]store.AuditNodeID, len(ids))
	for i, id := range ids {
		out[i] = store.AuditNodeID{Level: id.Level, Index: id.Index}
	}
	return out
}

// storeNodes reads nodes through the store.
func storeNodes(st *store.Store) nodeSource {
	return func(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
		return st.AuditNodes(ctx, storeIDs(ids))
	}
}

// loadRange returns the compact range of the first size leaves: the roots
// of the perfect subtrees that cover them, which the store keeps.
func loadRange(ctx context.Context, src nodeSource, size uint64) (*compact.Range, error) {
	if size == 0 {
		return rangeFactory.NewEmptyRange(0), nil
	}
	ids := compact.RangeNodes(0, size, nil)
	hashes, err := src(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("reading the tree of size %d: %w", size, err)
	}
	return rangeFactory.NewRange(0, size, hashes)
}

// rootAt returns the root hash of the tree of the first size leaves.
func rootAt(ctx context.Context, src nodeSource, size uint64) ([]byte, error) {
	if size == 0 {
		return hasher.EmptyRoot(), nil
	}
	r, err := loadRange(ctx, src, size)
	if err != nil {
		return nil, err
	}
	return r.GetRootHash(nil)
}

// inclusionProof returns the RFC 6962 inclusion proof of leaf index in the
// tree of size leaves.
func inclusionProof(ctx context.Context, src nodeSource, index, size uint64) ([][]byte, error) {
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	return fetchProof(ctx, src, nodes)
}

// consistencyProof returns the RFC 6962 consistency proof between the trees
// of size1 and size2 leaves.
func consistencyProof(ctx context.Context, src nodeSource, size1, size2 uint64) ([][]byte, error) {
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, err
	}
	return fetchProof(ctx, src, nodes)
}

func fetchProof(ctx context.Context, src nodeSource, nodes proof.Nodes) ([][]byte, error) {
	if len(nodes.IDs) == 0 {
		return [][]byte{}, nil
	}
	hashes, err := src(ctx, nodes.IDs)
	if err != nil {
		return nil, err
	}
	// Rehash works in place: give it copies, not the store's slices.
	cp := make([][]byte, len(hashes))
	for i, h := range hashes {
		cp[i] = append([]byte(nil), h...)
	}
	return nodes.Rehash(cp, hasher.HashChildren)
}

// VerifyInclusion checks an RFC 6962 inclusion proof of the leaf with the
// given canonical bytes at index in the tree of size leaves with root.
func VerifyInclusion(leaf []byte, index, size uint64, proofHashes [][]byte, root []byte) error {
	return VerifyInclusionHash(LeafHash(leaf), index, size, proofHashes, root)
}

// VerifyInclusionHash is VerifyInclusion for a leaf given by its leaf hash.
func VerifyInclusionHash(leafHash []byte, index, size uint64, proofHashes [][]byte, root []byte) error {
	if index >= size {
		return fmt.Errorf("index %d is not below the tree size %d", index, size)
	}
	return proof.VerifyInclusion(hasher, index, size, leafHash, proofHashes, root)
}

// VerifyConsistency checks an RFC 6962 consistency proof between the trees
// of size1 and size2 leaves with roots root1 and root2.
func VerifyConsistency(size1, size2 uint64, proofHashes [][]byte, root1, root2 []byte) error {
	return proof.VerifyConsistency(hasher, size1, size2, proofHashes, root1, root2)
}

// nodeHasher hashes interior nodes as hasher.HashChildren does,
// SHA-256(0x01 || left || right), reusing one digest: for one goroutine.
type nodeHasher struct{ h hash.Hash }

func newNodeHasher() *nodeHasher { return &nodeHasher{h: sha256.New()} }

func (n *nodeHasher) hashChildren(l, r []byte) []byte {
	n.h.Reset()
	n.h.Write([]byte{rfc6962.RFC6962NodeHashPrefix})
	n.h.Write(l)
	n.h.Write(r)
	return n.h.Sum(make([]byte, 0, sha256.Size))
}
