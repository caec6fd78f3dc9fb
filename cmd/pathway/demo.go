package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/connectors"
	"github.com/pathway-fhir/pathway/exchange"
	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/mappings"
	"github.com/pathway-fhir/pathway/policy"
	"github.com/pathway-fhir/pathway/store"
)

type demoOptions struct {
	database string
	auditKey string
	config   string
	inputs   []string
	json     bool
}

// demoInput is one sample source the demo ingests.
type demoInput struct {
	Mapping, Source, File string
}

// defaultDemoInputs are the synthetic samples: an NGO's CSV export, and a
// clinic's FHIR transaction Bundle of social-prescribing referrals.
var defaultDemoInputs = []string{
	"ngo-referral-csv:ngo-harbour:testdata/mappings/ngo-referral.csv",
	"fhir-referral:clinic-riverside:testdata/mappings/fhir-referral-bundle.json",
}

func newDemoCmd(s streams) *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a referral network end to end on sample data",
		Long: `Run the whole exchange on synthetic sample data, with no setup: an embedded
store in a temporary folder (or the new database you name), two partner
FHIR servers started in this process on loopback (a clinic and a community
group, from testdata/exchange/pathway.yaml), and the sample referrals
converted, labelled, routed, decided under each person's consent and each
partner's data-sharing agreement, and delivered.

It prints what each partner received and what was withheld from whom and
why (the samples are synthetic; nothing else is printed), and exits 0 only
if every check it makes holds: each permitted referral delivered once,
nothing sent without consent, no partner given resource types outside its
agreement, immigration and legal-status data sent to nobody without an
explicit consent, the rejected sample rows rejected, and the audit log
complete (a decision for every routing, a disclosure for every delivery)
and verified: its tree, its signed checkpoint, and every decision
re-derived from the inputs it logged.

The audit log is signed with a key made for the run. With --audit-key the
verifier key is written to that file, so the kept store can be verified
again afterwards with pathway audit verify.`,
		Example: `  pathway demo
  pathway demo --json | jq .checks
  pathway demo --database sqlite://pathway-demo.db --audit-key pathway-demo.pub   # keep the store (the file must be new)
  pathway audit verify --database sqlite://pathway-demo.db --key pathway-demo.pub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), o, s)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.database, "database", "", "a new, empty store to keep (default: a temporary SQLite file, removed at the end)")
	f.StringVar(&o.auditKey, "audit-key", "", "write the audit log's verifier key to this file (to verify a kept store later)")
	f.StringVar(&o.config, "config", "testdata/exchange/pathway.yaml", "the demo network (partner endpoints are replaced by the in-process partners)")
	f.StringArrayVar(&o.inputs, "input", defaultDemoInputs, "MAPPING:SOURCE:FILE to ingest (repeatable)")
	f.BoolVar(&o.json, "json", false, "print the report as one JSON object")
	return cmd
}

// demoReport is what the demo did and found.
type demoReport struct {
	Database string                  `json:"database"`
	Records  int                     `json:"records_read"`
	Ingested int                     `json:"ingested"`
	Routed   int                     `json:"routed"` // routes taken, a decision each
	Rejected []string                `json:"rejected"`
	Partners map[string]*demoPartner `json:"partners"`
	Withheld []demoWithheld          `json:"withheld"`
	Consent  *demoConsent            `json:"consent_recorded,omitempty"`
	Outbox   map[string]int64        `json:"outbox"`
	Audit    demoAudit               `json:"audit"`
	Checks   []demoCheck             `json:"checks"`
}

// demoAudit is what the audit log holds after the demo, as audit verify
// finds it.
type demoAudit struct {
	Entries     uint64 `json:"entries"`
	Decisions   int    `json:"decisions"`
	Disclosures int    `json:"disclosures"`
	Rederived   int    `json:"decisions_rederived"`
	Covered     uint64 `json:"checkpoint_size"`
	Problems    int    `json:"problems"`
	KeyFile     string `json:"verifier_key_file,omitempty"`
	VerifyWith  string `json:"verify_with,omitempty"`
}

type demoWithheld struct {
	Referral string `json:"referral"`
	Partner  string `json:"partner"`
	Decision string `json:"decision"`
	Why      string `json:"why"`
}

type demoCheck struct {
	Check string `json:"check"`
	OK    bool   `json:"ok"`
	Note  string `json:"note,omitempty"`
}

// demoPartner is an in-process partner FHIR server: it applies transaction
// bundles (PUT by id, so a resend changes nothing) and remembers what it
// received.
type demoPartner struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Bundles   int            `json:"bundles_received"`
	Resources map[string]int `json:"resources_by_type"`
	Labels    []string       `json:"security_labels_seen"`

	mu          sync.Mutex
	stored      map[string]*fhir.ContainedResource
	immigration bool
	srv         *http.Server
	url         string
}

func startDemoPartner(id, name string) (*demoPartner, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &demoPartner{ID: id, Name: name, Resources: map[string]int{}, stored: map[string]*fhir.ContainedResource{}}
	p.url = "http://" + ln.Addr().String() + "/fhir"
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 5 * time.Second}
	go p.srv.Serve(ln)
	return p, nil
}

func (p *demoPartner) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil || r.Method != http.MethodPost {
		http.Error(w, "POST a transaction Bundle", http.StatusBadRequest)
		return
	}
	res := fhir.Parse(body)
	if !res.Valid() || res.Resource.GetBundle() == nil {
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusBadRequest)
		out, _ := fhir.Marshal(fhir.OperationOutcome(res.Issues))
		w.Write(out)
		return
	}
	rs, err := fhir.TransactionResources(res.Resource.GetBundle())
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	p.mu.Lock()
	p.Bundles++
	for _, cr := range rs {
		p.stored[fhir.Key(fhir.Unwrap(cr))] = cr
	}
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/fhir+json")
	io.WriteString(w, `{"resourceType":"Bundle","type":"transaction-response"}`)
}

// tally counts what the partner holds, and the security labels on it.
func (p *demoPartner) tally() {
	p.mu.Lock()
	defer p.mu.Unlock()
	labels := map[string]bool{}
	p.Resources = map[string]int{}
	p.immigration = false
	for key, cr := range p.stored {
		res := fhir.Unwrap(cr)
		p.Resources[strings.SplitN(key, "/", 2)[0]]++
		if m, ok := res.(interface{ GetMeta() *dpb.Meta }); ok {
			for _, c := range m.GetMeta().GetSecurity() {
				labels[c.GetCode().GetValue()] = true
			}
		}
		// Immigration data is labelled, on the resource or inline on the
		// element. A Consent only names the label in its rules.
		if fhir.TypeOf(res) == "Consent" {
			continue
		}
		if data, err := fhir.Marshal(res); err == nil && strings.Contains(string(data), `"code":"`+fhir.PathwaySensitivityImmigration+`"`) {
			p.immigration = true
		}
	}
	p.Labels = sortedKeys(labels)
}

// holds reports whether the partner holds the resource ref ("Type/id").
func (p *demoPartner) holds(ref string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stored[ref] != nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func runDemo(ctx context.Context, o demoOptions, s streams) error {
	n, err := loadNetwork(o.config)
	if err != nil {
		return usageErrorf("%v (run the demo from the repository root, or pass --config)", err)
	}
	var inputs []demoInput
	for _, in := range o.inputs {
		parts := strings.SplitN(in, ":", 3)
		if len(parts) != 3 {
			return usageErrorf("--input %q: want MAPPING:SOURCE:FILE", in)
		}
		if _, err := os.Stat(parts[2]); err != nil {
			return usageErrorf("sample %s not found: run the demo from the repository root", parts[2])
		}
		inputs = append(inputs, demoInput{parts[0], parts[1], parts[2]})
	}
	url := o.database
	if url == "" {
		dir, err := os.MkdirTemp("", "pathway-demo-")
		if err != nil {
			return &exitError{code: exitInvalid, msg: err.Error()}
		}
		defer os.RemoveAll(dir)
		url = "sqlite://" + filepath.Join(dir, "pathway.db")
	}
	st, err := store.Open(ctx, url)
	if err != nil {
		return usageErrorf("%v", err)
	}
	defer st.Close()
	if c, err := st.Count(ctx, ""); err != nil || c > 0 {
		return usageErrorf("the demo needs a new, empty store: %s holds data", store.RedactURL(url))
	}

	rep := &demoReport{Database: store.RedactURL(url), Partners: map[string]*demoPartner{}, Rejected: []string{}, Withheld: []demoWithheld{}}
	if o.database == "" {
		rep.Database = "a temporary SQLite file (removed)"
	}
	for _, id := range n.cfg.Order {
		link := n.cfg.Partners[id]
		if link.Endpoint == "" {
			continue
		}
		name := id
		if p := n.cfg.Policy.Partner(id); p != nil && p.Name != "" {
			name = p.Name
		}
		dp, err := startDemoPartner(id, name)
		if err != nil {
			return &exitError{code: exitInvalid, msg: err.Error()}
		}
		defer dp.srv.Close()
		link.Endpoint = dp.url
		link.Auth = exchange.AuthSettings{}
		link.TLS = exchange.TLSSettings{}
		rep.Partners[id] = dp
	}

	// The audit log, signed with a key made for this run.
	skey, vkey, err := audit.GenerateKey("pathway-demo/audit")
	if err != nil {
		return &exitError{code: exitInvalid, msg: err.Error()}
	}
	signer, err := audit.NewSigner(skey)
	if err != nil {
		return &exitError{code: exitInvalid, msg: err.Error()}
	}
	if o.auditKey != "" {
		if err := os.WriteFile(o.auditKey, []byte(vkey+"\n"), 0o644); err != nil {
			return usageErrorf("--audit-key: %v", err)
		}
	}
	al, err := n.startAudit(ctx, st, signer, nil)
	if err != nil {
		return &exitError{code: exitInvalid, msg: err.Error()}
	}
	defer al.stop()

	// Ingest every sample.
	pipe := &exchange.Pipeline{Store: st, Config: n.cfg, Engine: n.engine, Audit: n.audit}
	expectIMMIG := map[string]bool{} // partner -> allowed legal-status data by some consent
	for _, in := range inputs {
		if err := demoIngest(ctx, pipe, in, rep, expectIMMIG); err != nil {
			return &exitError{code: exitInvalid, msg: err.Error()}
		}
	}

	// Deliver until the outbox is drained.
	ds, err := n.deliverers(st, 2, "demo")
	if err != nil {
		return err
	}
	drain := func() error {
		for _, d := range ds {
			for {
				got, err := d.RunOnce(ctx)
				if err != nil {
					return &exitError{code: exitInvalid, msg: err.Error()}
				}
				if got == 0 {
					break
				}
			}
		}
		return nil
	}
	if err := drain(); err != nil {
		return err
	}
	// The referring partner records the consent the person has now given
	// on the API: what was held for want of it goes in the next round.
	if rep.Consent, err = demoRecordConsent(ctx, n, st, pipe); err != nil {
		return &exitError{code: exitInvalid, msg: "recording the consent on the API: " + err.Error()}
	}
	if err := drain(); err != nil {
		return err
	}
	stats, err := st.OutboxStats(ctx)
	if err != nil {
		return &exitError{code: exitInvalid, msg: err.Error()}
	}
	rep.Outbox = map[string]int64{}
	for state, c := range stats.Counts {
		rep.Outbox[string(state)] = c
	}
	for _, p := range rep.Partners {
		p.tally()
	}
	if c := rep.Consent; c != nil && rep.Partners[c.Partner] != nil {
		c.Delivered = rep.Partners[c.Partner].holds(c.Referral)
	}
	if err := al.stop(); err != nil {
		return &exitError{code: exitInvalid, msg: err.Error()}
	}
	if rep.Audit, err = demoVerify(ctx, st, vkey); err != nil {
		return &exitError{code: exitInvalid, msg: err.Error()}
	}
	if o.auditKey != "" && o.database != "" {
		rep.Audit.KeyFile = o.auditKey
		rep.Audit.VerifyWith = "pathway audit verify --database " + store.RedactURL(o.database) + " --key " + o.auditKey
	}
	rep.Checks = demoChecks(n, rep, expectIMMIG)
	if err := printDemo(s, rep, o.json); err != nil {
		return err
	}
	for _, c := range rep.Checks {
		if !c.OK {
			return &exitError{code: exitInvalid, msg: "demo check failed: " + c.Check}
		}
	}
	return nil
}

func demoIngest(ctx context.Context, pipe *exchange.Pipeline, in demoInput, rep *demoReport, _ map[string]bool) error {
	m, err := loadMapping(in.Mapping)
	if err != nil {
		return err
	}
	f, err := os.Open(in.File)
	if err != nil {
		return err
	}
	defer f.Close()
	src, err := (&converter{m: m}).open(f, in.File)
	if err != nil {
		return err
	}
	defer src.Close()
	reject := func(_ connectors.Record, pos string, _ ...string) { rep.Rejected = append(rep.Rejected, pos) }
	take := func(_ connectors.Record, pos string, fields mappings.Fields) error {
		return demoReferral(ctx, pipe, in, m, pos, fields, rep)
	}
	for {
		rec, err := src.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := ingestRecord(m, rec, &rep.Records, reject, take); err != nil {
			return err
		}
	}
}

// demoReferral converts and ingests one referral found at pos, and reports
// what became of it.
func demoReferral(ctx context.Context, pipe *exchange.Pipeline, in demoInput, m *mappings.Mapping, pos string, fields mappings.Fields, rep *demoReport) error {
	ref, err := m.Apply(fields)
	if err != nil {
		rep.Rejected = append(rep.Rejected, pos)
		return nil
	}
	b, err := mappings.Build(ref)
	if err != nil {
		rep.Rejected = append(rep.Rejected, pos)
		return nil
	}
	res, err := pipe.Ingest(ctx, in.Source, b)
	if err != nil {
		return fmt.Errorf("%s: %w", pos, err)
	}
	rep.Ingested++
	rep.Routed += len(res.Routes)
	if res.Unroutable != "" {
		rep.Withheld = append(rep.Withheld, demoWithheld{Referral: pos, Partner: "(none)", Decision: "unroutable", Why: res.Unroutable})
	}
	for _, r := range res.Routes {
		d := res.Decisions[r.Partner]
		if !d.Permitted() {
			rep.Withheld = append(rep.Withheld, demoWithheld{Referral: pos, Partner: r.Partner, Decision: string(d.Effect), Why: d.Explain()})
			continue
		}
		var removed []string
		for _, ob := range d.Obligations {
			if ob.Action == policy.Remove || ob.Action == policy.Mask {
				removed = append(removed, string(ob.Action)+" "+ob.Target+" ("+ob.Because+")")
			}
		}
		if len(removed) > 0 {
			rep.Withheld = append(rep.Withheld, demoWithheld{Referral: pos, Partner: r.Partner, Decision: "permit, with parts withheld", Why: strings.Join(removed, "; ")})
		}
	}
	return nil
}

// demoChecks are what the demo promises.
func demoChecks(n *network, rep *demoReport, _ map[string]bool) []demoCheck {
	var checks []demoCheck
	add := func(name string, ok bool, note string) { checks = append(checks, demoCheck{name, ok, note}) }

	add("sample rows that cannot be converted are rejected, the rest go on", len(rep.Rejected) > 0 && rep.Ingested > 0,
		fmt.Sprintf("%d ingested, %d rejected", rep.Ingested, len(rep.Rejected)))
	pending := rep.Outbox["pending"] + rep.Outbox["inflight"] + rep.Outbox["dead"]
	add("every permitted referral was delivered", pending == 0 && rep.Outbox["delivered"] > 0,
		fmt.Sprintf("%d delivered, %d not", rep.Outbox["delivered"], pending))
	total := 0
	for _, p := range rep.Partners {
		total += p.Bundles
	}
	add("each delivery reached its partner once", int64(total) == rep.Outbox["delivered"], fmt.Sprintf("%d bundles received", total))
	noConsent := 0
	for _, w := range rep.Withheld {
		if w.Decision == string(policy.Deny) || w.Decision == string(policy.NoConsent) {
			noConsent++
		}
	}
	add("a referral without consent sends nothing", noConsent > 0, fmt.Sprintf("%d decisions withheld everything", noConsent))
	if c := rep.Consent; c != nil {
		add("a referral held for want of consent goes once the referring partner records the consent on the API",
			c.Status == http.StatusOK && c.HeldAfter == c.HeldBefore-1 && c.Delivered,
			fmt.Sprintf("%s recorded it: HTTP %d; %s at %s", c.RecordedBy, c.Status, c.Referral, c.Partner))
	} else {
		add("a referral held for want of consent goes once the referring partner records the consent on the API", false, "no referral was held for want of consent")
	}
	for id, p := range rep.Partners {
		pp := n.cfg.Policy.Partner(id)
		var outside []string
		for typ := range p.Resources {
			if !containsFold(pp.Agreement.ResourceTypes, typ) {
				outside = append(outside, typ)
			}
		}
		sort.Strings(outside)
		add(fmt.Sprintf("%s received only resource types its agreement allows", id), len(outside) == 0, strings.Join(outside, ", "))
		// (A partner whose agreement covers IMMIG may receive it where a
		// consent names it and the purpose; the policy's tests check that.)
		if !containsFold(pp.Agreement.Labels, "IMMIG") {
			add(fmt.Sprintf("%s received no immigration or legal-status data (its agreement does not cover the IMMIG label, whatever a consent says)", id), !p.immigration, "")
		}
	}
	a := rep.Audit
	add("the audit log has a decision for every routing and a disclosure for every delivery",
		a.Disclosures == int(rep.Outbox["delivered"]) && a.Decisions >= rep.Routed+int(rep.Outbox["delivered"]),
		fmt.Sprintf("%d decisions, %d disclosures", a.Decisions, a.Disclosures))
	add("the audit log verifies: tree, signed checkpoint, every decision re-derived from its logged inputs",
		a.Problems == 0 && a.Covered == a.Entries && a.Rederived == a.Decisions,
		fmt.Sprintf("%d entries, %d re-derived, %d problems", a.Entries, a.Rederived, a.Problems))
	return checks
}

// demoVerify verifies the demo's audit log as pathway audit verify does.
func demoVerify(ctx context.Context, st *store.Store, vkey string) (demoAudit, error) {
	v, err := audit.NewVerifier(vkey)
	if err != nil {
		return demoAudit{}, err
	}
	rep, err := audit.Verify(ctx, st, audit.VerifyOptions{Verifier: v, Rederiver: exchange.NewRederiver()})
	if err != nil {
		return demoAudit{}, err
	}
	out := demoAudit{Entries: rep.Entries, Decisions: rep.Decisions, Rederived: rep.Rederived, Covered: rep.Covered, Problems: len(rep.Problems)}
	err = st.ScanAudit(ctx, store.AuditScan{}, func(r store.AuditRecord) error {
		if r.Kind == string(audit.KindDisclosure) {
			out.Disclosures++
		}
		return nil
	})
	return out, err
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func printDemo(s streams, rep *demoReport, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(s.out)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	w := s.out
	fmt.Fprintf(w, "Pathway demo: %d sample records read, %d referrals ingested, %d rejected (%s)\n", rep.Records, rep.Ingested, len(rep.Rejected), strings.Join(rep.Rejected, ", "))
	fmt.Fprintf(w, "Store: %s\n\n", rep.Database)
	ids := make([]string, 0, len(rep.Partners))
	for id := range rep.Partners {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		p := rep.Partners[id]
		fmt.Fprintf(w, "%s (%s) received %d bundle(s):", p.Name, id, p.Bundles)
		types := make([]string, 0, len(p.Resources))
		for t := range p.Resources {
			types = append(types, t)
		}
		sort.Strings(types)
		for _, t := range types {
			fmt.Fprintf(w, " %s %d,", t, p.Resources[t])
		}
		fmt.Fprintf(w, " labels seen: %s\n", strings.Join(p.Labels, " "))
	}
	fmt.Fprintln(w, "\nWithheld, from whom, and why:")
	for _, wh := range rep.Withheld {
		fmt.Fprintf(w, "- %s -> %s: %s: %s\n", wh.Referral, wh.Partner, wh.Decision, wh.Why)
	}
	if c := rep.Consent; c != nil {
		fmt.Fprintf(w, "\nThen %s recorded the person's consent for %s on the API (PUT /fhir/Consent, HTTP %d): %s, held for want of it, was released and delivered: %v\n",
			c.RecordedBy, c.Partner, c.Status, c.Referral, c.Delivered)
	}
	a := rep.Audit
	fmt.Fprintf(w, "\nAudit log: %d entries (%d decisions, %d disclosures), signed checkpoint of size %d, %d decisions re-derived, %d problems\n",
		a.Entries, a.Decisions, a.Disclosures, a.Covered, a.Rederived, a.Problems)
	if a.VerifyWith != "" {
		fmt.Fprintf(w, "Verify it again: %s\n", a.VerifyWith)
	}
	fmt.Fprintln(w, "\nChecks:")
	for _, c := range rep.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		if c.Note != "" {
			fmt.Fprintf(w, "  %s %s (%s)\n", mark, c.Check, c.Note)
		} else {
			fmt.Fprintf(w, "  %s %s\n", mark, c.Check)
		}
	}
	return nil
}
