package audit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/store"
)

// benchEntries returns n entries as the pipeline would write them: per
// exchange a decision (one consent input, a bundle) and a disclosure.
func benchEntries(b testing.TB, consent store.Resource, from, n int) []audit.Entry {
	out := make([]audit.Entry, 0, n)
	for i := from; len(out) < n; i++ {
		d := audit.Entry{
			ID: fmt.Sprintf("d-%08d", i), Kind: audit.KindDecision, Time: t0.Add(time.Duration(i) * time.Millisecond),
			Exchange: fmt.Sprintf("x-%08d", i), Actor: "Organization/clinic-a", Patient: fmt.Sprintf("Patient/p-%06d", i%100000),
			Purpose: "COC", Effect: audit.EffectPermit, Obligations: []string{"NORDSCLCD"}, Trail: []string{audit.Ref("Consent", consent.ID, consent.Version)},
			Inputs:   []audit.Input{{Ref: audit.Ref("Consent", consent.ID, consent.Version), Hash: consent.Hash}},
			Bundle:   &audit.Input{Ref: fmt.Sprintf("Bundle/b-%08d", i), Hash: audit.HashBytes(bundleBytes(i))},
			Observer: "Device/pathway", Site: "pathway.example.org",
		}
		s := disclose(i, "Organization/clinic-a")
		s.ID, s.Exchange, s.Bundle = fmt.Sprintf("s-%08d", i), d.Exchange, d.Bundle
		out = append(out, d, s)
	}
	return out[:n]
}

func benchDB(b *testing.B, name string) *testDB {
	db := openDB(b, name)
	return db
}

// BenchmarkAppend measures audit.Append inside a transaction. "ingest" is
// the persist step of the pipeline without audit: a referral's five
// resources and its outbox message in one transaction; "ingest+decision"
// adds the decision's audit entry to it, as the pipeline does; "batch500"
// appends 500 entries per transaction, for raw throughput.
func BenchmarkAppend(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			for _, mode := range []struct {
				name       string
				perTx      int
				withIngest bool
			}{
				{"ingest", 0, true},
				{"ingest+decision", 1, true},
				{"batch500", 500, false},
			} {
				b.Run(mode.name, func(b *testing.B) {
					db := benchDB(b, name)
					ctx := context.Background()
					consent := putConsent(b, db.st, "c1", 1, "permit COC Organization/clinic-a")
					b.ResetTimer()
					for i := range b.N {
						es := benchEntries(b, consent, i*max(mode.perTx, 1), mode.perTx)
						err := db.st.WithTx(ctx, func(tx *store.Tx) error {
							if mode.withIngest {
								if err := tx.PutBatch(ctx, benchReferral(i)); err != nil {
									return err
								}
								msg := store.Message{Key: fmt.Sprintf("x-%08d", i), Partner: "clinic-a", Purpose: "COC", Kind: "transaction", Payload: bundleBytes(i)}
								if _, _, err := tx.Enqueue(ctx, msg); err != nil {
									return err
								}
							}
							if len(es) > 0 {
								_, err := audit.Append(ctx, tx, es...)
								return err
							}
							return nil
						})
						if err != nil {
							b.Fatal(err)
						}
					}
					if mode.perTx > 0 {
						b.ReportMetric(float64(b.N*mode.perTx)/b.Elapsed().Seconds(), "entries/s")
					}
				})
			}
		})
	}
}

// benchReferral is a referral's resources, about 1 KB each.
func benchReferral(i int) []store.Resource {
	data := make([]byte, 1024)
	for j := range data {
		data[j] = 'a' + byte((i+j)%26)
	}
	var out []store.Resource
	for _, typ := range []string{"Patient", "ServiceRequest", "Consent", "Task", "QuestionnaireResponse"} {
		out = append(out, store.Resource{Type: typ, ID: fmt.Sprintf("r-%08d", i), Source: "bench", Format: "proto", Data: data,
			Patient: fmt.Sprintf("Patient/r-%08d", i), Status: "active", Owner: "Organization/clinic-a"})
	}
	return out
}

// buildBenchLog appends n entries in transactions of 1000 and signs a
// checkpoint of them.
func buildBenchLog(b testing.TB, db *testDB, n int) {
	ctx := context.Background()
	consent := putConsent(b, db.st, "c1", 1, "permit COC Organization/clinic-a")
	for from := 0; from < n; from += 1000 {
		es := benchEntries(b, consent, from/2, min(1000, n-from))
		err := db.st.WithTx(ctx, func(tx *store.Tx) error {
			_, err := audit.Append(ctx, tx, es...)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if _, _, err := audit.New(db.st).Checkpoint(ctx, testSigner(b)); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkVerify measures audit.Verify over a log of 50,000 entries
// (half decisions with one consent input each, half disclosures), with
// the inputs checked and every decision re-derived.
func BenchmarkVerify(b *testing.B) {
	const n = 50_000
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			db := benchDB(b, name)
			buildBenchLog(b, db, n)
			v := testVerifier(b)
			rederive := audit.RederiverFunc(func(_ context.Context, d audit.Decision) (audit.Outcome, error) {
				return audit.Outcome{Effect: d.Entry.Effect, Obligations: d.Entry.Obligations, Trail: d.Entry.Trail}, nil
			})
			b.ResetTimer()
			for range b.N {
				rep, err := audit.Verify(context.Background(), db.st, audit.VerifyOptions{Verifier: v, Rederiver: rederive})
				if err != nil {
					b.Fatal(err)
				}
				if !rep.OK() || rep.Entries != n {
					b.Fatalf("verify: %d entries, %v", rep.Entries, rep.Problems)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkProve1M measures Log.Prove (lookups by id and exchange, the
// latest checkpoint, the inclusion proof from the stored nodes and its
// self-check) in a log of 1,000,000 entries, built once (about a minute).
func BenchmarkProve1M(b *testing.B) {
	if testing.Short() {
		b.Skip("-short: not building a log of 1,000,000 entries")
	}
	const n = 1_000_000
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			db := benchDB(b, name)
			start := time.Now()
			buildBenchLog(b, db, n)
			b.Logf("built %d entries in %v", n, time.Since(start).Round(time.Second))
			log := audit.New(db.st)
			ctx := context.Background()
			// b.Loop runs this function once, so the log is built once.
			for i := 0; b.Loop(); i++ {
				id := fmt.Sprintf("d-%08d", (i*7919)%(n/2))
				rc, err := log.Prove(ctx, id)
				if err != nil {
					b.Fatal(err)
				}
				if len(rc.Entries) != 1 {
					b.Fatalf("%d entries for %s", len(rc.Entries), id)
				}
			}
		})
	}
}
