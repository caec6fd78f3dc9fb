package store

import (
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
)

// TestHistoryMigration: a database made before migration 00007 (every
// version in resource_history, the current one too) keeps every version
// readable after it, holds each once, and keeps superseded versions from
// then on.
func TestHistoryMigration(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "old.db")
	abs, _ := filepath.Abs(path)
	db, err := openSQLiteDB(abs, map[string][]string{"_journal_mode": {"WAL"}})
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := fs.Sub(migrations, "migrations/sqlite")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 6); err != nil {
		t.Fatal(err)
	}
	// Two versions of one resource and one of another, as the old
	// triggers kept them.
	upsert := newStatements(DialectSQLite).upsert
	for i, r := range []struct{ id, data string }{{"a", `{"v":1}`}, {"a", `{"v":2}`}, {"b", `{"v":1}`}} {
		res := Resource{Type: "Basic", ID: r.id, Source: "test", Format: "json", Data: []byte(r.data)}
		stamp(&res, time.Date(2026, 12, 1, 0, 0, i, 0, time.UTC))
		if _, err := db.ExecContext(ctx, upsert, res.Type, res.ID, formatSQLiteTime(res.LastUpdated), res.Source, res.Format, res.Data, res.Hash[:], "", "", "", ""); err != nil {
			t.Fatal(err)
		}
	}
	count := func(table string) int {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got := count("resource_history"); got != 3 {
		t.Fatalf("before the migration: %d history rows, want 3", got)
	}
	db.Close()

	s, err := Open(ctx, "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check := func(id string, version int64, data string) {
		t.Helper()
		r, err := s.GetVersion(ctx, "Basic", id, version)
		if err != nil || string(r.Data) != data || r.Version != version {
			t.Errorf("Basic/%s version %d: %q v%d, %v; want %q", id, version, r.Data, r.Version, err, data)
		}
	}
	check("a", 1, `{"v":1}`)
	check("a", 2, `{"v":2}`)
	check("b", 1, `{"v":1}`)
	if _, err := s.GetVersion(ctx, "Basic", "a", 3); err == nil {
		t.Error("Basic/a version 3 found, want not found")
	}
	rs, err := s.be.reader().query(ctx, "SELECT count(*) FROM resource_history")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if !rs.Next() || rs.Scan(&n) != nil || n != 1 {
		t.Errorf("after the migration: %d history rows, want 1 (the superseded Basic/a v1)", n)
	}
	rs.Close()
	// A new version moves the current one into history.
	if _, err := s.Put(ctx, Resource{Type: "Basic", ID: "a", Source: "test", Format: "json", Data: []byte(`{"v":3}`)}); err != nil {
		t.Fatal(err)
	}
	check("a", 1, `{"v":1}`)
	check("a", 2, `{"v":2}`)
	check("a", 3, `{"v":3}`)
}
