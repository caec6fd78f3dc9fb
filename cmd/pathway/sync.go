package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pathway-fhir/pathway/exchange"
	"github.com/pathway-fhir/pathway/mappings"
)

type syncOptions struct {
	config, partner, database string
	once, json, noTasks       bool
	interval                  time.Duration
	count                     int
	categories                []string
	// taskPolling is --task-polling: auto, search or read.
	taskPolling string
}

// minSyncInterval is the shortest --interval: a clinic's server is not
// polled more often than this, whatever the flag says.
const minSyncInterval = time.Minute

func newSyncCmd(s streams) *cobra.Command {
	var o syncOptions
	cmd := &cobra.Command{
		Use:   "sync --config FILE --partner ID [--once] [--interval 15m]",
		Short: "Pull new referrals from a clinic's FHIR server and poll the Tasks it hosts",
		Long: `Keep a clinic partner's FHIR server in sync: pull the ServiceRequests it
updated since the last sync (with their Patients, every page), convert each
with the built-in fhir-referral mapping and run it through the pipeline with
the partner as its source; then read the open Tasks Pathway sent the partner
(it hosts them) that it changed since the last sync (a Task search from a
stored watermark, a page at a time; --task-polling read, or a partner whose
server refuses that search, has each Task read with a GET) and apply what
the partner changed, as the Task's owner, through the referral state
machine; each change is sent back to the referrer through the outbox, one
page's changes in one transaction. 'pathway worker' (or serve) delivers it.

The watermark (the largest meta.lastUpdated ingested) is stored after each
page: a restart resumes where the last page ended. A referral that cannot
be converted is kept in the store with its reasons and the rest go on.
429 and 503 answers are waited out as Retry-After says; other errors are
retried with backoff, then the cycle ends with an error naming the partner
and the path. Without --once, a cycle runs every --interval (never more
often, and never sooner than the partner asked). See docs/sync.md.

Exit status: 0 when the cycle succeeded, 1 when it failed or a Task change
was refused, 2 for usage or configuration errors.`,
		Example: `  pathway sync --config pathway.yaml --partner clinic-riverside --once --json
  pathway sync --config pathway.yaml --partner clinic-riverside --interval 1h --category http://snomed.info/sct|410606002`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSync(cmd.Context(), o, s)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "pathway.yaml", "network configuration")
	f.StringVar(&o.partner, "partner", "", "the clinic partner to sync (required; it needs an endpoint)")
	f.StringVar(&o.database, "database", "", "store URL (default: the configuration's store, $PATHWAY_DATABASE_URL, else sqlite://pathway.db)")
	f.BoolVar(&o.once, "once", false, "run one cycle, then exit")
	f.DurationVar(&o.interval, "interval", exchange.DefaultSyncInterval, "time between cycles (at least 1m; at least daily is the guide's cadence)")
	f.IntVar(&o.count, "count", 50, "referrals asked for per page (_count)")
	f.StringArrayVar(&o.categories, "category", nil, "only ServiceRequests of this category, system|code (repeat for any of several)")
	f.BoolVar(&o.noTasks, "no-tasks", false, "do not poll the Tasks the partner hosts")
	f.StringVar(&o.taskPolling, "task-polling", "auto", "how the partner's Tasks are read: search (from the stored watermark), read (a GET per Task), or auto (search, and read when the partner's server refuses the search with 400)")
	f.BoolVar(&o.json, "json", false, "print each cycle's summary as JSON on standard output")
	_ = cmd.MarkFlagRequired("partner")
	return cmd
}

// checkSyncOptions validates what needs no configuration.
func checkSyncOptions(o syncOptions) error {
	if o.interval < minSyncInterval {
		return usageErrorf("--interval %s is shorter than %s: a partner's server is not polled that often", o.interval, minSyncInterval)
	}
	if o.count < 1 || o.count > 1000 {
		return usageErrorf("--count must be from 1 to 1000")
	}
	if _, ok := taskPollings[o.taskPolling]; !ok {
		return usageErrorf("--task-polling %q: give auto, search or read", o.taskPolling)
	}
	for _, c := range o.categories {
		sys, code, ok := strings.Cut(c, "|")
		if !ok || sys == "" || code == "" || strings.Contains(c, ",") {
			return usageErrorf("--category %q: give system|code", c)
		}
	}
	return nil
}

// taskPollings are the values of --task-polling ("" is auto too, for
// callers that do not set it).
var taskPollings = map[string]exchange.TaskPolling{"": exchange.TaskPollingAuto, "auto": exchange.TaskPollingAuto,
	"search": exchange.TaskPollingSearch, "read": exchange.TaskPollingRead}

// partnerTarget is how to reach a partner's FHIR server: its endpoint,
// a client with its TLS settings, and its credentials.
func partnerTarget(cfg *exchange.Config, id string) (exchange.Target, error) {
	l := cfg.Partners[id]
	if l == nil {
		return exchange.Target{}, usageErrorf("partner %s is not in the configuration", id)
	}
	if l.Endpoint == "" {
		return exchange.Target{}, usageErrorf("partner %s has no endpoint: it works on Pathway's API, there is nothing to sync", id)
	}
	client, err := exchange.NewPartnerClient(cfg.Retry.Timeout, l.TLS)
	if err != nil {
		return exchange.Target{}, usageErrorf("partner %s: %v", id, err)
	}
	t := exchange.Target{BaseURL: l.Endpoint, Client: client}
	switch l.Auth.Type {
	case "bearer":
		t.Auth = &exchange.BearerToken{Env: l.Auth.Token.Env, File: l.Auth.Token.File}
	case "oauth2":
		t.Auth = &exchange.ClientCredentials{TokenURL: l.Auth.TokenURL, ClientID: l.Auth.ClientID, Scope: l.Auth.Scope,
			SecretEnv: l.Auth.ClientSecret.Env, SecretFile: l.Auth.ClientSecret.File, Client: client}
	}
	return t, nil
}

// newSyncer builds the Syncer of one partner on a pipeline.
func (n *network) newSyncer(pipe *exchange.Pipeline, o syncOptions, progress io.Writer) (*exchange.Syncer, error) {
	t, err := partnerTarget(n.cfg, o.partner)
	if err != nil {
		return nil, err
	}
	m, err := mappings.Builtin("fhir-referral")
	if err == nil {
		// Ids are seeded by the partner's own namespace: another partner
		// with the same referral numbers makes other resources.
		m, err = m.WithSourceSystem("https://pathway-fhir.org/source/sync/" + o.partner)
	}
	if err != nil {
		return nil, err
	}
	return &exchange.Syncer{Partner: o.partner, Target: t, Pipeline: pipe, Mapping: m, Categories: o.categories, Count: o.count,
		TaskPolling: taskPollings[o.taskPolling],
		Progress:    func(msg string) { fmt.Fprintln(progress, "pathway sync:", msg) }}, nil
}

// syncLoop runs cycles until ctx ends (or one, with once), every interval
// at the earliest and never sooner than the partner asked; report sees
// each cycle. It returns the last cycle's error.
func syncLoop(ctx context.Context, sy *exchange.Syncer, once, tasks bool, interval time.Duration, report func(exchange.SyncReport, error)) error {
	for {
		start := time.Now()
		rep := exchange.SyncReport{Partner: sy.Partner}
		err := sy.Pull(ctx, &rep)
		if tasks && ctx.Err() == nil {
			if terr := sy.PollTasks(ctx, &rep); err == nil {
				err = terr
			}
		}
		report(rep, err)
		if once || ctx.Err() != nil {
			return err
		}
		wait := max(interval-time.Since(start), rep.Wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func runSync(ctx context.Context, o syncOptions, s streams) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := checkSyncOptions(o); err != nil {
		return err
	}
	n, err := loadNetwork(o.config)
	if err != nil {
		return err
	}
	if _, err := partnerTarget(n.cfg, o.partner); err != nil {
		return err
	}
	if o.interval > 24*time.Hour {
		fmt.Fprintf(s.err, "pathway sync: warning: --interval %s is longer than a day, the guide's cadence\n", o.interval)
	}
	st, closeStore, err := n.openAudited(ctx, o.database, s.err)
	if err != nil {
		return err
	}
	defer closeStore()
	pipe := &exchange.Pipeline{Store: st, Config: n.cfg, Engine: n.engine, Audit: n.audit}
	sy, err := n.newSyncer(pipe, o, s.err)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	refused := false
	err = syncLoop(ctx, sy, o.once, !o.noTasks, o.interval, func(rep exchange.SyncReport, err error) {
		refused = refused || rep.TasksRefused > 0
		if o.json {
			v := struct {
				exchange.SyncReport
				Error string `json:"error,omitempty"`
			}{SyncReport: rep}
			if rep.Refusals == nil {
				v.Refusals = []string{}
			}
			if err != nil {
				v.Error = err.Error()
			}
			_ = writeJSON(s, v)
		} else {
			fmt.Fprintf(s.out, "%s: %d pages, %d referrals pulled: %d ingested (%d routed, %d unroutable), %d rejected, %d already pulled; %d Tasks polled, %d updated, %d refused, %d sent back; watermark %s\n",
				rep.Partner, rep.Pages, rep.Pulled, rep.Ingested, rep.Routed, rep.Unroutable, rep.Rejected, rep.Skipped,
				rep.TasksPolled, rep.TasksUpdated, rep.TasksRefused, rep.TasksSentBack, watermarkText(rep.Watermark))
			for _, r := range rep.Refusals {
				fmt.Fprintf(s.err, "pathway sync: refused: %s\n", r)
			}
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintf(s.err, "pathway sync: %v\n", err)
		}
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return &exitError{code: exitInvalid}
	}
	if o.once && refused {
		return &exitError{code: exitInvalid}
	}
	return nil
}

func watermarkText(t time.Time) string {
	if t.IsZero() {
		return "none yet"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// startSyncs runs the sync of each partner inside serve, on pipe, until
// ctx ends; errors go to warn and the next cycle tries again.
func (n *network) startSyncs(ctx context.Context, pipe *exchange.Pipeline, partners []string, interval time.Duration, warn io.Writer) (wait func(), err error) {
	if len(partners) > 0 && interval < minSyncInterval {
		return nil, usageErrorf("--sync-interval %s is shorter than %s", interval, minSyncInterval)
	}
	done := make(chan struct{}, len(partners))
	var syncers []*exchange.Syncer
	seen := map[string]bool{}
	for _, p := range partners {
		if seen[p] {
			continue // one Syncer per partner
		}
		seen[p] = true
		sy, err := n.newSyncer(pipe, syncOptions{partner: p, count: 50}, warn)
		if err != nil {
			return nil, err
		}
		syncers = append(syncers, sy)
	}
	for _, sy := range syncers {
		go func() {
			defer func() { done <- struct{}{} }()
			_ = syncLoop(ctx, sy, false, true, interval, func(rep exchange.SyncReport, err error) {
				if err != nil && !errors.Is(err, context.Canceled) {
					fmt.Fprintf(warn, "pathway sync: %v\n", err)
				}
			})
		}()
	}
	return func() {
		for range syncers {
			<-done
		}
	}, nil
}
