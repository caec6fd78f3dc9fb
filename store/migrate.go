package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/pressly/goose/v3"
)

// migrations holds the schema of each dialect, one goose SQL file per
// version. Files are never edited once released: a change is a new file.
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrations embed.FS

// migrate applies the pending migrations in dir to db and logs each one
// applied.
func migrate(ctx context.Context, dialect goose.Dialect, db *sql.DB, dir string, logger *slog.Logger, opts ...goose.ProviderOption) error {
	fsys, err := fs.Sub(migrations, dir)
	if err != nil {
		return fmt.Errorf("reading migrations: %w", err)
	}
	opts = append([]goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}, opts...)
	p, err := goose.NewProvider(dialect, db, fsys, opts...)
	if err != nil {
		return fmt.Errorf("preparing migrations: %w", err)
	}
	results, err := upRacing(ctx, p)
	if err != nil {
		return fmt.Errorf("applying migrations: %w", err)
	}
	for _, r := range results {
		logger.LogAttrs(ctx, slog.LevelInfo, "applied migration",
			slog.Int64("version", r.Source.Version),
			slog.String("file", r.Source.Path),
			slog.Duration("took", r.Duration))
	}
	return nil
}

// upRacing applies pending migrations while other processes may be doing the
// same. PostgreSQL serialises them with an advisory lock; SQLite has no lock
// goose can take, so two processes opening a new file together can both try
// the same migration, and the later one fails (its transaction rolled back).
// When that happens and the other process has since applied everything, the
// database is as wanted; otherwise try again, and report a migration that
// keeps failing.
func upRacing(ctx context.Context, p *goose.Provider) ([]*goose.MigrationResult, error) {
	const attempts = 3
	var firstErr error
	for range attempts {
		results, err := p.Up(ctx)
		if err == nil {
			return results, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
		if pending, perr := p.HasPending(ctx); perr == nil && !pending {
			return nil, nil
		}
	}
	return nil, firstErr
}
