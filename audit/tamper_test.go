package audit_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/store"
)

// The tamper fixture: 12 entries (exchanges 0, 3 and 6 permitted and
// disclosed, 1, 4 and 7 denied, accesses 2, 5 and 8), checkpoints at 4, 8
// and 12. In log order:
//
//	0 d-0000  1 s-0000  2 d-0001  3 a-0002  4 d-0003  5 s-0003
//	6 d-0004  7 a-0005  8 d-0006  9 s-0006 10 d-0007 11 a-0008
func tamperFixture(t *testing.T, db *testDB) *fixture {
	t.Helper()
	f := newFixture(t, db, 12, 4, 8, 12)
	rep := verify(t, db.st, audit.VerifyOptions{Rederiver: testRederiver})
	if !rep.OK() || rep.Entries != 12 || rep.Checkpoints != 3 || rep.Covered != 12 || rep.Decisions != 6 || rep.Rederived != 6 || rep.InputsChecked != 1 {
		t.Fatalf("untampered log: %+v", rep)
	}
	return f
}

// storedData returns the stored bytes of entry seq.
func storedData(t *testing.T, st *store.Store, seq int64) []byte {
	t.Helper()
	var data []byte
	err := st.ScanAudit(context.Background(), store.AuditScan{From: seq}, func(r store.AuditRecord) error {
		if data == nil {
			data = r.Data
		}
		return nil
	})
	if err != nil || data == nil {
		t.Fatalf("reading entry %d: %v", seq, err)
	}
	return data
}

// wantFirst checks that verification failed and that its first problem
// has the code and names the entry (seq >= 0) or checkpoint (cp > 0).
func wantFirst(t *testing.T, rep *audit.Report, code audit.ProblemCode, seq int64, cp uint64, mention string) {
	t.Helper()
	if rep.OK() {
		t.Fatal("Verify found nothing wrong")
	}
	p := rep.Problems[0]
	t.Logf("first of %d problems: %s", len(rep.Problems), p)
	if p.Code != code || p.Seq != seq || p.Checkpoint != cp {
		t.Fatalf("first problem = %s (seq %d, checkpoint %d), want %s (seq %d, checkpoint %d); all: %v", p.Code, p.Seq, p.Checkpoint, code, seq, cp, rep.Problems)
	}
	if !strings.Contains(p.String(), mention) {
		t.Errorf("problem %q does not mention %q", p, mention)
	}
}

func TestTamperOneByte(t *testing.T) {
	eachStore(t, func(t *testing.T, db *testDB) {
		tamperFixture(t, db)
		data := storedData(t, db.st, 5)
		i := strings.Index(string(data), `"purpose":"COC"`) + len(`"purpose":"CO`)
		changed := append([]byte(nil), data...)
		changed[i] = 'D' // still a canonical entry, for purpose COD
		if _, err := audit.ParseEntry(changed); err != nil {
			t.Fatalf("the altered entry should still parse: %v", err)
		}
		db.execArgs(t, "", nil)
		db.execArgs(t, "UPDATE audit_entries SET data = ? WHERE seq = 5", []any{changed})
		rep := verify(t, db.st, audit.VerifyOptions{})
		wantFirst(t, rep, audit.ProblemAltered, 5, 0, "entry 5 (id s-0003)")
		// The checkpoints that covered it no longer match either.
		found := map[uint64]bool{}
		for _, p := range rep.Problems {
			if p.Code == audit.ProblemRoot {
				found[p.Checkpoint] = true
			}
		}
		if !found[8] || !found[12] || found[4] {
			t.Errorf("root mismatches at %v, want 8 and 12", found)
		}
	})
}

func TestTamperByteAndLeafHash(t *testing.T) {
	// A smarter attacker rewrites the entry and every stored node hash to
	// match: only the signed checkpoints can tell.
	eachStore(t, func(t *testing.T, db *testDB) {
		f := tamperFixture(t, db)
		data := storedData(t, db.st, 9)
		changed := []byte(strings.Replace(string(data), `"purpose":"COC"`, `"purpose":"COD"`, 1))
		db.exec(t, "DELETE FROM audit_entries WHERE seq >= 9")
		rest := append([]audit.Entry(nil), f.entries[9:]...)
		rest[0].Purpose = "COD"
		f.entries = f.entries[:9]
		f.append(t, rest...)
		if got := storedData(t, db.st, 9); string(got) != string(changed) {
			t.Fatalf("re-appended entry 9 = %s, want %s", got, changed)
		}
		rep := verify(t, db.st, audit.VerifyOptions{})
		wantFirst(t, rep, audit.ProblemRoot, -1, 12, "at or after 8")
	})
}

func TestTamperDeleteEntry(t *testing.T) {
	eachStore(t, func(t *testing.T, db *testDB) {
		tamperFixture(t, db)
		db.exec(t, "DELETE FROM audit_entries WHERE seq = 6")
		rep := verify(t, db.st, audit.VerifyOptions{})
		wantFirst(t, rep, audit.ProblemMissing, 6, 0, "jumps from entry 5 to entry 7")
	})
}

func TestTamperReorder(t *testing.T) {
	eachStore(t, func(t *testing.T, db *testDB) {
		tamperFixture(t, db)
		db.exec(t,
			"UPDATE audit_entries SET seq = 1000 WHERE seq = 5",
			"UPDATE audit_entries SET seq = 5 WHERE seq = 6",
			"UPDATE audit_entries SET seq = 6 WHERE seq = 1000")
		rep := verify(t, db.st, audit.VerifyOptions{})
		wantFirst(t, rep, audit.ProblemNodes, 5, 0, "entry 5 (id d-0004)")
	})
	// Swapping the bytes only, leaving the stored hashes in place.
	eachStoreAs(t, "bytes-only-", func(t *testing.T, db *testDB) {
		tamperFixture(t, db)
		five, six := storedData(t, db.st, 5), storedData(t, db.st, 6)
		db.execArgs(t, "", nil)
		db.execArgs(t, "UPDATE audit_entries SET data = ? WHERE seq = 5", []any{six})
		db.execArgs(t, "UPDATE audit_entries SET data = ? WHERE seq = 6", []any{five})
		rep := verify(t, db.st, audit.VerifyOptions{})
		wantFirst(t, rep, audit.ProblemAltered, 5, 0, "entry 5")
	})
}

func TestTamperTruncate(t *testing.T) {
	eachStore(t, func(t *testing.T, db *testDB) {
		tamperFixture(t, db)
		db.exec(t, "DELETE FROM audit_entries WHERE seq >= 10")
		rep := verify(t, db.st, audit.VerifyOptions{})
		wantFirst(t, rep, audit.ProblemTruncated, -1, 12, "entries 10 to 11 were removed")
	})
}

func TestTamperTruncateAndRegrow(t *testing.T) {
	eachStore(t, func(t *testing.T, db *testDB) {
		f := tamperFixture(t, db)
		// Remove the last six entries and append eight others in their
		// place; once the log is past the latest checkpoint, the
		// operator's own checkpointer signs the new tree.
		db.exec(t, "DELETE FROM audit_entries WHERE seq >= 6")
		f.entries = f.entries[:6]
		for i := range 8 {
			f.append(t, access(900+i))
		}
		if cp, created, err := f.log.Checkpoint(t.Context(), testSigner(t)); err != nil || !created || cp.Size != 14 {
			t.Fatalf("Checkpoint: %d %v %v", cp.Size, created, err)
		}
		rep := verify(t, db.st, audit.VerifyOptions{})
		wantFirst(t, rep, audit.ProblemRoot, -1, 8, "at or after 4")
		var roots []uint64
		for _, p := range rep.Problems {
			if p.Code == audit.ProblemRoot {
				roots = append(roots, p.Checkpoint)
			}
		}
		if len(roots) != 2 || roots[1] != 12 || rep.Covered != 14 {
			t.Errorf("problems %v, covered %d: want the roots of 8 and 12 reported, 14 valid", rep.Problems, rep.Covered)
		}
	})
}

func TestTamperCheckpoint(t *testing.T) {
	eachStore(t, func(t *testing.T, db *testDB) {
		tamperFixture(t, db)
		// A checkpoint signed with another key, same origin name.
		attacker, err := audit.NewSigner(attackerSKey)
		if err != nil {
			t.Fatal(err)
		}
		root, err := audit.New(db.st).Root(t.Context(), 8)
		if err != nil {
			t.Fatal(err)
		}
		forged, err := audit.SignCheckpoint(attacker, 8, root)
		if err != nil {
			t.Fatal(err)
		}
		db.execArgs(t, "", nil)
		db.execArgs(t, "UPDATE audit_checkpoints SET note = ? WHERE size = 8", []any{forged.Note})
		rep := verify(t, db.st, audit.VerifyOptions{})
		wantFirst(t, rep, audit.ProblemCheckpoint, -1, 8, "not signed by the key pathway.test/audit+33f76c65")
	})
	eachStoreAs(t, "swapped-", func(t *testing.T, db *testDB) {
		tamperFixture(t, db)
		cps, err := db.st.AuditCheckpoints(t.Context(), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		// The signed note of size 4 moved into the row of size 8.
		db.execArgs(t, "", nil)
		db.execArgs(t, "UPDATE audit_checkpoints SET note = ? WHERE size = 8", []any{cps[0].Note})
		rep := verify(t, db.st, audit.VerifyOptions{})
		wantFirst(t, rep, audit.ProblemCheckpoint, -1, 8, "holds a signed note for size 4")
	})
	eachStoreAs(t, "edited-", func(t *testing.T, db *testDB) {
		tamperFixture(t, db)
		cps, err := db.st.AuditCheckpoints(t.Context(), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		// One character of the signed text changed: the signature breaks.
		note := []byte(strings.Replace(string(cps[1].Note), "\n8\n", "\n9\n", 1))
		db.execArgs(t, "", nil)
		db.execArgs(t, "UPDATE audit_checkpoints SET note = ? WHERE size = 8", []any{note})
		rep := verify(t, db.st, audit.VerifyOptions{})
		wantFirst(t, rep, audit.ProblemCheckpoint, -1, 8, "signature does not verify")
	})
}

func TestTamperAgainstTrustedCheckpoint(t *testing.T) {
	// An auditor saved the checkpoint of size 8. The operator then rewrites
	// the log from entry 6 on and deletes every checkpoint after 4: the
	// stored checkpoints agree with the new log, the saved one does not.
	eachStore(t, func(t *testing.T, db *testDB) {
		f := tamperFixture(t, db)
		cps, err := db.st.AuditCheckpoints(t.Context(), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		saved := cps[1].Note
		if rep := verify(t, db.st, audit.VerifyOptions{Trusted: saved}); !rep.OK() || rep.Trusted != 8 {
			t.Fatalf("with the trusted checkpoint before tampering: %+v", rep)
		}
		db.exec(t, "DELETE FROM audit_entries WHERE seq >= 6", "DELETE FROM audit_checkpoints WHERE size > 4")
		f.entries = f.entries[:6]
		f.append(t, access(900), access(901), access(902), access(903))
		if _, _, err := f.log.Checkpoint(t.Context(), testSigner(t)); err != nil {
			t.Fatal(err)
		}
		if rep := verify(t, db.st, audit.VerifyOptions{}); !rep.OK() {
			t.Fatalf("without the trusted checkpoint the rewrite is invisible, but Verify found %v", rep.Problems)
		}
		rep := verify(t, db.st, audit.VerifyOptions{Trusted: saved})
		wantFirst(t, rep, audit.ProblemTrusted, -1, 8, "no longer have the root")
	})
}

func TestTamperConsentAfterDecision(t *testing.T) {
	eachStore(t, func(t *testing.T, db *testDB) {
		f := tamperFixture(t, db)
		// A new version of the consent is not tampering: decisions name the
		// version they read.
		putConsent(t, db.st, "c1", 2, "permit COC Organization/ngo-b")
		if rep := verify(t, db.st, audit.VerifyOptions{Rederiver: testRederiver}); !rep.OK() {
			t.Fatalf("after a new consent version: %v", rep.Problems)
		}
		// Rewriting the version the decisions read is.
		altered := consentData("c1", 1, "permit COC Organization/clinic-a", "permit COC Organization/ngo-b", "obligation NORDSCLCD")
		db.execArgs(t, "UPDATE resource_history SET data = ? WHERE resource_type = 'Consent' AND id = 'c1' AND version = 1", []any{altered})
		rep := verify(t, db.st, audit.VerifyOptions{Rederiver: testRederiver})
		wantFirst(t, rep, audit.ProblemInputAltered, 0, 0, "input Consent/c1/_history/1 no longer hashes to the logged value")
		if f.entries[0].ID != rep.Problems[0].EntryID {
			t.Errorf("problem names %s, want %s", rep.Problems[0].EntryID, f.entries[0].ID)
		}
		if rep.Rederived != 0 {
			t.Errorf("decisions on altered inputs were re-derived (%d)", rep.Rederived)
		}
		// A version that vanished.
		db.execArgs(t, "DELETE FROM resource_history WHERE resource_type = 'Consent' AND id = 'c1' AND version = 1", nil)
		rep = verify(t, db.st, audit.VerifyOptions{})
		wantFirst(t, rep, audit.ProblemInputMissing, 0, 0, "input Consent/c1/_history/1 cannot be found")
	})
}

func TestVerifyRederivesDecisions(t *testing.T) {
	eachStore(t, func(t *testing.T, db *testDB) {
		f := tamperFixture(t, db)
		// A decision logged as permit that the consent does not support.
		wrong := decide(t, 50, []store.Resource{f.consent}, "COC", "Organization/ngo-b")
		wrong.Effect, wrong.Trail = audit.EffectPermit, []string{"Consent/c1/_history/1"}
		f.append(t, wrong)
		rep := verify(t, db.st, audit.VerifyOptions{Rederiver: testRederiver})
		wantFirst(t, rep, audit.ProblemDecision, 12, 0, "logged permit, re-derived deny")
		// Without a rederiver the inputs are still checked, and it says so.
		rep = verify(t, db.st, audit.VerifyOptions{})
		if !rep.OK() || !rep.RederiveSkipped || rep.Rederived != 0 || rep.Decisions != 7 {
			t.Errorf("without a rederiver: %+v", rep)
		}
	})
}

func TestVerifyWrongKey(t *testing.T) {
	db := openDB(t, "sqlite")
	tamperFixture(t, db)
	attacker, err := audit.VerifierKey(attackerSKey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := audit.NewVerifier(attacker)
	if err != nil {
		t.Fatal(err)
	}
	rep := verify(t, db.st, audit.VerifyOptions{Verifier: v})
	wantFirst(t, rep, audit.ProblemCheckpoint, -1, 4, "not signed by the key")
}
