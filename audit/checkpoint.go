package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/pathway-fhir/pathway/store"
)

// Checkpoint is a signed statement of the log's size and root hash, in the
// transparency-dev checkpoint format inside a signed note
// (docs/audit.md, "Checkpoints").
type Checkpoint struct {
	// Origin names the log: the signing key's name.
	Origin string
	// Size is the number of entries covered.
	Size uint64
	// Root is the Merkle root hash of those entries.
	Root []byte
	// Note is the signed note, byte for byte.
	Note []byte
}

// GenerateKey returns a new Ed25519 signing key and its verifier key, in
// the signed-note encodings ("PRIVATE+KEY+<origin>+<hash>+<key>" and
// "<origin>+<hash>+<key>"). origin names the log in its checkpoints, such
// as "pathway.example.org/audit": no spaces and no '+'.
func GenerateKey(origin string) (skey, vkey string, err error) {
	if origin == "" || strings.ContainsAny(origin, "+ \t\n") {
		return "", "", errors.New("generating key: the origin must be non-empty, without spaces or '+'")
	}
	return note.GenerateKey(rand.Reader, origin)
}

// NewSigner reads a signing key in the signed-note encoding; surrounding
// whitespace (a file's final newline) is ignored. Errors never echo the key.
func NewSigner(skey string) (note.Signer, error) {
	s, err := note.NewSigner(strings.TrimSpace(skey))
	if err != nil {
		return nil, errors.New("reading signing key: not a signed-note private key (PRIVATE+KEY+<origin>+<hash>+<key>)")
	}
	return s, nil
}

// NewVerifier reads a verifier key in the signed-note encoding
// ("<origin>+<hash>+<key>").
func NewVerifier(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, fmt.Errorf("reading verifier key: not a signed-note public key (<origin>+<hash>+<key>): %w", err)
	}
	return v, nil
}

// VerifierKey returns the verifier key of a signing key.
func VerifierKey(skey string) (string, error) {
	if _, err := NewSigner(skey); err != nil {
		return "", err
	}
	// PRIVATE+KEY+<name>+<hash>+<base64(algorithm byte 1 || 32-byte seed)>;
	// the name has no '+', the base64 may.
	parts := strings.SplitN(strings.TrimPrefix(strings.TrimSpace(skey), "PRIVATE+KEY+"), "+", 3)
	if len(parts) != 3 {
		return "", errors.New("reading signing key: not a signed-note private key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("reading signing key: not an Ed25519 signed-note key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(parts[0], pub)
}

// SignCheckpoint signs a checkpoint of the tree of size entries with root,
// naming the signer as the origin.
func SignCheckpoint(signer note.Signer, size uint64, root []byte) (Checkpoint, error) {
	if len(root) != store.AuditHashSize {
		return Checkpoint{}, fmt.Errorf("signing checkpoint: root hash has %d bytes, want %d", len(root), store.AuditHashSize)
	}
	body := log.Checkpoint{Origin: signer.Name(), Size: size, Hash: root}.Marshal()
	msg, err := note.Sign(&note.Note{Text: string(body)}, signer)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("signing checkpoint: %w", err)
	}
	return Checkpoint{Origin: signer.Name(), Size: size, Root: root, Note: msg}, nil
}

// OpenCheckpoint verifies a signed checkpoint with the verifier and parses
// it. The note must carry the verifier's signature, the origin must be the
// verifier's name, the root must be a SHA-256 hash, and nothing may follow
// the three lines of the body.
func OpenCheckpoint(msg []byte, v note.Verifier) (Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		var (
			unverified *note.UnverifiedNoteError
			invalid    *note.InvalidSignatureError
		)
		switch {
		case errors.As(err, &unverified):
			return Checkpoint{}, fmt.Errorf("checkpoint is not signed by the key %s+%08x", v.Name(), v.KeyHash())
		case errors.As(err, &invalid):
			return Checkpoint{}, fmt.Errorf("checkpoint signature does not verify with the key %s+%08x", v.Name(), v.KeyHash())
		}
		return Checkpoint{}, fmt.Errorf("reading checkpoint: %w", err)
	}
	var cp log.Checkpoint
	other, err := cp.Unmarshal([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("reading checkpoint: %w", err)
	}
	switch {
	case cp.Origin != v.Name():
		return Checkpoint{}, fmt.Errorf("reading checkpoint: origin %q is not the key's name %q", cp.Origin, v.Name())
	case len(other) > 0:
		return Checkpoint{}, errors.New("reading checkpoint: unexpected lines after the root hash")
	case len(cp.Hash) != store.AuditHashSize:
		return Checkpoint{}, fmt.Errorf("reading checkpoint: root hash has %d bytes, want %d", len(cp.Hash), store.AuditHashSize)
	case fmt.Sprint(cp.Size) != strings.SplitN(n.Text, "\n", 3)[1]:
		return Checkpoint{}, errors.New("reading checkpoint: the size is not in canonical decimal form")
	}
	return Checkpoint{Origin: cp.Origin, Size: cp.Size, Root: cp.Hash, Note: msg}, nil
}

// checkpointBody parses the body of a signed checkpoint without checking its
// signature: for code that hands the note on to someone who will.
func checkpointBody(msg []byte) (log.Checkpoint, error) {
	split := bytes.LastIndex(msg, []byte("\n\n"))
	if split < 0 {
		return log.Checkpoint{}, errors.New("not a signed note")
	}
	var cp log.Checkpoint
	if _, err := cp.Unmarshal(msg[:split+1]); err != nil {
		return log.Checkpoint{}, err
	}
	return cp, nil
}

// Checkpoint signs and stores a checkpoint of the whole log when it has
// entries no stored checkpoint covers, and returns it with true. When the
// latest stored checkpoint already covers the log it returns that one, with
// false. The root comes from the stored node hashes.
func (l *Log) Checkpoint(ctx context.Context, signer note.Signer) (Checkpoint, bool, error) {
	size, err := l.Size(ctx)
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("checkpointing audit log: %w", err)
	}
	latest, err := l.st.LatestAuditCheckpoint(ctx)
	switch {
	case err == nil && uint64(latest.Size) >= size:
		return Checkpoint{Origin: signer.Name(), Size: uint64(latest.Size), Root: latest.Root, Note: latest.Note}, false, nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return Checkpoint{}, false, fmt.Errorf("checkpointing audit log: %w", err)
	case size == 0:
		return Checkpoint{}, false, nil
	}
	root, err := l.Root(ctx, size)
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("checkpointing audit log: %w", err)
	}
	cp, err := SignCheckpoint(signer, size, root)
	if err != nil {
		return Checkpoint{}, false, err
	}
	created, err := l.st.PutAuditCheckpoint(ctx, store.AuditCheckpoint{Size: int64(size), Root: root, Note: cp.Note})
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("checkpointing audit log: %w", err)
	}
	return cp, created, nil
}
