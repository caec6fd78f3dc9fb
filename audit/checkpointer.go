package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/pathway-fhir/pathway/store"
)

// Defaults of CheckpointerConfig.
const (
	DefaultCheckpointEvery    = 1000
	DefaultCheckpointInterval = 10 * time.Second
)

// CheckpointerConfig says how often a Checkpointer signs.
type CheckpointerConfig struct {
	// Every signs as soon as this many entries are not covered by a stored
	// checkpoint. Default DefaultCheckpointEvery.
	Every int64
	// Interval signs entries not yet covered once this long has passed
	// since the latest checkpoint. Default DefaultCheckpointInterval.
	Interval time.Duration
	// Poll is how often the log's size is read between Notify calls.
	// Default: Interval, at most one second.
	Poll time.Duration
	// NowFunc is the clock Interval is measured with. Default time.Now.
	NowFunc func() time.Time
	// Logger receives a line per checkpoint and per failure, tagged
	// component=audit-checkpointer. Default: discard.
	Logger *slog.Logger
}

// Checkpointer signs and stores checkpoints of a log as it grows: at least
// every Every entries or every Interval, whichever comes first, while
// entries arrive. The server and the workers each run one; several
// checkpointers on one database are harmless (a checkpoint of a size
// already stored is not stored twice).
//
// Entries are durable with the transaction that appended them, so a crash
// between an append and the next checkpoint loses nothing: the next
// checkpoint covers them.
//
// Lifecycle: NewCheckpointer, then Start once; Notify after appends (from
// any goroutine); Stop once to end it, which signs the entries still
// uncovered. Tick runs one round synchronously, without Start.
type Checkpointer struct {
	log    *Log
	signer note.Signer
	cfg    CheckpointerConfig
	logger *slog.Logger

	mu       sync.Mutex // serialises Tick
	loaded   bool
	lastSize uint64
	lastTime time.Time

	wake    chan struct{}
	startMu sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
}

// NewCheckpointer returns a checkpointer signing l's checkpoints with signer.
func NewCheckpointer(l *Log, signer note.Signer, cfg CheckpointerConfig) *Checkpointer {
	if cfg.Every <= 0 {
		cfg.Every = DefaultCheckpointEvery
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultCheckpointInterval
	}
	if cfg.Poll <= 0 {
		cfg.Poll = min(cfg.Interval, time.Second)
	}
	if cfg.NowFunc == nil {
		cfg.NowFunc = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Checkpointer{
		log: l, signer: signer, cfg: cfg,
		logger: cfg.Logger.With("component", "audit-checkpointer"),
		wake:   make(chan struct{}, 1),
	}
}

// Tick signs and stores a checkpoint if the policy says it is due: some
// entries are uncovered, and Every of them are, or Interval has passed
// since the latest checkpoint. It returns the new checkpoint and true, or
// false when none was due.
func (c *Checkpointer) Tick(ctx context.Context) (Checkpoint, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tick(ctx, false)
}

func (c *Checkpointer) tick(ctx context.Context, force bool) (Checkpoint, bool, error) {
	if !c.loaded {
		latest, err := c.log.st.LatestAuditCheckpoint(ctx)
		switch {
		case err == nil:
			c.lastSize, c.lastTime = uint64(latest.Size), latest.CreatedAt
		case errors.Is(err, store.ErrNotFound):
			c.lastSize, c.lastTime = 0, time.Time{}
		default:
			return Checkpoint{}, false, fmt.Errorf("checkpointing audit log: %w", err)
		}
		c.loaded = true
	}
	size, err := c.log.Size(ctx)
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("checkpointing audit log: %w", err)
	}
	pending := int64(size) - int64(c.lastSize)
	now := c.cfg.NowFunc()
	if pending <= 0 || !force && pending < c.cfg.Every && now.Sub(c.lastTime) < c.cfg.Interval {
		return Checkpoint{}, false, nil
	}
	cp, created, err := c.log.Checkpoint(ctx, c.signer)
	if err != nil {
		return Checkpoint{}, false, err
	}
	c.lastSize, c.lastTime = cp.Size, now
	if created {
		c.logger.LogAttrs(ctx, slog.LevelInfo, "signed checkpoint", slog.Uint64("size", cp.Size), slog.Int64("new_entries", pending))
	}
	return cp, created, nil
}

// Notify tells the checkpointer that entries were appended, so it checks
// the policy now rather than at its next poll. It never blocks.
func (c *Checkpointer) Notify() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Start runs the checkpointer in a goroutine until Stop or until ctx ends.
// Starting twice is an error.
func (c *Checkpointer) Start(ctx context.Context) error {
	c.startMu.Lock()
	defer c.startMu.Unlock()
	if c.done != nil {
		return errors.New("starting audit checkpointer: already started")
	}
	ctx, c.cancel = context.WithCancel(ctx)
	c.done = make(chan struct{})
	go c.run(ctx, c.done)
	return nil
}

func (c *Checkpointer) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(c.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.wake:
		}
		if _, _, err := c.Tick(ctx); err != nil && ctx.Err() == nil {
			c.logger.LogAttrs(ctx, slog.LevelError, "checkpointing failed", slog.String("error", err.Error()))
		}
	}
}

// Stop ends the goroutine Start began, waits for it (or for ctx), then signs
// a last checkpoint of the entries still uncovered. Stopping a checkpointer
// that was not started only signs; stopping twice is harmless.
func (c *Checkpointer) Stop(ctx context.Context) error {
	c.startMu.Lock()
	cancel, done := c.cancel, c.done
	c.startMu.Unlock()
	if cancel != nil {
		cancel()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("stopping audit checkpointer: %w", ctx.Err())
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, _, err := c.tick(ctx, true); err != nil {
		return fmt.Errorf("stopping audit checkpointer: %w", err)
	}
	return nil
}
