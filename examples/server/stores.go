package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
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
		return openRedis(ctx, cfg, prefix)
	case "postgres":
		return openPostgres(ctx, cfg.postgresURL, cfg.namespace, logger)
	}
	return nil, nil, fmt.Errorf("unknown store %q", cfg.store)
}

// openRedis opens the Redis store on the server rawURL names or, with
// cluster (-redis-cluster), on the Redis Cluster it names in the form of
// redis.ParseClusterURL: one node's URL, the other nodes as addr parameters.
// The store runs on a cluster unchanged (see its package doc: hash tags).
func openRedis(ctx context.Context, cfg config, prefix string) (store.Store, func(), error) {
	rawURL := cfg.redisURL
	var client redis.UniversalClient
	if cfg.redisCluster {
		opts, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, nil, fmt.Errorf("-redis-url (a cluster URL, for -redis-cluster): %w", err)
		}
		failFast(&opts.ContextTimeoutEnabled, &opts.DialTimeout, &opts.ReadTimeout, &opts.WriteTimeout)
		client = redis.NewClusterClient(opts)
	} else {
		opts, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, nil, fmt.Errorf("-redis-url: %w", err)
		}
		failFast(&opts.ContextTimeoutEnabled, &opts.DialTimeout, &opts.ReadTimeout, &opts.WriteTimeout)
		client = redis.NewClient(opts)
	}
	pctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		client.Close()
		return nil, nil, fmt.Errorf("-store redis: %w", err)
	}
	st, err := redisstore.New(redisstore.Options{Client: client, Prefix: prefix, Replicas: cfg.redisReplicas})
	if err != nil {
		client.Close()
		return nil, nil, err
	}
	return st, func() { st.Close(); client.Close() }, nil
}

// failFast sets the fields of a Redis client's options, a server's or a
// cluster's: request deadlines bound the calls, and a Redis that stops
// answering makes requests fail fast (503) instead of hanging.
func failFast(contextTimeout *bool, dial, read, write *time.Duration) {
	*contextTimeout = true
	*dial, *read, *write = 2*time.Second, 2*time.Second, 2*time.Second
}

// demoPoolSize is the demo's PostgreSQL pool size when -postgres-url does
// not set pool_max_conns: pgx's default (four connections on a machine of
// two cores) keeps requests waiting for a connection while the others wait
// for their commit.
const demoPoolSize = 16

func openPostgres(ctx context.Context, rawURL, schema string, logger *slog.Logger) (store.Store, func(), error) {
	pcfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("-postgres-url: %w", err)
	}
	if !strings.Contains(rawURL, "pool_max_conns") {
		pcfg.MaxConns = demoPoolSize
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
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
