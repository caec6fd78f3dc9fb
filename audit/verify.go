package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"

	"github.com/pathway-fhir/pathway/store"
)

// Rederiver recomputes a logged decision from its logged inputs. The policy
// engine implements it (package exchange wires it in); Verify calls it for
// every decision entry whose inputs all still hash to what was logged.
//
// Rederive must be deterministic and use nothing but the decision entry
// and the input bytes it is given: the same inputs must give the same
// outcome today as on the day of the decision.
type Rederiver interface {
	Rederive(ctx context.Context, d Decision) (Outcome, error)
}

// RederiverFunc adapts a function to Rederiver.
type RederiverFunc func(ctx context.Context, d Decision) (Outcome, error)

// Rederive calls f.
func (f RederiverFunc) Rederive(ctx context.Context, d Decision) (Outcome, error) { return f(ctx, d) }

// Decision is a logged decision with its inputs, resolved and checked.
type Decision struct {
	// Seq is the entry's leaf index.
	Seq int64
	// Entry is the decision as logged (its effect, obligations and trail
	// are what Outcome is compared with). Its strings share the memory of
	// a batch of the log as Verify read it: a Rederiver that keeps one
	// after the call keeps that memory too, unless it keeps a copy
	// (strings.Clone).
	Entry Entry
	// Inputs are Entry.Inputs with their bytes, in the same order; each
	// one's bytes hash to the logged Hash.
	Inputs []ResolvedInput
}

// ResolvedInput is an input with the bytes it was logged with.
type ResolvedInput struct {
	Input
	// Format names the encoding of Data (the store's Resource.Format).
	Format string
	// Data is the exact bytes whose SHA-256 was logged.
	Data []byte
}

// Outcome is what a decision decided.
type Outcome struct {
	Effect      Effect
	Obligations []string
	Trail       []string
}

// InputSource finds the bytes of a logged input by its Ref.
type InputSource interface {
	// Input returns the bytes of ref and their format, or an error
	// wrapping store.ErrNotFound when ref is unknown.
	Input(ctx context.Context, ref string) (format string, data []byte, err error)
}

// StoreInputs resolves versioned references "Type/id/_history/n" through
// the store's resource history.
type StoreInputs struct{ Store *store.Store }

// Input implements InputSource.
func (s StoreInputs) Input(ctx context.Context, ref string) (string, []byte, error) {
	parts := strings.Split(ref, "/")
	if len(parts) != 4 || parts[2] != "_history" {
		return "", nil, fmt.Errorf("input %s is not a versioned reference Type/id/_history/n: %w", ref, store.ErrNotFound)
	}
	v, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil {
		return "", nil, fmt.Errorf("input %s has no version number: %w", ref, store.ErrNotFound)
	}
	r, err := s.Store.GetVersion(ctx, parts[0], parts[1], v)
	if err != nil {
		return "", nil, err
	}
	return r.Format, r.Data, nil
}

// VerifyOptions configures Verify.
type VerifyOptions struct {
	// Verifier checks the checkpoints' signatures; its name is the log's
	// origin. Required.
	Verifier note.Verifier
	// Trusted is a signed checkpoint saved earlier (by an auditor, or from
	// a receipt): the log must still contain exactly the tree it signed.
	Trusted []byte
	// Rederiver re-derives decisions; nil checks their inputs only.
	Rederiver Rederiver
	// Inputs resolves inputs; nil means StoreInputs on the verified store.
	Inputs InputSource
	// MaxProblems stops collecting problems after this many (default 100).
	MaxProblems int
}

// ProblemCode says what kind of thing is wrong.
type ProblemCode string

const (
	// ProblemMissing: sequence numbers have a gap (an entry was deleted).
	ProblemMissing ProblemCode = "entry-missing"
	// ProblemAltered: an entry's bytes no longer hash to its stored leaf hash.
	ProblemAltered ProblemCode = "entry-altered"
	// ProblemNodes: the stored node hashes of an entry differ from the tree
	// recomputed from the entries (entries reordered, or nodes rewritten).
	ProblemNodes ProblemCode = "tree-mismatch"
	// ProblemUnreadable: an entry's bytes are not a canonical entry.
	ProblemUnreadable ProblemCode = "entry-unreadable"
	// ProblemIndex: an entry's lookup columns disagree with its bytes.
	ProblemIndex ProblemCode = "index-mismatch"
	// ProblemCheckpoint: a stored checkpoint does not verify (signature,
	// origin, format, or its row disagrees with its note).
	ProblemCheckpoint ProblemCode = "checkpoint-invalid"
	// ProblemRoot: a checkpoint's root differs from the tree recomputed
	// from the entries it covers.
	ProblemRoot ProblemCode = "checkpoint-root-mismatch"
	// ProblemTruncated: a checkpoint covers more entries than the log has.
	ProblemTruncated ProblemCode = "log-truncated"
	// ProblemConsistency: a consistency proof between two checkpoints,
	// built from the stored nodes, does not verify.
	ProblemConsistency ProblemCode = "checkpoints-inconsistent"
	// ProblemTrusted: the trusted checkpoint does not verify, or the log no
	// longer contains the tree it signed.
	ProblemTrusted ProblemCode = "trusted-checkpoint-mismatch"
	// ProblemInputMissing: a decision's input cannot be found.
	ProblemInputMissing ProblemCode = "input-missing"
	// ProblemInputAltered: an input's stored bytes no longer hash to the
	// logged value (altered after the decision).
	ProblemInputAltered ProblemCode = "input-altered"
	// ProblemDecision: the re-derived decision differs from the logged one,
	// or could not be re-derived.
	ProblemDecision ProblemCode = "decision-mismatch"
)

// Problem is one thing found wrong.
type Problem struct {
	Code ProblemCode `json:"code"`
	// Seq is the entry concerned, -1 when none is.
	Seq int64 `json:"seq"`
	// EntryID is that entry's id, when its bytes could be read.
	EntryID string `json:"entry_id,omitempty"`
	// Checkpoint is the size of the checkpoint concerned, 0 when none is.
	Checkpoint uint64 `json:"checkpoint,omitempty"`
	// Detail says what is wrong, with references and hashes only.
	Detail string `json:"detail"`
}

func (p Problem) String() string {
	var b strings.Builder
	switch {
	case p.Seq >= 0 && p.EntryID != "":
		fmt.Fprintf(&b, "entry %d (id %s): ", p.Seq, p.EntryID)
	case p.Seq >= 0:
		fmt.Fprintf(&b, "entry %d: ", p.Seq)
	case p.Checkpoint > 0:
		fmt.Fprintf(&b, "checkpoint of size %d: ", p.Checkpoint)
	}
	b.WriteString(p.Detail)
	fmt.Fprintf(&b, " [%s]", p.Code)
	return b.String()
}

// Report is what Verify found.
type Report struct {
	// Entries is the number of entries read.
	Entries uint64 `json:"entries"`
	// Root is the root hash of the tree recomputed from them.
	Root []byte `json:"root"`
	// Checkpoints is the number of stored checkpoints checked.
	Checkpoints int `json:"checkpoints"`
	// Covered is the size of the largest valid checkpoint.
	Covered uint64 `json:"covered"`
	// Decisions is the number of decision entries.
	Decisions int `json:"decisions"`
	// InputsChecked counts distinct inputs whose bytes were hashed again.
	InputsChecked int `json:"inputs_checked"`
	// Rederived counts decisions re-derived (and found equal or not).
	Rederived int `json:"rederived"`
	// RederiveSkipped is true when no Rederiver was given.
	RederiveSkipped bool `json:"rederive_skipped"`
	// Trusted is the size of the trusted checkpoint checked, if any.
	Trusted uint64 `json:"trusted,omitempty"`
	// Problems lists what is wrong, the first found first.
	Problems []Problem `json:"problems"`
	// Truncated is set when more problems were found than listed.
	Truncated bool `json:"problems_truncated,omitempty"`
}

// OK reports whether everything held.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Uncovered returns the number of entries no valid checkpoint covers yet:
// they verify as a tree, but no signature commits to them.
func (r *Report) Uncovered() uint64 { return r.Entries - min(r.Covered, r.Entries) }

type verifier struct {
	ctx    context.Context
	st     *store.Store
	o      VerifyOptions
	rep    *Report
	inputs map[string][32]byte // refs whose bytes were checked, and their hash
	// data keeps recently read inputs for the Rederiver: many decisions
	// read the same consent and agreement versions.
	data      map[string]ResolvedInput
	dataBytes int
}

// maxInputCache bounds the bytes of inputs kept for re-derivation.
const maxInputCache = 64 << 20

// resolve returns an input's bytes, from the cache or the InputSource.
func (v *verifier) resolve(ref string) (format string, data []byte, err error) {
	if r, ok := v.data[ref]; ok {
		return r.Format, r.Data, nil
	}
	format, data, err = v.o.Inputs.Input(v.ctx, ref)
	if err != nil {
		return "", nil, err
	}
	if v.o.Rederiver != nil && len(data) < maxInputCache/16 {
		if v.dataBytes+len(data) > maxInputCache {
			clear(v.data)
			v.dataBytes = 0
		}
		v.data[strings.Clone(ref)] = ResolvedInput{Format: format, Data: data}
		v.dataBytes += len(data)
	}
	return format, data, nil
}

func (v *verifier) problem(p Problem) {
	if len(v.rep.Problems) >= v.o.MaxProblems {
		v.rep.Truncated = true
		return
	}
	p.EntryID = strings.Clone(p.EntryID) // not the memory of the log read
	v.rep.Problems = append(v.rep.Problems, p)
}

// storedCheckpoint is a stored checkpoint that verified.
type storedCheckpoint struct {
	Checkpoint
	matched bool // its root equals the recomputed root
}

// Verify checks the whole log in st against its signed checkpoints:
//
//  1. every stored checkpoint's signature, origin and format, and that its
//     row agrees with its note;
//  2. every entry, in order from 0 without gaps: that its bytes are a
//     canonical entry, hash to its stored leaf hash, agree with its lookup
//     columns, and that the stored hashes of the nodes it completes equal
//     the tree recomputed from all entries so far;
//  3. every checkpoint's root against the recomputed tree of its size, and
//     that no checkpoint covers more entries than the log has;
//  4. consistency proofs, built from the stored nodes as auditors get them,
//     between consecutive checkpoints and from the trusted checkpoint;
//  5. every input of every entry: its stored bytes still hash to the logged
//     value (each distinct input once);
//  6. every decision, re-derived with the Rederiver from its inputs.
//
// What is wrong is reported as Problems, first found first; the error is
// for a verification that could not run (the database unreachable).
func Verify(ctx context.Context, st *store.Store, o VerifyOptions) (*Report, error) {
	if o.Verifier == nil {
		return nil, errors.New("verifying audit log: a verifier key is required")
	}
	if o.MaxProblems <= 0 {
		o.MaxProblems = 100
	}
	if o.Inputs == nil {
		o.Inputs = StoreInputs{Store: st}
	}
	v := &verifier{ctx: ctx, st: st, o: o, rep: &Report{RederiveSkipped: o.Rederiver == nil}, inputs: map[string][32]byte{}, data: map[string]ResolvedInput{}}

	cps, err := v.checkpoints()
	if err != nil {
		return nil, err
	}
	var trusted *Checkpoint
	if len(o.Trusted) > 0 {
		cp, err := OpenCheckpoint(o.Trusted, o.Verifier)
		if err != nil {
			v.problem(Problem{Code: ProblemTrusted, Seq: -1, Detail: "the trusted checkpoint does not verify: " + err.Error()})
		} else {
			trusted = &cp
			v.rep.Trusted = cp.Size
		}
	}
	// Roots wanted while scanning: every checkpoint's and the trusted one's.
	want := map[uint64][]*Checkpoint{}
	for i := range cps {
		want[cps[i].Size] = append(want[cps[i].Size], &cps[i].Checkpoint)
	}
	if trusted != nil {
		want[trusted.Size] = append(want[trusted.Size], trusted)
	}
	matched := map[*Checkpoint]bool{}

	rng := (&compact.RangeFactory{Hash: newNodeHasher().hashChildren}).NewEmptyRange(0)
	var (
		next     int64
		broken   bool // the tree can no longer be compared entry by entry
		lastGood uint64
	)
	checkRoot := func(size uint64) error {
		cs := want[size]
		if len(cs) == 0 {
			return nil
		}
		root, err := rng.GetRootHash(nil)
		if err != nil {
			return err
		}
		for _, c := range cs {
			if bytes.Equal(root, c.Root) {
				matched[c] = true
			}
		}
		return nil
	}
	if err := checkRoot(0); err != nil {
		return nil, err
	}
	process := func(r *store.AuditRecord, pr *parsedRecord) error {
		leaf := pr.leaf[:]
		if r.Seq != next {
			if !broken {
				detail := fmt.Sprintf("missing: the log jumps from entry %d to entry %d (%d entries deleted)", next-1, r.Seq, r.Seq-next)
				if r.Seq < next {
					detail = fmt.Sprintf("out of sequence after entry %d", next-1)
				}
				v.problem(Problem{Code: ProblemMissing, Seq: next, Detail: detail})
			}
			broken = true
		}
		e, perr := &pr.e, pr.err
		id := ""
		if perr == nil {
			id = e.ID
		}
		leafStored := len(r.Nodes) > 0 && bytes.Equal(leaf, r.Nodes[0])
		if !leafStored {
			v.problem(Problem{Code: ProblemAltered, Seq: r.Seq, EntryID: id, Detail: "its bytes do not hash to the leaf hash stored when it was appended: the entry was changed"})
		} else if perr != nil {
			v.problem(Problem{Code: ProblemUnreadable, Seq: r.Seq, Detail: perr.Error()})
		}
		if perr == nil && (r.EntryID != e.ID || r.Exchange != e.Exchange || r.Kind != string(e.Kind) || !r.Time.Equal(e.Time)) {
			v.problem(Problem{Code: ProblemIndex, Seq: r.Seq, EntryID: id, Detail: "its lookup columns (entry id, exchange, kind, time) disagree with its bytes"})
		}
		// The nodes the leaf completes, the leaf first, against the stored
		// ones: the same count, and each equal.
		computed, nodesOK := 0, true
		// The range keeps the hashes it is given: not pr's, reused.
		if err := rng.Append(bytes.Clone(leaf), func(_ compact.NodeID, h []byte) {
			nodesOK = nodesOK && computed < len(r.Nodes) && bytes.Equal(h, r.Nodes[computed])
			computed++
		}); err != nil {
			return err
		}
		if !broken && (!nodesOK || computed != len(r.Nodes)) && leafStored {
			v.problem(Problem{Code: ProblemNodes, Seq: r.Seq, EntryID: id, Detail: fmt.Sprintf("the stored Merkle node hashes (%d) differ from the tree recomputed from the entries (%d): entries were reordered, removed or rewritten before it", len(r.Nodes), computed)})
			broken = true
		}
		next = int64(rng.End())
		v.rep.Entries = rng.End()
		if perr == nil {
			v.entryInputs(r.Seq, *e)
		}
		return checkRoot(rng.End())
	}
	if err := scanPipelined(ctx, st, process); err != nil {
		return nil, fmt.Errorf("verifying audit log: %w", err)
	}
	if v.rep.Entries > 0 {
		if v.rep.Root, err = rng.GetRootHash(nil); err != nil {
			return nil, fmt.Errorf("verifying audit log: %w", err)
		}
	} else {
		v.rep.Root = hasher.EmptyRoot()
	}

	// Checkpoints against the recomputed tree, in size order.
	var prev *storedCheckpoint
	for i := range cps {
		c := &cps[i]
		switch {
		case c.Size > v.rep.Entries:
			v.problem(Problem{Code: ProblemTruncated, Seq: -1, Checkpoint: c.Size,
				Detail: fmt.Sprintf("it covers %d entries but the log has %d: entries %d to %d were removed", c.Size, v.rep.Entries, v.rep.Entries, c.Size-1)})
		case !matched[&c.Checkpoint]:
			v.problem(Problem{Code: ProblemRoot, Seq: -1, Checkpoint: c.Size,
				Detail: fmt.Sprintf("its signed root %s differs from the root of the log's first %d entries: an entry before %d was changed, removed or reordered after it was signed (the first bad entry is at or after %d, where the previous checkpoint still matched)",
					b64(c.Root), c.Size, c.Size, lastGood)})
		default:
			c.matched = true
			lastGood = c.Size
			v.rep.Covered = c.Size
			if prev != nil && prev.matched {
				v.consistency(prev.Checkpoint, c.Checkpoint, ProblemConsistency)
			}
		}
		prev = c
	}
	if trusted != nil {
		switch {
		case trusted.Size > v.rep.Entries:
			v.problem(Problem{Code: ProblemTrusted, Seq: -1, Checkpoint: trusted.Size,
				Detail: fmt.Sprintf("the trusted checkpoint covers %d entries but the log has %d: the log was truncated", trusted.Size, v.rep.Entries)})
		case !matched[trusted]:
			v.problem(Problem{Code: ProblemTrusted, Seq: -1, Checkpoint: trusted.Size,
				Detail: fmt.Sprintf("the log's first %d entries no longer have the root %s the trusted checkpoint signed: the log was rewritten", trusted.Size, b64(trusted.Root))})
		case v.rep.Covered >= trusted.Size:
			latest := cps[len(cps)-1].Checkpoint
			for i := len(cps) - 1; i >= 0; i-- {
				if cps[i].matched {
					latest = cps[i].Checkpoint
					break
				}
			}
			v.consistency(*trusted, latest, ProblemTrusted)
		}
	}
	return v.rep, nil
}

// parsedRecord is a record's leaf hash and parsed entry.
type parsedRecord struct {
	leaf [sha256.Size]byte
	e    Entry
	err  error // from parseLeaf
}

// parsedBatch is a batch of records on its way through scanPipelined.
type parsedBatch struct {
	recs   []store.AuditRecord
	parsed []parsedRecord
	done   chan struct{} // closed once recs are hashed and parsed
}

// scanPipelined reads the log with its node hashes in one goroutine,
// hashes and parses the entries in a goroutine per processor, and calls
// process with every record, in order, in the calling one: reading the
// database, parsing and building the tree overlap, and parsing uses every
// core the other stages leave.
func scanPipelined(ctx context.Context, st *store.Store, process func(r *store.AuditRecord, p *parsedRecord) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	const inFlight = 4 // batches read ahead of process
	var (
		work    = make(chan *parsedBatch, inFlight)
		ordered = make(chan *parsedBatch, inFlight)
		scanErr = make(chan error, 1)
		// free holds the parsed records of processed batches for reuse:
		// nothing keeps them once process has returned (it copies what it
		// keeps), and parsing overwrites every one.
		free = make(chan []parsedRecord, 2*inFlight+1)
	)
	go func() {
		defer close(ordered)
		defer close(work)
		err := st.ScanAuditBatches(ctx, 0, func(recs []store.AuditRecord) error {
			b := &parsedBatch{recs: recs, done: make(chan struct{})}
			select {
			case p := <-free:
				if cap(p) >= len(recs) {
					b.parsed = p[:len(recs)]
				}
			default:
			}
			if b.parsed == nil {
				b.parsed = make([]parsedRecord, len(recs))
			}
			// ordered first: a batch in work is always awaited in order.
			for _, ch := range []chan *parsedBatch{ordered, work} {
				select {
				case ch <- b:
				case <-ctx.Done():
					if ch == work {
						close(b.done) // awaited, never parsed: process stops first
					}
					return ctx.Err()
				}
			}
			return nil
		})
		scanErr <- err
	}()
	for range max(1, runtime.GOMAXPROCS(0)) {
		go func() {
			h := sha256.New()
			for b := range work {
				if ctx.Err() == nil {
					for i := range b.recs {
						data, p := b.recs[i].Data, &b.parsed[i]
						h.Reset()
						h.Write([]byte{0})
						h.Write(data)
						h.Sum(p.leaf[:0])
						// Nothing writes to the records' data (the store
						// hands it over for good, and Verify only reads
						// it): the entry may share it.
						p.e, p.err = parseLeafShared(data)
					}
				}
				close(b.done)
			}
		}()
	}
	drain := func() {
		cancel()
		for b := range ordered {
			<-b.done
		}
	}
	for b := range ordered {
		<-b.done
		if err := ctx.Err(); err != nil {
			drain()
			return err
		}
		for i := range b.recs {
			if err := process(&b.recs[i], &b.parsed[i]); err != nil {
				drain()
				return err
			}
		}
		select {
		case free <- b.parsed[:cap(b.parsed)]:
		default:
		}
		if err := ctx.Err(); err != nil {
			drain()
			return err
		}
	}
	return <-scanErr
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// checkpoints reads and opens every stored checkpoint.
func (v *verifier) checkpoints() ([]storedCheckpoint, error) {
	var out []storedCheckpoint
	after := int64(0)
	for {
		page, err := v.st.AuditCheckpoints(v.ctx, after, 0)
		if err != nil {
			return nil, fmt.Errorf("verifying audit log: %w", err)
		}
		for _, row := range page {
			v.rep.Checkpoints++
			cp, err := OpenCheckpoint(row.Note, v.o.Verifier)
			switch {
			case err != nil:
				v.problem(Problem{Code: ProblemCheckpoint, Seq: -1, Checkpoint: uint64(row.Size), Detail: err.Error()})
			case cp.Size != uint64(row.Size):
				v.problem(Problem{Code: ProblemCheckpoint, Seq: -1, Checkpoint: uint64(row.Size),
					Detail: fmt.Sprintf("the row of size %d holds a signed note for size %d: checkpoints were swapped", row.Size, cp.Size)})
			case !bytes.Equal(cp.Root, row.Root):
				v.problem(Problem{Code: ProblemCheckpoint, Seq: -1, Checkpoint: uint64(row.Size), Detail: "its stored root differs from the root in its signed note"})
			default:
				out = append(out, storedCheckpoint{Checkpoint: cp})
			}
		}
		if len(page) < store.MaxSearchLimit {
			return out, nil
		}
		after = page[len(page)-1].Size
	}
}

// consistency checks the stored-node consistency proof from a to b.
func (v *verifier) consistency(a, b Checkpoint, code ProblemCode) {
	p, err := consistencyProof(v.ctx, storeNodes(v.st), a.Size, b.Size)
	if err == nil {
		err = VerifyConsistency(a.Size, b.Size, p, a.Root, b.Root)
	}
	if err != nil {
		v.problem(Problem{Code: code, Seq: -1, Checkpoint: b.Size,
			Detail: fmt.Sprintf("the consistency proof from the checkpoint of size %d, built from the stored nodes, does not verify: %v", a.Size, err)})
	}
}

// entryInputs checks that an entry's inputs still hash to what was logged
// and re-derives a decision.
func (v *verifier) entryInputs(seq int64, e Entry) {
	if e.Kind == KindDecision {
		v.rep.Decisions++
	}
	ok := true
	needData := e.Kind == KindDecision && v.o.Rederiver != nil
	var resolved []ResolvedInput // for the Rederiver
	if needData {
		resolved = make([]ResolvedInput, 0, len(e.Inputs))
	}
	for _, in := range e.Inputs {
		if h, seen := v.inputs[in.Ref]; seen && !needData {
			if h != in.Hash {
				ok = false
				v.problem(Problem{Code: ProblemInputAltered, Seq: seq, EntryID: e.ID, Detail: fmt.Sprintf("input %s does not hash to the logged value", in.Ref)})
			}
			continue
		}
		format, data, err := v.resolve(in.Ref)
		if err != nil {
			ok = false
			code, what := ProblemInputMissing, "cannot be found"
			if !errors.Is(err, store.ErrNotFound) {
				what = "cannot be read"
			}
			v.problem(Problem{Code: code, Seq: seq, EntryID: e.ID, Detail: fmt.Sprintf("input %s %s: %v", in.Ref, what, err)})
			continue
		}
		sum := sha256.Sum256(data)
		if _, seen := v.inputs[in.Ref]; !seen {
			v.inputs[strings.Clone(in.Ref)] = sum
			v.rep.InputsChecked++
		}
		if sum != in.Hash {
			ok = false
			v.problem(Problem{Code: ProblemInputAltered, Seq: seq, EntryID: e.ID,
				Detail: fmt.Sprintf("input %s no longer hashes to the logged value (logged %x, stored bytes hash to %x): it was altered after the entry was logged", in.Ref, in.Hash[:8], sum[:8])})
			continue
		}
		if needData {
			resolved = append(resolved, ResolvedInput{Input: in, Format: format, Data: data})
		}
	}
	if !needData || !ok {
		return
	}
	v.rep.Rederived++
	out, err := v.o.Rederiver.Rederive(v.ctx, Decision{Seq: seq, Entry: e, Inputs: resolved})
	if err != nil {
		v.problem(Problem{Code: ProblemDecision, Seq: seq, EntryID: e.ID, Detail: "the decision could not be re-derived: " + err.Error()})
		return
	}
	// The outcome as Normalized has it: obligations sorted without
	// repeats (sorted here only when they are not already).
	got := Entry{Effect: out.Effect, Obligations: out.Obligations, Trail: out.Trail}
	if !sortedUnique(got.Obligations) {
		got.Obligations = slices.Compact(slices.Sorted(slices.Values(got.Obligations)))
	}
	switch {
	case got.Effect != e.Effect:
		v.problem(Problem{Code: ProblemDecision, Seq: seq, EntryID: e.ID, Detail: fmt.Sprintf("logged %s, re-derived %s", e.Effect, got.Effect)})
	case !slices.Equal(got.Obligations, e.Obligations):
		v.problem(Problem{Code: ProblemDecision, Seq: seq, EntryID: e.ID, Detail: fmt.Sprintf("logged obligations %v, re-derived %v", e.Obligations, got.Obligations)})
	case !slices.Equal(got.Trail, e.Trail):
		v.problem(Problem{Code: ProblemDecision, Seq: seq, EntryID: e.ID, Detail: fmt.Sprintf("logged trail %v, re-derived %v", e.Trail, got.Trail)})
	}
}

// sortedUnique reports whether ss is sorted without repeats.
func sortedUnique(ss []string) bool {
	for i := 1; i < len(ss); i++ {
		if ss[i-1] >= ss[i] {
			return false
		}
	}
	return true
}
