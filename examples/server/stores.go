package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/dpopkit/dpop/store"
	"github.com/dpopkit/dpop/store/pgstore"
	"github.com/dpopkit/dpop/store/redisstore"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// connectTimeout bounds the check, at start, that a shared store answers.
const connectTimeout = 10 * time.Second

// openStore opens the store -store names and returns it with its release.
// A shared store that cannot be reached stops the demo at start rather than
// at its first request.
func openStore(ctx context.Context, cfg config, logger *slog.Logger) (store.Store, func(), error) {
	switch cfg.store {
	case "memory":
		m, err := store.NewMemory(store.MemoryOptions{MaxReplayEntries: cfg.replayCap, MaxAccessTokens: cfg.replayCap})
		if err != nil {
			return nil, nil, err
		}
		return m, func() { m.Close() }, nil
	case "redis":
		prefix := "" // the store's default
		if cfg.namespace != "" {
			prefix = cfg.namespace + ":"
		}
		return openRedis(ctx, cfg.redisURL, prefix)
	case "postgres":
		return openPostgres(ctx, cfg.postgresURL, cfg.namespace, logger)
	}
	return nil, nil, fmt.Errorf("unknown store %q", cfg.store)
}

func openRedis(ctx context.Context, rawURL, prefix string) (store.Store, func(), error) {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("-redis-url: %w", err)
	}
	// Request deadlines bound the calls, and a Redis that stops answering
	// makes requests fail fast (503) instead of hanging.
	opts.ContextTimeoutEnabled = true
	opts.DialTimeout = 2 * time.Second
	opts.ReadTimeout = 2 * time.Second
	opts.WriteTimeout = 2 * time.Second
	client := redis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		client.Close()
		return nil, nil, fmt.Errorf("-store redis: %w", err)
	}
	st, err := redisstore.New(redisstore.Options{Client: client, Prefix: prefix})
	if err != nil {
		client.Close()
		return nil, nil, err
	}
	return st, func() { st.Close(); client.Close() }, nil
}

func openPostgres(ctx context.Context, rawURL, schema string, logger *slog.Logger) (store.Store, func(), error) {
	pool, err := pgxpool.New(ctx, rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("-postgres-url: %w", err)
	}
	mctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	// A real deployment runs the migration as a deployment step, with a role
	// allowed to create tables; the demo does it at start (it is idempotent).
	if err := pgstore.Migrate(mctx, pool, schema); err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("-store postgres: %w", err)
	}
	st, err := pgstore.New(mctx, pgstore.Options{Pool: pool, Schema: schema, Logger: logger.With("component", "pgstore")})
	if err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("-store postgres: %w", err)
	}
	return st, func() { st.Close(); pool.Close() }, nil
}
