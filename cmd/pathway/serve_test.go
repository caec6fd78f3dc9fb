package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// apiConfig writes the demo network with API tokens for the referring NGO
// and the community group.
func apiConfig(t *testing.T, tokens map[string]string) string {
	t.Helper()
	data, err := os.ReadFile("../../testdata/exchange/pathway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(data)
	for id, tok := range tokens {
		sum := sha256.Sum256([]byte(tok))
		marker := "  - id: " + id + "\n"
		if !strings.Contains(cfg, marker) {
			t.Fatalf("no partner %s in the demo network", id)
		}
		cfg = strings.Replace(cfg, marker, marker+"    api:\n      token_sha256: [\"sha256:"+hex.EncodeToString(sum[:])+"\"]\n", 1)
	}
	path := filepath.Join(t.TempDir(), "pathway.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startServe runs pathway serve from bin and returns its FHIR base URL.
func startServe(t *testing.T, bin string, args ...string) (string, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`serving the FHIR API at (\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case base := <-found:
		return base, cmd
	case <-time.After(20 * time.Second):
		t.Fatal("pathway serve did not start in 20s")
	}
	return "", nil
}

// TestCurlWalkthrough: an NGO with only a token and curl takes a referral
// from requested to completed, with the script in docs/api.md, against a
// real pathway serve; the referrer then sees the outcome.
func TestCurlWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: not building the binary")
	}
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: the walkthrough needs it", tool)
		}
	}
	bin := filepath.Join(t.TempDir(), "pathway")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building pathway: %v\n%s", err, out)
	}
	const gardenToken, ngoToken = "pwt_garden-walkthrough", "pwt_ngo-walkthrough"
	cfg := apiConfig(t, map[string]string{"community-garden": gardenToken, "ngo-harbour": ngoToken})
	db := "sqlite://" + filepath.Join(t.TempDir(), "pathway.db")
	if code, _, errOut := runCmd(t, "", "ingest", "--config", cfg, "--database", db, "--mapping", "ngo-referral-csv", "--source", "ngo-harbour", "../../testdata/mappings/ngo-referral.csv"); code != 1 && code != 0 {
		t.Fatalf("ingest: exit %d %s\n%s", code, errOut, must(os.ReadFile(cfg)))
	}
	base, serve := startServe(t, bin, "--config", cfg, "--database", db, "--no-worker")

	doc, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## A referral from requested to completed, with curl.*?```sh\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/api.md has no curl walkthrough")
	}
	script := exec.Command("bash", "-euo", "pipefail", "-c", string(m[1]))
	script.Env = append(os.Environ(), "TOKEN="+gardenToken, "BASE="+base)
	out, err := script.CombinedOutput()
	if err != nil {
		t.Fatalf("the walkthrough failed: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`(?s)accepted\s+in-progress\s+completed\s*$`).Match(out) || !strings.Contains(string(out), `"ServiceRequest"`) {
		t.Errorf("walkthrough output:\n%s", out)
	}

	// The referrer reads the outcome.
	req, _ := http.NewRequest("GET", base+"/Task?requester=Organization/ngo-harbour&status=completed", nil)
	req.Header.Set("Authorization", "Bearer "+ngoToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var bundle struct {
		Entry []struct {
			Resource struct {
				Status string `json:"status"`
				Note   []struct {
					Text string `json:"text"`
				} `json:"note"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &bundle); err != nil || len(bundle.Entry) != 1 || len(bundle.Entry[0].Resource.Note) != 1 ||
		bundle.Entry[0].Resource.Note[0].Text != "Joined the Tuesday group." {
		t.Errorf("the referrer's completed referrals: %d %v %s", resp.StatusCode, err, body)
	}

	// SIGTERM stops it cleanly.
	if err := serve.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := serve.Wait(); err != nil {
		t.Errorf("pathway serve after SIGTERM: %v", err)
	}
}

func must(b []byte, err error) string {
	if err != nil {
		return err.Error()
	}
	return string(b)
}
