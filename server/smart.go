package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	_ "crypto/sha512" // SHA-384 and SHA-512 for RS384, ES384, RS512, ES512
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pathway-fhir/pathway/exchange"
	"github.com/pathway-fhir/pathway/policy"
	"github.com/pathway-fhir/pathway/store"
)

// SMART Backend Services (HL7 SMART App Launch 2.x, "Backend Services"):
// a partner signs a JWT client assertion with its private key, posts it
// to /auth/token with grant_type=client_credentials, and gets a short
// opaque access token with system scopes.

const (
	// tokenPath is where access tokens are issued, beside /fhir.
	tokenPath = "/auth/token"
	// tokenLife is how long an access token is good for.
	tokenLife = 5 * time.Minute
	// assertionLife is how far ahead a client assertion's exp may be.
	assertionLife = 5 * time.Minute
	// clockSkew is the allowance for the partner's clock on exp, nbf and iat.
	clockSkew = 30 * time.Second
	// assertionType is the only client_assertion_type accepted.
	assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// client is a partner that may get access tokens.
type client struct {
	caller  *caller
	keys    []exchange.APIKey
	allowed []exchange.Scope
	scopes  []string // allowed, as configured
}

// smart holds the clients, the assertions seen (against replay) and the
// access tokens issued, by SHA-256 only.
type smart struct {
	clients map[string]*client // by client id
}

// setupSMART registers every partner with a JWK Set as a client.
func (s *Server) setupSMART() error {
	s.smart = &smart{clients: map[string]*client{}}
	for _, id := range s.cfg.Order {
		link := s.cfg.Partners[id]
		c := s.callers[id]
		if link == nil || c == nil || len(link.APIKeys) == 0 {
			continue
		}
		if s.o.BaseURL == "" {
			// The aud a client assertion must name would otherwise come
			// from the request's Host header, which the caller chooses: an
			// assertion signed for another server could be replayed here.
			return fmt.Errorf("server: partner %s authenticates with SMART Backend Services: set the public base URL (pathway serve --base-url https://.../fhir), which client assertions must name", id)
		}
		if other, dup := s.smart.clients[link.ClientID]; dup {
			return fmt.Errorf("server: partners %s and %s share the client id %q", other.caller.id, id, link.ClientID)
		}
		cl := &client{caller: c, keys: link.APIKeys, scopes: link.Scopes}
		if cl.scopes == nil {
			cl.scopes = exchange.DefaultScopes(link.Kind)
		}
		for _, raw := range cl.scopes {
			sc, ok := exchange.ParseScope(raw)
			if !ok {
				return fmt.Errorf("server: partner %s: %q is not a SMART system scope", id, raw)
			}
			cl.allowed = append(cl.allowed, sc)
		}
		s.smart.clients[link.ClientID] = cl
	}
	return nil
}

// tokenURL is the token endpoint's URL, which client assertions must name
// as their aud: beside the FHIR base (Options.BaseURL without its /fhir).
func (s *Server) tokenURL(r *http.Request) string {
	return strings.TrimSuffix(s.baseURL(r), "/fhir") + tokenPath
}

// tokenError is an RFC 6749 error response. description says what to fix
// and never quotes the assertion or a token.
type tokenError struct {
	status      int
	code        string
	description string
}

func (e *tokenError) Error() string { return e.code + ": " + e.description }

func invalidClient(format string, a ...any) *tokenError {
	return &tokenError{http.StatusUnauthorized, "invalid_client", fmt.Sprintf(format, a...)}
}

// token is POST /auth/token: the client credentials grant with a JWT
// client assertion (RFC 6749 4.4, RFC 7523 2.2 and 3).
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	// The token endpoint is limited by the caller's address (before any
	// assertion is read, a client id would let others lock its owner out).
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if wait, ok := s.limits.allow("token-endpoint " + host); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+0.999)))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		json.NewEncoder(w).Encode(map[string]string{"error": "slow_down", "error_description": "too many token requests from this address: retry after the time in Retry-After"})
		return
	}
	body, err := s.issueToken(w, r)
	// Every token request is in the audit log (as an operation), by the
	// client when its assertion verified, else as unauthenticated.
	who := anonymous
	if sw, ok := w.(*statusWriter); ok && s.callers[sw.partner] != nil {
		who = s.callers[sw.partner]
	}
	effect := policy.Permit
	if err != nil {
		effect = policy.Deny
	}
	s.logAccess(r.Context(), who, "operation", effect)
	if err != nil {
		var te *tokenError
		if !errors.As(err, &te) {
			te = &tokenError{http.StatusBadRequest, "invalid_request", "the request could not be read as a form"}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(te.status)
		json.NewEncoder(w).Encode(map[string]string{"error": te.code, "error_description": te.description})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(body)
}

func (s *Server) issueToken(w http.ResponseWriter, r *http.Request) (map[string]any, error) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return nil, &tokenError{http.StatusBadRequest, "invalid_request", "send the request as application/x-www-form-urlencoded"}
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return nil, err
	}
	form := r.PostForm
	for name, vs := range form {
		if len(vs) > 1 {
			return nil, &tokenError{http.StatusBadRequest, "invalid_request", "parameter " + name + " is sent more than once"}
		}
	}
	if gt := form.Get("grant_type"); gt != "client_credentials" {
		if gt == "" {
			return nil, &tokenError{http.StatusBadRequest, "invalid_request", "grant_type is missing: send grant_type=client_credentials"}
		}
		return nil, &tokenError{http.StatusBadRequest, "unsupported_grant_type", "only grant_type=client_credentials is supported"}
	}
	if form.Get("client_assertion_type") != assertionType {
		return nil, &tokenError{http.StatusBadRequest, "invalid_request", "client_assertion_type must be " + assertionType}
	}
	if form.Get("client_assertion") == "" {
		return nil, &tokenError{http.StatusBadRequest, "invalid_request", "client_assertion is missing: a JWT signed with one of your registered keys"}
	}
	requested := strings.Fields(form.Get("scope"))
	if len(requested) == 0 {
		return nil, &tokenError{http.StatusBadRequest, "invalid_scope", "scope is missing: ask for system scopes such as system/Task.rs"}
	}
	now := s.o.Now()
	cl, jti, exp, err := s.verifyAssertion(form.Get("client_assertion"), s.tokenURL(r), now)
	if err != nil {
		return nil, err
	}
	if sw, ok := w.(*statusWriter); ok {
		sw.partner = cl.caller.id
	}
	// A verified assertion is used up, whatever happens next, in the store
	// that every serve process shares.
	fresh, err := s.o.Store.UseAssertion(r.Context(), cl.caller.id, jti, exp.Add(clockSkew), now)
	if err != nil {
		return nil, s.tokenStoreError(r, err)
	}
	if !fresh {
		return nil, invalidClient("this client assertion (its jti) was used already: sign a new one for every token request")
	}
	granted, _ := grant(requested, cl.allowed)
	if len(granted) == 0 {
		return nil, &tokenError{http.StatusBadRequest, "invalid_scope", "none of the requested scopes is allowed for this client (allowed: " + strings.Join(cl.scopes, " ") + ")"}
	}
	var raw [32]byte
	rand.Read(raw[:])
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	if err := s.o.Store.PutAccessToken(r.Context(), store.AccessToken{Hash: sha256.Sum256([]byte(tok)), Partner: cl.caller.id, Scopes: granted, Expires: now.Add(tokenLife)}); err != nil {
		return nil, s.tokenStoreError(r, err)
	}
	return map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": int(tokenLife.Seconds()), "scope": strings.Join(granted, " ")}, nil
}

// grant intersects the requested scopes with the allowed ones: a
// requested scope an allowed one covers is granted as asked; one that is
// wider (system/*.read, system/Task.write) is granted as far as allowed,
// in v2 form (system/Task.rs, system/Task.u). Unknown scopes are dropped.
func grant(requested []string, allowed []exchange.Scope) (granted []string, scopes []exchange.Scope) {
	covered := func(sc exchange.Scope) bool {
		for _, g := range scopes {
			if g.Covers(sc) {
				return true
			}
		}
		return false
	}
	for _, raw := range requested {
		sc, ok := exchange.ParseScope(raw)
		if !ok || covered(sc) {
			continue
		}
		if slices.ContainsFunc(allowed, func(a exchange.Scope) bool { return a.Covers(sc) }) {
			granted, scopes = append(granted, raw), append(scopes, sc)
			continue
		}
		for _, a := range allowed {
			typ := sc.Type
			if typ == "*" {
				typ = a.Type
			} else if a.Type != "*" && a.Type != typ {
				continue
			}
			var perms strings.Builder
			for _, p := range "cruds" {
				if strings.ContainsRune(sc.Perms, p) && strings.ContainsRune(a.Perms, p) {
					perms.WriteRune(p)
				}
			}
			n := exchange.Scope{Type: typ, Perms: perms.String()}
			if n.Perms != "" && !covered(n) {
				granted, scopes = append(granted, "system/"+n.Type+"."+n.Perms), append(scopes, n)
			}
		}
	}
	return granted, scopes
}

// tokenStoreError logs a store failure of the token endpoint and answers
// it as a server error (RFC 6749 server_error).
func (s *Server) tokenStoreError(r *http.Request, err error) error {
	s.o.Logger.LogAttrs(r.Context(), slog.LevelError, "token endpoint store", slog.String("error", err.Error()))
	return &tokenError{http.StatusInternalServerError, "server_error", "the token could not be recorded: try again"}
}

// lookup finds an access token by its hash in the store (every serve
// process of the database shares them): the caller with the token's
// scopes, or expired when it was issued and is no longer good.
func (s *Server) lookup(ctx context.Context, hash [sha256.Size]byte, now time.Time) (c *caller, expired bool, err error) {
	t, err := s.o.Store.AccessTokenByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if !now.Before(t.Expires) {
		return nil, true, nil
	}
	base := s.callers[t.Partner]
	if base == nil {
		return nil, false, nil // a partner no longer in the configuration
	}
	cc := *base
	cc.scopes = []exchange.Scope{}
	for _, raw := range t.Scopes {
		if sc, ok := exchange.ParseScope(raw); ok {
			cc.scopes = append(cc.scopes, sc)
		}
	}
	return &cc, false, nil
}

// verifyAssertion checks a client assertion (a JWS in compact form) and
// returns its client, jti and exp. Every failure is invalid_client (RFC
// 7523 3.2) with a description that names the claim, never its value.
func (s *Server) verifyAssertion(jwt, aud string, now time.Time) (*client, string, time.Time, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil, "", time.Time{}, invalidClient("client_assertion is not a JWS in compact form (header.payload.signature)")
	}
	dec := func(p string) ([]byte, bool) {
		b, err := base64.RawURLEncoding.Strict().DecodeString(p)
		return b, err == nil
	}
	hb, ok1 := dec(parts[0])
	pb, ok2 := dec(parts[1])
	sig, ok3 := dec(parts[2])
	if !ok1 || !ok2 || !ok3 {
		return nil, "", time.Time{}, invalidClient("client_assertion is not base64url (without padding) in each part")
	}
	var hdr struct {
		Alg  string   `json:"alg"`
		Kid  string   `json:"kid"`
		Typ  string   `json:"typ"`
		Jku  string   `json:"jku"`
		Crit []string `json:"crit"`
	}
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return nil, "", time.Time{}, invalidClient("the client assertion's header is not a JSON object")
	}
	var claims struct {
		Iss string          `json:"iss"`
		Sub string          `json:"sub"`
		Aud json.RawMessage `json:"aud"`
		Exp *float64        `json:"exp"`
		Nbf *float64        `json:"nbf"`
		Iat *float64        `json:"iat"`
		Jti string          `json:"jti"`
	}
	if err := json.Unmarshal(pb, &claims); err != nil {
		return nil, "", time.Time{}, invalidClient("the client assertion's claims are not a JSON object of the expected types")
	}
	cl := s.smart.clients[claims.Iss]
	if claims.Iss == "" || cl == nil {
		return nil, "", time.Time{}, invalidClient("iss is not a client of this server: the client id is the partner's api.client_id (default: its partner id)")
	}
	alg, ok := exchange.SigningAlgs[hdr.Alg]
	if !ok {
		return nil, "", time.Time{}, invalidClient("alg %q is not accepted: sign with RS384 or ES384 (or RS256, RS512, ES256, ES512)", printable(hdr.Alg))
	}
	if hdr.Jku != "" || len(hdr.Crit) > 0 {
		return nil, "", time.Time{}, invalidClient("jku and crit are not supported: keys are registered with the network operator (api.jwks_file)")
	}
	if hdr.Typ != "" && !strings.EqualFold(hdr.Typ, "JWT") {
		return nil, "", time.Time{}, invalidClient("typ must be JWT")
	}
	var key *exchange.APIKey
	for i := range cl.keys {
		if cl.keys[i].KID == hdr.Kid && hdr.Kid != "" {
			key = &cl.keys[i]
		}
	}
	if key == nil {
		return nil, "", time.Time{}, invalidClient("kid does not name a key registered for this client")
	}
	if key.Alg != "" && key.Alg != hdr.Alg {
		return nil, "", time.Time{}, invalidClient("the key named by kid is registered for %s, not %s", key.Alg, hdr.Alg)
	}
	if !verifySignature(hdr.Alg, alg.Curve, key.Key, []byte(parts[0]+"."+parts[1]), sig) {
		return nil, "", time.Time{}, invalidClient("the signature does not verify with the key named by kid")
	}
	// Signed by the client: now its claims.
	if claims.Sub != claims.Iss {
		return nil, "", time.Time{}, invalidClient("sub must equal iss: both are your client id")
	}
	if !audience(claims.Aud, aud) {
		return nil, "", time.Time{}, invalidClient("aud must be this server's token endpoint, %s", aud)
	}
	if claims.Exp == nil || !(*claims.Exp > 0 && *claims.Exp < 1e11) {
		return nil, "", time.Time{}, invalidClient("exp is missing or not a time (seconds since 1970)")
	}
	exp := time.UnixMilli(int64(*claims.Exp * 1000))
	if !now.Before(exp) {
		return nil, "", time.Time{}, invalidClient("the client assertion has expired (exp): sign a new one")
	}
	if exp.Sub(now) > assertionLife+clockSkew {
		return nil, "", time.Time{}, invalidClient("exp is more than five minutes ahead")
	}
	if claims.Nbf != nil && time.Unix(int64(*claims.Nbf), 0).After(now.Add(clockSkew)) {
		return nil, "", time.Time{}, invalidClient("the client assertion is not valid yet (nbf)")
	}
	if claims.Iat != nil && time.Unix(int64(*claims.Iat), 0).After(now.Add(clockSkew)) {
		return nil, "", time.Time{}, invalidClient("iat is in the future")
	}
	if claims.Jti == "" {
		return nil, "", time.Time{}, invalidClient("jti is missing: a unique id for every assertion")
	}
	if len(claims.Jti) > 256 {
		return nil, "", time.Time{}, invalidClient("jti is longer than 256 characters")
	}
	return cl, claims.Jti, exp, nil
}

// audience reports whether aud (a string or an array of strings) names want.
func audience(raw json.RawMessage, want string) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == want
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		return slices.Contains(many, want)
	}
	return false
}

// verifySignature checks a JWS signature: RSASSA-PKCS1-v1_5 or ECDSA
// (r || s, each the curve's size) over SHA-256, -384 or -512.
func verifySignature(alg, curve string, key crypto.PublicKey, signed, sig []byte) bool {
	h := map[string]crypto.Hash{"256": crypto.SHA256, "384": crypto.SHA384, "512": crypto.SHA512}[alg[2:]]
	d := h.New()
	d.Write(signed)
	digest := d.Sum(nil)
	switch k := key.(type) {
	case *rsa.PublicKey:
		return alg[:2] == "RS" && rsa.VerifyPKCS1v15(k, h, digest, sig) == nil
	case *ecdsa.PublicKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		if alg[:2] != "ES" || k.Curve.Params().Name != curve || len(sig) != 2*size {
			return false
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(k, digest, r, s)
	}
	return false
}

// printable shortens a client-sent value for an error description.
func printable(s string) string {
	if len(s) > 16 {
		s = s[:16]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

// smartConfiguration is GET /.well-known/smart-configuration.
func (s *Server) smartConfiguration(w http.ResponseWriter, r *http.Request) {
	var scopes []string
	for _, id := range s.cfg.Order {
		if link := s.cfg.Partners[id]; link != nil {
			sc := link.Scopes
			if sc == nil {
				sc = exchange.DefaultScopes(link.Kind)
			}
			for _, x := range sc {
				if !slices.Contains(scopes, x) {
					scopes = append(scopes, x)
				}
			}
		}
	}
	if len(scopes) == 0 {
		scopes = exchange.DefaultScopes("")
	}
	slices.Sort(scopes)
	algs := []string{"ES384", "RS384", "ES256", "ES512", "RS256", "RS512"}
	doc := map[string]any{
		"token_endpoint":                                   s.tokenURL(r),
		"token_endpoint_auth_methods_supported":            []string{"private_key_jwt"},
		"token_endpoint_auth_signing_alg_values_supported": algs,
		"grant_types_supported":                            []string{"client_credentials"},
		"scopes_supported":                                 scopes,
		"capabilities":                                     []string{"client-confidential-asymmetric", "permission-v1", "permission-v2"},
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(doc)
}

// capFor returns the CapabilityStatement with this request's token URL
// when the server was not given its BaseURL.
func (s *Server) capFor(r *http.Request) []byte {
	if s.o.BaseURL != "" {
		return s.cap
	}
	u, _ := json.Marshal(s.tokenURL(r))
	return bytes.ReplaceAll(s.cap, []byte(`"`+tokenPlaceholder+`"`), u)
}

// tokenPlaceholder stands for the token URL in the CapabilityStatement
// until a request says the server's host.
const tokenPlaceholder = "https://pathway.invalid/auth/token"
