package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pathway-fhir/pathway/exchange"
	"github.com/pathway-fhir/pathway/server"
	"github.com/pathway-fhir/pathway/store"
)

type serveOptions struct {
	config, database, listen, baseURL string
	tlsCert, tlsKey, clientCA         string
	noWorker                          bool
	workers                           int
	rate                              float64
	burst                             int
	poll                              time.Duration
	sync                              []string
	syncInterval                      time.Duration
}

func newServeCmd(s streams) *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve --config FILE [--listen ADDR] [--no-worker]",
		Short: "Run the FHIR API for partners and auditors, with the outbox worker",
		Long: `Serve Pathway's FHIR R4 API under /fhir: partners find the Tasks addressed
to them or sent by them, accept, reject, report progress and complete them
(the referral state machine checks every move), read what their Tasks point
to (filtered under the patient's consent and their agreement, as it is at
that moment), and the referring partner records consent changes. Auditors
search the audit log as AuditEvents. /fhir/metadata says exactly what is
supported; /healthz, /readyz and /metrics (Prometheus) are for operators.

Every partner authenticates with a bearer token whose SHA-256 is in its
api.token_sha256 (pathway keys token makes one). With --client-ca, clients
must also present a certificate signed by that CA (mutual TLS).

The outbox worker runs inside the server unless --no-worker. Every access,
decision and disclosure is logged in the audit log; with a signing key
(signing_key in the configuration, or $PATHWAY_SIGNING_KEY_FILE) the log is
checkpointed as it grows. SIGINT or SIGTERM stops it gracefully: requests in
flight finish, messages claimed but not sent are released, the access log
is flushed and a last checkpoint is signed.`,
		Example: `  pathway serve --config pathway.yaml
  pathway serve --config pathway.yaml --listen :8443 --tls-cert cert.pem --tls-key key.pem --base-url https://pathway.example.org/fhir
  curl -s -H "Authorization: Bearer $TOKEN" 'http://127.0.0.1:8080/fhir/Task?status=requested'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), o, s)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "pathway.yaml", "the network's configuration")
	f.StringVar(&o.database, "database", "", "store URL (default: the configuration's store.url, $PATHWAY_DATABASE_URL, ./pathway.db)")
	f.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to listen on")
	f.StringVar(&o.baseURL, "base-url", "", "public URL of the FHIR base, for links (default: from each request's Host)")
	f.StringVar(&o.tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM)")
	f.StringVar(&o.tlsKey, "tls-key", "", "the certificate's private key (PEM)")
	f.StringVar(&o.clientCA, "client-ca", "", "require client certificates signed by this CA (PEM): mutual TLS")
	f.BoolVar(&o.noWorker, "no-worker", false, "do not run the outbox worker in this process")
	f.IntVar(&o.workers, "workers", 2, "outbox workers in this process")
	f.Float64Var(&o.rate, "rate", 50, "requests per second each partner may make")
	f.IntVar(&o.burst, "burst", 100, "requests a partner may make at once before the rate applies")
	f.DurationVar(&o.poll, "poll", time.Second, "how often idle workers look for due messages")
	f.StringArrayVar(&o.sync, "sync", nil, "sync this clinic partner's FHIR server on a schedule, as pathway sync does (repeat for several)")
	f.DurationVar(&o.syncInterval, "sync-interval", exchange.DefaultSyncInterval, "time between sync cycles of each --sync partner")
	return cmd
}

func runServe(ctx context.Context, o serveOptions, s streams) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return usageErrorf("--tls-cert and --tls-key go together")
	}
	if o.clientCA != "" && o.tlsCert == "" {
		return usageErrorf("--client-ca needs --tls-cert and --tls-key: mutual TLS is TLS")
	}
	if o.workers < 1 || o.workers > 64 {
		return usageErrorf("--workers must be from 1 to 64")
	}
	n, err := loadNetwork(o.config)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(s.err, nil))
	st, err := store.Open(ctx, n.storeURL(o.database), store.WithLogger(logger))
	if err != nil {
		return usageErrorf("%v", err)
	}
	defer st.Close()
	signer, err := n.configSigner()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	al, err := n.startAudit(ctx, st, signer, s.err)
	if err != nil {
		return &exitError{code: exitInvalid, msg: err.Error()}
	}
	pipe := &exchange.Pipeline{Store: st, Config: n.cfg, Engine: n.engine, Audit: n.audit, Logger: logger}
	srv, err := server.New(server.Options{Store: st, Pipeline: pipe, Audit: n.audit, BaseURL: o.baseURL, Rate: o.rate, Burst: o.burst, Logger: logger})
	if err != nil {
		return usageErrorf("%v", err)
	}

	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	if o.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return usageErrorf("--tls-cert/--tls-key: %v", err)
		}
		hs.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		if o.clientCA != "" {
			pem, err := os.ReadFile(o.clientCA)
			if err != nil {
				return usageErrorf("--client-ca: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return usageErrorf("--client-ca: no PEM certificate in %s", o.clientCA)
			}
			hs.TLSConfig.ClientCAs, hs.TLSConfig.ClientAuth = pool, tls.RequireAndVerifyClientCert
		}
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return usageErrorf("--listen %s: %v", o.listen, err)
	}
	scheme := "http"
	if hs.TLSConfig != nil {
		ln = tls.NewListener(ln, hs.TLSConfig)
		scheme = "https"
	}
	fmt.Fprintf(s.err, "pathway: serving the FHIR API at %s://%s/fhir\n", scheme, ln.Addr())
	if hs.TLSConfig == nil {
		if host, _, err := net.SplitHostPort(ln.Addr().String()); err == nil {
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				fmt.Fprintln(s.err, "pathway: WARNING: plain HTTP on an address other machines reach: partners' tokens and patients' data would cross the network unencrypted; use --tls-cert and --tls-key, or a TLS proxy on this machine")
			}
		}
	}

	// Sync with clinic partners, on a schedule (pathway sync), and the
	// outbox workers: both stop when wctx ends.
	var wg sync.WaitGroup
	wctx, cancelWorkers := context.WithCancel(ctx)
	defer cancelWorkers()
	waitSyncs, err := n.startSyncs(wctx, pipe, o.sync, o.syncInterval, s.err)
	if err != nil {
		ln.Close()
		al.stop()
		return err
	}
	if !o.noWorker {
		host, _ := os.Hostname()
		ds, err := n.deliverers(st, o.workers, fmt.Sprintf("%s/%d/serve", host, os.Getpid()))
		if err != nil {
			cancelWorkers()
			waitSyncs()
			ln.Close()
			al.stop()
			return err
		}
		for _, d := range ds {
			d.Logger = logger
			d.OnResult = func(_ context.Context, r exchange.Result) {
				srv.Metrics().Delivery(string(r.Outcome))
				if r.Decision != nil {
					srv.Metrics().Decision(string(r.Decision.Decision.Effect))
				}
			}
			wg.Go(func() { d.Run(wctx, o.poll) })
		}
		wg.Go(func() { sweepHeld(wctx, pipe, logger, false) })
	}

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	fmt.Fprintln(s.err, "pathway: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && serveErr == nil {
		serveErr = err
	}
	cancelWorkers()
	wg.Wait()
	waitSyncs() // before the last checkpoint: what they logged is signed
	// The access log gets its own time to flush, whatever the shutdown used.
	cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ccancel()
	if err := srv.Close(cctx); err != nil && serveErr == nil {
		serveErr = err
	}
	if err := al.stop(); err != nil && serveErr == nil {
		serveErr = err
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return &exitError{code: exitInvalid, msg: serveErr.Error()}
	}
	return nil
}
