package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/spf13/cobra"
)

type keysTokenOptions struct {
	partner string
	json    bool
}

var partnerIDPattern = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

func newKeysTokenCmd(s streams) *cobra.Command {
	var o keysTokenOptions
	cmd := &cobra.Command{
		Use:   "token --partner ID [--json]",
		Short: "Make an API token for a partner, and the hash to put in pathway.yaml",
		Long: `Make a random bearer token a partner calls Pathway's FHIR API with
(pathway serve), and print it with its SHA-256.

Give the token to the partner over a safe channel, once: Pathway never
stores it. Put the hash in the partner's entry of pathway.yaml:

  partners:
    - id: ID
      api:
        token_sha256: ["sha256:..."]

Several hashes may be listed, so a token can be replaced without downtime:
add the new one, let the partner switch, remove the old one.`,
		Example: `  pathway keys token --partner ngo-harbour
  pathway keys token --partner ngo-harbour --json | jq -r .token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !partnerIDPattern.MatchString(o.partner) {
				return usageErrorf("keys token: --partner ID is required (the partner's id in pathway.yaml)")
			}
			var b [32]byte
			if _, err := rand.Read(b[:]); err != nil {
				return &exitError{code: exitInvalid, msg: err.Error()}
			}
			token := "pwt_" + base64.RawURLEncoding.EncodeToString(b[:])
			sum := sha256.Sum256([]byte(token))
			hash := "sha256:" + hex.EncodeToString(sum[:])
			if o.json {
				return json.NewEncoder(s.out).Encode(map[string]string{"partner": o.partner, "token": token, "token_sha256": hash})
			}
			fmt.Fprintf(s.out, "token for %s (give it to the partner; it is not stored):\n  %s\n\nin pathway.yaml, under the partner %s:\n  api:\n    token_sha256: [%q]\n", o.partner, token, o.partner, hash)
			return nil
		},
	}
	cmd.Flags().StringVar(&o.partner, "partner", "", "the partner's id (required)")
	cmd.Flags().BoolVar(&o.json, "json", false, "print {partner, token, token_sha256} as JSON")
	return cmd
}
