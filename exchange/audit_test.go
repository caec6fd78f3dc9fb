package exchange

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/store"
	"github.com/pathway-fhir/pathway/store/storetest"
)

// auditedHarness is a pipeline harness whose pipeline and worker log to
// the audit log, with a key to checkpoint and verify it.
func auditedHarness(t *testing.T, url string) (*pipelineHarness, *Deliverer, func() *audit.Report) {
	t.Helper()
	ph := newPipelineHarness(t, url)
	a := &Auditor{Config: ph.cfg.Raw}
	ph.pipe.Audit = a
	d := ph.worker()
	d.OnSettle = a.Settled
	return ph, d, logVerifier(t, ph.store)
}

func kinds(t *testing.T, st *store.Store) map[audit.Kind]int {
	t.Helper()
	out := map[audit.Kind]int{}
	err := st.ScanAudit(t.Context(), store.AuditScan{}, func(r store.AuditRecord) error {
		e, err := audit.ParseEntry(r.Data)
		if err != nil {
			return err
		}
		out[e.Kind]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAuditedExchange: every ingest decision, send-time decision and
// disclosure is in the log, re-ingest adds nothing, and verify re-derives
// every decision from its logged inputs.
func TestAuditedExchange(t *testing.T) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			u := ""
			if name == "sqlite" {
				u = sqliteURL(t)
			} else {
				if !storetest.PostgresAvailable() {
					t.Skip(storetest.PostgresEnv + " is not set: skipping the PostgreSQL store")
				}
				u = storetest.PostgresURL(t)
			}
			ph, d, verify := auditedHarness(t, u)
			bundles := sampleBundles(t)
			for _, b := range bundles {
				if _, err := ph.pipe.Ingest(t.Context(), "ngo-harbour", b); err != nil {
					t.Fatal(err)
				}
			}
			got := kinds(t, ph.store)
			if got[audit.KindDecision] != 4 {
				t.Fatalf("after ingest the log holds %v, want 4 decisions (one per referral and target)", got)
			}
			for _, b := range bundles {
				if _, err := ph.pipe.Ingest(t.Context(), "ngo-harbour", b); err != nil {
					t.Fatal(err)
				}
			}
			if again := kinds(t, ph.store); again[audit.KindDecision] != 4 {
				t.Fatalf("a re-ingest of the same records logged %v, want the same 4 decisions", again)
			}
			// With the log, a message holds no second copy of the bundle
			// decided on: it names the kept version, and reads give its bytes.
			ms, err := ph.store.Messages(t.Context(), store.MessageQuery{WithPayload: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) != 3 {
				t.Fatalf("%d messages queued, want 3 (the permitted referrals)", len(ms))
			}
			for _, m := range ms {
				parts := strings.Split(m.PayloadRef, "/")
				if len(parts) != 4 || parts[0] != "Bundle" {
					t.Fatalf("message %d: payload reference %q, want a kept Bundle version", m.ID, m.PayloadRef)
				}
				v, _ := strconv.ParseInt(parts[3], 10, 64)
				kept, err := ph.store.GetVersion(t.Context(), "Bundle", parts[1], v)
				if err != nil || len(m.Payload) == 0 || string(kept.Data) != string(m.Payload) {
					t.Errorf("message %d: payload (%d bytes) is not the kept %s: %v", m.ID, len(m.Payload), m.PayloadRef, err)
				}
			}
			ph.drain(t, d)
			got = kinds(t, ph.store)
			// 3 permitted referrals: 3 send-time decisions and 3 disclosures.
			if got[audit.KindDecision] != 7 || got[audit.KindDisclosure] != 3 {
				t.Fatalf("after delivery the log holds %v, want 7 decisions and 3 disclosures", got)
			}
			rep := verify()
			if !rep.OK() || rep.Rederived != 7 || rep.RederiveSkipped {
				t.Fatalf("verify: ok=%v rederived %d problems %+v", rep.OK(), rep.Rederived, rep.Problems)
			}

			// A disclosure names the exact bytes the partner received.
			var disclosed []audit.Entry
			err = ph.store.ScanAudit(t.Context(), store.AuditScan{}, func(r store.AuditRecord) error {
				e, err := audit.ParseEntry(r.Data)
				if err == nil && e.Kind == audit.KindDisclosure {
					disclosed = append(disclosed, e)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range disclosed {
				parts := strings.Split(e.Inputs[0].Ref, "/")
				kept, err := ph.store.Get(t.Context(), parts[0], parts[1])
				if err != nil {
					t.Fatal(err)
				}
				if kept.Hash != e.Bundle.Hash || !fhir.Parse(kept.Data).Valid() {
					t.Errorf("disclosure %s: the kept bundle does not hash to the logged one", e.ID)
				}
				if e.Endpoint == "" || !strings.HasPrefix(e.Actor, "Organization/") {
					t.Errorf("disclosure %s: actor %q endpoint %q", e.ID, e.Actor, e.Endpoint)
				}
				// The disclosed resources are named by version, and the
				// disclosure's Provenance is kept.
				versioned := 0
				for _, in := range e.Inputs[1:] {
					if strings.Contains(in.Ref, "/_history/") && !strings.HasPrefix(in.Ref, "Bundle/") {
						versioned++
					}
				}
				if versioned < 3 {
					t.Errorf("disclosure %s names %d disclosed resources: %v", e.ID, versioned, e.Inputs)
				}
				prov, err := e.Provenance()
				if err != nil {
					t.Fatal(err)
				}
				kept, err = ph.store.Get(t.Context(), "Provenance", prov.GetId().GetValue())
				if err != nil || !fhir.Parse(kept.Data).Valid() || !strings.Contains(string(kept.Data), e.Inputs[1].Ref) {
					t.Errorf("disclosure %s: Provenance not kept or not valid: %v", e.ID, err)
				}
			}
		})
	}
}

// TestAuditRevocationLogsTheWithholding: a consent revoked after enqueue
// is logged as a deny at send time, with no disclosure, and re-derives.
func TestAuditRevocationLogsTheWithholding(t *testing.T) {
	ph, d, verify := auditedHarness(t, sqliteURL(t))
	if _, err := ph.pipe.Ingest(t.Context(), "ngo-harbour", sampleBundles(t)["R-2026-0101"]); err != nil {
		t.Fatal(err)
	}
	cs, err := ph.store.Search(t.Context(), store.Query{Type: "Consent"})
	if err != nil || len(cs) != 1 {
		t.Fatalf("consents %v %v", cs, err)
	}
	c := cs[0]
	c.Data = []byte(strings.Replace(string(c.Data), `"status":"active"`, `"status":"inactive"`, 1))
	if _, err := ph.store.Put(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	ph.drain(t, d)
	var effects []audit.Effect
	err = ph.store.ScanAudit(t.Context(), store.AuditScan{}, func(r store.AuditRecord) error {
		e, err := audit.ParseEntry(r.Data)
		if err != nil {
			return err
		}
		if e.Kind == audit.KindDisclosure {
			t.Errorf("a disclosure was logged after the revocation: %s", e.ID)
		}
		effects = append(effects, e.Effect)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(effects) != 2 || effects[0] != audit.EffectPermit || effects[1] != audit.EffectDeny {
		t.Fatalf("logged effects %v, want permit at ingest then deny at send time", effects)
	}
	if rep := verify(); !rep.OK() || rep.Rederived != 2 {
		t.Fatalf("verify: rederived %d problems %+v", rep.Rederived, rep.Problems)
	}
}

// TestRederiveDetectsAnotherOutcome: the Rederiver decides from the
// inputs, so a decision logged with another outcome than its inputs give
// is found.
func TestRederiveDetectsAnotherOutcome(t *testing.T) {
	ph, _, _ := auditedHarness(t, sqliteURL(t))
	if _, err := ph.pipe.Ingest(t.Context(), "ngo-harbour", sampleBundles(t)["R-2026-0104"]); err != nil {
		t.Fatal(err)
	}
	var dec audit.Decision
	err := ph.store.ScanAudit(t.Context(), store.AuditScan{}, func(r store.AuditRecord) error {
		e, err := audit.ParseEntry(r.Data)
		if err != nil {
			return err
		}
		dec.Entry = e
		for _, in := range e.Inputs {
			parts := strings.Split(in.Ref, "/")
			var v int64
			for _, c := range parts[3] {
				v = v*10 + int64(c-'0')
			}
			res, err := ph.store.GetVersion(t.Context(), parts[0], parts[1], v)
			if err != nil {
				return err
			}
			dec.Inputs = append(dec.Inputs, audit.ResolvedInput{Input: in, Format: res.Format, Data: res.Data})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rd := NewRederiver()
	out, err := rd.Rederive(context.Background(), dec)
	if err != nil {
		t.Fatal(err)
	}
	if out.Effect != dec.Entry.Effect || out.Effect != audit.EffectDeny {
		t.Fatalf("re-derived %s, logged %s; want deny (the sample has no consent for the community partner)", out.Effect, dec.Entry.Effect)
	}
	// The same inputs under another purpose, or for another partner, decide otherwise or fail.
	dec.Entry.Actor = "Organization/no-such-partner"
	if _, err := rd.Rederive(context.Background(), dec); err == nil {
		t.Errorf("re-deriving for a partner outside the logged configuration did not fail")
	}
}
