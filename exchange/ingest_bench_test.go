package exchange

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	"github.com/jackc/pgx/v5"
	"modernc.org/sqlite"

	"github.com/pathway-fhir/pathway/connectors"
	"github.com/pathway-fhir/pathway/mappings"
	"github.com/pathway-fhir/pathway/policy"
	"github.com/pathway-fhir/pathway/store"
	"github.com/pathway-fhir/pathway/store/storetest"
)

// benchRecords are the valid rows of the sample NGO CSV; record i is row
// i%4 with referral and client ids of its own, so every op is a new
// referral.
type benchRecords struct {
	m    *mappings.Mapping
	rows []map[string]string
}

func newBenchRecords(b testing.TB) *benchRecords {
	b.Helper()
	m, err := mappings.Builtin("ngo-referral-csv")
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Open("../testdata/mappings/ngo-referral.csv")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	src, err := connectors.OpenCSV(f, "ngo-referral.csv", connectors.CSVOptions{})
	if err != nil {
		b.Fatal(err)
	}
	br := &benchRecords{m: m}
	for {
		rec, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		if rec.Err != nil {
			continue
		}
		if _, err := m.Apply(mappings.MapFields(rec.Fields)); err == nil {
			br.rows = append(br.rows, rec.Fields)
		}
	}
	if len(br.rows) != 4 {
		b.Fatalf("%d valid sample rows, want 4", len(br.rows))
	}
	return br
}

// convert maps record i to its referral bundle, as pathway ingest does.
func (br *benchRecords) convert(b testing.TB, i int) *rpb.Bundle {
	return br.convertAs(b, i, fmt.Sprintf("B-%d", i), fmt.Sprintf("C-%d", i))
}

// convertAs maps sample row i%4 under the given referral and client ids,
// with the columns of set replaced.
func (br *benchRecords) convertAs(b testing.TB, i int, referral, client string, set ...string) *rpb.Bundle {
	b.Helper()
	bundle, err := br.convertErr(i, referral, client, set...)
	if err != nil {
		b.Fatal(err)
	}
	return bundle
}

// convertErr is convertAs, for any goroutine.
func (br *benchRecords) convertErr(i int, referral, client string, set ...string) (*rpb.Bundle, error) {
	row := map[string]string{}
	for k, v := range br.rows[i%len(br.rows)] {
		row[k] = v
	}
	row["referral_id"] = referral
	row["client_id"] = client
	for j := 0; j+1 < len(set); j += 2 {
		row[set[j]] = set[j+1]
	}
	ref, err := br.m.Apply(mappings.MapFields(row))
	if err != nil {
		return nil, err
	}
	return mappings.Build(ref)
}

// benchPipeline opens a store and the test network's pipeline on it, with
// the partners' capacity lifted (the benchmark ingests thousands of
// referrals) and, when audited, the audit log wired in.
func benchPipeline(b *testing.B, url string, audited bool) *Pipeline {
	b.Helper()
	s, err := store.Open(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	data, err := os.ReadFile("../testdata/exchange/pathway.yaml")
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := ParseConfig("pathway.yaml", data)
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range cfg.Partners {
		l.Services.Capacity = 0
	}
	engine, err := policy.NewEngine(cfg.Policy)
	if err != nil {
		b.Fatal(err)
	}
	p := &Pipeline{Store: s, Config: cfg, Engine: engine}
	if audited {
		p.Audit = &Auditor{Config: cfg.Raw}
	}
	return p
}

// BenchmarkIngest is one NGO CSV record through the whole pipeline:
// convert (mapping and FHIR build), label, route, decide, and persist the
// resources, the routing and the outbox message in one durable
// transaction; with audit, also the decision's entry and its kept inputs.
// Beside it, RawInsert writes the same rows (the referral's resources and
// one outbox row) with the bare driver in one transaction per referral.
func BenchmarkIngest(b *testing.B) {
	// The collector set as pathway sets it for every command (GOGC=400
	// unless GOGC is given; cmd/pathway's tuneGC), so that the figures are
	// those of pathway ingest.
	if _, set := os.LookupEnv("GOGC"); !set {
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	br := newBenchRecords(b)
	for _, name := range []string{"sqlite", "postgres"} {
		newURL := func(tb testing.TB) string { return sqliteURL(tb) }
		if name == "postgres" {
			if !storetest.PostgresAvailable() {
				b.Log(storetest.PostgresEnv + " not set: PostgreSQL not measured")
				continue
			}
			newURL = storetest.PostgresURL
		}
		for _, audited := range []bool{false, true} {
			label := "pipeline"
			if audited {
				label = "pipeline+audit"
			}
			b.Run(name+"/"+label, func(b *testing.B) {
				p := benchPipeline(b, newURL(b), audited)
				ctx := context.Background()
				i := 0
				for b.Loop() {
					res, err := p.Ingest(ctx, "ngo-harbour", br.convert(b, i))
					if err != nil {
						b.Fatal(err)
					}
					if len(res.Routes) == 0 {
						b.Fatalf("record %d was not routed: %s", i, res.Unroutable)
					}
					i++
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "referrals/s")
			})
		}
		for _, audited := range []bool{false, true} {
			label := "batch"
			if audited {
				label = "batch+audit"
			}
			// What pathway ingest does: records converted one after the
			// other, on one goroutine, while the batch before is ingested;
			// handed to IngestBatch four groups at a time (one transaction
			// a group, a group prepared while the one before is written).
			b.Run(name+"/"+label, func(b *testing.B) {
				p := benchPipeline(b, newURL(b), audited)
				p.TakeBundles = true // each bundle is converted for it, as pathway ingest's are
				ctx := context.Background()
				const n = 4 * MaxGroup
				type converted struct {
					bundles []*rpb.Bundle
					err     error
				}
				// b.N batches, the next converted while one is ingested (as
				// pathway ingest converts them): no batch is converted that
				// the loop does not ingest, so the CPU figure holds only
				// what the referrals cost.
				next := make(chan converted)
				b.ResetTimer()
				cpu := processCPU()
				go func(batches int) {
					defer close(next)
					for k := range batches {
						c := converted{bundles: make([]*rpb.Bundle, n)}
						for j := range c.bundles {
							i := k*n + j
							if c.bundles[j], c.err = br.convertErr(i, fmt.Sprintf("B-%d", i), fmt.Sprintf("C-%d", i)); c.err != nil {
								break
							}
						}
						next <- c
					}
				}(b.N)
				i := 0
				for c := range next {
					if c.err != nil {
						b.Fatal(c.err)
					}
					bundles := c.bundles
					i += len(bundles)
					results, errs := p.IngestBatch(ctx, "ngo-harbour", bundles)
					for j, err := range errs {
						if err != nil {
							b.Fatal(err)
						}
						if len(results[j].Routes) == 0 {
							b.Fatalf("record %d was not routed: %s", i-len(bundles)+j, results[j].Unroutable)
						}
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "referrals/s")
				// The process's CPU time per referral, on all cores: what
				// bounds the rate on a machine of n cores to n/cpu, and a
				// figure that other load on the machine moves less.
				b.ReportMetric(float64((processCPU()-cpu).Microseconds())/float64(i), "cpu-µs/referral")
			})
		}
		b.Run(name+"/raw-insert", func(b *testing.B) {
			// The rows, made outside the timer: what the pipeline writes.
			var refs [][]store.Resource
			for i := range 64 {
				rows, err := storeRows(br.convert(b, i), "ngo-harbour")
				if err != nil {
					b.Fatal(err)
				}
				refs = append(refs, rows)
			}
			insert := rawInserter(b, name, newURL(b))
			i := 0
			for b.Loop() {
				insert(i, refs[i%len(refs)])
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "referrals/s")
		})
	}
}

const rawIngestDDL = `CREATE TABLE raw_resources (
	resource_type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, source TEXT NOT NULL,
	format TEXT NOT NULL, data %[1]s NOT NULL, patient TEXT NOT NULL, status TEXT NOT NULL,
	owner TEXT NOT NULL, requester TEXT NOT NULL, PRIMARY KEY (resource_type, id));
CREATE TABLE raw_outbox (key TEXT PRIMARY KEY, partner TEXT NOT NULL, payload %[1]s NOT NULL);`

// rawInserter returns a function writing one referral's rows (under ids
// of op i) and one outbox row in one transaction, with the bare driver.
func rawInserter(b *testing.B, dialect, dbURL string) func(i int, rows []store.Resource) {
	ctx := context.Background()
	values := func(n int, pg bool) string {
		var sb strings.Builder
		for j := range n {
			if j > 0 {
				sb.WriteString(",")
			}
			if pg {
				k := j * 10
				fmt.Fprintf(&sb, "($%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d)", k+1, k+2, k+3, k+4, k+5, k+6, k+7, k+8, k+9, k+10)
			} else {
				sb.WriteString("(?,?,?,?,?,?,?,?,?,?)")
			}
		}
		return sb.String()
	}
	args := func(i int, rows []store.Resource) []any {
		out := make([]any, 0, 10*len(rows))
		for _, r := range rows {
			out = append(out, r.Type, fmt.Sprint(r.ID, "-", i), int64(1), r.Source, r.Format, r.Data, r.Patient, r.Status, r.Owner, r.Requester)
		}
		return out
	}
	if dialect == "sqlite" {
		params := url.Values{"_busy_timeout": {"10000"}, "_journal_mode": {"WAL"}, "_txlock": {"immediate"}}
		dsn := (&url.URL{Scheme: "file", Path: filepath.Join(b.TempDir(), "raw.db"), RawQuery: params.Encode()}).String()
		c, err := sqlite.NewConnector(dsn)
		if err != nil {
			b.Fatal(err)
		}
		db := sql.OpenDB(c)
		db.SetMaxOpenConns(1)
		b.Cleanup(func() { db.Close() })
		if _, err := db.ExecContext(ctx, fmt.Sprintf(rawIngestDDL, "BLOB")); err != nil {
			b.Fatal(err)
		}
		return func(i int, rows []store.Resource) {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO raw_resources VALUES "+values(len(rows), false), args(i, rows)...); err != nil {
				b.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO raw_outbox VALUES (?, ?, ?)", fmt.Sprint("k-", i), "p", rows[0].Data); err != nil {
				b.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, fmt.Sprintf(rawIngestDDL, "bytea")); err != nil {
		b.Fatal(err)
	}
	return func(i int, rows []store.Resource) {
		tx, err := conn.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO raw_resources VALUES "+values(len(rows), true), args(i, rows)...); err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO raw_outbox VALUES ($1, $2, $3)", fmt.Sprint("k-", i), "p", rows[0].Data); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
