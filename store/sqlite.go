package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteBusyTimeoutMillis is how long a connection waits for a lock held by
// another process before failing with SQLITE_BUSY.
const sqliteBusyTimeoutMillis = "10000"

// sqliteBatchRows is the number of rows in one multi-row upsert: 12 values a
// row stays far below SQLite's 32,766 variables.
const sqliteBatchRows = 100

// sqliteBackend keeps two pools on one file. SQLite allows one writer at a
// time, so every write goes through a pool of exactly one connection whose
// transactions begin IMMEDIATE: writers in this process queue for it instead
// of failing with SQLITE_BUSY, and writers in other processes wait on the
// busy timeout. Reads outside transactions use a separate read-only pool and,
// in WAL mode, never wait for the writer.
type sqliteBackend struct {
	write, read           *sql.DB
	writeStmts, readStmts *stmtCache
}

func openSQLite(ctx context.Context, path string, logger *slog.Logger) (_ *sqliteBackend, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolving path: %w", err)
	}
	// SQLite creates the file but not its directory; say so plainly.
	if fi, err := os.Stat(filepath.Dir(abs)); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("directory %q does not exist", filepath.Dir(abs))
	}
	write, err := openSQLiteDB(abs, url.Values{
		"_busy_timeout": {sqliteBusyTimeoutMillis},
		"_foreign_keys": {"1"},
		"_journal_mode": {"WAL"},
		"_txlock":       {"immediate"},
		// Statement journals (an upsert firing the history trigger needs
		// one) stay in memory instead of a temporary file written with a
		// syscall a page: they only ever serve a rollback of the statement.
		"_pragma": {"temp_store(memory)", "cache_size(-65536)"},
	})
	if err != nil {
		return nil, err
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	defer func() {
		if err != nil {
			_ = write.Close()
		}
	}()
	if err := pingBusy(ctx, write); err != nil {
		return nil, err
	}
	if err := migrate(ctx, goose.DialectSQLite3, write, "migrations/sqlite", logger); err != nil {
		return nil, err
	}

	read, err := openSQLiteDB(abs, url.Values{
		"_busy_timeout": {sqliteBusyTimeoutMillis},
		"_foreign_keys": {"1"},
		"_query_only":   {"1"},
	})
	if err != nil {
		return nil, err
	}
	n := max(4, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	if err := read.PingContext(ctx); err != nil {
		_ = read.Close()
		return nil, err
	}
	return &sqliteBackend{write: write, read: read, writeStmts: newStmtCache(write), readStmts: newStmtCache(read)}, nil
}

// pingBusy opens db's first connection, trying again for a while when
// SQLite says the file is busy: a connection's setup (switching a new
// file to WAL) can be refused without waiting while another process is
// setting up or migrating the same new file.
func pingBusy(ctx context.Context, db *sql.DB) error {
	var err error
	for attempt := range 20 {
		if err = db.PingContext(ctx); err == nil {
			return nil
		}
		var se *sqlite.Error
		if !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt+1) * 10 * time.Millisecond):
		}
	}
	return err
}

// openSQLiteDB opens a pool on the file at the absolute path abs with the
// driver's DSN parameters in params.
func openSQLiteDB(abs string, params url.Values) (*sql.DB, error) {
	// A file: URI, so that any character in the path survives escaping.
	dsn := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: params.Encode()}).String()
	c, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

func (b *sqliteBackend) reader() querier { return sqlQuerier{cache: b.readStmts} }
func (b *sqliteBackend) writer() querier { return sqlQuerier{cache: b.writeStmts} }

func (b *sqliteBackend) begin(ctx context.Context) (txHandle, error) {
	tx, err := b.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return sqlTx{sqlQuerier{cache: b.writeStmts, tx: tx}}, nil
}

func (b *sqliteBackend) close() error {
	return errors.Join(b.readStmts.close(), b.writeStmts.close(), closeAll(b.read, b.write))
}

// sqliteUpsertMany writes rs with multi-row upserts of up to sqliteBatchRows
// rows. The history trigger keeps each version a row replaces.
func (s *Store) sqliteUpsertMany(ctx context.Context, q querier, rs []Resource) error {
	for len(rs) > 0 {
		n := min(len(rs), sqliteBatchRows)
		chunk := rs[:n]
		rs = rs[n:]
		args := make([]any, 0, n*11)
		for i := range chunk {
			r := &chunk[i]
			args = append(args, r.Type, r.ID, s.timeArg(r.LastUpdated), r.Source, r.Format, r.Data, r.Hash[:],
				r.Patient, r.Status, r.Owner, r.Requester)
		}
		if err := q.exec(ctx, sqliteUpsertRows(n), args...); err != nil {
			return err
		}
	}
	return nil
}

// sqliteBatchSQL caches the full-size multi-row statement.
var sqliteBatchSQL = buildSQLiteUpsertRows(sqliteBatchRows)

func sqliteUpsertRows(n int) string {
	if n == sqliteBatchRows {
		return sqliteBatchSQL
	}
	return buildSQLiteUpsertRows(n)
}

func buildSQLiteUpsertRows(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO resources (` + resourceColumns + `) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`(?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	}
	// SQLite applies the rows in order, so a later row of the same key
	// updates an earlier one; splitRounds keeps such keys apart anyway.
	b.WriteString(upsertTail)
	return b.String()
}

// sqlQuerier adapts database/sql: a pool (tx nil) or a transaction on it,
// with the pool's statement cache.
type sqlQuerier struct {
	cache *stmtCache
	tx    *sql.Tx
}

// stmt returns the prepared statement to run query with, or nil to run it
// unprepared.
func (q sqlQuerier) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if q.tx == nil {
		return q.cache.get(ctx, query)
	}
	if st := q.cache.lookup(query); st != nil {
		return q.tx.StmtContext(ctx, st), nil
	}
	return nil, nil
}

func (q sqlQuerier) exec(ctx context.Context, query string, args ...any) error {
	st, err := q.stmt(ctx, query)
	switch {
	case err != nil:
		return err
	case st != nil:
		_, err = st.ExecContext(ctx, args...)
	case q.tx != nil:
		if _, err = q.tx.ExecContext(ctx, query, args...); err == nil {
			q.cache.want(query)
		}
	default:
		_, err = q.cache.db.ExecContext(ctx, query, args...)
	}
	return err
}

func (q sqlQuerier) query(ctx context.Context, query string, args ...any) (rows, error) {
	st, err := q.stmt(ctx, query)
	var rs *sql.Rows
	switch {
	case err != nil:
		return nil, err
	case st != nil:
		rs, err = st.QueryContext(ctx, args...)
	case q.tx != nil:
		if rs, err = q.tx.QueryContext(ctx, query, args...); err == nil {
			q.cache.want(query)
		}
	default:
		rs, err = q.cache.db.QueryContext(ctx, query, args...)
	}
	if err != nil {
		return nil, err
	}
	return sqlRows{rs}, nil
}

func (q sqlQuerier) queryAfter(ctx context.Context, before []statement, query string, args ...any) (rows, error) {
	for _, st := range before {
		if st.scan == nil {
			if err := q.exec(ctx, st.sql, st.args...); err != nil {
				return nil, err
			}
			continue
		}
		rs, err := q.query(ctx, st.sql, st.args...)
		if err != nil {
			return nil, err
		}
		err = st.scan(rs)
		rs.Close()
		if err == nil {
			err = rs.Err()
		}
		if err != nil {
			return nil, err
		}
	}
	return q.query(ctx, query, args...)
}

func (q sqlQuerier) execLater(ctx context.Context, st statement) error {
	if err := q.exec(ctx, st.sql, st.args...); err != nil {
		return st.failed(err)
	}
	return nil
}

type sqlRows struct{ *sql.Rows }

// Close closes the rows; their error, if any, is reported by Err.
func (r sqlRows) Close() { _ = r.Rows.Close() }

type sqlTx struct{ sqlQuerier }

// commit commits, and then prepares what the transaction ran unprepared,
// now that the connection is free.
func (t sqlTx) commit(ctx context.Context) error {
	err := t.tx.Commit()
	t.cache.prepareWanted(ctx)
	return err
}

func (t sqlTx) rollback(ctx context.Context) error {
	err := t.tx.Rollback()
	t.cache.prepareWanted(ctx)
	if err != nil && !errors.Is(err, sql.ErrTxDone) {
		return err
	}
	return nil
}
