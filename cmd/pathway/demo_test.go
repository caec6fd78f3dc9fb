package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func runDemoIn(t *testing.T, database string) demoSummary {
	t.Helper()
	rejects := filepath.Join(t.TempDir(), "rejects.ndjson")
	code, out, errOut := runCmd(t, "", "demo", "--json", "--data", "../../testdata/demo", "--database", database, "--rejects", rejects)
	if code != 0 {
		t.Fatalf("demo exit %d: %s %s", code, out, errOut)
	}
	var sum demoSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("demo --json: %v: %s", err, out)
	}
	f, err := os.Open(rejects)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		var r reject
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || len(r.Issues) == 0 || len(r.Record) == 0 {
			t.Errorf("rejects line %q: %v", sc.Text(), err)
		}
		n++
	}
	if n != sum.Rejected {
		t.Errorf("rejects file has %d lines, summary says %d", n, sum.Rejected)
	}
	return sum
}

func checkDemo(t *testing.T, database string) {
	first := runDemoIn(t, database)
	want := demoSummary{Files: 3, Records: 7, Stored: 8, Changed: 8, Rejected: 2,
		InStore: map[string]int64{"Patient": 2, "ServiceRequest": 2, "Consent": 1, "Task": 3}}
	if first.Files != want.Files || first.Records != want.Records || first.Stored != want.Stored ||
		first.Changed != want.Changed || first.Rejected != want.Rejected || first.Exchanged != 0 {
		t.Errorf("first run %+v, want %+v", first, want)
	}
	for typ, n := range want.InStore {
		if first.InStore[typ] != n {
			t.Errorf("%s in store: %d, want %d", typ, first.InStore[typ], n)
		}
	}
	second := runDemoIn(t, database)
	if second.Stored != 8 || second.Changed != 0 || second.InStore["Task"] != 3 {
		t.Errorf("second run must change nothing: %+v", second)
	}
}

func TestDemoSQLite(t *testing.T) {
	checkDemo(t, "sqlite://"+filepath.Join(t.TempDir(), "demo.db"))
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
	checkDemo(t, base+sep+"search_path="+schema)
}

func TestDemoMissingData(t *testing.T) {
	code, _, errOut := runCmd(t, "", "demo", "--data", filepath.Join(t.TempDir(), "none"), "--database", "sqlite://"+filepath.Join(t.TempDir(), "x.db"))
	if code != 2 || !strings.Contains(errOut, "--data") {
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
	cmd := exec.Command("make", "demo", "DEMO_DB="+filepath.Join(dir, "demo.db"), "DEMO_REJECTS="+filepath.Join(dir, "rejects.ndjson"))
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make demo: %v\n%s", err, out)
	}
	for _, want := range []string{"Stored 8 resources", "Rejected 2 records", "Nothing was sent"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("make demo output lacks %q:\n%s", want, out)
		}
	}
}
