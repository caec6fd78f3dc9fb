package exchange

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pathway-fhir/pathway/store/storetest"
)

func TestReadSecret(t *testing.T) {
	t.Setenv("PATHWAY_TEST_SECRET", "from-env")
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if v, err := ReadSecret("PATHWAY_TEST_SECRET", ""); v != "from-env" || err != nil {
		t.Errorf("env: %q %v", v, err)
	}
	if v, err := ReadSecret("", file); v != "from-file" || err != nil {
		t.Errorf("file: %q %v", v, err)
	}
	if _, err := ReadSecret("PATHWAY_TEST_UNSET_SECRET", ""); err == nil || !strings.Contains(err.Error(), "PATHWAY_TEST_UNSET_SECRET is not set") {
		t.Errorf("unset env: %v", err)
	}
	if _, err := ReadSecret("", ""); err == nil {
		t.Error("no source: no error")
	}
}

// tokenServer is an OAuth 2.0 token endpoint that issues numbered tokens.
func tokenServer(t *testing.T, lifetime int) (*httptest.Server, *atomic.Int32) {
	var issued atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok || id != "pathway" || secret != "s3cret" || r.FormValue("grant_type") != "client_credentials" || r.FormValue("scope") != "system/*.write" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		n := issued.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"Bearer","expires_in":%d}`, n, lifetime)
	}))
	t.Cleanup(srv.Close)
	return srv, &issued
}

func TestClientCredentials(t *testing.T) {
	t.Setenv("PATHWAY_TEST_CLIENT_SECRET", "s3cret")
	srv, issued := tokenServer(t, 300)
	clock := storetest.NewClock(time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC))
	cc := &ClientCredentials{TokenURL: srv.URL, ClientID: "pathway", Scope: "system/*.write", SecretEnv: "PATHWAY_TEST_CLIENT_SECRET", Client: NewClient(time.Second, nil), Now: clock.Now}
	client := NewClient(time.Second, nil)
	token := func() string {
		r := client.R()
		if err := cc.Authorize(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		return r.Token
	}
	if a, b := token(), token(); a != "tok-1" || b != "tok-1" || issued.Load() != 1 {
		t.Errorf("tokens %q %q after %d requests: want one cached token", a, b, issued.Load())
	}
	clock.Advance(269 * time.Second) // renewed 30 s before expiry
	if tok := token(); tok != "tok-1" {
		t.Errorf("before renewal: %q", tok)
	}
	clock.Advance(2 * time.Second)
	if tok := token(); tok != "tok-2" {
		t.Errorf("after renewal: %q, want tok-2", tok)
	}
	cc.Invalidate()
	if tok := token(); tok != "tok-3" {
		t.Errorf("after Invalidate: %q, want tok-3", tok)
	}

	bad := &ClientCredentials{TokenURL: srv.URL, ClientID: "pathway", Scope: "system/*.write", SecretEnv: "PATHWAY_TEST_UNSET_SECRET", Client: NewClient(time.Second, nil)}
	if err := bad.Authorize(context.Background(), client.R()); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("missing secret: %v", err)
	}
	t.Setenv("PATHWAY_TEST_WRONG_SECRET", "wrong")
	wrong := &ClientCredentials{TokenURL: srv.URL, ClientID: "pathway", Scope: "system/*.write", SecretEnv: "PATHWAY_TEST_WRONG_SECRET", Client: NewClient(time.Second, nil)}
	if err := wrong.Authorize(context.Background(), client.R()); err == nil || !strings.Contains(err.Error(), "HTTP 401 from the token endpoint") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("wrong secret: %v", err)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	if _, err := TLSConfig(filepath.Join(t.TempDir(), "none.pem"), "", "", ""); err == nil {
		t.Error("missing CA file: no error")
	}
	empty := filepath.Join(t.TempDir(), "empty.pem")
	os.WriteFile(empty, []byte("not a certificate"), 0o600)
	if _, err := TLSConfig(empty, "", "", ""); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("bad CA file: %v", err)
	}
	cfg, err := TLSConfig("", "", "", "fhir.example")
	if err != nil || cfg.ServerName != "fhir.example" || cfg.MinVersion == 0 {
		t.Errorf("defaults: %+v %v", cfg, err)
	}
}
