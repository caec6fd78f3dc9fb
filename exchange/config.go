package exchange

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pathway-fhir/pathway/policy"
)

// Config is the whole pathway.yaml: the policy parts (network, partners
// with their agreements, labels, value sets; see package policy) and the
// parts exchange owns: each partner's endpoint, authentication, TLS and
// services, the routes, the routing levels, the retry policy, the store
// and the signing key.
type Config struct {
	File string
	// Raw is the exact bytes the configuration was parsed from: the audit
	// log keeps them as an input of every decision.
	Raw []byte
	// Policy is the policy part, read by policy.ParseConfig.
	Policy *policy.Config
	// Partners holds what exchange needs of each partner, by id.
	Partners map[string]*PartnerLink
	// Order lists partner ids in the order of the file.
	Order   []string
	Routes  []RouteRule
	Routing RoutingRules
	Retry   RetrySettings
	// StoreURL is the store (default: $PATHWAY_DATABASE_URL, else ./pathway.db).
	StoreURL   string
	SigningKey SecretRef
}

// PartnerLink is how Pathway reaches one partner and what it offers.
type PartnerLink struct {
	ID       string
	Kind     string
	Endpoint string // FHIR base URL; empty: the partner pulls from Pathway's API
	Auth     AuthSettings
	TLS      TLSSettings
	Services Service
	// APITokens are the SHA-256 hashes of the bearer tokens the partner
	// calls Pathway's FHIR API with (partners[].api.token_sha256); the
	// tokens themselves are never stored.
	APITokens [][sha256.Size]byte
	// ClientID is the partner's SMART Backend Services client id
	// (partners[].api.client_id; default: the partner id).
	ClientID string
	// JWKSFile is partners[].api.jwks_file as written.
	JWKSFile string
	// APIKeys are the public keys of partners[].api.jwks_file, which the
	// partner signs its SMART client assertions with. None: the partner
	// cannot get an access token.
	APIKeys []APIKey
	// Scopes are the SMART system scopes the partner may be granted
	// (partners[].api.scopes; nil: DefaultScopes of its kind).
	Scopes []string
}

// APIKey is one public key of a partner's JWK Set.
type APIKey struct {
	KID string
	// Alg is the JWK's alg, when the set names one ("" allows every
	// algorithm of the key's type).
	Alg string
	// Key is an *rsa.PublicKey or an *ecdsa.PublicKey.
	Key crypto.PublicKey
}

// SigningAlgs are the JWS algorithms a client assertion may be signed
// with (SMART requires RS384 and ES384), with the key type and, for
// ECDSA, the curve each needs.
var SigningAlgs = map[string]struct {
	Kty   string
	Curve string
}{
	"RS256": {"RSA", ""}, "RS384": {"RSA", ""}, "RS512": {"RSA", ""},
	"ES256": {"EC", "P-256"}, "ES384": {"EC", "P-384"}, "ES512": {"EC", "P-521"},
}

// ParseJWKS reads a JWK Set of public signing keys. Every problem of every
// key is reported; a private key in the set is refused (never echoed).
func ParseJWKS(data []byte) ([]APIKey, []string) {
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, []string{"not a JWK Set (a JSON object with keys): " + yamlQuoted.ReplaceAllString(err.Error(), "a value")}
	}
	if len(set.Keys) == 0 {
		return nil, []string{"the JWK Set has no keys"}
	}
	var keys []APIKey
	var problems []string
	seen := map[string]bool{}
	for i, k := range set.Keys {
		str := func(name string) string { v, _ := k[name].(string); return v }
		fail := func(msg string) { problems = append(problems, fmt.Sprintf("keys[%d]: %s", i, msg)) }
		kid, kty, alg := str("kid"), str("kty"), str("alg")
		switch {
		case kid == "":
			fail("a key needs a kid (client assertions name their key by kid)")
			continue
		case seen[kid]:
			fail(fmt.Sprintf("kid %q is used twice", kid))
			continue
		}
		seen[kid] = true
		if _, private := k["d"]; private {
			fail(fmt.Sprintf("key %q holds a private key: register the public key only, and keep the private key with the partner", kid))
			continue
		}
		if u := str("use"); u != "" && u != "sig" {
			fail(fmt.Sprintf("key %q has use %q: client assertion keys are sig keys", kid, u))
			continue
		}
		if ops, ok := k["key_ops"].([]any); ok && !slices.Contains(ops, any("verify")) {
			fail(fmt.Sprintf("key %q: key_ops does not allow verify", kid))
			continue
		}
		if a, ok := SigningAlgs[alg]; alg != "" && (!ok || a.Kty != kty) {
			fail(fmt.Sprintf("key %q: alg %q is not a signing algorithm for a %s key (supported: RS256, RS384, RS512, ES256, ES384, ES512)", kid, alg, kty))
			continue
		}
		b64 := func(name string) []byte {
			b, err := base64.RawURLEncoding.DecodeString(str(name))
			if err != nil || len(b) == 0 {
				fail(fmt.Sprintf("key %q: %s is not base64url", kid, name))
				return nil
			}
			return b
		}
		switch kty {
		case "RSA":
			n, e := b64("n"), b64("e")
			if n == nil || e == nil {
				continue
			}
			pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n)}
			if len(e) > 4 || new(big.Int).SetBytes(e).Int64() < 3 {
				fail(fmt.Sprintf("key %q: e is not a usable RSA exponent", kid))
				continue
			}
			pub.E = int(new(big.Int).SetBytes(e).Int64())
			if pub.N.BitLen() < 2048 {
				fail(fmt.Sprintf("key %q: an RSA key of %d bits: 2048 at least", kid, pub.N.BitLen()))
				continue
			}
			keys = append(keys, APIKey{KID: kid, Alg: alg, Key: pub})
		case "EC":
			curve := map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}[str("crv")]
			if curve == nil {
				fail(fmt.Sprintf("key %q: crv %q: P-256, P-384 or P-521", kid, str("crv")))
				continue
			}
			if a, ok := SigningAlgs[alg]; ok && a.Curve != str("crv") {
				fail(fmt.Sprintf("key %q: alg %s needs curve %s, not %s", kid, alg, a.Curve, str("crv")))
				continue
			}
			x, y := b64("x"), b64("y")
			size := (curve.Params().BitSize + 7) / 8
			if x == nil || y == nil {
				continue
			}
			if len(x) != size || len(y) != size {
				fail(fmt.Sprintf("key %q: x and y must be %d bytes each for %s", kid, size, str("crv")))
				continue
			}
			pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
			if err != nil {
				fail(fmt.Sprintf("key %q: not a point of %s", kid, str("crv")))
				continue
			}
			keys = append(keys, APIKey{KID: kid, Alg: alg, Key: pub})
		default:
			fail(fmt.Sprintf("key %q: kty %q: RSA or EC", kid, kty))
		}
	}
	return keys, problems
}

// Scope is a SMART system scope: a resource type (or *) and the
// interactions it allows, as SMART v2 letters (c, r, u, d, s).
type Scope struct {
	Type  string
	Perms string
}

var scopeForm = regexp.MustCompile(`^system/(\*|[A-Z][A-Za-z]+)\.(read|write|\*|c?r?u?d?s?)$`)

// ParseScope reads a SMART system scope: v2 (system/Task.rs) or v1
// (system/Task.read, .write, .*). Patient and user scopes and v2
// granular scopes (with ?query) are not system scopes of this server.
func ParseScope(s string) (Scope, bool) {
	m := scopeForm.FindStringSubmatch(s)
	if m == nil || m[2] == "" {
		return Scope{}, false
	}
	perms := map[string]string{"read": "rs", "write": "cud", "*": "cruds"}[m[2]]
	if perms == "" {
		perms = m[2]
	}
	return Scope{Type: m[1], Perms: perms}, true
}

// Covers reports whether sc allows everything o does.
func (sc Scope) Covers(o Scope) bool {
	if sc.Type != "*" && sc.Type != o.Type {
		return false
	}
	for _, p := range o.Perms {
		if !strings.ContainsRune(sc.Perms, p) {
			return false
		}
	}
	return true
}

// DefaultScopes are the scopes a partner of kind may be granted when its
// api.scopes is left out: its referral work for partners, the audit log
// for auditors.
func DefaultScopes(kind string) []string {
	if kind == string(policy.KindAuditor) {
		return []string{"system/AuditEvent.rs"}
	}
	return []string{"system/Task.rs", "system/Task.u", "system/ServiceRequest.r", "system/ServiceRequest.c", "system/Patient.r", "system/Consent.r", "system/Consent.u",
		"system/QuestionnaireResponse.r", "system/Flag.r", "system/Observation.r"}
}

// SecretRef names where a secret is read from: an environment variable or
// a file. Secrets are never written in the configuration itself.
type SecretRef struct {
	Env  string `yaml:"env"`
	File string `yaml:"file"`
	// inline is set when the file wrote the secret itself: a problem
	// reported once, by the key check, and never kept.
	inline bool
}

// IsZero reports whether no source is named.
func (s SecretRef) IsZero() bool { return s.Env == "" && s.File == "" && !s.inline }

// UnmarshalYAML reads {env: ..., file: ...}; a plain value (the secret
// itself) is not kept.
func (s *SecretRef) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = SecretRef{inline: true}
		return nil
	}
	type plain SecretRef
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*s = SecretRef(p)
	return nil
}

// AuthSettings is how Pathway authenticates to a partner's FHIR server.
type AuthSettings struct {
	// Type is none (default), bearer or oauth2 (client credentials).
	Type string `yaml:"type"`
	// Token is the bearer token's source.
	Token SecretRef `yaml:"token"`
	// TokenURL, ClientID, ClientSecret and Scope are for oauth2.
	TokenURL     string    `yaml:"token_url"`
	ClientID     string    `yaml:"client_id"`
	ClientSecret SecretRef `yaml:"client_secret"`
	Scope        string    `yaml:"scope"`
}

// TLSSettings configure the connection to a partner.
type TLSSettings struct {
	CAFile     string `yaml:"ca_file"`
	CertFile   string `yaml:"cert_file"` // client certificate, for mutual TLS
	KeyFile    string `yaml:"key_file"`
	ServerName string `yaml:"server_name"`
}

// RouteRule offers candidate partners for referrals: from the listed
// sources (any when empty), asking for one of the listed services (any
// when empty), to the listed partners in order of preference, for a
// purpose of use.
type RouteRule struct {
	Name     string   `yaml:"name"`
	From     []string `yaml:"from"`
	Services []string `yaml:"services"`
	To       []string `yaml:"to"`
	// Purpose is the v3 PurposeOfUse code the referral is sent for
	// (default COC, coordination of care).
	Purpose string `yaml:"purpose"`
}

// RetrySettings bound delivery.
type RetrySettings struct {
	MaxAttempts int           `yaml:"max_attempts"`
	Base        time.Duration `yaml:"base"`
	Max         time.Duration `yaml:"max"`
	Timeout     time.Duration `yaml:"timeout"`
	Lease       time.Duration `yaml:"lease"`
}

// Policy returns the retry policy.
func (r RetrySettings) Policy() RetryPolicy {
	return RetryPolicy{MaxAttempts: r.MaxAttempts, Base: r.Base, Max: r.Max}
}

// DefaultRetry is used for what retry: leaves out.
var DefaultRetry = RetrySettings{MaxAttempts: 30, Base: time.Second, Max: time.Hour, Timeout: 30 * time.Second, Lease: 2 * time.Minute}

// Problem is a configuration problem, as package policy reports them.
type Problem = policy.ConfigProblem

// ConfigError lists every problem of a configuration file.
type ConfigError = policy.ConfigError

// exchangeDoc is the part of the document exchange decodes.
type exchangeDoc struct {
	Partners []struct {
		ID       string       `yaml:"id"`
		Kind     string       `yaml:"kind"`
		Endpoint string       `yaml:"endpoint"`
		Auth     AuthSettings `yaml:"auth"`
		TLS      TLSSettings  `yaml:"tls"`
		Services Service      `yaml:"services"`
		API      struct {
			TokenSHA256 []string `yaml:"token_sha256"`
			ClientID    string   `yaml:"client_id"`
			JWKSFile    string   `yaml:"jwks_file"`
			Scopes      []string `yaml:"scopes"`
		} `yaml:"api"`
	} `yaml:"partners"`
	Routes  []RouteRule   `yaml:"routes"`
	Routing *RoutingRules `yaml:"routing"`
	Retry   *struct {
		MaxAttempts int    `yaml:"max_attempts"`
		Base        string `yaml:"base"`
		Max         string `yaml:"max"`
		Timeout     string `yaml:"timeout"`
		Lease       string `yaml:"lease"`
	} `yaml:"retry"`
	Store *struct {
		URL string `yaml:"url"`
	} `yaml:"store"`
	SigningKey *SecretRef `yaml:"signing_key"`
}

// keys each mapping may hold, by the path of the mapping ("" is the top;
// partners[] an element of partners). Keys package policy owns are listed
// so that they are not reported here.
var knownKeys = map[string][]string{
	"":                              {"network", "partners", "labels", "value_sets", "routes", "routing", "retry", "store", "signing_key"},
	"partners[]":                    {"id", "name", "kind", "identifiers", "agreement", "endpoint", "auth", "tls", "services", "api"},
	"partners[].api":                {"token_sha256", "client_id", "jwks_file", "scopes"},
	"partners[].auth":               {"type", "token", "token_url", "client_id", "client_secret", "scope"},
	"partners[].auth.token":         {"env", "file"},
	"partners[].auth.client_secret": {"env", "file"},
	"partners[].tls":                {"ca_file", "cert_file", "key_file", "server_name"},
	"partners[].services":           {"specialist", "categories", "languages", "interpreters", "link_worker_sexes", "formats", "catchment", "capacity"},
	"routes[]":                      {"name", "from", "services", "to", "purpose"},
	"routing":                       {"triage_levels", "risk_flags", "priorities"},
	"retry":                         {"max_attempts", "base", "max", "timeout", "lease"},
	"store":                         {"url"},
	"signing_key":                   {"env", "file"},
}

// secretKeys are keys that would put a secret in the file itself.
var secretKeys = map[string]string{
	"password": "", "secret": "", "token_value": "", "access_token": "", "private_key": "", "api_key": "",
}

// ParseConfig reads a whole pathway.yaml. Every problem is reported, with
// file:line:col, as a *ConfigError: YAML errors, unknown keys, inline
// secrets, unknown partners in routes, route purposes no agreement of the
// target allows, plain http endpoints outside loopback, and everything
// package policy checks.
func ParseConfig(file string, data []byte) (*Config, error) {
	var problems []Problem
	pol, err := policy.ParseConfig(file, data)
	if err != nil {
		ce, ok := err.(*policy.ConfigError)
		if !ok {
			return nil, err
		}
		problems = append(problems, ce.Problems...)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		// policy reported the syntax error already.
		return nil, &ConfigError{Problems: problems}
	}
	c := &checker{file: file}
	var doc exchangeDoc
	if len(root.Content) > 0 {
		c.keys(root.Content[0], "", "")
		if err := root.Content[0].Decode(&doc); err != nil {
			c.decodeError(err)
		}
	}
	cfg := &Config{File: file, Raw: bytes.Clone(data), Policy: pol, Partners: map[string]*PartnerLink{}, Routing: DefaultRoutingRules(), Retry: DefaultRetry}
	c.exchange(&doc, cfg, root.Content)
	problems = append(problems, c.problems...)
	if len(problems) > 0 {
		sort.SliceStable(problems, func(i, j int) bool {
			if problems[i].Line != problems[j].Line {
				return problems[i].Line < problems[j].Line
			}
			return problems[i].Col < problems[j].Col
		})
		return nil, &ConfigError{Problems: dedupeProblems(problems)}
	}
	return cfg, nil
}

var (
	yamlTypeLine = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlQuoted   = regexp.MustCompile("`[^`]*`")
	goTypeName   = regexp.MustCompile(`into (\[\])?[a-z]+\.([A-Za-z]+)`)
)

// decodeError reports yaml's type errors by line, without the values
// they quote (one could be a secret written in the wrong place).
func (c *checker) decodeError(err error) {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		c.fail(nil, "", "cannot read the file: "+yamlQuoted.ReplaceAllString(err.Error(), "a value"))
		return
	}
	for _, e := range te.Errors {
		p := Problem{File: c.file}
		if m := yamlTypeLine.FindStringSubmatch(e); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
			p.Col = 1
			e = m[2]
		}
		e = yamlQuoted.ReplaceAllString(e, "a value")
		e = goTypeName.ReplaceAllString(e, "into ${1}${2}")
		p.Message = "wrong type: " + e
		c.problems = append(c.problems, p)
	}
}

func dedupeProblems(ps []Problem) []Problem {
	out := ps[:0:0]
	for _, p := range ps {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

type checker struct {
	file     string
	problems []Problem
	// at records the node of each decoded path, for later checks.
	at map[string]*yaml.Node
}

func (c *checker) fail(n *yaml.Node, path, msg string) {
	p := Problem{File: c.file, Path: path, Message: msg}
	if n != nil {
		p.Line, p.Col = n.Line, n.Column
	}
	c.problems = append(c.problems, p)
}

// keys walks the mappings exchange owns, reports unknown keys and inline
// secrets, and records where each path was written. shape is the path
// with list indexes as [] ("partners[].auth"), path the real one.
func (c *checker) keys(n *yaml.Node, shape, path string) {
	if c.at == nil {
		c.at = map[string]*yaml.Node{}
	}
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil {
		return
	}
	c.at[path] = n
	switch n.Kind {
	case yaml.MappingNode:
		known, owned := knownKeys[shape]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			kp := join(path, k.Value)
			c.at[kp] = k
			if _, bad := secretKeys[k.Value]; bad || (v.Kind == yaml.ScalarNode && secretRef(shape, k.Value)) {
				c.fail(k, kp, "a secret is written in the file: name where it is read from instead ("+k.Value+": {env: VARIABLE} or {file: /path})")
				continue
			}
			if owned && !slices.Contains(known, k.Value) {
				if shape != "" && shape != "partners[]" { // package policy reports those levels
					c.fail(k, kp, fmt.Sprintf("unknown key %q: expected one of %s", k.Value, strings.Join(known, ", ")))
				}
				continue
			}
			c.keys(v, join(shape, k.Value), kp)
		}
	case yaml.SequenceNode:
		for i, e := range n.Content {
			c.keys(e, shape+"[]", fmt.Sprintf("%s[%d]", path, i))
		}
	}
}

// secretRef reports whether key, in the mapping at shape, names where a
// secret is read from (a SecretRef): a plain value there is the secret.
func secretRef(shape, key string) bool {
	switch {
	case shape == "" && key == "signing_key":
		return true
	case strings.HasPrefix(shape, "partners[].auth") && (key == "token" || key == "client_secret"):
		return true
	}
	return false
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (c *checker) failAt(path, msg string) {
	for p := path; ; {
		if n, ok := c.at[p]; ok {
			c.fail(n, path, msg)
			return
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			c.fail(nil, path, msg)
			return
		}
		p = p[:i]
	}
}

func (c *checker) exchange(doc *exchangeDoc, cfg *Config, _ []*yaml.Node) {
	for i, p := range doc.Partners {
		path := fmt.Sprintf("partners[%d]", i)
		if p.ID == "" {
			continue // policy reports it
		}
		link := &PartnerLink{ID: p.ID, Kind: p.Kind, Endpoint: p.Endpoint, Auth: p.Auth, TLS: p.TLS, Services: p.Services}
		for j, h := range p.API.TokenSHA256 {
			sum, err := hex.DecodeString(strings.TrimPrefix(h, "sha256:"))
			if err != nil || len(sum) != sha256.Size {
				c.failAt(fmt.Sprintf("%s.api.token_sha256[%d]", path, j), "not a SHA-256 of a token (sha256: and 64 hex digits, printed by pathway keys token)")
				continue
			}
			link.APITokens = append(link.APITokens, [sha256.Size]byte(sum))
		}
		c.smart(path+".api", p.API.ClientID, p.API.JWKSFile, p.API.Scopes, link, cfg)
		link.Services.Kind = p.Kind
		if _, dup := cfg.Partners[p.ID]; !dup {
			cfg.Partners[p.ID] = link
			cfg.Order = append(cfg.Order, p.ID)
		}
		if p.Endpoint != "" {
			c.endpoint(path+".endpoint", p.Endpoint)
		}
		c.auth(path+".auth", p.Auth, p.Endpoint)
		if (p.TLS.CertFile == "") != (p.TLS.KeyFile == "") {
			c.failAt(path+".tls", "cert_file and key_file go together (a client certificate and its key)")
		}
		for j, s := range p.Services.LinkWorkerSexes {
			if s != "female" && s != "male" {
				c.failAt(fmt.Sprintf("%s.services.link_worker_sexes[%d]", path, j), "must be female or male")
			}
		}
		for j, s := range p.Services.Formats {
			if s != "individual" && s != "group" {
				c.failAt(fmt.Sprintf("%s.services.formats[%d]", path, j), "must be individual or group")
			}
		}
		if p.Services.Capacity < 0 {
			c.failAt(path+".services.capacity", "must be 0 (no limit) or more")
		}
	}
	purposesOf := func(id string) []string {
		if cfg.Policy == nil {
			return nil
		}
		if pp := cfg.Policy.Partner(id); pp != nil {
			return pp.Agreement.Purposes
		}
		return nil
	}
	for i, r := range doc.Routes {
		path := fmt.Sprintf("routes[%d]", i)
		if len(r.To) == 0 {
			c.failAt(path, "a route needs to: the partners it may send to")
		}
		if r.Purpose == "" {
			r.Purpose = "COC"
		}
		for j, id := range r.From {
			if _, ok := cfg.Partners[id]; !ok {
				c.failAt(fmt.Sprintf("%s.from[%d]", path, j), fmt.Sprintf("unknown partner %q: add it under partners or fix the id", id))
			}
		}
		for j, id := range r.To {
			link, ok := cfg.Partners[id]
			switch {
			case !ok:
				c.failAt(fmt.Sprintf("%s.to[%d]", path, j), fmt.Sprintf("unknown partner %q: add it under partners or fix the id", id))
			case link.Kind == string(policy.KindAuditor):
				c.failAt(fmt.Sprintf("%s.to[%d]", path, j), fmt.Sprintf("partner %q is an auditor: auditors receive no referrals", id))
			case cfg.Policy != nil && !purposeAllowed(purposesOf(id), r.Purpose):
				c.failAt(fmt.Sprintf("%s.to[%d]", path, j), fmt.Sprintf("purpose %s is not in partner %q's agreement: nothing could ever be sent on this route; add the purpose to the agreement or change the route's purpose", r.Purpose, id))
			}
		}
		cfg.Routes = append(cfg.Routes, r)
	}
	if doc.Routing != nil {
		rr := cfg.Routing
		for what, m := range map[string]map[string]string{"triage_levels": doc.Routing.TriageLevels, "risk_flags": doc.Routing.RiskFlags, "priorities": doc.Routing.Priorities} {
			for k, v := range m {
				if _, ok := ParseRisk(v); !ok || v == "unknown" {
					c.failAt("routing."+what+"."+k, fmt.Sprintf("level %q: must be low, moderate, high or imminent", v))
				}
			}
		}
		for k, v := range doc.Routing.TriageLevels {
			rr.TriageLevels[k] = v
		}
		for k, v := range doc.Routing.RiskFlags {
			rr.RiskFlags[k] = v
		}
		for k, v := range doc.Routing.Priorities {
			rr.Priorities[k] = v
		}
		cfg.Routing = rr
	}
	if r := doc.Retry; r != nil {
		if r.MaxAttempts < 0 {
			c.failAt("retry.max_attempts", "must be 1 or more")
		} else if r.MaxAttempts > 0 {
			cfg.Retry.MaxAttempts = r.MaxAttempts
		}
		for key, dst := range map[string]*time.Duration{"base": &cfg.Retry.Base, "max": &cfg.Retry.Max, "timeout": &cfg.Retry.Timeout, "lease": &cfg.Retry.Lease} {
			v := map[string]string{"base": r.Base, "max": r.Max, "timeout": r.Timeout, "lease": r.Lease}[key]
			if v == "" {
				continue
			}
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				c.failAt("retry."+key, fmt.Sprintf("%q is not a positive duration (write 30s, 5m, 1h)", v))
				continue
			}
			*dst = d
		}
		if cfg.Retry.Lease <= cfg.Retry.Timeout {
			c.failAt("retry.lease", fmt.Sprintf("the lease (%s) must outlast the request timeout (%s), or two workers could send one message at once", cfg.Retry.Lease, cfg.Retry.Timeout))
		}
	}
	if doc.Store != nil {
		cfg.StoreURL = doc.Store.URL
	}
	if doc.SigningKey != nil {
		cfg.SigningKey = *doc.SigningKey
		if cfg.SigningKey.Env != "" && cfg.SigningKey.File != "" {
			c.failAt("signing_key", "name one source: env or file")
		}
	}
}

// smart reads a partner's SMART Backend Services keys: its client id
// (unique in the network), its JWK Set (read now, relative to the
// configuration file's folder) and its scopes.
func (c *checker) smart(path, clientID, jwksFile string, scopes []string, link *PartnerLink, cfg *Config) {
	link.ClientID, link.JWKSFile = clientID, jwksFile
	if link.ClientID == "" {
		link.ClientID = link.ID
	}
	for _, other := range cfg.Order {
		if o := cfg.Partners[other]; jwksFile != "" && o != nil && o.ID != link.ID && o.JWKSFile != "" && o.ClientID == link.ClientID {
			c.failAt(path+".client_id", fmt.Sprintf("client id %q is partner %q's too: client ids are unique in the network", link.ClientID, o.ID))
		}
	}
	if jwksFile != "" {
		name := jwksFile
		if !filepath.IsAbs(name) {
			name = filepath.Join(filepath.Dir(c.file), name)
		}
		data, err := os.ReadFile(name)
		if err != nil {
			c.failAt(path+".jwks_file", fmt.Sprintf("cannot read the JWK Set %s: %v", name, errors.Unwrap(err)))
		} else {
			keys, problems := ParseJWKS(data)
			for _, p := range problems {
				c.failAt(path+".jwks_file", name+": "+p)
			}
			link.APIKeys = keys
		}
	} else if clientID != "" || scopes != nil {
		c.failAt(path, "client_id and scopes are for SMART access tokens: name the partner's public keys in jwks_file")
	}
	for j, sc := range scopes {
		if _, ok := ParseScope(sc); !ok {
			c.failAt(fmt.Sprintf("%s.scopes[%d]", path, j), fmt.Sprintf("%q is not a SMART system scope (system/Task.rs, system/Task.u, system/*.read...)", sc))
			continue
		}
		link.Scopes = append(link.Scopes, sc)
	}
	if scopes != nil && link.Scopes == nil {
		link.Scopes = []string{}
	}
}

func (c *checker) endpoint(path, raw string) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		c.failAt(path, "not an absolute http(s) URL")
		return
	}
	if u.User != nil {
		c.failAt(path, "credentials in the URL: use auth instead")
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		c.failAt(path, "plain http to a partner outside this machine: use https (personal data must not cross the network unencrypted)")
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *checker) auth(path string, a AuthSettings, endpoint string) {
	switch a.Type {
	case "", "none":
	case "bearer":
		if a.Token.IsZero() {
			c.failAt(path+".token", "a bearer token needs its source: token: {env: VARIABLE} or {file: /path}")
		}
	case "oauth2":
		if a.TokenURL == "" || a.ClientID == "" || a.ClientSecret.IsZero() {
			c.failAt(path, "oauth2 needs token_url, client_id and client_secret: {env: ...} or {file: ...}")
		}
		if a.TokenURL != "" {
			c.endpoint(path+".token_url", a.TokenURL)
		}
	default:
		c.failAt(path+".type", fmt.Sprintf("unknown auth type %q: none, bearer or oauth2", a.Type))
	}
	if a.Type != "" && a.Type != "none" && endpoint == "" {
		c.failAt(path, "auth without an endpoint: there is nothing to authenticate to")
	}
	for _, s := range []SecretRef{a.Token, a.ClientSecret} {
		if s.Env != "" && s.File != "" {
			c.failAt(path, "name one source for a secret: env or file")
		}
	}
}

// Candidates returns the partners the routes offer for a referral from
// source asking for services, each with the route's purpose, in route
// order without repeats.
func (cfg *Config) Candidates(source string, services []string) (cands []Candidate, purposes map[string]string) {
	purposes = map[string]string{}
	for _, r := range cfg.Routes {
		if len(r.From) > 0 && !slices.Contains(r.From, source) {
			continue
		}
		if len(r.Services) > 0 {
			hit := false
			for _, want := range services {
				for _, s := range r.Services {
					if serviceMatches(want, s) {
						hit = true
					}
				}
			}
			if !hit {
				continue
			}
		}
		purpose := r.Purpose
		if purpose == "" {
			purpose = "COC"
		}
		for _, id := range r.To {
			if _, seen := purposes[id]; seen {
				continue
			}
			link := cfg.Partners[id]
			if link == nil {
				continue
			}
			purposes[id] = purpose
			cands = append(cands, Candidate{Partner: id, Service: link.Services})
		}
	}
	return cands, purposes
}

// purposeAllowed reports whether an agreement listing purposes allows p
// (itself or under one of them in the PurposeOfUse hierarchy).
func purposeAllowed(purposes []string, p string) bool {
	for _, a := range purposes {
		if policy.PurposeSubsumes(a, p) {
			return true
		}
	}
	return false
}

//go:embed starter.yaml
var starter []byte

// StarterConfig returns the commented starter pathway.yaml that
// `pathway init` writes.
func StarterConfig() []byte { return slices.Clone(starter) }
