package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// With -reference-replay, the reference server also records each accepted
// proof's jti in the shared store the kit runs on (-store redis or
// postgres), once, after the proof verified: the least a server whose
// instances share a replay cache must do for every request (RFC 9449
// §11.1), one round trip that no store implementation can avoid. The kit's
// throughput over the reference's is then the share of the machine the
// kit's store leaves it, beside what the store itself must cost.

// refReplayTTL is how long an entry is kept: the freshness window.
const refReplayTTL = refMaxAge + refLeeway

// refReplayOpenTimeout bounds opening the store.
const refReplayOpenTimeout = 10 * time.Second

// refReplayPoolSize is the PostgreSQL pool's size unless the URL sets
// pool_max_conns, the demo's (examples/server demoPoolSize).
const refReplayPoolSize = 16

// errReplayed is a jti the reference has already recorded.
var errReplayed = errors.New("proof replayed")

// refReplay records proofs for the reference.
type refReplay interface {
	// insert records key and reports whether it was new.
	insert(ctx context.Context, key [sha256.Size]byte) (bool, error)
	close()
}

// openRefReplay opens the store the flags name for the reference: one SET
// NX with an expiry on Redis (a server or, with -redis-cluster, a
// cluster); one INSERT ... ON CONFLICT DO NOTHING into a table of its own,
// keyed and indexed by expiry as the kit's replay table is, on PostgreSQL.
func openRefReplay(ctx context.Context, cfg config) (refReplay, error) {
	ctx, cancel := context.WithTimeout(ctx, refReplayOpenTimeout)
	defer cancel()
	switch cfg.store {
	case "redis":
		var c redis.UniversalClient
		if cfg.redisCluster {
			o, err := redis.ParseClusterURL(cfg.redisURL)
			if err != nil {
				return nil, fmt.Errorf("-reference-replay: -redis-url: %w", err)
			}
			c = redis.NewClusterClient(o)
		} else {
			o, err := redis.ParseURL(cfg.redisURL)
			if err != nil {
				return nil, fmt.Errorf("-reference-replay: -redis-url: %w", err)
			}
			c = redis.NewClient(o)
		}
		if err := c.Ping(ctx).Err(); err != nil {
			c.Close()
			return nil, fmt.Errorf("-reference-replay: %w", err)
		}
		return redisRefReplay{c}, nil
	case "postgres":
		pc, err := pgxpool.ParseConfig(cfg.pgURL)
		if err != nil {
			return nil, fmt.Errorf("-reference-replay: -postgres-url: %w", err)
		}
		if !strings.Contains(cfg.pgURL, "pool_max_conns") {
			pc.MaxConns = refReplayPoolSize
		}
		pool, err := pgxpool.NewWithConfig(ctx, pc)
		if err != nil {
			return nil, fmt.Errorf("-reference-replay: %w", err)
		}
		// Earlier runs' entries have expired; the table starts empty.
		if _, err := pool.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS loadgen_reference;
			CREATE TABLE IF NOT EXISTS loadgen_reference.replay (key bytea PRIMARY KEY, expires_at timestamptz NOT NULL);
			CREATE INDEX IF NOT EXISTS replay_expires_at ON loadgen_reference.replay (expires_at);
			TRUNCATE loadgen_reference.replay`); err != nil {
			pool.Close()
			return nil, fmt.Errorf("-reference-replay: %w", err)
		}
		return pgRefReplay{pool}, nil
	}
	return nil, fmt.Errorf("-reference-replay needs -store redis or postgres, not %q", cfg.store)
}

type redisRefReplay struct{ c redis.UniversalClient }

func (r redisRefReplay) insert(ctx context.Context, key [sha256.Size]byte) (bool, error) {
	return r.c.SetNX(ctx, "loadgen-reference:rp:"+hex.EncodeToString(key[:]), "1", refReplayTTL).Result()
}

func (r redisRefReplay) close() { r.c.Close() }

type pgRefReplay struct{ pool *pgxpool.Pool }

func (p pgRefReplay) insert(ctx context.Context, key [sha256.Size]byte) (bool, error) {
	tag, err := p.pool.Exec(ctx, `INSERT INTO loadgen_reference.replay (key, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
		key[:], time.Now().Add(refReplayTTL))
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

func (p pgRefReplay) close() { p.pool.Close() }

// refReplayArgs are the flags that give a spawned reference the kit's
// store (-compare -spawn -reference-replay).
func (cfg config) refReplayArgs() []string {
	if !cfg.referenceReplay {
		return nil
	}
	return append([]string{"-reference-replay", "-store", cfg.store}, cfg.storeArgs()...)
}
