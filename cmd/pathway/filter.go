package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/policy"
	"github.com/spf13/cobra"
)

// exitDenied is filter's exit status when nothing may be sent.
const exitDenied = 3

// filterOptions are the flags of filter, parsed.
type filterOptions struct {
	config   string
	partner  string
	purpose  string
	at       string
	decision string
	bundle   string
}

func newFilterCmd(s streams) *cobra.Command {
	var o filterOptions
	cmd := &cobra.Command{
		Use:   "filter --config FILE --partner ID --purpose CODE [--at RFC3339] [--decision FILE] BUNDLE",
		Short: "Apply consent and data-sharing agreement to a Bundle before it goes to a partner",
		Long: `Decide what of a FHIR Bundle (a referral's transaction, a search result)
a partner may receive for a purpose, and write the Bundle to send.

The patient's Consents are read from the Bundle itself; the partner's
data-sharing agreement, the network's base policy and extra labelling rules
from --config (the policy part of pathway.yaml; see docs/policy.md and
testdata/policy/pathway.yaml). Resources are labelled first (DS4P security
labels, inline on elements where only part of a resource is sensitive),
then withheld or reduced: resource types and labels outside the agreement,
what the consents refuse, immigration and legal-status data without an
explicit consent provision, elements outside the agreement's minimum
necessary. References to what is withheld are removed, masked values and
redacted resources are marked MASKED and REDACTED, and the agreement's
refrain codes (NORDSCLCD...) are attached. The input is not changed.

The filtered Bundle goes to standard output, the decision (JSON: decision,
obligations, trail, explanation) to standard error or --decision FILE.
BUNDLE may be - for standard input.

Exit status: 0 when a Bundle was written, 3 when nothing may be sent (deny
or no-consent: no Bundle is written), 2 for usage errors, configuration
problems (reported as file:line:col) or unreadable input, 1 when the
filtered Bundle would not be valid FHIR (a bug: nothing is written).`,
		Example: `  pathway filter --config pathway.yaml --partner community-c --purpose COC referral.json > out.json
  pathway filter --config pathway.yaml --partner clinic-b --purpose TREAT \
      --decision decision.json --at 2026-06-01T09:00:00Z referral.json
  pathway convert --mapping ngo-referral-csv referrals.csv | head -1 | \
      pathway filter --config pathway.yaml --partner legal-aid-d --purpose COC -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.bundle = args[0]
			return runFilter(o, s, time.Now())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "", "policy configuration: network, partners with agreements, labels (required)")
	f.StringVar(&o.partner, "partner", "", "id of the partner the Bundle goes to (required)")
	f.StringVar(&o.purpose, "purpose", "", "v3-ActReason purpose of use: COC, TREAT... (required)")
	f.StringVar(&o.at, "at", "", "time of the exchange, RFC 3339 (default now)")
	f.StringVar(&o.decision, "decision", "", "write the decision JSON to this file instead of standard error")
	_ = cmd.MarkFlagRequired("config")
	_ = cmd.MarkFlagRequired("partner")
	_ = cmd.MarkFlagRequired("purpose")
	return cmd
}

// filterRequest is what filter's flags ask, checked and loaded.
type filterRequest struct {
	cfg     *policy.Config
	partner *policy.Partner
	purpose string
	at      time.Time
}

// parse checks the flags and loads the configuration.
func (o filterOptions) parse(now time.Time) (filterRequest, error) {
	var r filterRequest
	if !policy.IsPurpose(o.purpose) {
		return r, usageErrorf("filter: --purpose %q is not a v3-ActReason purpose of use (TREAT, COC, ETREAT, BTG, CAREMGT, HOPERAT, PUBHLTH, HRESCH...)", o.purpose)
	}
	r.purpose = o.purpose
	r.at = now
	if o.at != "" {
		t, err := time.Parse(time.RFC3339, o.at)
		if err != nil {
			return r, usageErrorf("filter: --at %q is not an RFC 3339 time (2026-06-01T09:00:00Z)", o.at)
		}
		r.at = t
	}
	data, err := os.ReadFile(o.config)
	if err != nil {
		return r, usageErrorf("filter: reading --config: %s", describeReadError(err))
	}
	cfg, err := policy.ParseConfig(o.config, data)
	if err != nil {
		var ce *policy.ConfigError
		if errors.As(err, &ce) {
			return r, usageErrorf("filter: configuration problems:\n%v", err)
		}
		return r, usageErrorf("filter: %v", err)
	}
	r.cfg = cfg
	r.partner = cfg.Partner(o.partner)
	if r.partner == nil {
		var ids []string
		for _, p := range cfg.Partners {
			ids = append(ids, p.ID)
		}
		return r, usageErrorf("filter: no partner %q in %s (partners: %s)", o.partner, o.config, strings.Join(ids, ", "))
	}
	return r, nil
}

func runFilter(o filterOptions, s streams, now time.Time) error {
	r, err := o.parse(now)
	if err != nil {
		return err
	}
	cr, err := readResourceFile(o.bundle, s.in)
	if err != nil {
		return err
	}
	b := cr.GetBundle()
	if b == nil {
		return usageErrorf("filter: %s is a %s, not a Bundle", o.bundle, fhir.TypeOf(cr))
	}
	engine, err := policy.NewEngine(r.cfg)
	if err != nil {
		return usageErrorf("filter: %v", err)
	}
	out, d := engine.Filter(policy.Request{Partner: r.partner, Agreement: &r.partner.Agreement,
		Purpose: r.purpose, At: r.at, Base: r.cfg.Network.BasePolicy}, b)
	var body []byte
	if out != nil {
		if issues := fhir.Validate(out); issues.HasErrors() {
			var lines []string
			for _, is := range issues.Errors() {
				lines = append(lines, "  "+is.String())
			}
			return &exitError{code: exitInvalid, msg: "filter: the filtered Bundle is not valid FHIR (nothing written):\n" + strings.Join(lines, "\n")}
		}
		body, err = fhir.Marshal(out)
		if err != nil {
			return &exitError{code: exitInvalid, msg: fmt.Sprintf("filter: %v", err)}
		}
	}
	if err := writeFilterDecision(o.decision, d, s); err != nil {
		return err
	}
	if out == nil {
		return &exitError{code: exitDenied}
	}
	if _, err := s.out.Write(append(body, '\n')); err != nil {
		return &exitError{code: exitInvalid, msg: fmt.Sprintf("filter: writing the Bundle: %v", err)}
	}
	return nil
}

// writeFilterDecision writes the decision JSON to the file, or standard error.
func writeFilterDecision(path string, d policy.Decision, s streams) error {
	data, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return &exitError{code: exitInvalid, msg: fmt.Sprintf("filter: %v", err)}
	}
	data = append(data, '\n')
	if path == "" {
		_, err = s.err.Write(data)
	} else {
		tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
		if err = os.WriteFile(tmp, data, 0o600); err == nil {
			err = os.Rename(tmp, path)
		}
	}
	if err != nil {
		return &exitError{code: exitInvalid, msg: fmt.Sprintf("filter: writing the decision: %v", err)}
	}
	return nil
}
