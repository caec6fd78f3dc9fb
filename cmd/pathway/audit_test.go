package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the tamper step edits the SQLite file directly

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/store"
	"github.com/pathway-fhir/pathway/store/storetest"
)

var auditT0 = time.Date(2025, 5, 1, 9, 30, 0, 0, time.UTC)

func auditBundle(n int) []byte {
	return fmt.Appendf(nil, `{"resourceType":"Bundle","id":"b-%d","type":"transaction","entry":[]}`, n)
}

// buildAuditLog stores a consent and logs three exchanges (a permitted one
// disclosed, a denied one) and an access: six entries.
func buildAuditLog(t *testing.T, url string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	consent, err := st.Put(ctx, store.Resource{Type: "Consent", ID: "c1", Source: "test", Format: "text", Data: []byte("permit COC Organization/clinic-a")})
	if err != nil {
		t.Fatal(err)
	}
	in := audit.Input{Ref: audit.Ref("Consent", "c1", consent.Version), Hash: consent.Hash}
	var es []audit.Entry
	for n, actor := range []string{"Organization/clinic-a", "Organization/ngo-b", "Organization/clinic-a"} {
		bundle := &audit.Input{Ref: fmt.Sprintf("Bundle/b-%d", n), Hash: audit.HashBytes(auditBundle(n))}
		d := audit.Entry{
			ID: fmt.Sprintf("d-%d", n), Kind: audit.KindDecision, Time: auditT0.Add(time.Duration(n) * time.Hour),
			Exchange: fmt.Sprintf("x-%d", n), Actor: actor, Patient: "Patient/p1", Purpose: "COC",
			Effect: audit.EffectPermit, Trail: []string{in.Ref}, Inputs: []audit.Input{in}, Bundle: bundle, Observer: "Device/pathway",
		}
		if n == 1 {
			d.Effect, d.Trail = audit.EffectDeny, nil
		}
		es = append(es, d)
		if d.Effect == audit.EffectPermit {
			es = append(es, audit.Entry{
				ID: fmt.Sprintf("s-%d", n), Kind: audit.KindDisclosure, Time: d.Time.Add(time.Second), Exchange: d.Exchange,
				Actor: actor, Patient: "Patient/p1", Purpose: "COC", Bundle: bundle, Observer: "Device/pathway",
			})
		}
	}
	es = append(es, audit.Entry{ID: "a-9", Kind: audit.KindAccess, Time: auditT0.Add(5 * time.Hour), Actor: "Organization/clinic-a", Effect: audit.EffectPermit, Interaction: "read", Observer: "Device/pathway"})
	for _, e := range es {
		if err := st.WithTx(ctx, func(tx *store.Tx) error {
			_, err := audit.Append(ctx, tx, e)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func writeKeys(t *testing.T, dir string) (keyFile, pubFile, pub string) {
	t.Helper()
	keyFile = filepath.Join(dir, "audit.key")
	code, stdout, stderr := runCmd(t, "", "keys", "generate", "--name", "pathway.test/audit", "--out", keyFile)
	if code != 0 {
		t.Fatalf("keys generate: %d %s", code, stderr)
	}
	pub = strings.TrimSpace(stdout)
	pubFile = filepath.Join(dir, "audit.pub")
	if err := os.WriteFile(pubFile, []byte(stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	return keyFile, pubFile, pub
}

func TestAuditCommandsSQLite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pathway.db")
	checkAuditCommands(t, dir, "sqlite://"+path)

	// Tamper with one byte of a stored entry: verify fails and names it.
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, q := range []string{
		"DROP TRIGGER audit_entries_no_update",
		`UPDATE audit_entries SET data = CAST(replace(CAST(data AS TEXT), '"purpose":"COC"', '"purpose":"COD"') AS BLOB) WHERE seq = 2`,
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	code, stdout, _ := runCmd(t, "", "audit", "verify", "--database", "sqlite://"+path, "--key", filepath.Join(dir, "audit.pub"))
	if code != 1 || !strings.Contains(stdout, "FAILED: entry 2 (id d-1)") || !strings.Contains(stdout, "entry-altered") {
		t.Errorf("verify of a tampered log: exit %d\n%s", code, stdout)
	}
	code, stdout, stderr := runCmd(t, "", "audit", "verify", "--database", "sqlite://"+path, "--key", filepath.Join(dir, "audit.pub"), "--json")
	var out verifyOutput
	if err := json.Unmarshal([]byte(stdout), &out); err != nil || code != 1 || out.OK || out.Problems[0].Seq != 2 || !strings.Contains(stderr, "entry 2") {
		t.Errorf("verify --json of a tampered log: exit %d, %v, %+v, %s", code, err, out, stderr)
	}
}

func TestAuditCommandsPostgres(t *testing.T) {
	if !storetest.PostgresAvailable() {
		t.Skip(storetest.PostgresEnv + " not set: skipping the audit commands on PostgreSQL")
	}
	checkAuditCommands(t, t.TempDir(), storetest.PostgresURL(t))
}

func checkAuditCommands(t *testing.T, dir, url string) {
	// The synthetic entries below are not decisions of the policy engine:
	// these tests check the log's mechanics, TestDemoAuditLog the
	// re-derivation of real decisions.
	rederiver := verifyRederiver
	verifyRederiver = func() audit.Rederiver { return nil }
	t.Cleanup(func() { verifyRederiver = rederiver })
	keyFile, pubFile, pub := writeKeys(t, dir)
	t.Setenv(envSigningKey, "")
	t.Setenv(envSigningKeyFile, "")
	buildAuditLog(t, url)

	// Before any checkpoint: the tree verifies, nothing is signed yet.
	code, stdout, stderr := runCmd(t, "", "audit", "verify", "--database", url, "--key", pubFile)
	if code != 0 || !strings.Contains(stdout, "Entries: 6;") || !strings.Contains(stdout, "6 newer entries are not covered") {
		t.Fatalf("verify before checkpoint: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, _, stderr := runCmd(t, "", "audit", "prove", "--database", url, "x-0"); code != 1 || !strings.Contains(stderr, "run pathway audit checkpoint") {
		t.Errorf("prove before checkpoint: exit %d, %s", code, stderr)
	}
	if code, _, stderr := runCmd(t, "", "audit", "checkpoint", "--database", url); code != 2 || !strings.Contains(stderr, envSigningKeyFile) {
		t.Errorf("checkpoint without a key: exit %d, %s", code, stderr)
	}

	t.Setenv(envSigningKeyFile, keyFile)
	code, cpNote, stderr := runCmd(t, "", "audit", "checkpoint", "--database", url)
	if code != 0 || !strings.Contains(stderr, "signed a checkpoint of 6 entries") || !strings.HasPrefix(cpNote, "pathway.test/audit\n6\n") {
		t.Fatalf("checkpoint: exit %d, %q, %s", code, cpNote, stderr)
	}
	saved := filepath.Join(dir, "checkpoint.txt")
	if err := os.WriteFile(saved, []byte(cpNote), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, again, stderr := runCmd(t, "", "audit", "checkpoint", "--database", url); code != 0 || again != cpNote || !strings.Contains(stderr, "no new entries") {
		t.Errorf("second checkpoint: exit %d, %s", code, stderr)
	}

	// The verifier key comes from the signing key when --key is absent.
	code, stdout, _ = runCmd(t, "", "audit", "verify", "--database", url, "--from", saved)
	if code != 0 || !strings.Contains(stdout, "OK: every entry") || !strings.Contains(stdout, "Decisions: 3; inputs re-hashed: 1") || !strings.Contains(stdout, "Trusted checkpoint: covers 6") {
		t.Fatalf("verify: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = runCmd(t, "", "audit", "verify", "--database", url, "--key", pub, "--json")
	var out verifyOutput
	if err := json.Unmarshal([]byte(stdout), &out); err != nil || code != 0 || !out.OK || out.Entries != 6 || out.Covered != 6 || !out.RederiveSkipped {
		t.Errorf("verify --json: exit %d, %v, %s", code, err, stdout)
	}

	// A receipt for exchange 0 checks offline, with its bundle.
	code, receipt, stderr := runCmd(t, "", "audit", "prove", "--database", url, "x-0")
	if code != 0 {
		t.Fatalf("prove: exit %d, %s", code, stderr)
	}
	receiptFile := filepath.Join(dir, "receipt.json")
	good, bad := filepath.Join(dir, "received.json"), filepath.Join(dir, "other.json")
	for f, b := range map[string][]byte{receiptFile: []byte(receipt), good: auditBundle(0), bad: auditBundle(1)} {
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(envSigningKeyFile, "") // offline: only the public key
	code, stdout, stderr = runCmd(t, "", "audit", "check-receipt", receiptFile, "--bundle", good, "--key", pubFile)
	if code != 0 || !strings.Contains(stdout, "Receipt valid") || !strings.Contains(stdout, "entry 0: d-0 decision") ||
		!strings.Contains(stdout, "entry 1: s-0 disclosure") || !strings.Contains(stdout, "its SHA-256 is the one logged") {
		t.Errorf("check-receipt: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, _ := runCmd(t, receipt, "audit", "check-receipt", "-", "--key", pub, "--json"); code != 0 || !strings.Contains(stdout, `"valid":true`) {
		t.Errorf("check-receipt from stdin --json: exit %d, %s", code, stdout)
	}
	if code, _, stderr := runCmd(t, "", "audit", "check-receipt", receiptFile, "--bundle", bad, "--key", pubFile); code != 1 || !strings.Contains(stderr, "not the one logged") {
		t.Errorf("check-receipt with another bundle: exit %d, %s", code, stderr)
	}
	_, _, otherPub := writeKeys(t, t.TempDir())
	if code, _, stderr := runCmd(t, "", "audit", "check-receipt", receiptFile, "--key", otherPub); code != 1 || !strings.Contains(stderr, "not signed by the key") {
		t.Errorf("check-receipt with another key: exit %d, %s", code, stderr)
	}
	if code, _, stderr := runCmd(t, "", "audit", "check-receipt", receiptFile); code != 2 || !strings.Contains(stderr, "--key is required") {
		t.Errorf("check-receipt without a key: exit %d, %s", code, stderr)
	}
	tampered := strings.Replace(receipt, `"index": 1`, `"index": 2`, 1)
	if code, _, _ := runCmd(t, tampered, "audit", "check-receipt", "-", "--key", pub); code != 1 || tampered == receipt {
		t.Errorf("check-receipt of a receipt with a wrong index: exit %d", code)
	}
	if code, _, stderr := runCmd(t, "", "audit", "prove", "--database", url, "nope"); code != 1 || !strings.Contains(stderr, `no audit entry has the id or exchange "nope"`) {
		t.Errorf("prove unknown: exit %d, %s", code, stderr)
	}

	// Export: one valid AuditEvent per entry.
	code, stdout, stderr = runCmd(t, "", "audit", "export", "--database", url)
	if code != 0 {
		t.Fatalf("export: exit %d, %s", code, stderr)
	}
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		r := fhir.Parse(sc.Bytes())
		if !r.Valid() || fhir.TypeOf(r.Resource) != "AuditEvent" {
			t.Errorf("export line %d is not a valid AuditEvent: %v", lines+1, r.Err())
		}
		lines++
	}
	if lines != 6 {
		t.Errorf("export wrote %d lines, want 6", lines)
	}
	code, stdout, _ = runCmd(t, "", "audit", "export", "--database", url, "--since", "2025-05-01T11:00:00Z")
	if got := strings.Count(stdout, "\n"); code != 0 || got != 3 || !strings.Contains(stdout, `"id":"d-2"`) || strings.Contains(stdout, `"id":"d-1"`) {
		t.Errorf("export --since: exit %d, %d lines", code, got)
	}
	if code, _, _ := runCmd(t, "", "audit", "export", "--database", url, "--format", "csv"); code != 2 {
		t.Errorf("export --format csv: exit %d, want 2", code)
	}
}

func TestResolveVerifier(t *testing.T) {
	dir := t.TempDir()
	keyFile, pubFile, pub := writeKeys(t, dir)
	t.Setenv(envSigningKey, "")
	t.Setenv(envSigningKeyFile, "")
	for _, flag := range []string{pub, pubFile, " " + pub + "\n"} {
		v, err := resolveVerifier(flag, true)
		if err != nil || v.Name() != "pathway.test/audit" {
			t.Errorf("resolveVerifier(%q) = %v, %v", flag, v, err)
		}
	}
	for _, flag := range []string{"not-a-key", filepath.Join(dir, "missing.pub"), keyFile} {
		if _, err := resolveVerifier(flag, true); err == nil {
			t.Errorf("resolveVerifier(%q) succeeded", flag)
		} else if skey, _ := os.ReadFile(keyFile); strings.Contains(err.Error(), strings.TrimSpace(string(skey))) {
			t.Errorf("the error for %q shows the private key", flag)
		}
	}
	if v, err := resolveVerifier("", false); v != nil || err != nil {
		t.Errorf("no key, not required: %v, %v", v, err)
	}
	if _, err := resolveVerifier("", true); err == nil {
		t.Error("no key, required: no error")
	}
	t.Setenv(envSigningKeyFile, keyFile)
	if v, err := resolveVerifier("", true); err != nil || v.Name() != "pathway.test/audit" {
		t.Errorf("from %s: %v, %v", envSigningKeyFile, v, err)
	}
	skey, _ := os.ReadFile(keyFile)
	t.Setenv(envSigningKey, string(skey))
	if _, err := resolveVerifier("", true); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("both variables set: %v", err)
	}
	t.Setenv(envSigningKeyFile, "")
	if v, err := resolveVerifier("", true); err != nil || v.Name() != "pathway.test/audit" {
		t.Errorf("from %s: %v, %v", envSigningKey, v, err)
	}
}

func TestParseSince(t *testing.T) {
	for in, want := range map[string]time.Time{
		"":                          {},
		"2025-05-01":                time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC),
		"2025-05-01T11:00:00Z":      time.Date(2025, 5, 1, 11, 0, 0, 0, time.UTC),
		"2025-05-01T13:00:00+02:00": time.Date(2025, 5, 1, 11, 0, 0, 0, time.UTC),
	} {
		got, err := parseSince(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"yesterday", "2025-13-01", "01/05/2025"} {
		if _, err := parseSince(in); err == nil {
			t.Errorf("parseSince(%q) succeeded", in)
		}
	}
}
