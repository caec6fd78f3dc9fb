package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// maxCachedStatements bounds a pool's statement cache. The store's
// statement texts are few (a fixed text per operation and one per row
// count of a multi-row upsert), so the bound is only a guard against a
// caller that would make a new text every time.
const maxCachedStatements = 512

// stmtCache keeps the prepared statements of one database/sql pool by text.
// database/sql with modernc's driver prepares, runs and finalises a
// statement for every call made with a text, and SQLite's parser was a
// tenth of ingest's time; a prepared statement is parsed once and then
// only bound and stepped.
//
// Inside a transaction a statement is borrowed with Tx.StmtContext, which
// reuses what was prepared on the transaction's connection. A text not yet
// cached cannot be prepared on the pool then: the write pool's one
// connection belongs to the transaction, and preparing on the pool would
// wait for it forever. So it runs unprepared, and is prepared on the pool
// when the transaction has ended (prepareWanted).
type stmtCache struct {
	db *sql.DB

	mu     sync.Mutex
	stmts  map[string]*sql.Stmt
	wanted map[string]struct{}
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, stmts: make(map[string]*sql.Stmt), wanted: make(map[string]struct{})}
}

func (c *stmtCache) lookup(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stmts[query]
}

// get returns the pool's statement for query, preparing it when it is new
// and there is room; nil (run it unprepared) otherwise. It must not be
// called inside a transaction of the pool.
func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	st, full := c.stmts[query], len(c.stmts) >= maxCachedStatements
	c.mu.Unlock()
	if st != nil || full {
		return st, nil
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev := c.stmts[query]; prev != nil {
		// Prepared meanwhile by another caller: keep one.
		_ = st.Close()
		return prev, nil
	}
	c.stmts[query] = st
	return st, nil
}

// want notes a text that ran unprepared in a transaction, to be prepared
// once the transaction has ended.
func (c *stmtCache) want(query string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.stmts)+len(c.wanted) < maxCachedStatements {
		c.wanted[query] = struct{}{}
	}
}

// prepareWanted prepares the texts want noted. A failure only leaves a
// text unprepared: it ran already, and runs unprepared again next time.
func (c *stmtCache) prepareWanted(ctx context.Context) {
	c.mu.Lock()
	if len(c.wanted) == 0 {
		c.mu.Unlock()
		return
	}
	texts := make([]string, 0, len(c.wanted))
	for q := range c.wanted {
		texts = append(texts, q)
	}
	clear(c.wanted)
	c.mu.Unlock()
	for _, q := range texts {
		if _, err := c.get(ctx, q); err != nil {
			return
		}
	}
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for q, st := range c.stmts {
		if err := st.Close(); err != nil {
			errs = append(errs, err)
		}
		delete(c.stmts, q)
	}
	return errors.Join(errs...)
}
