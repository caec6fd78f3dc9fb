package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// AccessToken is an access token Pathway issued, as the store keeps it:
// by the SHA-256 of the token, never the token.
type AccessToken struct {
	Hash    [sha256.Size]byte
	Partner string
	Scopes  []string
	Expires time.Time
}

// PutAccessToken keeps an issued access token. Tokens expired more than
// an hour ago are dropped on the way.
func (s *Store) PutAccessToken(ctx context.Context, t AccessToken) error {
	if err := s.checkOpen(); err != nil {
		return fmt.Errorf("keeping access token: %w", err)
	}
	if t.Partner == "" || t.Expires.IsZero() {
		return fmt.Errorf("keeping access token: a partner and an expiry are required")
	}
	w := s.be.writer()
	if err := w.exec(ctx, rebind(s.dialect, `DELETE FROM api_tokens WHERE expires_at < ?`), s.timeArg(normTime(s.clock().Add(-time.Hour)))); err != nil {
		return fmt.Errorf("keeping access token: %w", err)
	}
	err := w.exec(ctx, rebind(s.dialect, `INSERT INTO api_tokens (hash, partner, scopes, expires_at) VALUES (?, ?, ?, ?)`),
		t.Hash[:], t.Partner, strings.Join(t.Scopes, " "), s.timeArg(normTime(t.Expires)))
	if err != nil {
		return fmt.Errorf("keeping access token: %w", err)
	}
	return nil
}

// AccessTokenByHash returns the access token with this hash, expired or
// not, or an error wrapping ErrNotFound.
func (s *Store) AccessTokenByHash(ctx context.Context, hash [sha256.Size]byte) (AccessToken, error) {
	if err := s.checkOpen(); err != nil {
		return AccessToken{}, fmt.Errorf("reading access token: %w", err)
	}
	rs, err := s.be.reader().query(ctx, rebind(s.dialect, `SELECT partner, scopes, expires_at FROM api_tokens WHERE hash = ?`), hash[:])
	if err != nil {
		return AccessToken{}, fmt.Errorf("reading access token: %w", err)
	}
	defer rs.Close()
	if !rs.Next() {
		if err := rs.Err(); err != nil {
			return AccessToken{}, fmt.Errorf("reading access token: %w", err)
		}
		return AccessToken{}, fmt.Errorf("reading access token: %w", ErrNotFound)
	}
	t := AccessToken{Hash: hash}
	var scopes string
	var exp timeValue
	if err := rs.Scan(&t.Partner, &scopes, &exp); err != nil {
		return AccessToken{}, fmt.Errorf("reading access token: %w", err)
	}
	t.Scopes, t.Expires = strings.Fields(scopes), exp.t
	return t, nil
}

// UseAssertion records a client assertion (its client and its jti) as
// used until until, and reports false when it was used already and has
// not expired: the same assertion is never good twice, whichever serve
// process sees it. now is the caller's clock. The pair is kept as its
// SHA-256 only.
func (s *Store) UseAssertion(ctx context.Context, client, jti string, until, now time.Time) (bool, error) {
	sum := sha256.Sum256([]byte(client + "\x00" + jti))
	key := hex.EncodeToString(sum[:])
	if err := s.checkOpen(); err != nil {
		return false, fmt.Errorf("recording client assertion: %w", err)
	}
	w := s.be.writer()
	if err := w.exec(ctx, rebind(s.dialect, `DELETE FROM api_assertions WHERE expires_at <= ?`), s.timeArg(normTime(now))); err != nil {
		return false, fmt.Errorf("recording client assertion: %w", err)
	}
	rs, err := w.query(ctx, rebind(s.dialect, `INSERT INTO api_assertions (key, expires_at) VALUES (?, ?) ON CONFLICT (key) DO NOTHING RETURNING key`),
		key, s.timeArg(normTime(until)))
	if err != nil {
		return false, fmt.Errorf("recording client assertion: %w", err)
	}
	defer rs.Close()
	fresh := rs.Next()
	if err := rs.Err(); err != nil {
		return false, fmt.Errorf("recording client assertion: %w", err)
	}
	return fresh, nil
}
