package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"golang.org/x/mod/sumdb/note"
)

// ReceiptFormat names the receipt format, the "format" member of every
// receipt (docs/audit.md, "Receipts").
const ReceiptFormat = "pathway-audit-receipt/1"

// maxReceiptEntries bounds the entries of one receipt.
const maxReceiptEntries = 1000

// Receipt proves that entries are in the log: each entry's exact bytes and
// its inclusion proof in the tree a signed checkpoint commits to. It is
// checked offline with the log's verifier key alone (CheckReceipt).
type Receipt struct {
	// Format is ReceiptFormat.
	Format string `json:"format"`
	// Checkpoint is the signed checkpoint, byte for byte.
	Checkpoint string `json:"checkpoint"`
	// Entries are the proved entries, in log order.
	Entries []ReceiptEntry `json:"entries"`
}

// ReceiptEntry is one proved entry.
type ReceiptEntry struct {
	// Index is the entry's leaf index in the log.
	Index uint64 `json:"index"`
	// Leaf is the entry's canonical bytes (base64 in JSON): what is hashed.
	Leaf []byte `json:"leaf"`
	// Proof is the RFC 6962 inclusion proof, lowest node first (each hash
	// base64 in JSON).
	Proof [][]byte `json:"proof"`
	// Entry is a readable copy of Leaf. It must say the same thing: its
	// canonical form must be Leaf exactly.
	Entry json.RawMessage `json:"entry"`
}

// Marshal writes the receipt as indented JSON with a final newline.
func (r *Receipt) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("writing receipt: %w", err)
	}
	return buf.Bytes(), nil
}

// ParseReceipt reads a receipt strictly: one JSON object with exactly the
// receipt's members, nothing after it.
func ParseReceipt(data []byte) (*Receipt, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r Receipt
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("reading receipt: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("reading receipt: trailing data after the receipt")
	}
	if r.Format != ReceiptFormat {
		return nil, fmt.Errorf("reading receipt: format %q, this verifier reads %q", r.Format, ReceiptFormat)
	}
	if len(r.Entries) == 0 || len(r.Entries) > maxReceiptEntries {
		return nil, fmt.Errorf("reading receipt: %d entries, want 1 to %d", len(r.Entries), maxReceiptEntries)
	}
	return &r, nil
}

// ReceiptCheck is what a valid receipt proves.
type ReceiptCheck struct {
	// Checkpoint is the verified checkpoint the entries are proved against.
	Checkpoint Checkpoint
	// Entries are the proved entries, with their indexes.
	Entries []Record
	// BundleMatched is set when a bundle was given and one of the entries
	// logged its exact bytes.
	BundleMatched bool
}

// CheckReceipt verifies a receipt offline: the checkpoint's signature with
// v (and that its origin is v's name), and for every entry that its leaf is
// a canonical entry, that the readable copy says the same, and that the
// inclusion proof leads from the leaf to the checkpoint's root at the
// entry's index. When bundle is not nil, one of the entries must have
// logged the SHA-256 of exactly those bytes. Any failure is an error
// saying what failed.
func CheckReceipt(data []byte, v note.Verifier, bundle []byte) (ReceiptCheck, error) {
	var out ReceiptCheck
	r, err := ParseReceipt(data)
	if err != nil {
		return out, err
	}
	cp, err := OpenCheckpoint([]byte(r.Checkpoint), v)
	if err != nil {
		return out, err
	}
	out.Checkpoint = cp
	for i, re := range r.Entries {
		e, err := ParseEntry(re.Leaf)
		if err != nil {
			return out, fmt.Errorf("receipt entry %d: leaf: %w", i, err)
		}
		if len(re.Entry) == 0 {
			return out, fmt.Errorf("receipt entry %d: no readable entry", i)
		}
		copyBytes, err := canonicalFromJSON(re.Entry)
		if err != nil {
			return out, fmt.Errorf("receipt entry %d: readable entry: %w", i, err)
		}
		if !bytes.Equal(copyBytes, re.Leaf) {
			return out, fmt.Errorf("receipt entry %d: the readable entry differs from the leaf", i)
		}
		for j, h := range re.Proof {
			if len(h) != sha256.Size {
				return out, fmt.Errorf("receipt entry %d: proof hash %d has %d bytes, want %d", i, j, len(h), sha256.Size)
			}
		}
		if re.Index >= cp.Size {
			return out, fmt.Errorf("receipt entry %d (id %s): index %d is beyond the checkpoint's %d entries", i, e.ID, re.Index, cp.Size)
		}
		if err := VerifyInclusion(re.Leaf, re.Index, cp.Size, re.Proof, cp.Root); err != nil {
			return out, fmt.Errorf("receipt entry %d (id %s): inclusion proof does not lead to the checkpoint's root: %w", i, e.ID, err)
		}
		out.Entries = append(out.Entries, Record{Seq: int64(re.Index), Data: re.Leaf, Entry: e})
	}
	if bundle != nil {
		sum := sha256.Sum256(bundle)
		logged := false
		for _, rec := range out.Entries {
			if b := rec.Entry.Bundle; b != nil {
				logged = true
				if b.Hash == sum {
					out.BundleMatched = true
				}
			}
		}
		switch {
		case !logged:
			return out, errors.New("the receipt's entries log no bundle to compare with")
		case !out.BundleMatched:
			return out, errors.New("the bundle's SHA-256 is not the one logged: it is not the bundle that was exchanged, byte for byte")
		}
	}
	return out, nil
}
