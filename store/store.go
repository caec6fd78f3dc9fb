package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotFound is returned (wrapped) when a resource or a version of it does
// not exist. Test for it with errors.Is.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned (wrapped) by Tx.Update when the resource is not
// at the version the caller changed.
var ErrConflict = errors.New("version conflict")

// ErrClosed is returned (wrapped) by every operation on a Store after Close.
var ErrClosed = errors.New("store closed")

// Dialect names the database behind a Store.
type Dialect string

const (
	// DialectSQLite is the embedded default: one SQLite file in WAL mode,
	// through the pure-Go modernc.org/sqlite driver.
	DialectSQLite Dialect = "sqlite"
	// DialectPostgres is PostgreSQL through a pgx/v5 connection pool.
	DialectPostgres Dialect = "postgres"
)

// DefaultSQLitePath is the file Open uses for an empty URL.
const DefaultSQLitePath = "./pathway.db"

// Option configures Open.
type Option func(*options)

type options struct {
	now    func() time.Time
	logger *slog.Logger
}

// WithNowFunc sets the clock that stamps LastUpdated on every write. The
// default is time.Now. Times are kept in UTC to the microsecond.
func WithNowFunc(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// WithLogger sets the logger the store reports migrations to, tagged
// component=store. The default discards. The store never logs resource
// contents or indexed values.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// Store holds Pathway's resources in SQLite or PostgreSQL. Open one with
// Open; it is safe for concurrent use and must be closed with Close.
//
// Writes made directly on a Store commit on their own. To write several
// things atomically, use WithTx and make every read and write inside it
// through the Tx it hands over.
type Store struct {
	dialect Dialect
	be      backend
	sql     *statements
	now     func() time.Time
	logger  *slog.Logger

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	group groupTx // WithGroupTx's queue
}

// Open opens the store named by url and applies any pending migrations.
//
// Accepted forms:
//
//	""                              SQLite file ./pathway.db
//	/var/lib/pathway/pathway.db     SQLite file at that path (absolute or relative)
//	sqlite:///var/lib/pathway.db    SQLite file at an absolute path
//	sqlite://pathway.db             SQLite file at a relative path
//	postgres://user@host/db?...     PostgreSQL (also postgresql://)
//
// A PostgreSQL URL takes every parameter pgx understands; search_path selects
// the schema the store lives in (it must exist), and goose's version table
// lives there too, so several stores can share one database.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	o := options{now: time.Now, logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	logger := o.logger.With("component", "store")
	loc, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	var be backend
	switch loc.dialect {
	case DialectSQLite:
		be, err = openSQLite(ctx, loc.target, logger)
		if err != nil {
			return nil, fmt.Errorf("opening sqlite store %q: %w", loc.target, err)
		}
	case DialectPostgres:
		be, err = openPostgres(ctx, loc.target, logger)
		if err != nil {
			return nil, fmt.Errorf("opening postgres store %q: %w", redactURL(loc.target), err)
		}
	default:
		return nil, fmt.Errorf("opening store: unhandled dialect %q", loc.dialect)
	}
	return &Store{
		dialect: loc.dialect,
		be:      be,
		sql:     newStatements(loc.dialect),
		now:     o.now,
		logger:  logger,
	}, nil
}

// Dialect reports which database the store uses.
func (s *Store) Dialect() Dialect { return s.dialect }

// Close releases the store's connections. It is safe to call more than once;
// later calls return the first call's result. Operations after Close return
// ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		if err := s.be.close(); err != nil {
			s.closeErr = fmt.Errorf("closing %s store: %w", s.dialect, err)
		}
	})
	return s.closeErr
}

func (s *Store) checkOpen() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// WithTx runs fn in one database transaction. The transaction commits when
// fn returns nil and rolls back when fn returns an error (which WithTx returns
// unchanged, so errors.Is works on it) or panics (WithTx rolls back, then
// re-panics with the same value).
//
// Inside fn, use only tx: on SQLite the transaction holds the single write
// connection, so a write through the Store itself would wait for fn to end.
// tx must not be used after fn returns. Transactions do not nest.
func (s *Store) WithTx(ctx context.Context, fn func(tx *Tx) error) (err error) {
	if err := s.checkOpen(); err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	h, err := s.be.begin(ctx)
	if err != nil {
		return fmt.Errorf("beginning %s transaction: %w", s.dialect, err)
	}
	finished := false
	defer func() {
		if finished {
			return
		}
		// fn panicked or called runtime.Goexit (t.FailNow does): roll back
		// either way, so the connection goes back to the pool clean.
		p := recover()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if rbErr := h.rollback(rctx); rbErr != nil {
			s.logger.LogAttrs(rctx, slog.LevelError, "rolling back after panic", slog.String("error", rbErr.Error()))
		}
		if p != nil {
			panic(p)
		}
	}()
	tx := &Tx{s: s, q: h}
	fnErr := fn(tx)
	if fnErr == nil {
		fnErr = tx.runAtEnd(ctx)
	}
	finished = true
	if fnErr != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if rbErr := h.rollback(rctx); rbErr != nil {
			return errors.Join(fnErr, fmt.Errorf("rolling back transaction: %w", rbErr))
		}
		return fnErr
	}
	if err := h.commit(ctx); err != nil {
		return fmt.Errorf("committing transaction: %w", err)
	}
	return nil
}

// Tx is one transaction opened by Store.WithTx. Its methods mirror the
// Store's; reads see the transaction's own uncommitted writes. A Tx is valid
// only inside the function WithTx calls and is not safe for concurrent use.
type Tx struct {
	s *Store
	q querier
	// atEnd runs after the transaction's functions, before its commit.
	atEnd []func(ctx context.Context, tx *Tx) error
}

// AtEnd has f run in the transaction after the function WithTx runs (in
// WithGroupTx, after every function of the shared transaction), before
// the commit; an error of f rolls the transaction back. It is for a write
// every transaction makes under one lock, such as an entry of the audit
// log (whose sequencer is one lock): done last, that lock is taken after
// the rows each function locks, in the order every other transaction
// takes them, and a shared transaction takes it once, at its end.
func (tx *Tx) AtEnd(f func(ctx context.Context, tx *Tx) error) {
	tx.atEnd = append(tx.atEnd, f)
}

// runAtEnd runs the functions AtEnd was given, in order.
func (tx *Tx) runAtEnd(ctx context.Context) error {
	for i := 0; i < len(tx.atEnd); i++ { // a function may add more
		if err := tx.atEnd[i](ctx, tx); err != nil {
			return err
		}
	}
	return nil
}

// Put writes r as in Store.Put, inside the transaction.
func (tx *Tx) Put(ctx context.Context, r Resource) (Resource, error) {
	return tx.s.put(ctx, tx.q, r)
}

// PutBatch writes rs as in Store.PutBatch (a caller's Hash included),
// inside the transaction.
func (tx *Tx) PutBatch(ctx context.Context, rs []Resource) error {
	return tx.s.putBatch(ctx, tx.q, rs)
}

// Get reads the current version of a resource, as in Store.Get.
func (tx *Tx) Get(ctx context.Context, resourceType, id string) (Resource, error) {
	return tx.s.get(ctx, tx.q, resourceType, id)
}

// GetVersion reads one version of a resource, as in Store.GetVersion.
func (tx *Tx) GetVersion(ctx context.Context, resourceType, id string, version int64) (Resource, error) {
	return tx.s.getVersion(ctx, tx.q, resourceType, id, version)
}

// Search finds current resources, as in Store.Search.
func (tx *Tx) Search(ctx context.Context, q Query) ([]Resource, error) {
	return tx.s.search(ctx, tx.q, q)
}

// Count counts current resources, as in Store.Count.
func (tx *Tx) Count(ctx context.Context, resourceType string) (int64, error) {
	return tx.s.count(ctx, tx.q, resourceType)
}

// Put stores r and returns it as stored, with Version, LastUpdated and Hash
// set by the store (whatever r held in them is ignored).
//
// If the current version has the same Format and the same hash of Data, Put
// changes nothing and returns the stored version: re-ingesting identical data
// creates no new version, and keeps the stored Source, LastUpdated and indexed
// values. Otherwise it writes a new version, numbered one past the current
// (the first is 1), stamped with the store's clock, and keeps the previous
// versions for GetVersion.
//
// Type must be a FHIR resource type name and ID a FHIR id; Format and Data
// must not be empty.
func (s *Store) Put(ctx context.Context, r Resource) (Resource, error) {
	if err := s.checkOpen(); err != nil {
		return Resource{}, fmt.Errorf("putting resource: %w", err)
	}
	// One upsert statement with its history trigger is atomic on its own.
	return s.put(ctx, s.be.writer(), r)
}

// PutBatch stores every resource in rs as Put would, in one transaction and
// with multi-row statements: either all of them are written or none. A
// resource that appears more than once is applied in slice order. A
// resource made by the caller (Version 0, no LastUpdated: not one read
// from the store) whose Hash is set is written with that Hash, which must
// be the SHA-256 of its Data; any other is hashed here.
func (s *Store) PutBatch(ctx context.Context, rs []Resource) error {
	if err := s.checkOpen(); err != nil {
		return fmt.Errorf("putting batch: %w", err)
	}
	if len(rs) == 0 {
		return nil
	}
	return s.WithTx(ctx, func(tx *Tx) error { return tx.PutBatch(ctx, rs) })
}

// Get returns the current version of the resource, or an error wrapping
// ErrNotFound.
func (s *Store) Get(ctx context.Context, resourceType, id string) (Resource, error) {
	if err := s.checkOpen(); err != nil {
		return Resource{}, fmt.Errorf("getting resource: %w", err)
	}
	return s.get(ctx, s.be.reader(), resourceType, id)
}

// GetVersion returns the given version of the resource, current or earlier,
// or an error wrapping ErrNotFound.
func (s *Store) GetVersion(ctx context.Context, resourceType, id string, version int64) (Resource, error) {
	if err := s.checkOpen(); err != nil {
		return Resource{}, fmt.Errorf("getting resource version: %w", err)
	}
	return s.getVersion(ctx, s.be.reader(), resourceType, id, version)
}

// Search returns the current versions of the resources that match q, ordered
// by id (bytewise). Page through a large result by passing the last id of one
// page as the next query's AfterID.
func (s *Store) Search(ctx context.Context, q Query) ([]Resource, error) {
	if err := s.checkOpen(); err != nil {
		return nil, fmt.Errorf("searching resources: %w", err)
	}
	return s.search(ctx, s.be.reader(), q)
}

// Count returns the number of current resources of the given type, or of all
// types when resourceType is empty.
func (s *Store) Count(ctx context.Context, resourceType string) (int64, error) {
	if err := s.checkOpen(); err != nil {
		return 0, fmt.Errorf("counting resources: %w", err)
	}
	return s.count(ctx, s.be.reader(), resourceType)
}

// backend is what a dialect provides: connections to read and write through,
// transactions, and closing.
type backend interface {
	// reader runs reads outside transactions.
	reader() querier
	// writer runs single auto-committed write statements.
	writer() querier
	// begin opens a write transaction.
	begin(ctx context.Context) (txHandle, error)
	close() error
}

// txHandle is an open transaction.
type txHandle interface {
	querier
	commit(ctx context.Context) error
	rollback(ctx context.Context) error
}

// querier runs statements; both database/sql and pgx are adapted to it.
type querier interface {
	exec(ctx context.Context, query string, args ...any) error
	query(ctx context.Context, query string, args ...any) (rows, error)
	// queryAfter runs the statements of before, in order, then query, and
	// returns query's rows; the first error stops it. PostgreSQL gets them
	// in one round trip (a pipeline); SQLite, in process, one by one.
	queryAfter(ctx context.Context, before []statement, query string, args ...any) (rows, error)
	// execLater runs st with the next statement of the transaction, or
	// with its commit, in the same round trip, on PostgreSQL: an error of
	// st is then that statement's or the commit's. Elsewhere (SQLite,
	// outside a transaction) it runs st now.
	execLater(ctx context.Context, st statement) error
}

// statement is one statement of a pipeline, with its arguments.
type statement struct {
	sql  string
	args []any
	// scan, when set, reads the statement's rows (before the rows are
	// closed); otherwise they are discarded.
	scan func(rows) error
	// fail, when set, makes the error of the statement (sent before
	// another) say what failed.
	fail func(error) error
}

// failed is the error of st, as st.fail describes it.
func (st statement) failed(err error) error {
	if st.fail == nil {
		return err
	}
	return st.fail(err)
}

// rows is the part of *sql.Rows and pgx.Rows the store uses.
type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// rebind turns the ? placeholders of a statement into PostgreSQL's $1, $2...
// Statements here never contain a literal question mark.
func rebind(d Dialect, q string) string {
	if d != DialectPostgres {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// closeAll closes each closer and joins their errors.
func closeAll(cs ...io.Closer) error {
	var errs []error
	for _, c := range cs {
		if c == nil {
			continue
		}
		if err := c.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
