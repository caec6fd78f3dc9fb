package store

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
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

// Migration 00010 moves the ids at a partner's watermark from a text of
// sync_state into rows of their own, and back down.
func TestSyncAtWatermarkMigration(t *testing.T) {
	ctx := t.Context()
	type target struct {
		dialect goose.Dialect
		dir     string
		db      *sql.DB
		url     string
	}
	var targets []target
	path := filepath.Join(t.TempDir(), "old.db")
	abs, _ := filepath.Abs(path)
	db, err := openSQLiteDB(abs, map[string][]string{"_journal_mode": {"WAL"}})
	if err != nil {
		t.Fatal(err)
	}
	targets = append(targets, target{goose.DialectSQLite3, "migrations/sqlite", db, "sqlite://" + path})
	if base := os.Getenv("PATHWAY_TEST_DATABASE_URL"); base != "" {
		schema := fmt.Sprintf("pathway_test_migrate_%d", time.Now().UnixNano())
		admin, err := sql.Open("pgx", base)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
			admin.Close()
			t.Fatal(err)
		}
		// Cleanups run after the test's own defers: the connection is
		// closed here, after the schema is dropped (a deferred Close
		// left every run's schema behind).
		t.Cleanup(func() {
			defer admin.Close()
			if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
				t.Errorf("dropping schema %s: %v", schema, err)
			}
		})
		u, _ := url.Parse(base)
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		pg, err := sql.Open("pgx", u.String())
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, target{goose.DialectPostgres, "migrations/postgres", pg, u.String()})
	}
	for _, tg := range targets {
		t.Run(string(tg.dialect), func(t *testing.T) {
			defer tg.db.Close()
			fsys, err := fs.Sub(migrations, tg.dir)
			if err != nil {
				t.Fatal(err)
			}
			p, err := goose.NewProvider(tg.dialect, tg.db, fsys, goose.WithDisableGlobalRegistry(true))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.UpTo(ctx, 8); err != nil {
				t.Fatal(err)
			}
			d := DialectSQLite
			if tg.dialect == goose.DialectPostgres {
				d = DialectPostgres
			}
			at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
			var wm any = formatSQLiteTime(at)
			if d == DialectPostgres {
				wm = at
			}
			for _, row := range [][2]string{{"clinic-a", "ServiceRequest/a ServiceRequest/b ServiceRequest/c"}, {"clinic-b", ""}} {
				if _, err := tg.db.ExecContext(ctx, rebind(d, `INSERT INTO sync_state (partner, watermark, at_watermark, updated_at) VALUES (?, ?, ?, ?)`), row[0], wm, row[1], wm); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := p.Up(ctx); err != nil {
				t.Fatal(err)
			}
			s, err := Open(ctx, tg.url)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for partner, want := range map[string][]string{"clinic-a": {"ServiceRequest/a", "ServiceRequest/b", "ServiceRequest/c"}, "clinic-b": nil} {
				st, err := s.SyncState(ctx, partner)
				if err != nil || !st.Watermark.Equal(at) || !slices.Equal(st.AtWatermark, want) {
					t.Errorf("after the migration, %s: %+v, %v; want watermark %v and ids %q", partner, st, err, at, want)
				}
			}
			// Back down: the text as it was.
			if _, err := p.DownTo(ctx, 8); err != nil {
				t.Fatal(err)
			}
			var ids string
			if err := tg.db.QueryRowContext(ctx, rebind(d, `SELECT at_watermark FROM sync_state WHERE partner = ?`), "clinic-a").Scan(&ids); err != nil {
				t.Fatal(err)
			}
			if ids != "ServiceRequest/a ServiceRequest/b ServiceRequest/c" {
				t.Errorf("after migrating down: at_watermark %q", ids)
			}
		})
	}
}
