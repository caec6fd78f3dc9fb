package store

import (
	"context"
	"errors"
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
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return pgxTx{pgxQuerier{tx}, tx}, nil
}

func (b *postgresBackend) close() error {
	b.pool.Close()
	return nil
}

// postgresUpsertMany writes rs with one statement per postgresBatchRows rows,
// each passing its columns as arrays to unnest: one statement text whatever
// the batch size. The history trigger keeps the versions the statement
// replaces in one INSERT ... SELECT per statement.
func (s *Store) postgresUpsertMany(ctx context.Context, q querier, rs []Resource, at time.Time) error {
	const query = `INSERT INTO resources (` + resourceColumns + `)
SELECT t.resource_type, t.id, 1, $1, t.source, t.format, t.data, t.hash, t.patient, t.status, t.owner, t.requester
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::bytea[], $8::text[], $9::text[], $10::text[], $11::text[])
	AS t(resource_type, id, source, format, data, hash, patient, status, owner, requester)` + upsertTail
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
		if err := q.exec(ctx, query, at, types, ids, sources, formats, data, hashes, patients, statuses, owners, request); err != nil {
			return err
		}
	}
	return nil
}

// pgxQuerier adapts a pgx pool or transaction.
type pgxQuerier struct {
	db interface {
		Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	}
}

func (q pgxQuerier) exec(ctx context.Context, query string, args ...any) error {
	_, err := q.db.Exec(ctx, query, args...)
	return err
}

func (q pgxQuerier) query(ctx context.Context, query string, args ...any) (rows, error) {
	return q.db.Query(ctx, query, args...)
}

type pgxTx struct {
	pgxQuerier
	tx pgx.Tx
}

func (t pgxTx) commit(ctx context.Context) error { return t.tx.Commit(ctx) }

func (t pgxTx) rollback(ctx context.Context) error {
	if err := t.tx.Rollback(ctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		return err
	}
	return nil
}
