package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fhirkitDir holds the Node script, its package.json pinning fhir-kit-client
// and the package-lock.json that npm ci installs from.
const fhirkitDir = "../../testdata/fhirkit"

// TestFHIRKitClient: a partner using a FHIR client library written by others
// (fhir-kit-client, from the npm registry, pinned) reads the
// CapabilityStatement, searches its Tasks and accepts one, by update and by
// JSON Patch, against a real pathway serve; the referrer then reads the Task
// accepted. When the server refuses the update, the script fails and the
// Task stays requested.
//
// Skipped without node 20+ and npm, or when npm cannot reach the registry.
func TestFHIRKitClient(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: not building the binary or installing npm packages")
	}
	nodeModules := fhirkitInstall(t)

	// The script runs from a temporary copy, so that the repository stays clean.
	work := t.TempDir()
	for _, name := range []string{"package.json", "accept.mjs"} {
		data, err := os.ReadFile(filepath.Join(fhirkitDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(nodeModules, filepath.Join(work, "node_modules")); err != nil {
		t.Fatal(err)
	}
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	if err := json.Unmarshal([]byte(must(os.ReadFile(filepath.Join(fhirkitDir, "package-lock.json")))), &lock); err != nil {
		t.Fatalf("package-lock.json: %v", err)
	}
	pinned := lock.Packages["node_modules/fhir-kit-client"].Version
	if pinned == "" {
		t.Fatal("package-lock.json does not pin fhir-kit-client")
	}

	bin := filepath.Join(t.TempDir(), "pathway")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building pathway: %v\n%s", err, out)
	}
	const gardenToken, ngoToken = "pwt_garden-fhirkit", "pwt_ngo-fhirkit"
	cfg := apiConfig(t, map[string]string{"community-garden": gardenToken, "ngo-harbour": ngoToken})

	// serve ingests the sample into a new store and serves it.
	serve := func(t *testing.T, args ...string) string {
		t.Helper()
		db := "sqlite://" + filepath.Join(t.TempDir(), "pathway.db")
		if code, _, errOut := runCmd(t, "", "ingest", "--config", cfg, "--database", db, "--mapping", "ngo-referral-csv", "--source", "ngo-harbour", "../../testdata/mappings/ngo-referral.csv"); code != 1 && code != 0 {
			t.Fatalf("ingest: exit %d %s", code, errOut)
		}
		base, _ := startServe(t, bin, append([]string{"--config", cfg, "--database", db, "--no-worker"}, args...)...)
		return base
	}
	// script runs accept.mjs as the community garden.
	script := func(t *testing.T, base, mode string) (string, string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "node", "accept.mjs")
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "BASE="+base, "TOKEN="+gardenToken, "ACCEPT_WITH="+mode)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	// readTask reads a Task as the referrer, with plain net/http.
	readTask := func(t *testing.T, base, id string) (status, version string) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/Task/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+ngoToken)
		req.Header.Set("Accept", "application/fhir+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var task struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
			Status       string `json:"status"`
			Meta         struct {
				VersionID string `json:"versionId"`
			} `json:"meta"`
		}
		if err := json.Unmarshal(body, &task); err != nil || resp.StatusCode != 200 || task.ResourceType != "Task" || task.ID != id {
			t.Fatalf("the referrer reading Task/%s: %d %v %s", id, resp.StatusCode, err, body)
		}
		if etag := resp.Header.Get("ETag"); etag != `W/"`+task.Meta.VersionID+`"` {
			t.Errorf("Task/%s: ETag %q, meta.versionId %q", id, etag, task.Meta.VersionID)
		}
		return task.Status, task.Meta.VersionID
	}

	for _, mode := range []string{"update", "patch"} {
		t.Run(mode, func(t *testing.T) {
			base := serve(t)
			out, errOut, err := script(t, base, mode)
			if err != nil {
				t.Fatalf("accept.mjs (%s): %v\nstdout: %s\nstderr: %s", mode, err, out, errOut)
			}
			var sum struct {
				Library, FHIRVersion, Via, Task, Before, After string
				Requested                                      int
				VersionBefore, VersionAfter                    string
			}
			if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &sum); err != nil {
				t.Fatalf("accept.mjs printed no JSON summary line: %v\n%s", err, out)
			}
			if sum.Library != "fhir-kit-client@"+pinned || sum.FHIRVersion != "4.0.1" || sum.Via != mode ||
				sum.Before != "requested" || sum.After != "accepted" || sum.Requested < 1 || sum.Task == "" {
				t.Errorf("summary: %+v (pinned %s)", sum, pinned)
			}
			before, _ := strconv.Atoi(sum.VersionBefore)
			after, _ := strconv.Atoi(sum.VersionAfter)
			if before < 1 || after != before+1 {
				t.Errorf("versions %q -> %q: one accept should make one new version", sum.VersionBefore, sum.VersionAfter)
			}
			status, version := readTask(t, base, sum.Task)
			if status != "accepted" || version != sum.VersionAfter {
				t.Errorf("the referrer reads Task/%s %s at version %s, want accepted at %s", sum.Task, status, version, sum.VersionAfter)
			}
		})
	}

	// The server refuses the update (the partner is over its rate: one
	// request, the search, and then 429): the script must fail on it and the
	// Task stays as it was.
	t.Run("refused", func(t *testing.T) {
		base := serve(t, "--rate", "0.001", "--burst", "1")
		out, errOut, err := script(t, base, "update")
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("accept.mjs should exit non-zero when the update is refused: %v\nstdout: %s\nstderr: %s", err, out, errOut)
		}
		m := regexp.MustCompile(`update: HTTP 429: PUT \S+/Task/(\S+)`).FindStringSubmatch(errOut)
		if m == nil || out != "" {
			t.Fatalf("accept.mjs should fail on the refused update and print no summary:\nstdout: %s\nstderr: %s", out, errOut)
		}
		if status, version := readTask(t, base, m[1]); status != "requested" || version != "1" {
			t.Errorf("after a refused update the referrer reads Task/%s %s at version %s, want requested at 1", m[1], status, version)
		}
	})
}

// fhirkitInstall installs testdata/fhirkit's locked packages with npm ci and
// returns the node_modules folder. The install is cached under the user's
// cache folder, keyed by the hash of package.json and package-lock.json, so
// that later runs need neither npm nor the network.
func fhirkitInstall(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not found: the fhir-kit-client test needs Node.js 20 or later")
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Skipf("node --version: %v", err)
	}
	v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
	if major, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0]); major < 20 {
		t.Skipf("node %s: fhir-kit-client needs Node.js 20 or later", v)
	}

	h := sha256.New()
	files := map[string][]byte{}
	for _, name := range []string{"package.json", "package-lock.json"} {
		data, err := os.ReadFile(filepath.Join(fhirkitDir, name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = data
		h.Write([]byte(name + "\x00"))
		h.Write(data)
		h.Write([]byte{0})
	}
	key := hex.EncodeToString(h.Sum(nil))[:16]

	cacheRoot := ""
	if dir, err := os.UserCacheDir(); err == nil {
		cacheRoot = filepath.Join(dir, "pathway", "fhirkit")
		if err := os.MkdirAll(cacheRoot, 0o755); err != nil {
			t.Logf("no cache for node_modules: %v", err)
			cacheRoot = ""
		}
	}
	if cacheRoot != "" {
		cached := filepath.Join(cacheRoot, key, "node_modules")
		if _, err := os.Stat(filepath.Join(cacheRoot, key, "complete")); err == nil {
			return cached
		}
	}

	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm not found: the fhir-kit-client test installs its packages with npm ci")
	}
	// npm ci in a fresh folder (in the cache folder when there is one, then
	// renamed into place, so that concurrent runs never see half an install).
	parent := cacheRoot
	if parent == "" {
		parent = t.TempDir()
	}
	build, err := os.MkdirTemp(parent, "install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(build)
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(build, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--prefer-offline",
		"--ignore-scripts", "--fetch-retries=1", "--fetch-retry-mintimeout=1000", "--fetch-retry-maxtimeout=3000",
		"--fetch-timeout=30000", "--loglevel=error")
	cmd.Dir = build
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	start := time.Now()
	npmOut, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil || npmUnreachable.Match(npmOut) {
			t.Skipf("npm ci could not reach the registry (%v):\n%s", err, fhirkitClip(npmOut, 1500))
		}
		t.Fatalf("npm ci: %v\n%s", err, fhirkitClip(npmOut, 4000))
	}
	t.Logf("npm ci installed fhir-kit-client in %s", time.Since(start).Round(time.Millisecond))
	if cacheRoot == "" {
		return filepath.Join(build, "node_modules")
	}
	final := filepath.Join(cacheRoot, key)
	if err := os.WriteFile(filepath.Join(build, "complete"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(build, final); err != nil {
		// Another run got there first: use its install.
		if _, serr := os.Stat(filepath.Join(final, "complete")); serr != nil {
			t.Fatalf("caching node_modules: %v", err)
		}
	}
	return filepath.Join(final, "node_modules")
}

// npmUnreachable matches npm's errors for a registry it cannot reach.
var npmUnreachable = regexp.MustCompile(`ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|ERR_SOCKET_TIMEOUT|network request to .* failed|request to .* failed, reason|code E(403|5\d\d)\b|SELF_SIGNED_CERT|UNABLE_TO_GET_ISSUER_CERT|CERT_HAS_EXPIRED`)

// fhirkitClip is the first n bytes of b.
func fhirkitClip(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
