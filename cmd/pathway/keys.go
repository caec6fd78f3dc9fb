package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/pathway-fhir/pathway/audit"
)

// defaultKeyName names the log in checkpoints when --name is not given.
const defaultKeyName = "pathway.local/audit"

type keysGenerateOptions struct {
	name string
	out  string
}

func newKeysCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Make the audit log's signing key and partners' API tokens",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newKeysGenerateCmd(s), newKeysTokenCmd(s))
	return cmd
}

func newKeysGenerateCmd(s streams) *cobra.Command {
	var o keysGenerateOptions
	cmd := &cobra.Command{
		Use:   "generate [--name ORIGIN] --out FILE",
		Short: "Make an Ed25519 key that signs the audit log's checkpoints",
		Long: `Generate an Ed25519 signing key for the audit log's checkpoints, in the
signed-note encoding (golang.org/x/mod/sumdb/note).

The private key is written to FILE, readable by its owner only (0600); an
existing file is never overwritten. Give it to pathway serve and the
workers through PATHWAY_SIGNING_KEY_FILE=FILE (or its contents through
PATHWAY_SIGNING_KEY). Keep it secret: whoever holds it can sign checkpoints.

The verifier key is printed on standard output: give it to auditors and
partners, who check checkpoints and receipts with it (--key).

ORIGIN names the log in every checkpoint, such as "pathway.example.org/audit"
(no spaces, no '+').`,
		Example: `  pathway keys generate --name pathway.example.org/audit --out /etc/pathway/audit.key > audit.pub`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKeysGenerate(o, s)
		},
	}
	cmd.Flags().StringVar(&o.name, "name", defaultKeyName, "origin: the log's name in checkpoints")
	cmd.Flags().StringVar(&o.out, "out", "", "file to write the private key to (required; must not exist)")
	return cmd
}

func runKeysGenerate(o keysGenerateOptions, s streams) error {
	if o.out == "" {
		return usageErrorf("keys generate: --out FILE is required")
	}
	skey, vkey, err := audit.GenerateKey(o.name)
	if err != nil {
		return usageErrorf("keys generate: --name: %v", err)
	}
	f, err := os.OpenFile(o.out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return usageErrorf("keys generate: %s exists; refusing to overwrite a key", o.out)
	}
	if err != nil {
		return &exitError{code: exitInvalid, msg: fmt.Sprintf("keys generate: %v", err)}
	}
	_, werr := fmt.Fprintln(f, skey)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = os.Remove(o.out)
		return &exitError{code: exitInvalid, msg: fmt.Sprintf("keys generate: writing %s: %v", o.out, werr)}
	}
	fmt.Fprintln(s.out, vkey)
	fmt.Fprintf(s.err, "pathway: signing key written to %s (keep it secret; PATHWAY_SIGNING_KEY_FILE=%s); the verifier key above is for auditors (--key)\n", o.out, o.out)
	return nil
}
