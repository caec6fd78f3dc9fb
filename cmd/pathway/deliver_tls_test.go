package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/store"
)

// testPKI is a CA with a server certificate (for the DNS name
// clinic.test only, not for 127.0.0.1, so the server name setting
// matters) and a client certificate, written as PEM files.
type testPKI struct {
	caFile, clientCert, clientKey string
	pool                          *x509.CertPool
	server                        tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pathway test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, dns []string) ([]byte, *ecdsa.PrivateKey) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn}, DNSNames: dns,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	p := &testPKI{pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	srvDER, srvKey := leaf(2, "clinic.test", x509.ExtKeyUsageServerAuth, []string{"clinic.test"})
	p.server = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
	cliDER, cliKey := leaf(3, "pathway", x509.ExtKeyUsageClientAuth, nil)
	p.clientCert = writePEM(t, dir, "client.pem", "CERTIFICATE", cliDER)
	keyDER, err := x509.MarshalECPrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	p.clientKey = writePEM(t, dir, "client-key.pem", "EC PRIVATE KEY", keyDER)
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	f := filepath.Join(dir, name)
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// tlsPartner is a FHIR server over TLS with an OAuth token endpoint at
// /token; it records what each request presented.
type tlsPartner struct {
	srv                *httptest.Server
	mu                 sync.Mutex
	tokens, deliveries int
	clientCerts        int // requests that presented a client certificate
	unauthorized       int
	stored             map[string]bool
}

func newTLSPartner(t *testing.T, pki *testPKI, mutual bool) *tlsPartner {
	p := &tlsPartner{stored: map[string]bool{}}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		defer p.mu.Unlock()
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			p.clientCerts++
		}
		if r.URL.Path == "/token" {
			if id, secret, ok := r.BasicAuth(); !ok || id != "pathway" || secret != "s3cret" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			p.tokens++
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"access_token":"tok-1","token_type":"Bearer","expires_in":3600}`)
			return
		}
		if mutual && r.Header.Get("Authorization") != "Bearer tok-1" {
			p.unauthorized++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		res := fhir.Parse(body)
		if !res.Valid() || res.Resource.GetBundle() == nil {
			http.Error(w, "not a valid Bundle", http.StatusBadRequest)
			return
		}
		p.deliveries++
		for _, e := range res.Resource.GetBundle().GetEntry() {
			p.stored[e.GetRequest().GetUrl().GetValue()] = true
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		io.WriteString(w, `{"resourceType":"Bundle","type":"transaction-response"}`)
	}))
	p.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	p.srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12}
	if mutual {
		p.srv.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		p.srv.TLS.ClientCAs = pki.pool
	}
	p.srv.StartTLS()
	t.Cleanup(p.srv.Close)
	return p
}

// withClinicSettings adds YAML lines under the clinic's endpoint.
func withClinicSettings(t *testing.T, cfg, endpoint, extra string) {
	t.Helper()
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	line := "    endpoint: " + endpoint + "\n"
	if !strings.Contains(string(data), line) {
		t.Fatalf("no line %q in the configuration", line)
	}
	s := strings.Replace(string(data), line, line+extra, 1)
	if err := os.WriteFile(cfg, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// ingestAndWork ingests the sample referrals and runs a worker once; it
// returns the clinic's outbox messages afterwards.
func ingestAndWork(t *testing.T, cfg string) []store.Message {
	t.Helper()
	if code, out, errOut := runCmd(t, "", "config", "lint", cfg); code != 0 {
		t.Fatalf("config lint: exit %d\n%s\n%s", code, out, errOut)
	}
	db := "sqlite://" + filepath.Join(t.TempDir(), "pathway.db")
	runCmd(t, "", "ingest", "--config", cfg, "--database", db, "--mapping", "ngo-referral-csv", "--source", "ngo-harbour",
		"--rejects", filepath.Join(t.TempDir(), "rejects.ndjson"), "../../testdata/mappings/ngo-referral.csv")
	if code, out, errOut := runCmd(t, "", "worker", "--config", cfg, "--database", db, "--once"); code != 0 {
		t.Fatalf("worker: exit %d\n%s\n%s", code, out, errOut)
	}
	st, err := store.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ms, err := st.Messages(t.Context(), store.MessageQuery{Partner: "clinic-riverside"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("nothing was enqueued for the clinic")
	}
	return ms
}

func assertDelivered(t *testing.T, ms []store.Message) {
	t.Helper()
	for _, m := range ms {
		if m.State != store.StateDelivered {
			t.Errorf("message %d to the clinic is %s after %d attempts (%s), want delivered", m.ID, m.State, m.Attempts, m.LastError)
		}
	}
}

// TestWorkerDeliversOverTLS: a partner's ca_file and server_name are used
// for deliveries (the server's certificate is from a private CA, for a
// name other than the address dialled).
func TestWorkerDeliversOverTLS(t *testing.T) {
	pki := newTestPKI(t)
	clinic := newTLSPartner(t, pki, false)
	garden := newFHIRPartner(t, 0)
	endpoint := clinic.srv.URL + "/fhir"
	cfg := networkConfig(t, endpoint, garden.srv.URL)
	withClinicSettings(t, cfg, endpoint, "    tls:\n      ca_file: "+pki.caFile+"\n      server_name: clinic.test\n")
	ms := ingestAndWork(t, cfg)
	assertDelivered(t, ms)
	clinic.mu.Lock()
	defer clinic.mu.Unlock()
	if clinic.deliveries != len(ms) || len(clinic.stored) == 0 {
		t.Errorf("clinic received %d deliveries (%d resources), want %d", clinic.deliveries, len(clinic.stored), len(ms))
	}
}

// TestWorkerDeliversOverMutualTLS: the client certificate is presented
// to a partner that requires one, both to its OAuth token endpoint and
// for deliveries.
func TestWorkerDeliversOverMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	clinic := newTLSPartner(t, pki, true)
	garden := newFHIRPartner(t, 0)
	endpoint := clinic.srv.URL + "/fhir"
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(clinic.srv.URL, "https://"))
	t.Setenv("PATHWAY_TEST_CLINIC_SECRET", "s3cret")
	cfg := networkConfig(t, endpoint, garden.srv.URL)
	withClinicSettings(t, cfg, endpoint, "    tls:\n      ca_file: "+pki.caFile+"\n      cert_file: "+pki.clientCert+"\n      key_file: "+pki.clientKey+
		"\n      server_name: clinic.test\n"+
		"    auth:\n      type: oauth2\n      token_url: https://127.0.0.1:"+port+"/token\n      client_id: pathway\n      client_secret: {env: PATHWAY_TEST_CLINIC_SECRET}\n")
	ms := ingestAndWork(t, cfg)
	assertDelivered(t, ms)
	clinic.mu.Lock()
	defer clinic.mu.Unlock()
	if clinic.tokens != 1 {
		t.Errorf("token endpoint issued %d tokens, want 1 (cached for every delivery)", clinic.tokens)
	}
	if clinic.deliveries != len(ms) || clinic.unauthorized != 0 {
		t.Errorf("clinic received %d deliveries, %d without the token; want %d and 0", clinic.deliveries, clinic.unauthorized, len(ms))
	}
	if want := clinic.tokens + clinic.deliveries; clinic.clientCerts != want {
		t.Errorf("%d requests presented the client certificate, want all %d", clinic.clientCerts, want)
	}
}
