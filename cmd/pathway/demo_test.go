package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/store"
)

func runDemoJSON(t *testing.T, args ...string) demoReport {
	t.Helper()
	t.Chdir("../..") // the demo reads its samples from the repository root
	code, out, errOut := runCmd(t, "", append([]string{"demo", "--json"}, args...)...)
	var rep demoReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("demo --json: exit %d: %v\n%s\n%s", code, err, out, errOut)
	}
	if code != 0 {
		t.Fatalf("demo exit %d: %s\n%s", code, errOut, out)
	}
	return rep
}

func checkDemo(t *testing.T, rep demoReport) {
	t.Helper()
	// The NGO's 6 rows (2 rejected on purpose) and the clinic's 4
	// ServiceRequests (2 rejected on purpose); one referral is unroutable.
	if rep.Records != 10 || rep.Ingested != 6 || len(rep.Rejected) != 4 || rep.Routed != 5 {
		t.Errorf("records %d ingested %d routed %d rejected %v", rep.Records, rep.Ingested, rep.Routed, rep.Rejected)
	}
	// The clinic's referrals: the social-prescribing one is routed to the
	// community group and held there for want of the person's consent (the
	// clinic's own Consent is not the network's); the high-risk one needs a
	// specialist clinic other than the clinic itself.
	clinicSaid := map[string]string{}
	for _, w := range rep.Withheld {
		if strings.HasPrefix(w.Referral, "testdata/mappings/fhir-referral-bundle.json:") {
			clinicSaid[w.Partner] = w.Decision
		}
	}
	if clinicSaid["community-garden"] != "no-consent" || clinicSaid["(none)"] != "unroutable" {
		t.Errorf("the clinic's referrals: %v, want one held for consent at community-garden and one unroutable", clinicSaid)
	}
	clinic, garden := rep.Partners["clinic-riverside"], rep.Partners["community-garden"]
	// The clinic's referral held for want of consent goes to the community
	// group once the clinic records the person's consent on the API.
	if c := rep.Consent; c == nil || c.RecordedBy != "clinic-riverside" || c.Partner != "community-garden" || c.Status != 200 ||
		c.HeldBefore != 2 || c.HeldAfter != 1 || !c.Delivered {
		t.Errorf("consent recorded on the API: %+v, want the clinic's held referral released and delivered to community-garden", c)
	}
	if clinic == nil || garden == nil || clinic.Bundles != 2 || garden.Bundles != 2 {
		t.Fatalf("partners received %+v %+v", clinic, garden)
	}
	if clinic.Resources["Observation"] == 0 || clinic.Resources["Flag"] != 2 {
		t.Errorf("the clinic received %v: want the screening scores, the outcomes and the two risk flags", clinic.Resources)
	}
	for typ := range garden.Resources {
		if typ != "Patient" && typ != "ServiceRequest" && typ != "Task" {
			t.Errorf("the community group received %s", typ)
		}
	}
	if rep.Audit.Disclosures != 4 || rep.Audit.Decisions < 10 || rep.Audit.Problems != 0 || rep.Audit.Rederived != rep.Audit.Decisions {
		t.Errorf("audit log after the demo: %+v", rep.Audit)
	}
	if rep.Outbox["delivered"] != 4 || len(rep.Checks) < 7 {
		t.Errorf("outbox %v checks %v", rep.Outbox, rep.Checks)
	}
	for _, c := range rep.Checks {
		if !c.OK {
			t.Errorf("check failed: %+v", c)
		}
	}
	withheld := false
	for _, w := range rep.Withheld {
		if w.Decision == "no-consent" || w.Decision == "deny" {
			withheld = w.Why != ""
		}
	}
	if !withheld {
		t.Errorf("no referral was withheld with a reason: %+v", rep.Withheld)
	}
}

func TestDemoSQLite(t *testing.T) {
	checkDemo(t, runDemoJSON(t))
}

func TestDemoKeepsANewStoreAndRefusesAFullOne(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "demo.db")
	checkDemo(t, runDemoJSON(t, "--database", db))
	code, _, errOut := runCmd(t, "", "demo", "--database", db)
	if code != 2 || !strings.Contains(errOut, "needs a new, empty store") {
		t.Errorf("demo on a used store: exit %d %s", code, errOut)
	}
}

func TestDemoPostgres(t *testing.T) {
	base := os.Getenv("PATHWAY_TEST_DATABASE_URL")
	if base == "" {
		t.Skip("PATHWAY_TEST_DATABASE_URL not set: skipping the demo on PostgreSQL")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) }) // runs after the schema is dropped
	b := make([]byte, 6)
	rand.Read(b)
	schema := "pathway_demo_test_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	checkDemo(t, runDemoJSON(t, "--database", base+sep+"search_path="+schema))
}

func TestDemoMissingConfig(t *testing.T) {
	code, _, errOut := runCmd(t, "", "demo", "--config", filepath.Join(t.TempDir(), "none.yaml"))
	if code != 2 || !strings.Contains(errOut, "repository root") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

// TestReadmeQuickStart keeps the README's quick start true: it is exactly
// `make demo` and `make test`, both are Makefile targets, and `make demo`
// runs and says what it did.
func TestReadmeQuickStart(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## Quick start.*?```sh\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README has no quick start code block")
	}
	if got := strings.TrimSpace(string(m[1])); got != "make demo\nmake test" {
		t.Fatalf("quick start is %q, want exactly make demo and make test", got)
	}
	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"demo", "test"} {
		if !regexp.MustCompile(`(?m)^` + target + `:`).Match(makefile) {
			t.Errorf("Makefile has no %s target", target)
		}
	}
	if testing.Short() {
		t.Skip("-short: not running make demo")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	dir := t.TempDir()
	cmd := exec.Command("make", "demo", "DEMO_DB="+filepath.Join(dir, "demo.db"))
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make demo: %v\n%s", err, out)
	}
	for _, want := range []string{"Riverside Community Clinic (clinic-riverside) received 2 bundle(s)", "Withheld, from whom, and why:", "ok   every permitted referral was delivered"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("make demo output lacks %q:\n%s", want, out)
		}
	}
}

// TestDemoAuditLog: after the demo, pathway audit verify passes on the kept
// store (re-deriving every decision with the policy engine), a receipt for
// a delivery checks offline against the bundle the partner received, and
// a tampered copy of the store fails verification, naming the entry.
func TestDemoAuditLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "demo.db")
	pub := filepath.Join(dir, "demo.pub")
	rep := runDemoJSON(t, "--database", "sqlite://"+path, "--audit-key", pub)
	checkDemo(t, rep)
	t.Setenv(envSigningKey, "")
	t.Setenv(envSigningKeyFile, "")
	db := "sqlite://" + path
	code, stdout, stderr := runCmd(t, "", "audit", "verify", "--database", db, "--key", pub, "--json")
	var out verifyOutput
	if err := json.Unmarshal([]byte(stdout), &out); err != nil || code != 0 || !out.OK {
		t.Fatalf("verify after the demo: exit %d %v\n%s%s", code, err, stdout, stderr)
	}
	if out.RederiveSkipped || out.Rederived != out.Decisions || out.Decisions != rep.Audit.Decisions || out.Covered != out.Entries {
		t.Errorf("verify: %d decisions, %d re-derived (skipped %v), %d of %d entries covered", out.Decisions, out.Rederived, out.RederiveSkipped, out.Covered, out.Entries)
	}

	// A receipt for one delivery, checked offline with the bytes sent.
	ctx := context.Background()
	st, err := store.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	var exchange string
	var sent []byte
	err = st.ScanAudit(ctx, store.AuditScan{}, func(r store.AuditRecord) error {
		e, err := audit.ParseEntry(r.Data)
		if err != nil || e.Kind != audit.KindDisclosure || exchange != "" {
			return err
		}
		exchange = e.Exchange
		parts := strings.Split(e.Inputs[0].Ref, "/")
		kept, err := st.Get(ctx, parts[0], parts[1])
		sent = kept.Data
		return err
	})
	st.Close()
	if err != nil || exchange == "" {
		t.Fatalf("no disclosure in the demo's log: %v", err)
	}
	code, receipt, stderr := runCmd(t, "", "audit", "prove", "--database", db, exchange)
	if code != 0 {
		t.Fatalf("prove %s: exit %d %s", exchange, code, stderr)
	}
	receiptFile, sentFile := filepath.Join(dir, "receipt.json"), filepath.Join(dir, "received.json")
	if err := os.WriteFile(receiptFile, []byte(receipt), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sentFile, sent, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := runCmd(t, "", "audit", "check-receipt", receiptFile, "--bundle", sentFile, "--key", pub); code != 0 || !strings.Contains(stdout, "its SHA-256 is the one logged") {
		t.Errorf("check-receipt: exit %d\n%s%s", code, stdout, stderr)
	}

	// A tampered copy: one entry's purpose changed.
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, q := range []string{
		"DROP TRIGGER audit_entries_no_update",
		`UPDATE audit_entries SET data = CAST(replace(CAST(data AS TEXT), '"purpose":"COC"', '"purpose":"TREAT"') AS BLOB) WHERE seq = (SELECT min(seq) FROM audit_entries WHERE CAST(data AS TEXT) LIKE '%"purpose":"COC"%')`,
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	code, stdout, _ = runCmd(t, "", "audit", "verify", "--database", db, "--key", pub)
	if code != 1 || !strings.Contains(stdout, "FAILED: entry ") || !strings.Contains(stdout, "entry-altered") {
		t.Errorf("verify of the tampered demo store: exit %d\n%s", code, stdout)
	}
}
