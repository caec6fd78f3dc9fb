package store

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	targets := migrationTargets(t)
	for _, tg := range targets {
		t.Run(string(tg.dialect), func(t *testing.T) {
			defer tg.db.Close()
			p := gooseProvider(t, tg)
			if _, err := p.UpTo(ctx, 8); err != nil {
				t.Fatal(err)
			}
			d := tg.d
			at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
			wm := tg.timeArg(at)
			for _, row := range [][2]string{{"clinic-a", "ServiceRequest/a ServiceRequest/b ServiceRequest/c"}, {"clinic-b", ""}} {
				if _, err := tg.db.ExecContext(ctx, rebind(d, `INSERT INTO sync_state (partner, watermark, at_watermark, updated_at) VALUES (?, ?, ?, ?)`), row[0], wm, row[1], wm); err != nil {
					t.Fatal(err)
				}
			}
			s := tg.upAndOpen(t, p)
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

// migrationTarget is a new database of one dialect, not migrated yet.
type migrationTarget struct {
	dialect goose.Dialect
	d       Dialect
	dir     string
	db      *sql.DB
	url     string
}

// upAndOpen applies the pending migrations with p and opens the store
// on the target, closed when t ends.
func (tg migrationTarget) upAndOpen(t *testing.T, p *goose.Provider) *Store {
	t.Helper()
	if _, err := p.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), tg.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// timeArg is t as the target's database stores it.
func (tg migrationTarget) timeArg(t time.Time) any {
	if tg.d == DialectSQLite {
		return formatSQLiteTime(t)
	}
	return t
}

// migrationTargets are a new SQLite file and, when the test server is
// set, a new PostgreSQL schema (dropped when t ends). The caller closes
// each db.
func migrationTargets(t *testing.T) []migrationTarget {
	t.Helper()
	path := filepath.Join(t.TempDir(), "old.db")
	abs, _ := filepath.Abs(path)
	db, err := openSQLiteDB(abs, map[string][]string{"_journal_mode": {"WAL"}})
	if err != nil {
		t.Fatal(err)
	}
	targets := []migrationTarget{{goose.DialectSQLite3, DialectSQLite, "migrations/sqlite", db, "sqlite://" + path}}
	if u := testPostgresURL(t); u != "" {
		pg, err := sql.Open("pgx", u)
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, migrationTarget{goose.DialectPostgres, DialectPostgres, "migrations/postgres", pg, u})
	}
	return targets
}

// testPostgresURL is a new schema on the test server (dropped when t
// ends), or "" when PATHWAY_TEST_DATABASE_URL is not set.
func testPostgresURL(t *testing.T) string {
	t.Helper()
	base := os.Getenv("PATHWAY_TEST_DATABASE_URL")
	if base == "" {
		return ""
	}
	schema := fmt.Sprintf("pathway_test_migrate_%d", time.Now().UnixNano())
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ExecContext(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatal(err)
	}
	// Cleanups run after the test's own defers: the connection is
	// closed here, after the schema is dropped (a deferred Close left
	// every run's schema behind).
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// gooseProvider is the migrations of tg's dialect on tg.db.
func gooseProvider(t *testing.T, tg migrationTarget) *goose.Provider {
	t.Helper()
	fsys, err := fs.Sub(migrations, tg.dir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(tg.dialect, tg.db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Migration 00011 makes the search indexes of resources partial: a
// database of version 10 keeps every row readable and every search finds
// what it found before, through the new indexes or (a type an index does
// not hold) without them; new rows are found too, and down again the
// indexes hold every row.
func TestPartialSearchIndexesMigration(t *testing.T) {
	ctx := t.Context()
	for _, tg := range migrationTargets(t) {
		t.Run(string(tg.dialect), func(t *testing.T) {
			defer tg.db.Close()
			p := gooseProvider(t, tg)
			if _, err := p.UpTo(ctx, 10); err != nil {
				t.Fatal(err)
			}
			d := tg.d
			at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
			atArg := tg.timeArg(at)
			upsert := newStatements(d).upsert
			for _, r := range []Resource{
				{Type: "Task", ID: "t1", Patient: "Patient/p1", Status: "requested", Owner: "Organization/o1", Requester: "Organization/r1"},
				{Type: "Task", ID: "t2", Patient: "Patient/p2", Status: "completed", Owner: "Organization/o2", Requester: "Organization/r1"},
				{Type: "ServiceRequest", ID: "sr1", Patient: "Patient/p1", Status: "active", Requester: "Organization/r1"},
				{Type: "Consent", ID: "c1", Patient: "Patient/p1", Status: "active"},
				{Type: "Observation", ID: "obs1", Patient: "Patient/p1", Status: "final"},
				{Type: "Bundle", ID: "b1", Patient: "Patient/p1"},
			} {
				r.Source, r.Format, r.Data = "test", "json", []byte(`{"id":"`+r.ID+`"}`)
				stamp(&r, at)
				if _, err := tg.db.ExecContext(ctx, upsert, r.Type, r.ID, atArg, r.Source, r.Format, r.Data, r.Hash[:], r.Patient, r.Status, r.Owner, r.Requester); err != nil {
					t.Fatal(err)
				}
			}
			s := tg.upAndOpen(t, p)
			searches := []struct {
				q    Query
				want []string
			}{
				{Query{Type: "Task", Patient: "Patient/p1"}, []string{"t1"}},
				{Query{Type: "Consent", Patient: "Patient/p1"}, []string{"c1"}},
				{Query{Type: "Task", Status: "requested"}, []string{"t1"}},
				{Query{Type: "Task", Owner: "Organization/o1"}, []string{"t1"}},
				{Query{Type: "Task", Requester: "Organization/r1"}, []string{"t1", "t2"}},
				{Query{Type: "Task", UpdatedSince: at}, []string{"t1", "t2"}},
				// Types the indexes do not hold: found all the same.
				{Query{Type: "ServiceRequest", Requester: "Organization/r1"}, []string{"sr1"}},
				{Query{Type: "Observation", Patient: "Patient/p1", Status: "final"}, []string{"obs1"}},
				{Query{Type: "Bundle", Patient: "Patient/p1", UpdatedSince: at}, []string{"b1"}},
				{Query{Type: "Consent", Status: "active"}, []string{"c1"}},
			}
			check := func(when string) {
				t.Helper()
				for _, c := range searches {
					rs, err := s.Search(ctx, c.q)
					var got []string
					for _, r := range rs {
						got = append(got, r.ID)
					}
					if err != nil || !slices.Equal(got, c.want) {
						t.Errorf("%s, search %+v: %q, %v; want %q", when, c.q, got, err, c.want)
					}
				}
			}
			check("after the migration")
			for _, key := range [][2]string{{"Task", "t1"}, {"Bundle", "b1"}, {"Observation", "obs1"}} {
				if r, err := s.GetVersion(ctx, key[0], key[1], 1); err != nil || string(r.Data) != `{"id":"`+key[1]+`"}` {
					t.Errorf("after the migration, %s/%s: %q, %v", key[0], key[1], r.Data, err)
				}
			}
			if open, err := s.OpenReferrals(ctx); err != nil || len(open) != 1 || open["Organization/o1"] != 1 {
				t.Errorf("after the migration, open referrals %v, %v; want Organization/o1: 1", open, err)
			}
			// Rows written since are in the indexes.
			if _, err := s.Put(ctx, Resource{Type: "Task", ID: "t3", Source: "test", Format: "json", Data: []byte(`{"id":"t3"}`),
				Patient: "Patient/p1", Status: "requested", Owner: "Organization/o1"}); err != nil {
				t.Fatal(err)
			}
			searches[0].want = []string{"t1", "t3"}
			searches[2].want = []string{"t1", "t3"}
			searches[3].want = []string{"t1", "t3"}
			searches[5].want = []string{"t1", "t2", "t3"}
			check("after a new Task")

			if _, err := p.DownTo(ctx, 10); err != nil {
				t.Fatal(err)
			}
			q := `SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'resources' AND sql LIKE '% WHERE %'`
			if d == DialectPostgres {
				q = `SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'resources' AND indexdef LIKE '% WHERE %'`
			}
			var partial int
			if err := tg.db.QueryRowContext(ctx, q).Scan(&partial); err != nil || partial != 0 {
				t.Errorf("after migrating down: %d partial indexes on resources, %v; want none", partial, err)
			}
		})
	}
}

// Migration 00013 compresses new large values with lz4 on PostgreSQL:
// values written before it keep pglz and read as they were, values
// written after it are lz4, and down again new ones are pglz. (SQLite:
// nothing changes, the values read as they were.)
func TestLZ4Migration(t *testing.T) {
	ctx := t.Context()
	large := func(id string) []byte { // compressible and over the 2 kB at which a row is compressed
		return []byte(`{"resourceType":"Bundle","id":"` + id + `","entry":[` + strings.Repeat(`{"resource":{"resourceType":"Observation","status":"final"}},`, 100) + `{}]}`)
	}
	for _, tg := range migrationTargets(t) {
		t.Run(string(tg.dialect), func(t *testing.T) {
			defer tg.db.Close()
			p := gooseProvider(t, tg)
			if _, err := p.UpTo(ctx, 11); err != nil {
				t.Fatal(err)
			}
			r := Resource{Type: "Bundle", ID: "before", Source: "test", Format: "json", Data: large("before")}
			stamp(&r, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
			if _, err := tg.db.ExecContext(ctx, newStatements(tg.d).upsert, r.Type, r.ID, tg.timeArg(r.LastUpdated), r.Source, r.Format, r.Data, r.Hash[:], "", "", "", ""); err != nil {
				t.Fatal(err)
			}
			s := tg.upAndOpen(t, p)
			if _, err := s.Put(ctx, Resource{Type: "Bundle", ID: "after", Source: "test", Format: "json", Data: large("after")}); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"before", "after"} {
				if got, err := s.Get(ctx, "Bundle", id); err != nil || !bytes.Equal(got.Data, large(id)) {
					t.Errorf("Bundle/%s after the migration: %d bytes, %v; want it as written", id, len(got.Data), err)
				}
			}
			if tg.d != DialectPostgres {
				return
			}
			method := func(id string) string {
				t.Helper()
				var m string
				if err := tg.db.QueryRowContext(ctx, `SELECT pg_column_compression(data) FROM resources WHERE resource_type = 'Bundle' AND id = $1`, id).Scan(&m); err != nil {
					t.Fatal(err)
				}
				return m
			}
			if b, a := method("before"), method("after"); b != "pglz" || a != "lz4" {
				t.Errorf("compression before and after the migration: %s and %s, want pglz and lz4", b, a)
			}
			if _, err := p.DownTo(ctx, 11); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Put(ctx, Resource{Type: "Bundle", ID: "down", Source: "test", Format: "json", Data: large("down")}); err != nil {
				t.Fatal(err)
			}
			if m := method("down"); m != "pglz" {
				t.Errorf("compression after migrating down: %s, want pglz", m)
			}
		})
	}
}
