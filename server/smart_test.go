package server

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pathway-fhir/pathway/audit"
	"github.com/pathway-fhir/pathway/exchange"
	"github.com/pathway-fhir/pathway/store"
)

// signer is a test-only JWS signer (RS*, ES*, HS256 and none), with the
// standard library alone.
type signer struct {
	kid, alg string
	rsa      *rsa.PrivateKey
	ec       *ecdsa.PrivateKey
	secret   []byte // HS256
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (s signer) jwk() map[string]any {
	if s.rsa != nil {
		return map[string]any{"kty": "RSA", "kid": s.kid, "use": "sig", "n": b64(s.rsa.N.Bytes()), "e": b64(big.NewInt(int64(s.rsa.E)).Bytes())}
	}
	pt, _ := s.ec.PublicKey.Bytes()
	n := (len(pt) - 1) / 2
	return map[string]any{"kty": "EC", "kid": s.kid, "alg": s.alg, "crv": s.ec.Curve.Params().Name, "x": b64(pt[1 : 1+n]), "y": b64(pt[1+n:])}
}

// sign makes a compact JWS of claims.
func (s signer) sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(map[string]any{"alg": s.alg, "kid": s.kid, "typ": "JWT"})
	c, _ := json.Marshal(claims)
	in := b64(h) + "." + b64(c)
	hash := map[string]crypto.Hash{"256": crypto.SHA256, "384": crypto.SHA384, "512": crypto.SHA512}[s.alg[len(s.alg)-3:]]
	var sig []byte
	switch {
	case s.alg == "none":
	case s.alg == "HS256":
		m := hmac.New(sha256.New, s.secret)
		m.Write([]byte(in))
		sig = m.Sum(nil)
	case s.rsa != nil:
		d := hash.New()
		d.Write([]byte(in))
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, s.rsa, hash, d.Sum(nil)); err != nil {
			t.Fatal(err)
		}
	default:
		d := hash.New()
		d.Write([]byte(in))
		r, ss, err := ecdsa.Sign(rand.Reader, s.ec, d.Sum(nil))
		if err != nil {
			t.Fatal(err)
		}
		size := (s.ec.Curve.Params().BitSize + 7) / 8
		sig = append(r.FillBytes(make([]byte, size)), ss.FillBytes(make([]byte, size))...)
	}
	return in + "." + b64(sig)
}

// smartKeys are the test partners' keys: made once, RSA is slow.
var smartKeys = sync.OnceValue(func() map[string]signer {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		panic(err)
	}
	ak, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return map[string]signer{
		"rsa":     {kid: "garden-rsa", alg: "RS384", rsa: rk},
		"ec":      {kid: "garden-ec", alg: "ES384", ec: ek},
		"auditor": {kid: "board-1", alg: "ES384", ec: ak},
	}
})

// smartFixture is the server fixture with SMART clients: community-garden
// (an RSA and a P-384 key, default scopes), clinic-riverside (client id
// "riverside-ehr", the same RSA key, system/Task.rs only) and the auditor.
func smartFixture(t *testing.T, logs io.Writer, opts ...func(*Options)) *fixture {
	t.Helper()
	k := smartKeys()
	jwks := func(ss ...signer) []exchange.APIKey {
		var keys []any
		for _, s := range ss {
			keys = append(keys, s.jwk())
		}
		data, _ := json.Marshal(map[string]any{"keys": keys})
		parsed, problems := exchange.ParseJWKS(data)
		if len(problems) > 0 {
			t.Fatal(problems)
		}
		return parsed
	}
	return newFixture(t, sqliteURL(t), append([]func(*Options){func(o *Options) {
		p := o.Pipeline.Config.Partners
		p["community-garden"].APIKeys = jwks(k["rsa"], k["ec"])
		p["clinic-riverside"].APIKeys, p["clinic-riverside"].ClientID, p["clinic-riverside"].Scopes = jwks(k["rsa"]), "riverside-ehr", []string{"system/Task.rs"}
		p["advisory-board"].APIKeys = jwks(k["auditor"])
		if logs != nil {
			o.Logger = slog.New(slog.NewTextHandler(logs, nil))
		}
	}}, opts...)...)
}

// claims returns good assertion claims for client at aud, exp a minute on.
func (f *fixture) claims(client, aud string) map[string]any {
	var jti [12]byte
	rand.Read(jti[:])
	return map[string]any{"iss": client, "sub": client, "aud": aud, "exp": f.clock.Now().Add(time.Minute).Unix(), "jti": b64(jti[:])}
}

// tokenRequest posts a token request; extra form values override.
func (f *fixture) tokenRequest(assertion, scope string, extra ...string) (int, map[string]any, http.Header) {
	f.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {assertionType}, "client_assertion": {assertion}, "scope": {scope}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	resp, err := http.Post(f.srv.URL+"/auth/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		f.t.Fatalf("token response: %v", err)
	}
	return resp.StatusCode, body, resp.Header
}

// accessToken gets a token or fails the test.
func (f *fixture) accessToken(s signer, client, scope string) string {
	f.t.Helper()
	status, body, _ := f.tokenRequest(s.sign(f.t, f.claims(client, f.srv.URL+"/auth/token")), scope)
	tok, _ := body["access_token"].(string)
	if status != 200 || tok == "" {
		f.t.Fatalf("token: %d %v", status, body)
	}
	return tok
}

func TestSMARTToken(t *testing.T) {
	var logs bytes.Buffer
	f := smartFixture(t, &logs)
	k := smartKeys()
	aud := f.srv.URL + "/auth/token"

	// The happy path, RSA: a token with the scopes asked for, opaque, that works.
	assertion := k["rsa"].sign(t, f.claims("community-garden", aud))
	status, body, hdr := f.tokenRequest(assertion, "system/Task.rs system/Task.u")
	tok, _ := body["access_token"].(string)
	if status != 200 || body["token_type"] != "bearer" || body["expires_in"] != float64(300) || body["scope"] != "system/Task.rs system/Task.u" || len(tok) < 40 || strings.Contains(tok, ".") {
		t.Fatalf("token: %d %v", status, body)
	}
	if hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q", hdr.Get("Cache-Control"))
	}
	task := f.tasks["community-garden"][0]
	if r := f.do("GET", "/fhir/Task/"+task, tok, nil); r.status != 200 {
		t.Errorf("read with the access token: %d %s", r.status, r.body)
	}
	if r := f.do("GET", "/fhir/Task?status=requested", tok, nil); r.status != 200 {
		t.Errorf("search with the access token: %d %s", r.status, r.body)
	}
	// The token carries the partner, not more: the clinic's Task stays
	// out of reach exactly as with the partner's static token.
	clinicTask := f.tasks["clinic-riverside"][0]
	if a, b := f.do("GET", "/fhir/Task/"+clinicTask, tok, nil), f.do("GET", "/fhir/Task/"+clinicTask, tokGarden, nil); a.status != b.status || a.status < 400 {
		t.Errorf("another partner's Task: access token %d, static token %d", a.status, b.status)
	}

	// EC P-384: only the allowed part of the request is granted.
	status, body, _ = f.tokenRequest(k["ec"].sign(t, f.claims("community-garden", aud)), "system/Task.rs system/Patient.r system/AuditEvent.rs bogus")
	if status != 200 || body["scope"] != "system/Task.rs system/Patient.r" {
		t.Errorf("EC token: %d %v", status, body)
	}

	// Nothing of the assertion or the token reaches the log.
	if strings.Contains(logs.String(), tok) || strings.Contains(logs.String(), assertion[:40]) {
		t.Errorf("a token or the assertion is in the log:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "partner=community-garden") {
		t.Errorf("the token request is not logged with its partner:\n%s", logs.String())
	}
}

func TestSMARTTokenRefused(t *testing.T) {
	f := smartFixture(t, nil)
	k := smartKeys()
	aud := f.srv.URL + "/auth/token"
	good := func() map[string]any { return f.claims("community-garden", aud) }
	with := func(key string, v any) map[string]any {
		c := good()
		if v == nil {
			delete(c, key)
		} else {
			c[key] = v
		}
		return c
	}
	now := f.clock.Now()
	replayed := k["rsa"].sign(t, good())
	if status, body, _ := f.tokenRequest(replayed, "system/Task.rs"); status != 200 {
		t.Fatalf("first use of the assertion: %d %v", status, body)
	}
	otherKid := k["rsa"]
	otherKid.kid = "not-registered"
	ecAsRSA := k["ec"]
	ecAsRSA.kid = "garden-rsa" // an ES384 signature under the RSA key's kid
	none := k["rsa"]
	none.alg = "none"
	hs := k["rsa"]
	hs.alg, hs.secret = "HS256", []byte(k["rsa"].jwk()["n"].(string)) // the public key as an HMAC secret
	tampered := k["rsa"].sign(t, good())
	parts := strings.Split(tampered, ".")
	c, _ := json.Marshal(with("iss", "community-garden"))
	tampered = parts[0] + "." + b64(bytes.Replace(c, []byte(`"sub"`), []byte(`"sub" `), 1)) + "." + parts[2]

	tests := []struct {
		name, assertion, scope string
		status                 int
		code, says             string
		extra                  []string
	}{
		{"wrong kid", otherKid.sign(t, good()), "system/Task.rs", 401, "invalid_client", "kid does not name a key", nil},
		{"key of another type under the kid", ecAsRSA.sign(t, good()), "system/Task.rs", 401, "invalid_client", "signature does not verify", nil},
		{"wrong aud", k["rsa"].sign(t, with("aud", "https://elsewhere.example/auth/token")), "system/Task.rs", 401, "invalid_client", "aud must be", nil},
		{"aud of the FHIR base", k["rsa"].sign(t, with("aud", f.srv.URL+"/fhir")), "system/Task.rs", 401, "invalid_client", "aud must be", nil},
		{"expired", k["rsa"].sign(t, with("exp", now.Add(-time.Second).Unix())), "system/Task.rs", 401, "invalid_client", "expired", nil},
		{"exp too far", k["rsa"].sign(t, with("exp", now.Add(10*time.Minute).Unix())), "system/Task.rs", 401, "invalid_client", "more than five minutes", nil},
		{"no exp", k["rsa"].sign(t, with("exp", nil)), "system/Task.rs", 401, "invalid_client", "exp is missing", nil},
		{"no jti", k["rsa"].sign(t, with("jti", nil)), "system/Task.rs", 401, "invalid_client", "jti is missing", nil},
		{"replayed jti", replayed, "system/Task.rs", 401, "invalid_client", "used already", nil},
		{"alg none", none.sign(t, good()), "system/Task.rs", 401, "invalid_client", `alg "none" is not accepted`, nil},
		{"HS256", hs.sign(t, good()), "system/Task.rs", 401, "invalid_client", `alg "HS256" is not accepted`, nil},
		{"iss != sub", k["rsa"].sign(t, with("sub", "clinic-riverside")), "system/Task.rs", 401, "invalid_client", "sub must equal iss", nil},
		{"unknown client", k["rsa"].sign(t, with("iss", "ngo-x")), "system/Task.rs", 401, "invalid_client", "not a client", nil},
		{"a partner without keys", k["rsa"].sign(t, f.claims("ngo-harbour", aud)), "system/Task.rs", 401, "invalid_client", "not a client", nil},
		{"the partner id when the client id differs", k["rsa"].sign(t, f.claims("clinic-riverside", aud)), "system/Task.rs", 401, "invalid_client", "not a client", nil},
		{"tampered claims", tampered, "system/Task.rs", 401, "invalid_client", "signature does not verify", nil},
		{"not a JWS", "abc.def", "system/Task.rs", 401, "invalid_client", "compact form", nil},
		{"scope not allowed", k["rsa"].sign(t, f.claims("riverside-ehr", aud)), "system/Task.u", 400, "invalid_scope", "allowed: system/Task.rs", nil},
		{"v1 scope wider than allowed", k["rsa"].sign(t, f.claims("riverside-ehr", aud)), "system/Task.read system/*.read", 200, "", "", nil},
		{"no scope", k["rsa"].sign(t, good()), "", 400, "invalid_scope", "scope is missing", nil},
		{"another grant", k["rsa"].sign(t, good()), "system/Task.rs", 400, "unsupported_grant_type", "client_credentials", []string{"grant_type", "authorization_code"}},
		{"another assertion type", k["rsa"].sign(t, good()), "system/Task.rs", 400, "invalid_request", "client_assertion_type", []string{"client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := f.tokenRequest(tc.assertion, tc.scope, tc.extra...)
			desc, _ := body["error_description"].(string)
			if status != tc.status || tc.code != "" && (body["error"] != tc.code || !strings.Contains(desc, tc.says)) {
				t.Fatalf("%d %v, want %d %s (%q)", status, body, tc.status, tc.code, tc.says)
			}
			if tc.code != "" && (body["access_token"] != nil || strings.Contains(desc, tc.assertion[:min(len(tc.assertion), 20)])) {
				t.Errorf("an error that carries a token or the assertion: %v", body)
			}
		})
	}
	if st, body, _ := f.tokenRequest(k["rsa"].sign(t, f.claims("riverside-ehr", aud)), "system/Task.read system/*.read"); st != 200 || body["scope"] != "system/Task.read" {
		t.Errorf("v1 scopes: %d %v, want system/Task.read only", st, body)
	}
}

func TestSMARTScopes(t *testing.T) {
	f := smartFixture(t, nil)
	k := smartKeys()
	task := f.tasks["community-garden"][0]
	patch := []byte(`[{"op":"replace","path":"/status","value":"accepted"}]`)
	patchHdr := []string{"Content-Type", "application/json-patch+json"}

	readOnly := f.accessToken(k["rsa"], "community-garden", "system/Task.rs")
	for _, c := range []struct {
		method, path string
		body         []byte
		scope        string
	}{
		{"PATCH", "/fhir/Task/" + task, patch, "system/Task.u"},
		{"GET", "/fhir/Task?_include=Task:focus", nil, "system/ServiceRequest.r"},
		{"GET", "/fhir/Task?_include=Task:patient", nil, "system/Patient.r"},
		{"GET", "/fhir/ServiceRequest/anything", nil, "system/ServiceRequest.r"},
		{"GET", "/fhir/Patient/anything", nil, "system/Patient.r"},
		{"PUT", "/fhir/Consent/anything", []byte(`{}`), "system/Consent.u"},
	} {
		var hdr []string
		if c.method == "PATCH" {
			hdr = patchHdr
		}
		r := f.do(c.method, c.path, readOnly, c.body, hdr...)
		_, text := r.outcome(t)
		if r.status != 403 || !strings.Contains(text, c.scope) || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="insufficient_scope", scope="`+c.scope+`"`) {
			t.Errorf("%s %s with system/Task.rs: %d %q %q, want 403 naming %s", c.method, c.path, r.status, text, r.header.Get("WWW-Authenticate"), c.scope)
		}
	}
	if r := f.do("GET", "/fhir/Task/"+task, readOnly, nil); r.status != 200 {
		t.Errorf("read with system/Task.rs: %d", r.status)
	}
	searchOnly := f.accessToken(k["rsa"], "community-garden", "system/Task.s")
	if r := f.do("GET", "/fhir/Task/"+task, searchOnly, nil); r.status != 403 {
		t.Errorf("read with system/Task.s: %d, want 403", r.status)
	}
	if r := f.do("GET", "/fhir/Task", searchOnly, nil); r.status != 200 {
		t.Errorf("search with system/Task.s: %d", r.status)
	}

	// v1 scopes: system/*.read reads and includes but does not write;
	// system/Task.write writes.
	v1 := f.accessToken(k["ec"], "community-garden", "system/*.read")
	if r := f.do("GET", "/fhir/Task?_include=Task:focus&_include=Task:patient", v1, nil); r.status != 200 {
		t.Errorf("search with includes under system/*.read: %d %s", r.status, r.body)
	}
	if r := f.do("PATCH", "/fhir/Task/"+task, v1, patch, patchHdr...); r.status != 403 {
		t.Errorf("patch under system/*.read: %d, want 403", r.status)
	}
	write := f.accessToken(k["ec"], "community-garden", "system/Task.write")
	if r := f.do("PATCH", "/fhir/Task/"+task, write, patch, patchHdr...); r.status != 200 || taskStatus(t, r) != "accepted" {
		t.Errorf("patch under system/Task.write: %d %s", r.status, r.body)
	}

	// The auditor: its token reads the audit log and nothing else.
	board := f.accessToken(k["auditor"], "advisory-board", "system/AuditEvent.rs")
	if r := f.do("GET", "/fhir/AuditEvent", board, nil); r.status != 200 {
		t.Errorf("auditor's token on AuditEvent: %d %s", r.status, r.body)
	}
	if r := f.do("GET", "/fhir/Task", board, nil); r.status != 403 {
		t.Errorf("auditor's token on Task: %d, want 403", r.status)
	}
	if st, body, _ := f.tokenRequest(k["auditor"].sign(t, f.claims("advisory-board", f.srv.URL+"/auth/token")), "system/Task.rs"); st != 400 || body["error"] != "invalid_scope" {
		t.Errorf("auditor asking for Task scopes: %d %v", st, body)
	}

	// Static tokens keep every scope of their partner's role.
	if r := f.do("GET", "/fhir/Task?_include=Task:focus", tokGarden, nil); r.status != 200 {
		t.Errorf("static token: %d", r.status)
	}

	// An expired access token: 401 invalid_token.
	f.clock.Advance(tokenLife + time.Second)
	r := f.do("GET", "/fhir/Task/"+task, readOnly, nil)
	if code, text := r.outcome(t); r.status != 401 || code != "api-login" || !strings.Contains(text, "expired") || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("expired access token: %d %s %q %q", r.status, code, text, r.header.Get("WWW-Authenticate"))
	}
	// Long after, it is forgotten and still refused.
	f.clock.Advance(2 * time.Hour)
	f.accessToken(k["rsa"], "community-garden", "system/Task.rs") // sweeps
	if r := f.do("GET", "/fhir/Task/"+task, readOnly, nil); r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("long-expired access token: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}
	if _, err := f.st.AccessTokenByHash(t.Context(), sha256.Sum256([]byte(readOnly))); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the long-expired token is still kept after the sweep: %v", err)
	}
}

func TestSMARTDiscovery(t *testing.T) {
	f := smartFixture(t, nil)
	tokenURL := f.srv.URL + "/auth/token"
	r := f.do("GET", "/fhir/metadata", "", nil)
	cs := r.resource(t).GetCapabilityStatement()
	sec := cs.GetRest()[0].GetSecurity()
	if got := sec.GetService()[0].GetCoding()[0].GetCode().GetValue(); got != "SMART-on-FHIR" {
		t.Errorf("security service = %q", got)
	}
	ext := sec.GetExtension()
	if len(ext) != 1 || ext[0].GetUrl().GetValue() != "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris" ||
		ext[0].GetExtension()[0].GetUrl().GetValue() != "token" || ext[0].GetExtension()[0].GetValue().GetUri().GetValue() != tokenURL {
		t.Errorf("oauth-uris extension = %v, want token %s", ext, tokenURL)
	}
	for _, path := range []string{"/fhir/.well-known/smart-configuration", "/.well-known/smart-configuration"} {
		resp, err := http.Get(f.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var conf struct {
			TokenEndpoint string   `json:"token_endpoint"`
			AuthMethods   []string `json:"token_endpoint_auth_methods_supported"`
			Algs          []string `json:"token_endpoint_auth_signing_alg_values_supported"`
			Grants        []string `json:"grant_types_supported"`
			Scopes        []string `json:"scopes_supported"`
		}
		err = json.NewDecoder(resp.Body).Decode(&conf)
		resp.Body.Close()
		got := fmt.Sprint(conf)
		if err != nil || resp.StatusCode != 200 || conf.TokenEndpoint != tokenURL || fmt.Sprint(conf.AuthMethods) != "[private_key_jwt]" ||
			!strings.Contains(got, "RS384") || !strings.Contains(got, "ES384") || fmt.Sprint(conf.Grants) != "[client_credentials]" ||
			!strings.Contains(got, "system/Task.rs") || !strings.Contains(got, "system/AuditEvent.rs") || strings.Contains(got, "none") {
			t.Errorf("%s: %d %v %+v", path, resp.StatusCode, err, conf)
		}
	}
}

// TestSMARTBaseURL: with a public base URL, the aud is its token endpoint
// and nothing the request's Host says.
func TestSMARTBaseURL(t *testing.T) {
	f := smartFixture(t, nil, func(o *Options) { o.BaseURL = "https://pathway.example.org/fhir/" })
	k := smartKeys()
	public := "https://pathway.example.org/auth/token"
	if st, body, _ := f.tokenRequest(k["rsa"].sign(t, f.claims("community-garden", f.srv.URL+"/auth/token")), "system/Task.rs"); st != 401 || !strings.Contains(body["error_description"].(string), public) {
		t.Errorf("aud of the local address: %d %v", st, body)
	}
	if st, body, _ := f.tokenRequest(k["rsa"].sign(t, f.claims("community-garden", public)), "system/Task.rs"); st != 200 {
		t.Errorf("aud of the public URL: %d %v", st, body)
	}
	aud := []string{"https://other.example/auth/token", public}
	if st, body, _ := f.tokenRequest(k["rsa"].sign(t, map[string]any{"iss": "community-garden", "sub": "community-garden", "aud": aud, "exp": f.clock.Now().Add(time.Minute).Unix(), "jti": "list-aud"}), "system/Task.rs"); st != 200 {
		t.Errorf("aud as a list naming the public URL: %d %v", st, body)
	}
	r := f.do("GET", "/fhir/metadata", "", nil)
	if !bytes.Contains(r.body, []byte(`"valueUri":"`+public+`"`)) {
		t.Errorf("metadata does not name %s: %s", public, r.body)
	}
}

func TestGrant(t *testing.T) {
	parse := func(ss ...string) []exchange.Scope {
		var out []exchange.Scope
		for _, s := range ss {
			sc, ok := exchange.ParseScope(s)
			if !ok {
				t.Fatalf("%q", s)
			}
			out = append(out, sc)
		}
		return out
	}
	for _, c := range []struct{ requested, allowed, want string }{
		{"system/Task.rs system/Task.u", "system/Task.rs system/Task.u", "system/Task.rs system/Task.u"},
		{"system/Task.write", "system/Task.rs system/Task.u", "system/Task.u"},
		{"system/*.read", "system/Task.rs system/Task.u system/Patient.r", "system/Task.rs system/Patient.r"},
		{"system/Task.r system/Task.rs", "system/*.read", "system/Task.r system/Task.rs"},
		{"system/Task.rs system/Task.r", "system/*.read", "system/Task.rs"},
		{"system/Task.cud system/AuditEvent.rs patient/Task.rs", "system/Task.rs", ""},
	} {
		got, _ := grant(strings.Fields(c.requested), parse(strings.Fields(c.allowed)...))
		if strings.Join(got, " ") != c.want {
			t.Errorf("grant(%q, %q) = %q, want %q", c.requested, c.allowed, strings.Join(got, " "), c.want)
		}
	}
}

// TestSMARTNeedsBaseURL: with SMART clients the server will not start
// without its public base URL: the assertion's aud would come from the
// caller's Host header.
func TestSMARTNeedsBaseURL(t *testing.T) {
	f := smartFixture(t, nil)
	o := f.s.o
	o.BaseURL = ""
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), "--base-url") {
		t.Errorf("New without a base URL: %v", err)
	}
}

// TestSMARTSharedAcrossProcesses: two servers on one store (two pathway
// serve processes) share the issued tokens and the used assertions.
func TestSMARTSharedAcrossProcesses(t *testing.T) {
	f := smartFixture(t, nil)
	other, err := New(f.s.o)
	if err != nil {
		t.Fatal(err)
	}
	srv2 := httptest.NewServer(other)
	defer srv2.Close()
	defer other.Close(t.Context())
	k := smartKeys()
	assertion := k["rsa"].sign(t, f.claims("community-garden", f.srv.URL+"/auth/token"))
	status, body, _ := f.tokenRequest(assertion, "system/Task.rs")
	tok, _ := body["access_token"].(string)
	if status != 200 || tok == "" {
		t.Fatalf("token: %d %v", status, body)
	}
	req, _ := http.NewRequest("GET", srv2.URL+"/fhir/Task", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("the token issued by one process, at the other: %d", resp.StatusCode)
	}
	// The same assertion at the other process: refused as used.
	form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {assertionType}, "client_assertion": {assertion}, "scope": {"system/Task.rs"}}
	resp, err = http.PostForm(srv2.URL+"/auth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("the assertion replayed at the other process: %d", resp.StatusCode)
	}
}

// TestSMARTTokenEndpointRateLimit: the token endpoint is rate limited by
// address, with 429 and Retry-After.
func TestSMARTTokenEndpointRateLimit(t *testing.T) {
	f := smartFixture(t, nil, func(o *Options) { o.Rate, o.Burst = 1, 2 })
	var codes []int
	for range 3 {
		status, _, hdr := f.tokenRequest("not-a-jwt", "system/Task.rs")
		codes = append(codes, status)
		if status == 429 && hdr.Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After")
		}
	}
	if codes[0] != 401 || codes[1] != 401 || codes[2] != 429 {
		t.Errorf("token requests: %v, want 401 401 429", codes)
	}
}

// TestSMARTTokenRequestsAudited: a token issued and a token refused are
// both in the audit log.
func TestSMARTTokenRequestsAudited(t *testing.T) {
	f := smartFixture(t, nil)
	k := smartKeys()
	f.accessToken(k["rsa"], "community-garden", "system/Task.rs")
	f.tokenRequest("not-a-jwt", "system/Task.rs")
	if err := f.s.Close(t.Context()); err != nil { // flushes the access log
		t.Fatal(err)
	}
	var issued, refused int
	err := f.st.ScanAudit(t.Context(), store.AuditScan{}, func(r store.AuditRecord) error {
		e, err := audit.ParseEntry(r.Data)
		if err != nil || e.Interaction != "operation" {
			return err
		}
		switch {
		case e.Actor == "Organization/community-garden" && e.Effect == audit.EffectPermit:
			issued++
		case e.Actor == "Device/unauthenticated" && e.Effect == audit.EffectDeny:
			refused++
		}
		return nil
	})
	if err != nil || issued != 1 || refused != 1 {
		t.Errorf("token requests in the audit log: %d issued, %d refused, %v", issued, refused, err)
	}
}
