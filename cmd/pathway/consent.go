package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/policy"
	"github.com/spf13/cobra"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	conpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/consent_go_proto"
)

func newConsentCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "consent",
		Short: "Evaluate patients' Consent resources",
		Long: `Evaluate FHIR R4 privacy Consents the way Pathway does before anything
leaves for a partner (see docs/policy.md).`,
	}
	cmd.AddCommand(newConsentCheckCmd(s))
	return cmd
}

// consentCheckOptions are the flags of consent check, parsed.
type consentCheckOptions struct {
	consents []string // --consent, in order
	files    []string // positional arguments: more consent files
	patient  string
	actor    string
	purpose  string
	action   string
	resource string
	at       string
	base     string
	json     bool
}

// consentCheckRequest is what the flags ask, checked.
type consentCheckRequest struct {
	partner  policy.Partner
	patient  *policy.Patient
	purpose  string
	action   string
	at       time.Time
	base     policy.BasePolicy
	consents []string
	resource string
}

var consentActions = []string{"collect", "access", "use", "disclose", "correct"}

func newConsentCheckCmd(s streams) *cobra.Command {
	var o consentCheckOptions
	cmd := &cobra.Command{
		Use:   "check --consent FILE [FILE...] --actor Organization/ID|SYSTEM|VALUE --purpose CODE [flags]",
		Short: "Decide whether a partner may receive a patient's data for a purpose",
		Long: `Evaluate Consent resources for one request: may this actor receive the
patient's data for this purpose at this time? The answer is permit, deny or
no-consent (no active consent applies and the base policy is opt-in), with
the obligations to meet before anything is sent (data to remove, labels to
attach), the trail of provisions that decided, and an explanation in plain
words.

Consents are combined deny-overrides. Provisions about particular data
(security labels, classes, codes) become obligations on that data; give
--resource to decide for one resource (or each entry of a Bundle), which is
labelled with Pathway's default rules first. Immigration and legal-status
data (label IMMIG) is only ever permitted by a provision that carries the
IMMIG label and names this actor and this purpose.

--consent takes a Consent JSON file or a Bundle holding Consents. To give
several, repeat the flag (--consent a.json --consent b.json) or list the
files after it (--consent a.json b.json): every argument that is not a flag
is one more consent file, read in the order given. --patient (SYSTEM|VALUE,
or Patient/ID) keeps only the consents about that patient. --actor is the
recipient: Organization/ID, or an identifier SYSTEM|VALUE.

Exit status: 0 for any decision, 2 for usage errors or unreadable input.`,
		Example: `  pathway consent check --consent consent.json --actor Organization/clinic-b --purpose COC
  pathway consent check --consent c1.json c2.json c3.json --actor Organization/clinic-b --purpose TREAT
  pathway consent check --consent c1.json --consent c2.json --actor Organization/legal-aid-d \
      --purpose COC --resource legal-status.json --at 2026-06-01T09:00:00Z --json
  pathway consent check --consent bundle.json --patient https://ngo-a.example/cases/client|client-881 \
      --actor https://example.org/fhir/sid/ods|CLB01 --purpose TREAT --base opt-out`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.files = args
			req, err := o.parse(time.Now())
			if err != nil {
				return err
			}
			return runConsentCheck(req, o.json, s)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.consents, "consent", nil, "Consent JSON file, or a Bundle of Consents (repeatable, or list more files after it; required)")
	f.StringVar(&o.patient, "patient", "", "keep only consents about this patient: SYSTEM|VALUE or Patient/ID")
	f.StringVar(&o.actor, "actor", "", "the recipient: Organization/ID or SYSTEM|VALUE (required)")
	f.StringVar(&o.purpose, "purpose", "", "v3-ActReason purpose of use: TREAT, COC, ETREAT, BTG, CAREMGT, HOPERAT, PUBHLTH, HRESCH... (required)")
	f.StringVar(&o.action, "action", "", "consentaction code: "+strings.Join(consentActions, ", ")+" (default disclose)")
	f.StringVar(&o.resource, "resource", "", "decide for this resource (JSON), or each entry of a Bundle")
	f.StringVar(&o.at, "at", "", "time of the request, RFC 3339 (default now)")
	f.StringVar(&o.base, "base", "opt-in", "base policy when no consent applies: opt-in or opt-out")
	f.BoolVar(&o.json, "json", false, `print {"decision", "obligations", "trail", "explanation"} as JSON`)
	return cmd
}

// parse checks the flags; now is the default request time.
func (o consentCheckOptions) parse(now time.Time) (consentCheckRequest, error) {
	var r consentCheckRequest
	if len(o.consents) == 0 {
		if len(o.files) > 0 {
			return r, usageErrorf("consent check: --consent is required before the consent files")
		}
		return r, usageErrorf("consent check: --consent is required")
	}
	r.consents = append(append([]string(nil), o.consents...), o.files...)
	r.resource = o.resource
	switch {
	case o.actor == "":
		return r, usageErrorf("consent check: --actor is required")
	case strings.HasPrefix(o.actor, "Organization/"):
		id := strings.TrimPrefix(o.actor, "Organization/")
		if id == "" || strings.ContainsAny(id, "/|") {
			return r, usageErrorf("consent check: --actor %q: write Organization/ID or SYSTEM|VALUE", o.actor)
		}
		r.partner = policy.Partner{ID: id, Name: o.actor}
	default:
		sys, val, ok := strings.Cut(o.actor, "|")
		if !ok || sys == "" || val == "" {
			return r, usageErrorf("consent check: --actor %q: write Organization/ID or SYSTEM|VALUE", o.actor)
		}
		r.partner = policy.Partner{Name: "the organisation identified as " + o.actor,
			Identifiers: []policy.Identifier{{System: sys, Value: val}}}
	}
	if o.purpose == "" {
		return r, usageErrorf("consent check: --purpose is required")
	}
	if !policy.IsPurpose(o.purpose) {
		return r, usageErrorf("consent check: --purpose %q is not a v3-ActReason purpose of use (TREAT, COC, ETREAT, BTG, CAREMGT, HOPERAT, PUBHLTH, HRESCH...)", o.purpose)
	}
	r.purpose = o.purpose
	r.action = "disclose"
	if o.action != "" {
		found := false
		for _, a := range consentActions {
			found = found || a == o.action
		}
		if !found {
			return r, usageErrorf("consent check: --action %q: use one of %s", o.action, strings.Join(consentActions, ", "))
		}
		r.action = o.action
	}
	r.at = now
	if o.at != "" {
		t, err := time.Parse(time.RFC3339, o.at)
		if err != nil {
			return r, usageErrorf("consent check: --at %q is not an RFC 3339 time (2026-06-01T09:00:00Z)", o.at)
		}
		r.at = t
	}
	r.base = policy.BasePolicy(o.base)
	if !r.base.Valid() {
		return r, usageErrorf("consent check: --base %q: use opt-in or opt-out", o.base)
	}
	if o.patient != "" {
		p, err := parsePatient(o.patient)
		if err != nil {
			return r, err
		}
		r.patient = &p
	}
	return r, nil
}

// parsePatient reads --patient: SYSTEM|VALUE or Patient/ID.
func parsePatient(s string) (policy.Patient, error) {
	if id, ok := strings.CutPrefix(s, "Patient/"); ok && id != "" && !strings.Contains(id, "|") {
		return policy.Patient{Refs: []string{s}}, nil
	}
	sys, val, ok := strings.Cut(s, "|")
	if !ok || sys == "" || val == "" {
		// The value may identify a person: it is not echoed.
		return policy.Patient{}, usageErrorf("consent check: --patient: write SYSTEM|VALUE or Patient/ID")
	}
	return policy.Patient{Identifiers: []policy.Identifier{{System: sys, Value: val}}}, nil
}

// readResourceFile reads and validates one FHIR JSON file; what is wrong is
// a usage error naming paths and rules, never values.
func readResourceFile(path string, in io.Reader) (*fhir.ContainedResource, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = fhir.ReadAllLimited(in, fhir.MaxResourceBytes)
	} else {
		var f *os.File
		f, err = os.Open(path)
		if err == nil {
			data, err = fhir.ReadAllLimited(f, fhir.MaxResourceBytes)
			f.Close()
		}
	}
	if err != nil {
		return nil, usageErrorf("reading %s: %s", path, describeReadError(err))
	}
	res := fhir.Parse(data)
	if !res.Valid() {
		var lines []string
		for _, is := range res.Issues.Errors() {
			lines = append(lines, "  "+is.String())
		}
		return nil, usageErrorf("reading %s: not valid FHIR R4:\n%s", path, strings.Join(lines, "\n"))
	}
	return res.Resource, nil
}

func runConsentCheck(r consentCheckRequest, asJSON bool, s streams) error {
	var consents []*conpb.Consent
	var bundles []*fhir.ContainedResource
	for _, path := range r.consents {
		cr, err := readResourceFile(path, s.in)
		if err != nil {
			return err
		}
		bundles = append(bundles, cr)
		found := 0
		if c := cr.GetConsent(); c != nil {
			consents = append(consents, c)
			found++
		}
		for _, e := range cr.GetBundle().GetEntry() {
			if c := e.GetResource().GetConsent(); c != nil {
				consents = append(consents, c)
				found++
			}
		}
		if found == 0 {
			return usageErrorf("%s holds no Consent (a %s)", path, fhir.TypeOf(cr))
		}
	}
	var data []*fhir.ContainedResource
	if r.resource != "" {
		cr, err := readResourceFile(r.resource, s.in)
		if err != nil {
			return err
		}
		data = append(data, cr)
	}
	if r.patient != nil {
		// A Bundle's consents name their patient by fullUrl: a Patient in
		// the files with the identifier asked for is that patient.
		for _, cr := range append(bundles, data...) {
			for _, e := range cr.GetBundle().GetEntry() {
				p := e.GetResource().GetPatient()
				if p == nil || !hasIdentifier(p.GetIdentifier(), r.patient.Identifiers) {
					continue
				}
				if u := e.GetFullUrl().GetValue(); u != "" {
					r.patient.Refs = append(r.patient.Refs, u)
				}
				if id := p.GetId().GetValue(); id != "" {
					r.patient.Refs = append(r.patient.Refs, "Patient/"+id)
				}
			}
		}
		var kept []*conpb.Consent
		for _, c := range consents {
			if policy.AboutPatient(c, *r.patient) {
				kept = append(kept, c)
			}
		}
		consents = kept
	}
	engine, err := policy.NewEngine(nil)
	if err != nil {
		return &exitError{code: exitInvalid, msg: err.Error()}
	}
	d := engine.Decide(policy.Request{Partner: &r.partner, Purpose: r.purpose, Action: r.action, At: r.at, Base: r.base},
		consents, data...)
	if asJSON {
		enc := json.NewEncoder(s.out)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(d); err != nil {
			return &exitError{code: exitInvalid, msg: fmt.Sprintf("writing decision: %v", err)}
		}
		return nil
	}
	return writeDecisionText(s.out, d)
}

func hasIdentifier(ids []*dpb.Identifier, want []policy.Identifier) bool {
	for _, id := range ids {
		for _, w := range want {
			if id.GetSystem().GetValue() == w.System && id.GetValue().GetValue() == w.Value {
				return true
			}
		}
	}
	return false
}

// writeDecisionText prints a decision for people.
func writeDecisionText(w io.Writer, d policy.Decision) error {
	var b strings.Builder
	fmt.Fprintf(&b, "decision: %s\n\n%s\n", d.Effect, d.Explain())
	if len(d.Obligations) > 0 {
		b.WriteString("\nobligations:\n")
		for _, o := range d.Obligations {
			fmt.Fprintf(&b, "  %s %s", o.Action, o.Target)
			if o.Label != nil {
				fmt.Fprintf(&b, " %s", o.Label)
			}
			fmt.Fprintf(&b, "  (%s)\n", o.Because)
		}
	}
	if len(d.Trail) > 0 {
		b.WriteString("\ntrail:\n")
		for _, st := range d.Trail {
			fmt.Fprintf(&b, "  %s\n", st)
		}
	}
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return &exitError{code: exitInvalid, msg: fmt.Sprintf("writing decision: %v", err)}
	}
	return nil
}
