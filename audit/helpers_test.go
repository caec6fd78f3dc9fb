package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"math/bits"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the raw SQL tamper helpers open the SQLite file directly

	"golang.org/x/mod/sumdb/note"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/store"
	"github.com/pathway-fhir/pathway/store/storetest"
)

// testDB is one store under test, with its URL for raw SQL.
type testDB struct {
	name string
	url  string
	st   *store.Store
}

// eachStore runs fn on a fresh SQLite store and, when PostgreSQL is
// available, on a fresh PostgreSQL schema.
func eachStore(t *testing.T, fn func(t *testing.T, db *testDB)) {
	t.Helper()
	eachStoreAs(t, "", fn)
}

// eachStoreAs is eachStore with subtests named prefix+dialect.
func eachStoreAs(t *testing.T, prefix string, fn func(t *testing.T, db *testDB)) {
	t.Helper()
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(prefix+name, func(t *testing.T) {
			fn(t, openDB(t, name))
		})
	}
}

func openDB(t testing.TB, name string) *testDB {
	t.Helper()
	var url string
	switch name {
	case "sqlite":
		url = "sqlite://" + filepath.Join(t.TempDir(), "pathway.db")
	case "postgres":
		url = storetest.PostgresURL(t) // skips without PATHWAY_TEST_DATABASE_URL
	}
	clock := storetest.NewClock(t0)
	st, err := store.Open(context.Background(), url, store.WithNowFunc(clock.Now))
	if err != nil {
		t.Fatalf("opening %s store: %v", name, err)
	}
	t.Cleanup(func() { st.Close() })
	return &testDB{name: name, url: url, st: st}
}

// exec runs statements on the database behind db, outside the store: what
// someone with direct access to the database could do. The audit tables'
// append-only triggers are dropped first.
func (db *testDB) exec(t *testing.T, stmts ...string) {
	t.Helper()
	db.execArgs(t, "", nil)
	for _, s := range stmts {
		db.execArgs(t, s, nil)
	}
}

func (db *testDB) execArgs(t *testing.T, stmt string, args []any) {
	t.Helper()
	ctx := context.Background()
	drop := []string{
		"DROP TRIGGER IF EXISTS audit_entries_no_update", "DROP TRIGGER IF EXISTS audit_entries_no_delete",
		"DROP TRIGGER IF EXISTS audit_checkpoints_no_update", "DROP TRIGGER IF EXISTS audit_checkpoints_no_delete",
	}
	if db.name == "postgres" {
		drop = []string{
			"DROP TRIGGER IF EXISTS audit_entries_append_only ON audit_entries",
			"DROP TRIGGER IF EXISTS audit_checkpoints_append_only ON audit_checkpoints",
		}
		conn, err := pgx.Connect(ctx, db.url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if stmt == "" {
			for _, d := range drop {
				if _, err := conn.Exec(ctx, d); err != nil {
					t.Fatalf("%s: %v", d, err)
				}
			}
			return
		}
		q := stmt
		for i := range args {
			q = strings.Replace(q, "?", fmt.Sprintf("$%d", i+1), 1)
		}
		if _, err := conn.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
		return
	}
	raw, err := sql.Open("sqlite", "file:"+strings.TrimPrefix(db.url, "sqlite://")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if stmt == "" {
		for _, d := range drop {
			if _, err := raw.ExecContext(ctx, d); err != nil {
				t.Fatalf("%s: %v", d, err)
			}
		}
		return
	}
	if _, err := raw.ExecContext(ctx, stmt, args...); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

var t0 = time.Date(2025, 5, 1, 9, 30, 0, 123456789, time.UTC)

// Fixed signing keys (seeds of repeated bytes: test keys, never used
// elsewhere), so vectors are reproducible. The attacker's key has the same
// origin name but is not the log's.
const (
	testSKey     = "PRIVATE+KEY+pathway.test/audit+33f76c65+AQcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH"
	testVKey     = "pathway.test/audit+33f76c65+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs"
	attackerSKey = "PRIVATE+KEY+pathway.test/audit+e9ca68db+AQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJ"
)

func testSigner(t testing.TB) note.Signer {
	t.Helper()
	s, err := audit.NewSigner(testSKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testVerifier(t testing.TB) note.Verifier {
	t.Helper()
	vkey, err := audit.VerifierKey(testSKey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := audit.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// consentData is a stored Consent in the test's own little format, which
// testRederiver reads: one "permit PURPOSE ACTOR" line per permission and
// "obligation CODE" lines.
func consentData(id string, rev int, lines ...string) []byte {
	return fmt.Appendf(nil, "Consent %s rev %d\n%s\n", id, rev, strings.Join(lines, "\n"))
}

// putConsent stores a consent version and returns it.
func putConsent(t testing.TB, st *store.Store, id string, rev int, lines ...string) store.Resource {
	t.Helper()
	r, err := st.Put(context.Background(), store.Resource{Type: "Consent", ID: id, Source: "test", Format: "text", Data: consentData(id, rev, lines...), Patient: "Patient/p1"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// testRederiver decides like the fixture's policy: permit when a consent
// input has a line "permit PURPOSE ACTOR", with its obligations; the trail
// is the permitting consent.
var testRederiver = audit.RederiverFunc(func(_ context.Context, d audit.Decision) (audit.Outcome, error) {
	out := audit.Outcome{Effect: audit.EffectDeny}
	for _, in := range d.Inputs {
		if !strings.HasPrefix(in.Ref, "Consent/") {
			continue
		}
		lines := strings.Split(string(in.Data), "\n")
		for _, l := range lines {
			if l == "permit "+d.Entry.Purpose+" "+d.Entry.Actor {
				out.Effect = audit.EffectPermit
				out.Trail = append(out.Trail, in.Ref)
				for _, o := range lines {
					if code, ok := strings.CutPrefix(o, "obligation "); ok {
						out.Obligations = append(out.Obligations, code)
					}
				}
			}
		}
	}
	return out, nil
})

// decide makes a decision entry the way the fixture's policy would.
func decide(t *testing.T, n int, consents []store.Resource, purpose, actor string) audit.Entry {
	t.Helper()
	e := audit.Entry{
		ID: fmt.Sprintf("d-%04d", n), Kind: audit.KindDecision, Time: t0.Add(time.Duration(n) * time.Second),
		Exchange: fmt.Sprintf("x-%04d", n), Actor: actor, Patient: "Patient/p1", Purpose: purpose,
		Observer: "Device/pathway", Site: "pathway.test",
		Bundle: &audit.Input{Ref: fmt.Sprintf("Bundle/b-%04d", n), Hash: sha256.Sum256(bundleBytes(n))},
	}
	d := audit.Decision{Entry: e}
	for _, c := range consents {
		in := audit.Input{Ref: audit.Ref(c.Type, c.ID, c.Version), Hash: c.Hash}
		e.Inputs = append(e.Inputs, in)
		d.Inputs = append(d.Inputs, audit.ResolvedInput{Input: in, Data: c.Data})
	}
	d.Entry = e
	out, err := testRederiver(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	e.Effect, e.Obligations, e.Trail = out.Effect, out.Obligations, out.Trail
	return e
}

// bundleBytes are the exact bytes "sent" in exchange n.
func bundleBytes(n int) []byte {
	return fmt.Appendf(nil, `{"resourceType":"Bundle","id":"b-%04d","type":"transaction","entry":[]}`, n)
}

// disclose is the disclosure of exchange n's bundle.
func disclose(n int, actor string) audit.Entry {
	return audit.Entry{
		ID: fmt.Sprintf("s-%04d", n), Kind: audit.KindDisclosure, Time: t0.Add(time.Duration(n)*time.Second + time.Millisecond),
		Exchange: fmt.Sprintf("x-%04d", n), Actor: actor, Patient: "Patient/p1", Purpose: "COC",
		Bundle:      &audit.Input{Ref: fmt.Sprintf("Bundle/b-%04d", n), Hash: sha256.Sum256(bundleBytes(n))},
		Interaction: "transaction", Endpoint: "https://clinic-a.example.org/fhir", Observer: "Device/pathway", Site: "pathway.test",
	}
}

// access is a partner's read.
func access(n int) audit.Entry {
	return audit.Entry{
		ID: fmt.Sprintf("a-%04d", n), Kind: audit.KindAccess, Time: t0.Add(time.Duration(n) * time.Second),
		Actor: "Organization/clinic-a", Effect: audit.EffectPermit, Interaction: "read", Observer: "Device/pathway",
	}
}

// fixture is a log of n entries: a consent, then per exchange a decision,
// and for permitted ones a disclosure, plus accesses; checkpoints signed
// at the sizes given.
type fixture struct {
	db      *testDB
	log     *audit.Log
	consent store.Resource
	entries []audit.Entry // in log order
}

func newFixture(t *testing.T, db *testDB, n int, checkpointsAt ...int) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{db: db, log: audit.New(db.st)}
	f.consent = putConsent(t, db.st, "c1", 1, "permit COC Organization/clinic-a", "obligation NORDSCLCD")
	signer := testSigner(t)
	cpIdx := 0
	for i := 0; len(f.entries) < n; i++ {
		var batch []audit.Entry
		switch i % 3 {
		case 0, 1:
			actor := "Organization/clinic-a"
			if i%3 == 1 {
				actor = "Organization/ngo-b" // the consent does not permit it: deny
			}
			d := decide(t, i, []store.Resource{f.consent}, "COC", actor)
			batch = append(batch, d)
			if d.Effect == audit.EffectPermit {
				batch = append(batch, disclose(i, actor))
			}
		case 2:
			batch = append(batch, access(i))
		}
		batch = batch[:min(len(batch), n-len(f.entries))]
		f.append(t, batch...)
		for cpIdx < len(checkpointsAt) && len(f.entries) >= checkpointsAt[cpIdx] {
			if len(f.entries) != checkpointsAt[cpIdx] {
				t.Fatalf("fixture: checkpoint at %d falls inside a batch", checkpointsAt[cpIdx])
			}
			if _, created, err := f.log.Checkpoint(ctx, signer); err != nil || !created {
				t.Fatalf("Checkpoint at %d: created %v, %v", len(f.entries), created, err)
			}
			cpIdx++
		}
	}
	return f
}

func (f *fixture) append(t *testing.T, es ...audit.Entry) {
	t.Helper()
	err := f.db.st.WithTx(context.Background(), func(tx *store.Tx) error {
		_, err := audit.Append(context.Background(), tx, es...)
		return err
	})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	for _, e := range es {
		f.entries = append(f.entries, e.Normalized())
	}
}

func verify(t *testing.T, st *store.Store, o audit.VerifyOptions) *audit.Report {
	t.Helper()
	if o.Verifier == nil {
		o.Verifier = testVerifier(t)
	}
	rep, err := audit.Verify(context.Background(), st, o)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

// Reference RFC 6962 (section 2.1) Merkle tree functions, written from the
// RFC's definitions, independent of the library under test.

func refLeaf(d []byte) []byte {
	h := sha256.Sum256(append([]byte{0}, d...))
	return h[:]
}

func refNode(l, r []byte) []byte {
	h := sha256.Sum256(append(append([]byte{1}, l...), r...))
	return h[:]
}

// refSplit is the largest power of two smaller than n.
func refSplit(n int) int { return 1 << (bits.Len(uint(n-1)) - 1) }

// refMTH is MTH(D[n]).
func refMTH(d [][]byte) []byte {
	switch len(d) {
	case 0:
		h := sha256.Sum256(nil)
		return h[:]
	case 1:
		return refLeaf(d[0])
	}
	k := refSplit(len(d))
	return refNode(refMTH(d[:k]), refMTH(d[k:]))
}

// refPath is PATH(m, D[n]), the inclusion proof.
func refPath(m int, d [][]byte) [][]byte {
	if len(d) <= 1 {
		return nil
	}
	k := refSplit(len(d))
	if m < k {
		return append(refPath(m, d[:k]), refMTH(d[k:]))
	}
	return append(refPath(m-k, d[k:]), refMTH(d[:k]))
}

// refProof is PROOF(m, D[n]), the consistency proof.
func refProof(m int, d [][]byte) [][]byte { return refSubproof(m, d, true) }

func refSubproof(m int, d [][]byte, b bool) [][]byte {
	n := len(d)
	if m == n {
		if b {
			return nil
		}
		return [][]byte{refMTH(d)}
	}
	k := refSplit(n)
	if m <= k {
		return append(refSubproof(m, d[:k], b), refMTH(d[k:]))
	}
	return append(refSubproof(m-k, d[k:], false), refMTH(d[:k]))
}

func equalHashes(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
