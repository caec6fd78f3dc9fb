package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"

	"github.com/pathway-fhir/pathway/connectors"
	"github.com/pathway-fhir/pathway/exchange"
	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/mappings"
	"github.com/pathway-fhir/pathway/policy"
	"github.com/pathway-fhir/pathway/store"
)

// network is a loaded configuration with its policy engine.
type network struct {
	cfg    *exchange.Config
	engine *policy.Engine
	// audit, once startAudit ran, logs the pipeline's and the workers'
	// decisions and disclosures.
	audit *exchange.Auditor
}

func loadNetwork(path string) (*network, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usageErrorf("reading configuration: %v", err)
	}
	cfg, err := exchange.ParseConfig(path, data)
	if err != nil {
		return nil, usageErrorf("configuration has problems (see 'pathway config lint %s'):\n%v", path, err)
	}
	engine, err := policy.NewEngine(cfg.Policy)
	if err != nil {
		return nil, usageErrorf("configuration: %v", err)
	}
	return &network{cfg: cfg, engine: engine}, nil
}

// storeURL is the flag, else the configuration's store, else the default.
func (n *network) storeURL(flag string) string {
	if flag == "" && n.cfg.StoreURL != "" {
		return n.cfg.StoreURL
	}
	return databaseURL(flag)
}

type ingestOptions struct {
	config, mapping, source, database, rejects string
	json                                       bool
	inputs                                     []string
}

type ingestSummary struct {
	Read       int `json:"records_read"`
	Ingested   int `json:"ingested"`
	Rejected   int `json:"rejected"`
	Routed     int `json:"routed"`
	Unroutable int `json:"unroutable"`
	Enqueued   int `json:"enqueued"`
	Unchanged  int `json:"unchanged"`
	Withheld   int `json:"withheld"`
	// Held counts the sends held for want of consent (pathway referrals --held).
	Held    int     `json:"held"`
	Elapsed float64 `json:"elapsed_seconds"`
}

func newIngestCmd(s streams) *cobra.Command {
	var o ingestOptions
	cmd := &cobra.Command{
		Use:   "ingest --config FILE --mapping NAME|FILE --source PARTNER INPUT...",
		Short: "Convert, label, route, decide and enqueue referrals from files",
		Long: `Run referrals through the pipeline: each record of the inputs is converted
with the mapping into a FHIR transaction Bundle, validated, labelled,
routed to the partners the configuration's routes and stepped care choose,
decided for each target under the patient's consents and the target's
data-sharing agreement, and written, with the routing and one outbox
message per permitted target, all or nothing. 'pathway worker' then
delivers the outbox. In a FHIR document (a clinic's transaction Bundle,
with the fhir-referral mapping) each ServiceRequest is one referral, and a
rejected one is named by its path (file:Bundle.entry[7]).

Records are committed up to 256 in one transaction (group commit; records
that share a patient or a resource are written one after the other, so
the result is that of ingesting them one by one), prepared on every core.

A re-ingest of the same input changes nothing. A referral no partner can
take is held as unroutable with its reason ('pathway referrals
--unroutable'). A target whose decision does not permit the send (no
consent of the person yet, say) gets nothing: the send is held ('pathway
referrals --held') and goes once a consent recorded for the person permits
it. A rejected record goes to --rejects (or standard error)
with its position and reasons; the others go on. A record whose resources
another partner sent (the same ids) is rejected, and nothing of it is
written.

Exit status: 0 when every record was ingested, 1 when any was rejected, 2
for usage or configuration errors.`,
		Example: `  pathway ingest --config pathway.yaml --mapping ngo-referral-csv --source ngo-harbour referrals.csv
  pathway ingest --config pathway.yaml --mapping fhir-referral --source clinic-riverside referrals-bundle.json
  pathway ingest --config pathway.yaml --mapping hl7v2-ref-i12 --source clinic-riverside --json inbox/*.hl7`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.inputs = args
			return runIngest(cmd.Context(), o, s)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "pathway.yaml", "network configuration")
	f.StringVar(&o.mapping, "mapping", "", "built-in mapping name or mapping file (required)")
	f.StringVar(&o.source, "source", "", "the partner the records come from (required)")
	f.StringVar(&o.database, "database", "", "store URL (default: the configuration's store, $PATHWAY_DATABASE_URL, else sqlite://pathway.db)")
	f.StringVar(&o.rejects, "rejects", "", "write rejected records with their reasons to this NDJSON file")
	f.BoolVar(&o.json, "json", false, "print the summary as JSON on standard output")
	_ = cmd.MarkFlagRequired("mapping")
	_ = cmd.MarkFlagRequired("source")
	return cmd
}

// ingestBatch is how many records pathway ingest hands to the pipeline at
// once: two groups, so that one is prepared while the other is written.
const ingestBatch = 2 * exchange.MaxGroup

func runIngest(ctx context.Context, o ingestOptions, s streams) error {
	n, err := loadNetwork(o.config)
	if err != nil {
		return err
	}
	if _, ok := n.cfg.Partners[o.source]; !ok {
		return usageErrorf("--source %q is not a partner of %s", o.source, o.config)
	}
	m, err := loadMapping(o.mapping)
	if err != nil {
		return usageErrorf("%v", err)
	}
	st, closeStore, err := n.openAudited(ctx, o.database, s.err)
	if err != nil {
		return err
	}
	defer closeStore()
	var rejects io.Writer
	if o.rejects != "" {
		rf, err := os.Create(o.rejects)
		if err != nil {
			return usageErrorf("creating rejects file: %v", err)
		}
		defer rf.Close()
		rejects = rf
	}
	pipe := &exchange.Pipeline{Store: st, Config: n.cfg, Engine: n.engine, Audit: n.audit, TakeBundles: true}
	started := time.Now()
	var sum ingestSummary
	var mu sync.Mutex // sum and the rejects, written by the reader and the pipeline's goroutine
	seen := map[string]string{}
	// pos is the record's position, and inside a FHIR document the
	// referral's path in it.
	reject := func(rec connectors.Record, pos string, reasons ...string) {
		mu.Lock()
		defer mu.Unlock()
		sum.Rejected++
		if rejects != nil {
			b, _ := json.Marshal(convertReject{Position: pos, Reasons: reasons, Record: string(rec.Raw)})
			rejects.Write(append(b, '\n'))
			return
		}
		fmt.Fprintf(s.err, "%s: rejected:\n", pos)
		for _, r := range reasons {
			fmt.Fprintf(s.err, "  %s\n", r)
		}
	}
	progress := isTerminal(s.err) && !o.json
	var lastProgress time.Time
	tick := func() { // with mu held
		if !progress || time.Since(lastProgress) < 250*time.Millisecond {
			return
		}
		lastProgress = time.Now()
		fmt.Fprintf(s.err, "\r%d records: %d ingested, %d rejected, %d messages enqueued (%.0f/s)\033[K",
			sum.Read, sum.Ingested, sum.Rejected, sum.Enqueued, float64(sum.Ingested)/time.Since(started).Seconds())
	}
	// Records are converted on this goroutine and handed to the pipeline
	// ingestBatch at a time, on another: the next batch is converted while
	// the one before is ingested (the pipeline commits a group,
	// exchange.MaxGroup, at a time, preparing one while the one before is
	// written). A record the pipeline refuses is rejected, the rest go on.
	type pending struct {
		rec    connectors.Record
		pos    string
		bundle *rpb.Bundle
	}
	ingestAll := func(batch []pending) error {
		bundles := make([]*rpb.Bundle, len(batch))
		for i, b := range batch {
			bundles[i] = b.bundle
		}
		results, errs := pipe.IngestBatch(ctx, o.source, bundles)
		var fatal error
		for i, res := range results {
			if err := errs[i]; err != nil {
				if errors.Is(err, exchange.ErrForeignReferral) {
					reject(batch[i].rec, batch[i].pos, err.Error())
					continue
				}
				if fatal == nil {
					fatal = fmt.Errorf("%s: %w", batch[i].pos, err)
				}
				continue
			}
			mu.Lock()
			sum.Ingested++
			if res.Unroutable != "" {
				sum.Unroutable++
			} else {
				sum.Routed++
			}
			sum.Enqueued += res.Enqueued
			sum.Unchanged += res.Unchanged
			sum.Held += res.Held
			for _, d := range res.Decisions {
				if !d.Permitted() {
					sum.Withheld++
				}
			}
			mu.Unlock()
		}
		mu.Lock()
		tick()
		defer mu.Unlock()
		if fatal != nil {
			return &exitError{code: exitInvalid, msg: fmt.Sprintf("%v (%d records were ingested, none after it of the same patient or resources; ingesting the same input again is safe)", fatal, sum.Ingested)}
		}
		return nil
	}
	type job struct {
		batch []pending
		done  chan error // set for the last batch of a file: told when it and those before are ingested
	}
	jobs := make(chan job)           // one batch ingested while the next is converted, no more
	var failed atomic.Pointer[error] // the pipeline's first fatal error: the reader stops at it
	ingested := make(chan struct{})
	go func() {
		defer close(ingested)
		for j := range jobs {
			if failed.Load() == nil && len(j.batch) > 0 {
				if err := ingestAll(j.batch); err != nil {
					failed.Store(&err)
				}
			}
			if j.done != nil {
				var err error
				if e := failed.Load(); e != nil {
					err = *e
				}
				j.done <- err
			}
		}
	}()
	defer func() {
		close(jobs)
		<-ingested
	}()
	var batch []pending
	read := 0 // records read, by this goroutine (sum.Read follows it)
	// flush hands the batch to the pipeline; with wait, it returns once
	// every batch handed over is ingested, with the first fatal error.
	flush := func(wait bool) error {
		if e := failed.Load(); e != nil {
			return *e
		}
		j := job{batch: batch}
		if wait {
			j.done = make(chan error, 1)
		}
		batch = nil
		jobs <- j
		if wait {
			return <-j.done
		}
		return nil
	}
	// take converts one referral (a record, or a ServiceRequest of a FHIR
	// document) and queues it for the pipeline, or rejects it.
	take := func(rec connectors.Record, pos string, fields mappings.Fields) error {
		if e := failed.Load(); e != nil {
			return *e // the pipeline stopped: nothing more is converted or rejected
		}
		ref, err := m.Apply(fields)
		if err != nil {
			var re *mappings.RecordError
			if errors.As(err, &re) {
				var reasons []string
				for _, p := range re.Problems {
					reasons = append(reasons, p.String())
				}
				reject(rec, pos, reasons...)
			} else {
				reject(rec, pos, err.Error())
			}
			return nil
		}
		key := ref.SourceSystem + "\x00" + ref.RecordID
		if first, dup := seen[key]; dup {
			reject(rec, pos, "source.record_id: the same record id as "+first+": each record needs its own id")
			return nil
		}
		bundle, err := mappings.Build(ref)
		if err != nil {
			reject(rec, pos, err.Error())
			return nil
		}
		if issues := fhir.Validate(bundle); issues.HasErrors() {
			var reasons []string
			for _, is := range issues.Errors() {
				reasons = append(reasons, "invalid bundle: "+is.String())
			}
			reject(rec, pos, reasons...)
			return nil
		}
		seen[key] = pos
		batch = append(batch, pending{rec: rec, pos: pos, bundle: bundle})
		if len(batch) == ingestBatch {
			return flush(false)
		}
		return nil
	}
	conv := &converter{m: m}
	for _, in := range o.inputs {
		f, err := os.Open(in)
		if err != nil {
			return usageErrorf("%v", err)
		}
		src, err := conv.open(f, in)
		if err != nil {
			f.Close()
			return &exitError{code: exitInvalid, msg: err.Error()}
		}
		for {
			rec, err := src.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err == nil {
				err = ingestRecord(m, rec, &read, reject, take)
				mu.Lock()
				sum.Read = read
				mu.Unlock()
			}
			if err != nil {
				src.Close()
				f.Close()
				var ee *exitError
				if errors.As(err, &ee) {
					return err
				}
				return &exitError{code: exitInvalid, msg: err.Error()}
			}
		}
		// A file's records are committed before the next file is opened.
		if err := flush(true); err != nil {
			src.Close()
			f.Close()
			return err
		}
		src.Close()
		f.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if progress && !lastProgress.IsZero() {
		fmt.Fprint(s.err, "\r\033[K")
	}
	sum.Elapsed = time.Since(started).Seconds()
	if o.json {
		if err := writeJSON(s, sum); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(s.out, "%d records read: %d ingested (%d routed, %d unroutable), %d rejected; %d messages enqueued, %d already queued, %d decisions withheld data, %d sends held for consent (pathway referrals --held), in %.1fs\n",
			sum.Read, sum.Ingested, sum.Routed, sum.Unroutable, sum.Rejected, sum.Enqueued, sum.Unchanged, sum.Withheld, sum.Held, sum.Elapsed)
	}
	if sum.Rejected > 0 {
		return &exitError{code: exitInvalid}
	}
	return nil
}

// ingestRecord hands the referrals of one record to take: the record, or
// each ServiceRequest of a FHIR document (as pathway convert reads them),
// counting each in read; a record the source could not read is rejected.
func ingestRecord(m *mappings.Mapping, rec connectors.Record, read *int, reject func(connectors.Record, string, ...string), take func(connectors.Record, string, mappings.Fields) error) error {
	pos := rec.Pos.String()
	if rec.Err != nil {
		*read++
		reason := rec.Err.Error()
		var re *connectors.RecordError
		if errors.As(rec.Err, &re) {
			reason = re.Reason
		}
		reject(rec, pos, reason)
		return nil
	}
	if m.Input.Format != mappings.FormatFHIR {
		*read++
		return take(rec, pos, fieldsOf(rec))
	}
	for _, fr := range mappings.FHIRRecords(rec.JSON) {
		*read++
		p := pos
		if fr.Path != "" {
			p += ":" + fr.Path
		}
		if fr.Err != nil {
			reject(rec, p, reasonsOf(fr.Err)...)
			continue
		}
		if err := take(rec, p, fr.Fields); err != nil {
			return err
		}
	}
	return nil
}

type workerOptions struct {
	config, database string
	workers          int
	once             bool
	poll             time.Duration
}

func newWorkerCmd(s streams) *cobra.Command {
	var o workerOptions
	cmd := &cobra.Command{
		Use:   "worker --config FILE [--workers N] [--once]",
		Short: "Deliver the outbox to partners",
		Long: `Deliver outbox messages to the partners' FHIR servers: claim due messages
with a lease, decide each again against the consents as they are now (a
consent revoked since enqueue withholds the message), send the filtered
Bundle as a FHIR transaction, then ack, retry with backoff (honouring
Retry-After) or dead-letter after the configured attempts.

Several workers may run against one PostgreSQL database; on SQLite one
process writes at a time. SIGINT or SIGTERM stops the worker after the
message in flight, giving the rest back. With --once it delivers what is
due now and exits.`,
		Example: `  pathway worker --config pathway.yaml
  pathway worker --config pathway.yaml --workers 4 --database postgres://pathway@db/pathway
  pathway worker --config pathway.yaml --once`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runWorker(cmd.Context(), o, s)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "pathway.yaml", "network configuration")
	f.StringVar(&o.database, "database", "", "store URL (default: the configuration's store, $PATHWAY_DATABASE_URL, else sqlite://pathway.db)")
	f.IntVar(&o.workers, "workers", 1, "concurrent deliveries")
	f.BoolVar(&o.once, "once", false, "deliver what is due now, then exit")
	f.DurationVar(&o.poll, "poll", time.Second, "how often to look for due messages when idle")
	return cmd
}

// deliverers builds the workers of a network.
func (n *network) deliverers(st *store.Store, count int, owner string) ([]*exchange.Deliverer, error) {
	cfg := n.cfg
	targets := map[string]exchange.Target{}
	for _, id := range cfg.Order {
		l := cfg.Partners[id]
		if l.Endpoint == "" {
			continue
		}
		// One client per partner, with its TLS settings, for its deliveries
		// and its token endpoint alike.
		client, err := exchange.NewPartnerClient(cfg.Retry.Timeout, l.TLS)
		if err != nil {
			return nil, usageErrorf("partner %s: %v", id, err)
		}
		t := exchange.Target{BaseURL: l.Endpoint, Client: client}
		switch l.Auth.Type {
		case "bearer":
			t.Auth = &exchange.BearerToken{Env: l.Auth.Token.Env, File: l.Auth.Token.File}
		case "oauth2":
			t.Auth = &exchange.ClientCredentials{TokenURL: l.Auth.TokenURL, ClientID: l.Auth.ClientID, Scope: l.Auth.Scope,
				SecretEnv: l.Auth.ClientSecret.Env, SecretFile: l.Auth.ClientSecret.File, Client: client}
		}
		targets[id] = t
	}
	pipe := &exchange.Pipeline{Store: st, Config: cfg, Engine: n.engine, Audit: n.audit}
	var out []*exchange.Deliverer
	for i := range count {
		out = append(out, &exchange.Deliverer{
			Store: st,
			Owner: fmt.Sprintf("%s/%d", owner, i),
			Target: func(partner string) (exchange.Target, error) {
				t, ok := targets[partner]
				if !ok {
					return exchange.Target{}, fmt.Errorf("partner %s has no endpoint in the configuration", partner)
				}
				return t, nil
			},
			Prepare: pipe.Prepare,
			Retry:   cfg.Retry.Policy(),
			Lease:   cfg.Retry.Lease,
			Batch:   16,
			// Every partner's client has this timeout (above).
			SendTimeout: cfg.Retry.Timeout,
		})
		if n.audit != nil {
			out[len(out)-1].OnSettle = n.audit.Settled
		}
	}
	return out, nil
}

func runWorker(ctx context.Context, o workerOptions, s streams) error {
	if o.workers < 1 || o.workers > 64 {
		return usageErrorf("--workers must be from 1 to 64")
	}
	n, err := loadNetwork(o.config)
	if err != nil {
		return err
	}
	st, closeStore, err := n.openAudited(ctx, o.database, s.err)
	if err != nil {
		return err
	}
	defer closeStore()
	host, _ := os.Hostname()
	ds, err := n.deliverers(st, o.workers, fmt.Sprintf("%s/%d", host, os.Getpid()))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var mu sync.Mutex
	counts := map[exchange.Outcome]int{}
	for _, d := range ds {
		d.OnResult = func(_ context.Context, r exchange.Result) {
			mu.Lock()
			counts[r.Outcome]++
			mu.Unlock()
		}
	}
	// Sends held for want of a consent recorded since go too (once, before
	// delivering, with --once).
	pipe := &exchange.Pipeline{Store: st, Config: n.cfg, Engine: n.engine, Audit: n.audit, Logger: slog.New(slog.NewTextHandler(s.err, nil))}
	if o.once {
		sweepHeld(ctx, pipe, pipe.Logger, true)
	} else {
		go sweepHeld(ctx, pipe, pipe.Logger, false)
	}
	done := make(chan error, len(ds))
	for _, d := range ds {
		go func() {
			if o.once {
				for {
					n, err := d.RunOnce(ctx)
					if err != nil || n == 0 {
						done <- err
						return
					}
				}
			}
			done <- d.Run(ctx, o.poll)
		}()
	}
	var firstErr error
	for range ds {
		if err := <-done; err != nil && firstErr == nil && !errors.Is(err, context.Canceled) {
			firstErr = err
		}
	}
	fmt.Fprintf(s.out, "delivered %d, retrying %d, dead %d, withheld %d\n", counts[exchange.OutcomeDelivered], counts[exchange.OutcomeRetry], counts[exchange.OutcomeDead], counts[exchange.OutcomeWithheld])
	if firstErr != nil {
		return &exitError{code: exitInvalid, msg: firstErr.Error()}
	}
	return nil
}

func newReferralsCmd(s streams) *cobra.Command {
	var (
		database   string
		unroutable bool
		held       bool
		asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   "referrals [--unroutable | --held]",
		Short: "List where referrals were routed, which are unroutable, or which wait for consent",
		Long: `List where referrals were routed (every referral), which no partner could
take (--unroutable), or which were routed to a partner that the patient's
consent or the partner's agreement did not permit (--held): those wait, one
per referral and partner, and go as soon as a consent recorded for the
patient (PUT /fhir/Consent/ID on the API) permits them.`,
		Example: `  pathway referrals --unroutable
  pathway referrals --held
  pathway referrals --json | jq -r 'select(.risk == "high") | .service_request'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if held && unroutable {
				return usageErrorf("--held and --unroutable list different things: choose one")
			}
			return withStore(cmd.Context(), database, func(st *store.Store) error {
				if held {
					return listHeld(cmd.Context(), st, s, asJSON)
				}
				var all []store.Routing
				after := ""
				for {
					page, err := st.Routings(cmd.Context(), unroutable, after, store.MaxSearchLimit)
					if err != nil {
						return err
					}
					all = append(all, page...)
					if len(page) < store.MaxSearchLimit {
						break
					}
					after = page[len(page)-1].ServiceRequest
				}
				if asJSON {
					for _, r := range all {
						v := struct {
							ServiceRequest string   `json:"service_request"`
							Source         string   `json:"source"`
							Risk           string   `json:"risk"`
							Status         string   `json:"status"`
							Targets        []string `json:"targets"`
							Reason         string   `json:"reason,omitempty"`
							UpdatedAt      string   `json:"updated_at"`
						}{r.ServiceRequest, r.Source, r.Risk, "routed", r.Targets, r.Reason, r.UpdatedAt.Format(time.RFC3339)}
						if r.Unroutable {
							v.Status = "unroutable"
						}
						if v.Targets == nil {
							v.Targets = []string{}
						}
						if err := writeJSON(s, v); err != nil {
							return err
						}
					}
					return nil
				}
				if len(all) == 0 {
					fmt.Fprintln(s.err, "no referrals")
					return nil
				}
				tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "REFERRAL\tSOURCE\tRISK\tROUTED TO\tREASON")
				for _, r := range all {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ServiceRequest, r.Source, r.Risk, strings.Join(r.Targets, ","), r.Reason)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&database, "database", "", "store URL (default $PATHWAY_DATABASE_URL, else sqlite://pathway.db)")
	cmd.Flags().BoolVar(&unroutable, "unroutable", false, "only referrals no partner could take")
	cmd.Flags().BoolVar(&held, "held", false, "the sends held until a consent permits them, with why")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per referral")
	return cmd
}

// listHeld prints the held messages: one per referral and partner.
func listHeld(ctx context.Context, st *store.Store, s streams, asJSON bool) error {
	var all []store.Held
	after := ""
	for {
		page, err := st.HeldMessages(ctx, after, store.MaxSearchLimit)
		if err != nil {
			return err
		}
		all = append(all, page...)
		if len(page) < store.MaxSearchLimit {
			break
		}
		after = page[len(page)-1].Stream
	}
	type heldView struct {
		ServiceRequest string `json:"service_request"`
		Partner        string `json:"partner"`
		Purpose        string `json:"purpose"`
		Patient        string `json:"patient"`
		Reason         string `json:"reason"`
		Since          string `json:"since"`
	}
	views := make([]heldView, len(all))
	for i, h := range all {
		sr, _, _ := strings.Cut(h.Stream, " ")
		views[i] = heldView{sr, h.Partner, h.Purpose, h.Patient, h.Reason, h.CreatedAt.Format(time.RFC3339)}
	}
	if asJSON {
		for _, v := range views {
			if err := writeJSON(s, v); err != nil {
				return err
			}
		}
		return nil
	}
	if len(views) == 0 {
		fmt.Fprintln(s.err, "no referrals held")
		return nil
	}
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REFERRAL\tPARTNER\tPURPOSE\tPATIENT\tSINCE\tWHY")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.ServiceRequest, v.Partner, v.Purpose, v.Patient, v.Since, v.Reason)
	}
	return tw.Flush()
}

// heldSweepEvery is how often a worker re-decides the held sends of the
// patients whose consents were written since (exchange.SweepHeld).
const heldSweepEvery = time.Minute

// sweepHeld runs pipe.SweepHeld now and every heldSweepEvery until ctx is
// done; with once, only now.
func sweepHeld(ctx context.Context, pipe *exchange.Pipeline, logger *slog.Logger, once bool) {
	for {
		rep, err := pipe.SweepHeld(ctx, 1000)
		if err != nil && ctx.Err() == nil {
			logger.LogAttrs(ctx, slog.LevelError, "re-deciding held sends", slog.String("error", err.Error()))
		} else if len(rep.Released)+rep.Dropped > 0 {
			logger.LogAttrs(ctx, slog.LevelInfo, "re-decided held sends", slog.Int("released", len(rep.Released)), slog.Int("dropped", rep.Dropped), slog.Int("still_held", rep.Held))
		}
		if once {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(heldSweepEvery):
		}
	}
}
