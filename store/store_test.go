package store_test

import (
	"bytes"
	"errors"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pathway-fhir/pathway/store"
	"github.com/pathway-fhir/pathway/store/storetest"
)

// postgresEnv names the PostgreSQL server the tests may use.
const postgresEnv = storetest.PostgresEnv

func sqliteURL(t testing.TB) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "pathway.db")
}

// postgresURL is a fresh schema on the test server, dropped when t ends.
func postgresURL(t testing.TB) string { return storetest.PostgresURL(t) }

func TestSQLite(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) string { return sqliteURL(t) })
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	if os.Getenv(postgresEnv) == "" {
		t.Skip(postgresEnv + " not set: skipping PostgreSQL store tests")
	}
	storetest.Run(t, func(t *testing.T) string { return postgresURL(t) })
}

func TestOpenURLForms(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	ctx := t.Context()
	for _, tc := range []struct {
		url  string
		file string // relative to dir
	}{
		{"", "pathway.db"},
		{"sqlite://relative.db", "relative.db"},
		{"sqlite://" + filepath.Join(dir, "abs.db"), "abs.db"},
		{filepath.Join(dir, "bare-abs.db"), "bare-abs.db"},
		{"bare.db", "bare.db"},
		{"SQLITE://upper.db", "upper.db"},
		{"sqlite://with space.db", "with space.db"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			s, err := store.Open(ctx, tc.url)
			if err != nil {
				t.Fatalf("Open(%q): %v", tc.url, err)
			}
			defer s.Close()
			if s.Dialect() != store.DialectSQLite {
				t.Errorf("Dialect = %q, want sqlite", s.Dialect())
			}
			if _, err := os.Stat(filepath.Join(dir, tc.file)); err != nil {
				t.Errorf("Open(%q) did not create %s: %v", tc.url, tc.file, err)
			}
		})
	}
}

func TestOpenBadURL(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	for _, tc := range []struct {
		url      string
		wantText []string
		notText  []string
	}{
		{"mysql://root:hunter2@localhost/db", []string{`"mysql"`, "sqlite:///", "postgres://"}, []string{"hunter2"}},
		{"http://example.org/", []string{`"http"`, "want"}, nil},
		{"sqlite://", []string{"no file path"}, nil},
		{"sqlite:///tmp/x.db?mode=ro", []string{"no query"}, nil},
		{"sqlite://" + filepath.Join(t.TempDir(), "missing-dir", "x.db"), []string{"opening sqlite store"}, nil},
		// An unreachable server: the password must not leak into the error.
		{"postgres://u:hunter2@127.0.0.1:1/db?connect_timeout=2", []string{"opening postgres store", "xxxxx"}, []string{"hunter2"}},
		{"postgres://u:hunter2@127.0.0.1:1/db?sslmode=bogus", []string{"opening postgres store"}, []string{"hunter2"}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			s, err := store.Open(ctx, tc.url)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded, want an error", tc.url)
			}
			msg := err.Error()
			for _, want := range tc.wantText {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
			for _, not := range tc.notText {
				if strings.Contains(msg, not) {
					t.Errorf("error %q contains %q", msg, not)
				}
			}
		})
	}
}

func TestPostgresMissingSchema(t *testing.T) {
	t.Parallel()
	base := os.Getenv(postgresEnv)
	if base == "" {
		t.Skip(postgresEnv + " not set: skipping PostgreSQL store tests")
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", "pathway_test_no_such_schema")
	u.RawQuery = q.Encode()
	_, err = store.Open(t.Context(), u.String())
	if err == nil || !strings.Contains(err.Error(), "names no existing schema") {
		t.Errorf("Open with a missing schema: err = %v, want one naming the missing schema", err)
	}
}

func TestPostgresSchemasAreIsolated(t *testing.T) {
	t.Parallel()
	a, err := store.Open(t.Context(), postgresURL(t))
	if err != nil {
		t.Fatalf("Open a: %v", err)
	}
	defer a.Close()
	b, err := store.Open(t.Context(), postgresURL(t))
	if err != nil {
		t.Fatalf("Open b: %v", err)
	}
	defer b.Close()
	if a.Dialect() != store.DialectPostgres {
		t.Errorf("Dialect = %q, want postgres", a.Dialect())
	}
	if _, err := a.Put(t.Context(), store.Resource{Type: "Task", ID: "t1", Format: "json", Data: []byte("{}")}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, err := b.Get(t.Context(), "Task", "t1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get from another schema: err = %v, want ErrNotFound", err)
	}
}

func TestLogValueHidesContents(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	r := store.Resource{
		Type: "ServiceRequest", ID: "sr-1", Version: 3, Source: "ngo-a", Format: "json",
		Data:    []byte(`{"note":"Maria Example fled Ruritania"}`),
		Patient: "Patient/maria-example", Status: "active",
		Owner: "Organization/clinic-a", Requester: "Organization/ngo-a",
	}
	logger.Info("stored", "resource", r)
	logger.Info("searching", "query", store.Query{Type: "Task", Patient: "Patient/maria-example", Owner: "Organization/clinic-a"})
	out := buf.String()
	for _, want := range []string{`"ref":"ServiceRequest/sr-1"`, `"version":3`, `"filters":["patient","owner"]`} {
		if !strings.Contains(out, want) {
			t.Errorf("log %s lacks %s", out, want)
		}
	}
	for _, leak := range []string{"Maria", "maria", "Ruritania", "clinic-a", "ngo-a", "active"} {
		if strings.Contains(out, leak) {
			t.Errorf("log %s reveals %q", out, leak)
		}
	}
}

func TestMigrationsAreLogged(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	url := sqliteURL(t)
	s, err := store.Open(t.Context(), url, store.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if out := buf.String(); !strings.Contains(out, "applied migration") || !strings.Contains(out, "component=store") {
		t.Errorf("first open logged %q, want an applied migration tagged component=store", out)
	}
	buf.Reset()
	s, err = store.Open(t.Context(), url, store.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if out := buf.String(); strings.Contains(out, "applied migration") {
		t.Errorf("reopen logged %q, want no migration applied", out)
	}
}
