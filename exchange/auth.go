package exchange

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-resty/resty/v2"
)

// ReadSecret reads a secret from the environment variable env, or else
// from file (trailing newlines trimmed). Errors name the variable or the
// file, never the secret.
func ReadSecret(env, file string) (string, error) {
	switch {
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok || v == "" {
			return "", fmt.Errorf("environment variable %s is not set", env)
		}
		return v, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading secret file: %w", err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("secret file %s is empty", file)
		}
		return v, nil
	}
	return "", errors.New("no source for the secret: name env or file")
}

// BearerToken sends a static bearer token, read once from its source.
type BearerToken struct {
	Env, File string

	once  sync.Once
	token string
	err   error
}

// Authorize adds "Authorization: Bearer ...".
func (b *BearerToken) Authorize(_ context.Context, r *resty.Request) error {
	b.once.Do(func() { b.token, b.err = ReadSecret(b.Env, b.File) })
	if b.err != nil {
		return b.err
	}
	r.SetAuthToken(b.token)
	return nil
}

// ClientCredentials gets access tokens with the OAuth 2.0 client
// credentials grant (RFC 6749 section 4.4), caches each until shortly
// before it expires, and fetches a new one after a 401.
type ClientCredentials struct {
	TokenURL, ClientID, Scope string
	// SecretEnv or SecretFile is where the client secret is read from.
	SecretEnv, SecretFile string
	Client                *resty.Client
	Now                   func() time.Time

	mu      sync.Mutex
	token   string
	expires time.Time
}

// Authorize adds a current access token, fetching one when needed.
func (c *ClientCredentials) Authorize(ctx context.Context, r *resty.Request) error {
	tok, err := c.current(ctx)
	if err != nil {
		return err
	}
	r.SetAuthToken(tok)
	return nil
}

// Invalidate drops the cached token: the next request fetches a new one.
func (c *ClientCredentials) Invalidate() {
	c.mu.Lock()
	c.token = ""
	c.mu.Unlock()
}

func (c *ClientCredentials) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *ClientCredentials) current(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && c.now().Before(c.expires) {
		return c.token, nil
	}
	secret, err := ReadSecret(c.SecretEnv, c.SecretFile)
	if err != nil {
		return "", err
	}
	form := map[string]string{"grant_type": "client_credentials"}
	if c.Scope != "" {
		form["scope"] = c.Scope
	}
	resp, err := c.Client.R().SetContext(ctx).
		SetBasicAuth(c.ClientID, secret).
		SetFormData(form).
		SetHeader("Accept", "application/json").
		Post(c.TokenURL)
	if err != nil {
		return "", fmt.Errorf("requesting an access token: %s", transportReason(err))
	}
	if resp.StatusCode() != http.StatusOK {
		return "", fmt.Errorf("requesting an access token: HTTP %d from the token endpoint", resp.StatusCode())
	}
	var body struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(resp.Body(), &body); err != nil || body.AccessToken == "" {
		return "", errors.New("requesting an access token: the token endpoint's answer has no access_token")
	}
	if body.TokenType != "" && !strings.EqualFold(body.TokenType, "bearer") {
		return "", fmt.Errorf("requesting an access token: token type %q is not bearer", body.TokenType)
	}
	life := time.Duration(body.ExpiresIn) * time.Second
	if life <= 0 {
		life = 5 * time.Minute
	}
	// Renew a little early, so a token never expires in flight.
	c.token, c.expires = body.AccessToken, c.now().Add(life-min(life/10, 30*time.Second))
	return c.token, nil
}

// TLSConfig builds the client TLS configuration for a partner: its CA
// (else the system's), a client certificate for mutual TLS, and the
// server name to check. TLS 1.2 is the minimum.
func TLSConfig(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("loading client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
