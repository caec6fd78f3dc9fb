package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	aepb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/audit_event_go_proto"
	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/exchange"
	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/store"
)

// Environment variables holding the audit log's signing key (only package
// main reads the environment).
const (
	envSigningKey     = "PATHWAY_SIGNING_KEY"
	envSigningKeyFile = "PATHWAY_SIGNING_KEY_FILE"
)

func newAuditCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify the audit log, prove entries, check receipts, export AuditEvents",
		Long: `Every decision, disclosure and API access is an entry of an append-only
Merkle log (RFC 6962) with signed checkpoints. These commands let an auditor
check the log without trusting the operator, and a partner prove what it
received. docs/audit.md describes the formats.

Keys: --key takes the log's verifier key ("<origin>+<hash>+<key>", printed by
pathway keys generate) or a file holding it. Without --key, the verifier key
is derived from the signing key in $` + envSigningKey + ` or the file named
by $` + envSigningKeyFile + `.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newAuditVerifyCmd(s), newAuditProveCmd(s), newAuditCheckReceiptCmd(s), newAuditExportCmd(s), newAuditCheckpointCmd(s))
	return cmd
}

// openAuditStore opens the store named by the flag (or the environment).
// A store that cannot be opened cannot be verified: exit 1.
func openAuditStore(ctx context.Context, flag string) (*store.Store, string, error) {
	url := databaseURL(flag)
	st, err := store.Open(ctx, url)
	if err != nil {
		return nil, "", &exitError{code: exitInvalid, msg: err.Error()}
	}
	return st, store.RedactURL(url), nil
}

// signingKey reads the signing key from the environment: the key itself in
// PATHWAY_SIGNING_KEY, or a file in PATHWAY_SIGNING_KEY_FILE. found is
// false when neither is set.
func signingKey() (skey string, found bool, err error) {
	v, f := os.Getenv(envSigningKey), os.Getenv(envSigningKeyFile)
	switch {
	case v != "" && f != "":
		return "", false, usageErrorf("set %s or %s, not both", envSigningKey, envSigningKeyFile)
	case v != "":
		return v, true, nil
	case f != "":
		b, err := os.ReadFile(f)
		if err != nil {
			return "", false, usageErrorf("reading the signing key named by %s: %v", envSigningKeyFile, err)
		}
		return string(b), true, nil
	}
	return "", false, nil
}

// resolveVerifier returns the verifier for --key: the key itself or a file
// holding it; without --key, the verifier of the signing key in the
// environment. required makes a missing key a usage error.
func resolveVerifier(flag string, required bool) (note.Verifier, error) {
	vkey := strings.TrimSpace(flag)
	if vkey != "" {
		if _, err := audit.NewVerifier(vkey); err != nil {
			b, ferr := os.ReadFile(flag)
			if ferr != nil {
				return nil, usageErrorf("--key: neither a verifier key (<origin>+<hash>+<key>) nor a readable file: %v", ferr)
			}
			vkey = strings.TrimSpace(string(b))
		}
	} else {
		skey, found, err := signingKey()
		if err != nil {
			return nil, err
		}
		if !found {
			if required {
				return nil, usageErrorf("--key is required: the log's verifier key, or a file holding it (printed by pathway keys generate)")
			}
			return nil, nil
		}
		if vkey, err = audit.VerifierKey(skey); err != nil {
			return nil, usageErrorf("%s/%s: %v", envSigningKey, envSigningKeyFile, err)
		}
	}
	v, err := audit.NewVerifier(vkey)
	if err != nil {
		return nil, usageErrorf("--key: %v", err)
	}
	return v, nil
}

type auditVerifyOptions struct {
	database string
	key      string
	from     string
	json     bool
}

func newAuditVerifyCmd(s streams) *cobra.Command {
	var o auditVerifyOptions
	cmd := &cobra.Command{
		Use:   "verify [--database URL] [--key PUBKEY] [--from CHECKPOINT_FILE] [--json]",
		Short: "Check the whole audit log against its signed checkpoints",
		Long: `Recompute every leaf and the Merkle tree from the stored entries, check every
checkpoint's signature and root and the consistency between consecutive
checkpoints (and with a checkpoint you saved earlier, --from), check that
every input a decision read still hashes to what was logged, and
re-derive the decisions.

Exit status: 0 when everything holds; 1 when anything is wrong (the first
problem is named: the entry or checkpoint, and why) or the store cannot be
read; 2 for usage errors.`,
		Example: `  pathway audit verify --key audit.pub
  pathway audit verify --database postgres://... --key audit.pub --from saved-checkpoint.txt
  pathway audit verify --key audit.pub --json | jq .problems`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAuditVerify(cmd.Context(), o, s)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.database, "database", "", "store URL (default $PATHWAY_DATABASE_URL, else sqlite://pathway.db)")
	f.StringVar(&o.key, "key", "", "the log's verifier key, or a file holding it")
	f.StringVar(&o.from, "from", "", "a signed checkpoint saved earlier, which the log must still contain")
	f.BoolVar(&o.json, "json", false, "print the report as one JSON object")
	return cmd
}

// verifyOutput is `audit verify --json`.
// verifyRederiver re-derives decisions for audit verify: the policy
// engine, from the configuration, bundle and consents each decision logged.
// Tests of the log's mechanics on synthetic entries replace it.
var verifyRederiver = func() audit.Rederiver { return exchange.NewRederiver() }

type verifyOutput struct {
	Database  string `json:"database"`
	OK        bool   `json:"ok"`
	Uncovered uint64 `json:"uncovered"`
	*audit.Report
}

func runAuditVerify(ctx context.Context, o auditVerifyOptions, s streams) error {
	if ctx == nil {
		ctx = context.Background()
	}
	v, err := resolveVerifier(o.key, true)
	if err != nil {
		return err
	}
	var trusted []byte
	if o.from != "" {
		if trusted, err = os.ReadFile(o.from); err != nil {
			return usageErrorf("--from: %v", err)
		}
	}
	st, db, err := openAuditStore(ctx, o.database)
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := audit.Verify(ctx, st, audit.VerifyOptions{Verifier: v, Trusted: trusted, Rederiver: verifyRederiver()})
	if err != nil {
		return &exitError{code: exitInvalid, msg: err.Error()}
	}
	if o.json {
		if err := json.NewEncoder(s.out).Encode(verifyOutput{Database: db, OK: rep.OK(), Uncovered: rep.Uncovered(), Report: rep}); err != nil {
			return &exitError{code: exitInvalid, msg: err.Error()}
		}
	} else {
		printVerify(s.out, db, v, rep)
	}
	if !rep.OK() {
		msg := ""
		if o.json {
			msg = "audit log verification failed: " + rep.Problems[0].String()
		}
		return &exitError{code: exitInvalid, msg: msg}
	}
	return nil
}

func printVerify(w io.Writer, db string, v note.Verifier, rep *audit.Report) {
	fmt.Fprintf(w, "Audit log in %s, checked with the key %s+%08x.\n", db, v.Name(), v.KeyHash())
	fmt.Fprintf(w, "Entries: %d; root hash %s.\n", rep.Entries, base64.StdEncoding.EncodeToString(rep.Root))
	fmt.Fprintf(w, "Checkpoints: %d checked; the latest valid one covers %d entries", rep.Checkpoints, rep.Covered)
	if n := rep.Uncovered(); n > 0 {
		fmt.Fprintf(w, " (%d newer entries are not covered by a checkpoint yet: run pathway audit checkpoint)", n)
	}
	fmt.Fprintln(w, ".")
	if rep.Trusted > 0 {
		fmt.Fprintf(w, "Trusted checkpoint: covers %d entries.\n", rep.Trusted)
	}
	fmt.Fprintf(w, "Decisions: %d; inputs re-hashed: %d; re-derived: %d", rep.Decisions, rep.InputsChecked, rep.Rederived)
	if rep.RederiveSkipped {
		fmt.Fprint(w, " (no policy engine is wired into verify yet: inputs were checked, decisions not re-derived)")
	}
	fmt.Fprintln(w, ".")
	if rep.OK() {
		fmt.Fprintln(w, "OK: every entry, checkpoint and input verified.")
		return
	}
	fmt.Fprintf(w, "FAILED: %s\n", rep.Problems[0])
	more := ""
	if rep.Truncated {
		more = " (more not listed)"
	}
	fmt.Fprintf(w, "%d problems%s:\n", len(rep.Problems), more)
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "  %s\n", p)
	}
}

func newAuditProveCmd(s streams) *cobra.Command {
	var database string
	cmd := &cobra.Command{
		Use:   "prove [--database URL] ENTRY_OR_EXCHANGE_ID",
		Short: "Write a receipt: the entries, their inclusion proofs and the signed checkpoint",
		Long: `Write a receipt (JSON) for the audit entry with this id, or for every entry
of the exchange with this id: each entry's bytes, its inclusion proof and
the latest signed checkpoint. Anyone with the log's verifier key checks it
offline with pathway audit check-receipt.

An entry newer than the latest checkpoint cannot be proved yet: run
pathway audit checkpoint (or wait for the checkpointer) first.`,
		Example: `  pathway audit prove x-2025-000123 > receipt.json`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAuditProve(cmd.Context(), database, args[0], s)
		},
	}
	cmd.Flags().StringVar(&database, "database", "", "store URL (default $PATHWAY_DATABASE_URL, else sqlite://pathway.db)")
	return cmd
}

func runAuditProve(ctx context.Context, database, id string, s streams) error {
	if ctx == nil {
		ctx = context.Background()
	}
	st, _, err := openAuditStore(ctx, database)
	if err != nil {
		return err
	}
	defer st.Close()
	rc, err := audit.New(st).Prove(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &exitError{code: exitInvalid, msg: fmt.Sprintf("no audit entry has the id or exchange %q", id)}
	case errors.Is(err, audit.ErrNotCheckpointed):
		return &exitError{code: exitInvalid, msg: err.Error() + "; run pathway audit checkpoint first"}
	case err != nil:
		return &exitError{code: exitInvalid, msg: err.Error()}
	}
	b, err := rc.Marshal()
	if err != nil {
		return &exitError{code: exitInvalid, msg: err.Error()}
	}
	_, err = s.out.Write(b)
	return err
}

type checkReceiptOptions struct {
	receipt string
	bundle  string
	key     string
	json    bool
}

func newAuditCheckReceiptCmd(s streams) *cobra.Command {
	var o checkReceiptOptions
	cmd := &cobra.Command{
		Use:   "check-receipt RECEIPT [--bundle RECEIVED] --key PUBKEY",
		Short: "Check a receipt offline, and that a received bundle is the one logged",
		Long: `Check a receipt without the database: the checkpoint's signature with the
log's verifier key, and each entry's inclusion proof up to the checkpoint's
root. With --bundle, also check that the file holds exactly the bytes whose
SHA-256 the log recorded for the exchanged bundle. RECEIPT may be - for
standard input.

Exit status: 0 when the receipt (and the bundle) check; 1 when not; 2 for
usage errors.`,
		Example: `  pathway audit check-receipt receipt.json --key audit.pub
  pathway audit check-receipt receipt.json --bundle received.json --key audit.pub`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.receipt = args[0]
			return runCheckReceipt(o, s)
		},
	}
	cmd.Flags().StringVar(&o.bundle, "bundle", "", "the bundle as received, byte for byte")
	cmd.Flags().StringVar(&o.key, "key", "", "the log's verifier key, or a file holding it (required)")
	cmd.Flags().BoolVar(&o.json, "json", false, "print the result as one JSON object")
	return cmd
}

// receiptOutput is `audit check-receipt --json`.
type receiptOutput struct {
	Valid         bool              `json:"valid"`
	Error         string            `json:"error,omitempty"`
	Origin        string            `json:"origin,omitempty"`
	Size          uint64            `json:"checkpoint_size,omitempty"`
	Root          []byte            `json:"checkpoint_root,omitempty"`
	Entries       []json.RawMessage `json:"entries,omitempty"`
	Indexes       []int64           `json:"indexes,omitempty"`
	BundleMatched *bool             `json:"bundle_matched,omitempty"`
}

// maxReceiptBytes bounds what check-receipt reads.
const maxReceiptBytes = 64 << 20

func runCheckReceipt(o checkReceiptOptions, s streams) error {
	v, err := resolveVerifier(o.key, true)
	if err != nil {
		return err
	}
	var data []byte
	if o.receipt == "-" {
		data, err = fhir.ReadAllLimited(s.in, maxReceiptBytes)
	} else {
		data, err = os.ReadFile(o.receipt)
	}
	if err != nil {
		return usageErrorf("check-receipt: reading the receipt: %v", err)
	}
	var bundle []byte
	if o.bundle != "" {
		if bundle, err = os.ReadFile(o.bundle); err != nil {
			return usageErrorf("check-receipt: --bundle: %v", err)
		}
	}
	check, cerr := audit.CheckReceipt(data, v, bundle)
	if o.json {
		out := receiptOutput{Valid: cerr == nil}
		if cerr != nil {
			out.Error = cerr.Error()
		} else {
			out.Origin, out.Size, out.Root = check.Checkpoint.Origin, check.Checkpoint.Size, check.Checkpoint.Root
			for _, r := range check.Entries {
				out.Entries = append(out.Entries, json.RawMessage(r.Data))
				out.Indexes = append(out.Indexes, r.Seq)
			}
			if bundle != nil {
				out.BundleMatched = &check.BundleMatched
			}
		}
		if err := json.NewEncoder(s.out).Encode(out); err != nil {
			return err
		}
		if cerr != nil {
			return &exitError{code: exitInvalid}
		}
		return nil
	}
	if cerr != nil {
		return &exitError{code: exitInvalid, msg: "receipt invalid: " + cerr.Error()}
	}
	cp := check.Checkpoint
	fmt.Fprintf(s.out, "Receipt valid: signed by %s+%08x for a log of %d entries (root %s).\n", v.Name(), v.KeyHash(), cp.Size, base64.StdEncoding.EncodeToString(cp.Root))
	for _, r := range check.Entries {
		fmt.Fprintf(s.out, "  entry %d: %s\n", r.Seq, describeEntry(r.Entry))
	}
	if bundle != nil {
		fmt.Fprintf(s.out, "Bundle %s: its SHA-256 is the one logged for the exchanged bundle.\n", o.bundle)
	}
	return nil
}

// describeEntry says what an entry records, in one line of references,
// codes and hashes.
func describeEntry(e audit.Entry) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s at %s, %s", e.ID, e.Kind, e.Time.Format(time.RFC3339Nano), e.Actor)
	if e.Purpose != "" {
		fmt.Fprintf(&b, " for %s", e.Purpose)
	}
	if e.Interaction != "" {
		fmt.Fprintf(&b, " (%s)", e.Interaction)
	}
	if e.Effect != "" {
		fmt.Fprintf(&b, ": %s", e.Effect)
	}
	if len(e.Obligations) > 0 {
		fmt.Fprintf(&b, " with obligations %s", strings.Join(e.Obligations, " "))
	}
	if e.Bundle != nil {
		fmt.Fprintf(&b, "; %s sha256 %s", e.Bundle.Ref, hex.EncodeToString(e.Bundle.Hash[:]))
	}
	return b.String()
}

type auditExportOptions struct {
	database string
	since    string
	format   string
}

func newAuditExportCmd(s streams) *cobra.Command {
	var o auditExportOptions
	cmd := &cobra.Command{
		Use:   "export [--database URL] [--since T] [--format ndjson]",
		Short: "Write the log's AuditEvents as FHIR NDJSON",
		Long: `Write the AuditEvent of every audit entry (IHE BALP patterns: consent
authorization decisions, privacy disclosures, RESTful accesses) as FHIR R4
NDJSON, one event per line, in log order: for a SIEM or an auditor.
--since keeps entries recorded at or after T (RFC 3339, or a date).
The events hold references, codes and hashes only.`,
		Example: `  pathway audit export > audit-events.ndjson
  pathway audit export --since 2025-05-01 | gzip > may.ndjson.gz`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAuditExport(cmd.Context(), o, s)
		},
	}
	cmd.Flags().StringVar(&o.database, "database", "", "store URL (default $PATHWAY_DATABASE_URL, else sqlite://pathway.db)")
	cmd.Flags().StringVar(&o.since, "since", "", "only entries recorded at or after this time (RFC 3339 or YYYY-MM-DD)")
	cmd.Flags().StringVar(&o.format, "format", "ndjson", "output format: ndjson")
	return cmd
}

// parseSince reads --since: an RFC 3339 time or a date (midnight UTC).
func parseSince(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", v); err == nil {
		return t, nil
	}
	return time.Time{}, usageErrorf("--since %q: want an RFC 3339 time (2025-05-01T09:00:00Z) or a date (2025-05-01)", v)
}

func runAuditExport(ctx context.Context, o auditExportOptions, s streams) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.format != "ndjson" {
		return usageErrorf("--format %q: only ndjson is supported", o.format)
	}
	since, err := parseSince(o.since)
	if err != nil {
		return err
	}
	st, _, err := openAuditStore(ctx, o.database)
	if err != nil {
		return err
	}
	defer st.Close()
	w := bufio.NewWriter(s.out)
	err = audit.New(st).Events(ctx, since, func(_ int64, ev *aepb.AuditEvent) error {
		b, err := fhir.Marshal(ev)
		if err != nil {
			return err
		}
		w.Write(b)
		return w.WriteByte('\n')
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return &exitError{code: exitInvalid, msg: "exporting AuditEvents: " + err.Error()}
	}
	return nil
}

func newAuditCheckpointCmd(s streams) *cobra.Command {
	var database string
	cmd := &cobra.Command{
		Use:   "checkpoint [--database URL]",
		Short: "Sign a checkpoint of the entries no checkpoint covers yet, and print it",
		Long: `Sign and store a checkpoint of the whole log when it has entries no stored
checkpoint covers (the server and the workers do this on their own, every N
entries or T seconds), and print the latest checkpoint: save it, and give it
to pathway audit verify --from later to check the log was not rewritten.

The signing key comes from $` + envSigningKey + ` or the file named by $` + envSigningKeyFile + `.`,
		Example: `  PATHWAY_SIGNING_KEY_FILE=/etc/pathway/audit.key pathway audit checkpoint > checkpoint-$(date +%F).txt`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAuditCheckpoint(cmd.Context(), database, s)
		},
	}
	cmd.Flags().StringVar(&database, "database", "", "store URL (default $PATHWAY_DATABASE_URL, else sqlite://pathway.db)")
	return cmd
}

func runAuditCheckpoint(ctx context.Context, database string, s streams) error {
	if ctx == nil {
		ctx = context.Background()
	}
	skey, found, err := signingKey()
	if err != nil {
		return err
	}
	if !found {
		return usageErrorf("checkpoint: set %s or %s to the signing key (made by pathway keys generate)", envSigningKey, envSigningKeyFile)
	}
	signer, err := audit.NewSigner(skey)
	if err != nil {
		return usageErrorf("%s/%s: %v", envSigningKey, envSigningKeyFile, err)
	}
	st, _, err := openAuditStore(ctx, database)
	if err != nil {
		return err
	}
	defer st.Close()
	cp, created, err := audit.New(st).Checkpoint(ctx, signer)
	if err != nil {
		return &exitError{code: exitInvalid, msg: err.Error()}
	}
	switch {
	case cp.Size == 0:
		fmt.Fprintln(s.err, "pathway: the audit log is empty: no checkpoint to sign")
		return nil
	case created:
		fmt.Fprintf(s.err, "pathway: signed a checkpoint of %d entries\n", cp.Size)
	default:
		fmt.Fprintf(s.err, "pathway: no new entries; the latest checkpoint covers %d entries\n", cp.Size)
	}
	_, err = s.out.Write(cp.Note)
	return err
}
