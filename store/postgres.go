package store

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// postgresBatchRows is the number of rows in one multi-row upsert.
const postgresBatchRows = 1000

// postgresBackend is a pgx connection pool.
type postgresBackend struct {
	pool *pgxpool.Pool
}

func openPostgres(ctx context.Context, rawURL string, logger *slog.Logger) (_ *postgresBackend, err error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		// pgx's message names the URL with its password masked.
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			pool.Close()
		}
	}()
	if err := pool.Ping(ctx); err != nil {
		return nil, err
	}

	// Migrations and goose's version table go into the first schema of the
	// search_path; refuse to go on if there is none.
	var schema *string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return nil, fmt.Errorf("reading current schema: %w", err)
	}
	if schema == nil {
		return nil, fmt.Errorf("search_path %q names no existing schema", cfg.ConnConfig.RuntimeParams["search_path"])
	}

	// goose needs database/sql; borrow the pool's connections for it. Closing
	// this *sql.DB leaves the pool open.
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	// Instances starting together take turns: one session-level advisory
	// lock per schema, so stores in other schemas do not wait.
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(schemaLockID(*schema)),
		lock.WithLockTimeout(1, 300),
	)
	if err != nil {
		return nil, fmt.Errorf("creating migration lock: %w", err)
	}
	if err := migrate(ctx, goose.DialectPostgres, db, "migrations/postgres", logger, goose.WithSessionLocker(locker)); err != nil {
		return nil, err
	}
	return &postgresBackend{pool: pool}, nil
}

// schemaLockID derives the migration advisory lock of a schema.
func schemaLockID(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("pathway store migrations\x00" + schema))
	return int64(h.Sum64() & 0x7fffffffffffffff)
}

func (b *postgresBackend) reader() querier { return pgxQuerier{b.pool} }
func (b *postgresBackend) writer() querier { return pgxQuerier{b.pool} }

func (b *postgresBackend) begin(ctx context.Context) (txHandle, error) {
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &pgxTx{conn: conn}, nil
}

func (b *postgresBackend) close() error {
	b.pool.Close()
	return nil
}

// postgresUpsertSQL writes rows passed as arrays, one per column, to
// unnest: one statement text whatever the number of rows. The history
// trigger keeps the versions the statement replaces in one INSERT ...
// SELECT per statement.
const postgresUpsertSQL = `INSERT INTO resources (` + resourceColumns + `)
SELECT t.resource_type, t.id, 1, $1, t.source, t.format, t.data, t.hash, t.patient, t.status, t.owner, t.requester
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::bytea[], $8::text[], $9::text[], $10::text[], $11::text[])
	AS t(resource_type, id, source, format, data, hash, patient, status, owner, requester)` + upsertTail

// postgresUpserts returns the statements writing rs, one per
// postgresBatchRows rows.
func postgresUpserts(rs []Resource, at time.Time) []statement {
	var out []statement
	for len(rs) > 0 {
		n := min(len(rs), postgresBatchRows)
		chunk := rs[:n]
		rs = rs[n:]
		var (
			types, ids, sources, formats        = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			data, hashes                        = make([][]byte, n), make([][]byte, n)
			patients, statuses, owners, request = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		)
		for i := range chunk {
			r := &chunk[i]
			types[i], ids[i], sources[i], formats[i] = r.Type, r.ID, r.Source, r.Format
			data[i], hashes[i] = r.Data, r.Hash[:]
			patients[i], statuses[i], owners[i], request[i] = r.Patient, r.Status, r.Owner, r.Requester
		}
		out = append(out, statement{sql: postgresUpsertSQL, args: []any{at, types, ids, sources, formats, data, hashes, patients, statuses, owners, request}})
	}
	return out
}

// pgxQuerier adapts a pgx pool or connection.
type pgxQuerier struct {
	db interface {
		Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
		SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	}
}

func (q pgxQuerier) exec(ctx context.Context, query string, args ...any) error {
	_, err := q.db.Exec(ctx, query, args...)
	return err
}

func (q pgxQuerier) query(ctx context.Context, query string, args ...any) (rows, error) {
	return q.db.Query(ctx, query, args...)
}

// queryAfter sends before and query as one pipeline: one round trip
// instead of one per statement. Outside a transaction, PostgreSQL runs a
// pipeline as one implicit transaction.
func (q pgxQuerier) queryAfter(ctx context.Context, before []statement, query string, args ...any) (rows, error) {
	if len(before) == 0 {
		return q.query(ctx, query, args...)
	}
	b := &pgx.Batch{}
	for _, st := range before {
		b.Queue(st.sql, st.args...)
	}
	b.Queue(query, args...)
	br := q.db.SendBatch(ctx, b)
	for _, st := range before {
		if err := runBatched(br, st); err != nil {
			br.Close()
			return nil, st.failed(err)
		}
	}
	rs, err := br.Query()
	if err != nil {
		br.Close()
		return nil, err
	}
	return &batchRows{Rows: rs, br: br}, nil
}

func (q pgxQuerier) execLater(ctx context.Context, st statement) error {
	if err := q.exec(ctx, st.sql, st.args...); err != nil {
		return st.failed(err)
	}
	return nil
}

// runBatched reads the result of the pipeline's next statement st.
func runBatched(br pgx.BatchResults, st statement) error {
	if st.scan == nil {
		_, err := br.Exec()
		return err
	}
	rs, err := br.Query()
	if err != nil {
		return err
	}
	err = st.scan(rs)
	rs.Close()
	if err != nil {
		return err
	}
	return rs.Err()
}

// batchRows are the rows of a pipeline's last statement; closing them
// ends the pipeline.
type batchRows struct {
	pgx.Rows
	br  pgx.BatchResults
	err error
}

func (r *batchRows) Close() {
	r.Rows.Close()
	if r.br != nil {
		r.err = r.br.Close()
		r.br = nil
	}
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// pgxTx is a transaction on one connection of the pool. Its BEGIN is not
// a round trip of its own: it goes with the transaction's first statement
// in one pipeline (a transaction of a few statements, such as a Task
// update, spends most of its time in round trips), and so do statements
// run later (execLater) with the statement or the COMMIT after them. A
// transaction that sends nothing sends no BEGIN and no COMMIT either.
type pgxTx struct {
	conn    *pgxpool.Conn
	begun   bool
	pending []statement // execLater's, in order
}

var beginStatement = statement{sql: "begin"}

func (t *pgxTx) q() pgxQuerier { return pgxQuerier{t.conn} }

func (t *pgxTx) exec(ctx context.Context, query string, args ...any) error {
	if !t.begun || len(t.pending) > 0 {
		rs, err := t.queryAfter(ctx, nil, query, args...)
		if err != nil {
			return err
		}
		rs.Close()
		return rs.Err()
	}
	return t.q().exec(ctx, query, args...)
}

func (t *pgxTx) query(ctx context.Context, query string, args ...any) (rows, error) {
	return t.queryAfter(ctx, nil, query, args...)
}

func (t *pgxTx) queryAfter(ctx context.Context, before []statement, query string, args ...any) (rows, error) {
	if !t.begun || len(t.pending) > 0 {
		pre := make([]statement, 0, 1+len(t.pending)+len(before))
		if !t.begun {
			t.begun = true
			pre = append(pre, beginStatement)
		}
		pre = append(pre, t.pending...)
		t.pending = nil
		before = append(pre, before...)
	}
	return t.q().queryAfter(ctx, before, query, args...)
}

func (t *pgxTx) execLater(_ context.Context, st statement) error {
	t.pending = append(t.pending, st)
	return nil
}

func (t *pgxTx) commit(ctx context.Context) error {
	if t.conn == nil {
		return pgx.ErrTxClosed
	}
	defer t.release()
	if !t.begun && len(t.pending) == 0 {
		return nil
	}
	var tag pgconn.CommandTag
	if len(t.pending) > 0 {
		rs, err := t.queryAfter(ctx, nil, "commit")
		if err == nil {
			rs.Close()
			err = rs.Err()
		}
		if err != nil {
			// A statement before the COMMIT failed: the COMMIT did not run.
			t.conn.Exec(ctx, "rollback")
			return err
		}
		tag = rs.(*batchRows).CommandTag()
	} else {
		var err error
		if tag, err = t.conn.Exec(ctx, "commit"); err != nil {
			return err
		}
	}
	// A transaction a statement failed in ends in a rollback, which
	// PostgreSQL reports as the COMMIT's tag (as pgx.Tx.Commit checks).
	if tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

func (t *pgxTx) rollback(ctx context.Context) error {
	if t.conn == nil {
		return nil // committed, or rolled back already
	}
	defer t.release()
	t.pending = nil
	if !t.begun {
		return nil
	}
	_, err := t.conn.Exec(ctx, "rollback")
	return err
}

// release hands the connection back to the pool, which closes it rather
// than reuse it if a failure left it inside the transaction.
func (t *pgxTx) release() {
	t.conn.Release()
	t.conn = nil
}
