package pgstore

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/dpopkit/dpop/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Defaults of Options.
const (
	// DefaultSchema is the schema the tables live in when Options.Schema is
	// empty.
	DefaultSchema = "dpop"
	// DefaultCleanupInterval is how often expired rows are deleted.
	DefaultCleanupInterval = time.Minute
	// DefaultCleanupBatch is the most rows one cleanup statement deletes.
	DefaultCleanupBatch = 1000
	// DefaultQueryTimeout bounds each call, waiting for a connection
	// included.
	DefaultQueryTimeout = 5 * time.Second
)

// maxBatchesPerRun bounds one cleanup run: per table, at most this many
// statements of CleanupBatch rows, so that a run always ends.
const maxBatchesPerRun = 100

// ErrInvalidText is returned when a string to be saved contains a NUL byte or
// is not valid UTF-8, which PostgreSQL text cannot hold. Nothing is saved.
var ErrInvalidText = errors.New("pgstore: text must be valid UTF-8 without NUL bytes")

// Options configures [New].
type Options struct {
	// Pool is the caller's connection pool. Required. The store never closes
	// it.
	Pool *pgxpool.Pool
	// Schema holds the tables (default DefaultSchema): a plain lower-case
	// identifier (letters, digits and underscores, not starting with a
	// digit, at most 63 bytes), created by Migrate.
	Schema string
	// CleanupInterval is how often expired rows are deleted (default
	// DefaultCleanupInterval). A negative interval disables the background
	// cleanup; DeleteExpired can then be run by other means.
	CleanupInterval time.Duration
	// CleanupBatch is the most rows one cleanup statement deletes (default
	// DefaultCleanupBatch). A run deletes a table's expired rows in such
	// batches until a batch comes back short or 100 batches were deleted,
	// so that a busy table is kept in check and a run always ends.
	CleanupBatch int
	// Now is the clock every expiry decision uses (default time.Now); see
	// the package documentation.
	Now func() time.Time
	// QueryTimeout bounds each call, waiting for a pool connection included
	// (default DefaultQueryTimeout; negative: no bound beyond the caller's
	// context). HTTP request contexts have no deadline, so without it a
	// database that stops answering (a network partition rather than a
	// refused connection) would hold requests until TCP gives up; with it
	// they fail, and the kit answers 503.
	QueryTimeout time.Duration
	// Logger receives one record per failed background cleanup. Default:
	// discard.
	Logger *slog.Logger
	// ClientCacheTTL is how long GetClient keeps a client it read in
	// process (store.ClientCache), saving the query on the next requests
	// of that client. SaveClient through this store replaces the entry at
	// once; a client saved by another process is seen within
	// ClientCacheTTL, until when this one may still honour its previous
	// registration. Unknown clients are never kept. Default
	// store.DefaultClientCacheTTL (one second); negative: no cache.
	ClientCacheTTL time.Duration
}

// Store is a [store.Store] in PostgreSQL. It is safe for concurrent use, by
// any number of goroutines and of processes sharing the schema.
type Store struct {
	pool    *pgxpool.Pool
	schema  string
	now     func() time.Time
	batch   int
	timeout time.Duration
	log     *slog.Logger
	q       queries
	clients *store.ClientCache

	closed   atomic.Bool
	stop     context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
	runs     atomic.Int64 // completed background cleanup runs
}

var (
	_ store.Store              = (*Store)(nil)
	_ store.PushedRequestStore = (*Store)(nil)
	_ store.Pinger             = (*Store)(nil)
)

var identifier = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// quoteSchema validates a schema name and returns it quoted for SQL.
func quoteSchema(schema string) (string, error) {
	if schema == "" {
		schema = DefaultSchema
	}
	if !identifier.MatchString(schema) {
		return "", fmt.Errorf("pgstore: schema %q is not a plain lower-case identifier", schema)
	}
	return pgx.Identifier{schema}.Sanitize(), nil
}

//go:embed schema.sql
var schemaSQL string

// tables are the tables Migrate creates and New looks for.
var tables = []string{"clients", "codes", "pushed_requests", "access_tokens", "refresh_tokens", "revoked_grants", "replay"}

// Migrate creates the schema and its tables if they do not exist yet. It is
// idempotent, and safe to run from several processes at once: it runs in one
// transaction that first takes a transaction-level advisory lock derived from
// the schema name, so that concurrent runs wait for one another instead of
// racing on the catalog. An empty schema means DefaultSchema.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	if pool == nil {
		return errors.New("pgstore: Migrate needs a pool")
	}
	quoted, err := quoteSchema(schema)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	ddl := strings.ReplaceAll(schemaSQL, "{schema}", quoted)
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLockKey(quoted)); err != nil {
			return err
		}
		// No arguments: the simple protocol, which runs several statements.
		_, err := tx.Exec(ctx, ddl)
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: migrate schema %s: %w", quoted, err)
	}
	return nil
}

// migrateLockKey is the advisory lock key of a schema's migration.
func migrateLockKey(quoted string) int64 {
	h := fnv.New64a()
	h.Write([]byte("dpopkit pgstore migrate\x00" + quoted))
	return int64(h.Sum64())
}

// New returns a store over the tables Migrate created in opts.Schema. It
// changes nothing in the database: it checks, with one query, that the tables
// exist and that the database encoding is UTF8, and fails otherwise (also
// when the database cannot be reached before ctx ends or within
// opts.QueryTimeout). Unless
// opts.CleanupInterval is negative it starts a goroutine that deletes expired
// rows; [Store.Close] stops it.
func New(ctx context.Context, opts Options) (*Store, error) {
	if opts.Pool == nil {
		return nil, errors.New("pgstore: Options.Pool is required")
	}
	quoted, err := quoteSchema(opts.Schema)
	if err != nil {
		return nil, err
	}
	if opts.Schema == "" {
		opts.Schema = DefaultSchema
	}
	if opts.CleanupBatch < 0 {
		return nil, errors.New("pgstore: negative CleanupBatch")
	}
	if opts.CleanupBatch == 0 {
		opts.CleanupBatch = DefaultCleanupBatch
	}
	if opts.CleanupInterval == 0 {
		opts.CleanupInterval = DefaultCleanupInterval
	}
	if opts.QueryTimeout == 0 {
		opts.QueryTimeout = DefaultQueryTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.QueryTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.QueryTimeout)
		defer cancel()
	}
	if err := checkSchema(ctx, opts.Pool, opts.Schema); err != nil {
		return nil, err
	}
	s := &Store{
		pool: opts.Pool, schema: opts.Schema, now: opts.Now, batch: opts.CleanupBatch, timeout: opts.QueryTimeout, log: opts.Logger,
		q: buildQueries(quoted), done: make(chan struct{}),
		clients: store.NewClientCache(cmp.Or(opts.ClientCacheTTL, store.DefaultClientCacheTTL), 0, opts.Now),
	}
	if opts.CleanupInterval < 0 {
		close(s.done)
		s.stop = func() {}
		return s, nil
	}
	loopCtx, stop := context.WithCancel(context.Background())
	s.stop = stop
	go s.cleanupLoop(loopCtx, opts.CleanupInterval)
	return s, nil
}

// checkSchema verifies that every table exists and that text is UTF-8.
func checkSchema(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pgstore: check schema: %w", err)
	}
	var (
		encoding string
		found    []string
	)
	err := pool.QueryRow(ctx, `SELECT current_setting('server_encoding'),
		ARRAY(SELECT tablename::text FROM pg_catalog.pg_tables WHERE schemaname = $1 AND tablename = ANY($2))`,
		schema, tables).Scan(&encoding, &found)
	if err != nil {
		return fmt.Errorf("pgstore: check schema %q: %w", schema, withContext(ctx, err))
	}
	if encoding != "UTF8" {
		return fmt.Errorf("pgstore: the database encoding is %s; the store needs UTF8", encoding)
	}
	if len(found) != len(tables) {
		return fmt.Errorf("pgstore: schema %q has %d of the store's %d tables (found %v): run Migrate first", schema, len(found), len(tables), found)
	}
	return nil
}

// Close stops the background cleanup and waits for a run in progress to
// end. It does not close the pool, which belongs to the caller. After Close
// every method fails with store.ErrClosed. Close is idempotent and always
// returns nil.
func (s *Store) Close() error {
	s.closed.Store(true)
	s.stopOnce.Do(s.stop)
	<-s.done
	return nil
}

// Ping implements store.Pinger: a round trip to the server (SELECT 1 on a
// pool connection, a wait for one included), bounded by ctx and
// QueryTimeout. It fails with store.ErrClosed after Close.
func (s *Store) Ping(ctx context.Context) error {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	var one int
	if err := s.pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fail(ctx, "ping", err)
	}
	return nil
}

// begin checks the store and the context before a statement is sent, and
// returns the context to send it with, bounded by QueryTimeout; the caller
// must call done.
func (s *Store) begin(ctx context.Context) (_ context.Context, done context.CancelFunc, err error) {
	if s.closed.Load() {
		return nil, nil, store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("pgstore: %w", err)
	}
	ctx, done = s.statementContext(ctx)
	return ctx, done, nil
}

// statementContext bounds ctx by QueryTimeout.
func (s *Store) statementContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.timeout < 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.timeout)
}

// fail wraps a database error of operation op. The context's error is
// wrapped as well when the context ended, so that errors.Is(err,
// context.Canceled) holds whatever pgx reported.
func fail(ctx context.Context, op string, err error) error {
	return fmt.Errorf("pgstore: %s: %w", op, withContext(ctx, err))
}

func withContext(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%w)", err, cerr)
	}
	return err
}

// validText reports whether every string can be stored in PostgreSQL text.
func validText(ss ...string) bool {
	for _, s := range ss {
		if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

// textArray returns a non-nil copy for a text[] column (pgx sends a nil slice
// as NULL), or false when an element cannot be stored.
func textArray(ss []string) ([]string, bool) {
	if !validText(ss...) {
		return nil, false
	}
	return append([]string{}, ss...), true
}
