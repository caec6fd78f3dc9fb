package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCheckSyncOptions(t *testing.T) {
	good := syncOptions{interval: 15 * time.Minute, count: 50}
	if err := checkSyncOptions(good); err != nil {
		t.Errorf("defaults refused: %v", err)
	}
	for _, p := range []string{"auto", "search", "read"} {
		if o := (syncOptions{interval: time.Hour, count: 50, taskPolling: p}); checkSyncOptions(o) != nil {
			t.Errorf("--task-polling %s refused", p)
		}
	}
	for name, o := range map[string]syncOptions{
		"interval too short": {interval: 30 * time.Second, count: 50},
		"count zero":         {interval: time.Hour},
		"category no code":   {interval: time.Hour, count: 50, categories: []string{"http://snomed.info/sct"}},
		"category with list": {interval: time.Hour, count: 50, categories: []string{"s|a,s|b"}},
		"task polling":       {interval: time.Hour, count: 50, taskPolling: "sometimes"},
	} {
		if err := checkSyncOptions(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// syncConfig writes the test network with clinic-riverside at endpoint.
func syncConfig(t *testing.T, endpoint string) string {
	t.Helper()
	data, err := os.ReadFile("../../testdata/exchange/pathway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(data), "http://127.0.0.1:8101/fhir", endpoint, 1)
	path := filepath.Join(t.TempDir(), "pathway.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSyncOnceJSON(t *testing.T) {
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.Path+"?"+r.URL.RawQuery)
		w.Header().Set("Content-Type", "application/fhir+json")
		w.Write([]byte(`{"resourceType":"Bundle","type":"searchset"}`))
	}))
	defer srv.Close()
	cfg := syncConfig(t, srv.URL+"/fhir")
	db := "sqlite://" + filepath.Join(t.TempDir(), "p.db")
	code, out, errOut := runCmd(t, "", "sync", "--config", cfg, "--database", db, "--partner", "clinic-riverside", "--once", "--json",
		"--category", "http://snomed.info/sct|410606002")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var sum map[string]any
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("summary %q: %v", out, err)
	}
	for _, k := range []string{"pulled", "ingested", "rejected", "tasks_updated", "watermark"} {
		if _, ok := sum[k]; !ok {
			t.Errorf("summary has no %s: %s", k, out)
		}
	}
	if len(queries) != 1 || !strings.HasPrefix(queries[0], "/fhir/ServiceRequest?") || !strings.Contains(queries[0], "category=http%3A%2F%2Fsnomed.info%2Fsct%7C410606002") {
		t.Errorf("queries = %q", queries)
	}

	// A partner without an endpoint has nothing to sync: a usage error.
	if code, _, errOut := runCmd(t, "", "sync", "--config", cfg, "--database", db, "--partner", "ngo-harbour", "--once"); code != exitUsage || !strings.Contains(errOut, "no endpoint") {
		t.Errorf("ngo-harbour: exit %d, %s; want a usage error naming the missing endpoint", code, errOut)
	}

	// A server that fails: exit 1, the partner and the path named.
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadRequest) })
	code, _, errOut = runCmd(t, "", "sync", "--config", cfg, "--database", db, "--partner", "clinic-riverside", "--once", "--no-tasks")
	if code != exitInvalid || !strings.Contains(errOut, "partner clinic-riverside: GET /ServiceRequest: HTTP 400") {
		t.Errorf("exit %d, stderr %q; want 1 naming the partner and the path", code, errOut)
	}
}
