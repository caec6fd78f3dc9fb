package store

import (
	"fmt"
	"net/url"
	"strings"
)

// location is a parsed store URL.
type location struct {
	dialect Dialect
	// target is the SQLite file path or the PostgreSQL URL.
	target string
}

const acceptedURLs = `sqlite:///abs/path.db, sqlite://relative.db, a file path (empty for ` + DefaultSQLitePath + `), postgres://... or postgresql://...`

// parseURL reads the forms documented on Open.
func parseURL(raw string) (location, error) {
	scheme, rest, hasScheme := strings.Cut(raw, "://")
	if !hasScheme {
		if raw == "" {
			raw = DefaultSQLitePath
		}
		return location{dialect: DialectSQLite, target: raw}, nil
	}
	switch strings.ToLower(scheme) {
	case "sqlite":
		if rest == "" {
			return location{}, fmt.Errorf("parsing store URL %q: no file path (want %s)", raw, acceptedURLs)
		}
		if strings.ContainsAny(rest, "?#") {
			return location{}, fmt.Errorf("parsing store URL %q: sqlite URLs take no query or fragment", raw)
		}
		// sqlite:///abs keeps its leading slash; sqlite://rel is relative.
		return location{dialect: DialectSQLite, target: rest}, nil
	case "postgres", "postgresql":
		return location{dialect: DialectPostgres, target: raw}, nil
	default:
		return location{}, fmt.Errorf("parsing store URL: unknown scheme %q (want %s)", scheme, acceptedURLs)
	}
}

// redactURL masks the password of a URL for messages. A URL that does not
// parse is reduced to its scheme, since it may hold a password we cannot find.
// RedactURL returns a store URL fit to print or log: a PostgreSQL password
// is replaced by "xxxxx".
func RedactURL(raw string) string { return redactURL(raw) }

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		scheme, _, _ := strings.Cut(raw, "://")
		return scheme + "://..."
	}
	return u.Redacted()
}
