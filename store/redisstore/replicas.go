package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultReplicaTimeout is how long a write waits for its replicas'
// acknowledgement when Options.Replicas is set and Options.ReplicaTimeout
// is not.
const DefaultReplicaTimeout = 100 * time.Millisecond

// ErrNotReplicated is wrapped by the error of a write that fewer than
// Options.Replicas replicas acknowledged within Options.ReplicaTimeout. The
// write may have been applied on the master: a replay entry then refuses
// the proof's replays as any entry does, and a consumed code or rotated
// refresh token stays consumed. The kit answers 503, never accepting on a
// guess.
var ErrNotReplicated = errors.New("redisstore: write not acknowledged by enough replicas")

// ackWriter runs one command for a write that a failover must not lose.
// eval asks for the full script text instead of its digest (the server did
// not hold it); writes that are not scripts ignore it.
type ackWriter func(c redis.Cmdable, eval bool) redis.Cmder

// checkReplicaClient reports whether c is a client Options.Replicas can be
// used with: WAIT must follow a write on the connection that sent it, to
// the master that holds the key, which the store can arrange on a single
// server (or Sentinel) client and on a Cluster client.
func checkReplicaClient(c redis.UniversalClient) error {
	switch c.(type) {
	case *redis.Client, *redis.ClusterClient:
		return nil
	}
	return fmt.Errorf("redisstore: Options.Replicas needs a *redis.Client (single server or Sentinel) or a *redis.ClusterClient, not %T", c)
}

// durable runs write for key. Without Options.Replicas it runs on the
// client as any command does. With it, write and a WAIT for that many
// replicas go in one pipeline over one connection to the master holding
// key, and fewer acknowledgements than asked within Options.ReplicaTimeout
// fail the call with ErrNotReplicated. A script the server does not hold
// is sent again in full (the first attempt did not run). The returned
// command holds write's reply; the error is that of Redis or
// ErrNotReplicated, never the command's own redis.Nil.
func (s *Store) durable(ctx context.Context, key string, write ackWriter) (redis.Cmder, error) {
	cmd, err := s.writeOnce(ctx, key, write, false)
	if cmd != nil && redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		cmd, err = s.writeOnce(ctx, key, write, true)
	}
	if cmd != nil {
		if cerr := cmd.Err(); cerr != nil && !errors.Is(cerr, redis.Nil) {
			err = cerr
		}
	}
	if err != nil {
		s.reroute(err)
		return cmd, err
	}
	return cmd, nil
}

// writeOnce is one attempt of durable. Its error is that of finding the
// master or of the WAIT; the write's own error is left in the command.
func (s *Store) writeOnce(ctx context.Context, key string, write ackWriter, eval bool) (redis.Cmder, error) {
	if s.replicas == 0 {
		return write(s.c, eval), nil
	}
	node, err := s.master(ctx, key)
	if err != nil {
		return nil, err
	}
	var cmd redis.Cmder
	var wait *redis.Cmd
	// Pipelined's own error is the first failed command's, which may be
	// the write's redis.Nil; each reply is read instead.
	_, _ = node.Pipelined(ctx, func(p redis.Pipeliner) error {
		cmd = write(p, eval)
		wait = s.wait(ctx, p)
		return nil
	})
	return cmd, s.acknowledged(wait)
}

// wait queues WAIT for Options.Replicas within Options.ReplicaTimeout on p.
func (s *Store) wait(ctx context.Context, p redis.Pipeliner) *redis.Cmd {
	return p.Do(ctx, "wait", s.replicas, s.replicaTimeout.Milliseconds())
}

// acknowledged checks a WAIT's reply against Options.Replicas.
func (s *Store) acknowledged(wait *redis.Cmd) error {
	n, err := wait.Int64()
	switch {
	case err != nil:
		return err
	case n < int64(s.replicas):
		return fmt.Errorf("%w: %d of %d within %v", ErrNotReplicated, n, s.replicas, s.replicaTimeout)
	}
	return nil
}

// master returns the client of the master holding key: the store's own
// client on a single server, the node's on a Cluster.
func (s *Store) master(ctx context.Context, key string) (*redis.Client, error) {
	switch c := s.c.(type) {
	case *redis.ClusterClient:
		return c.MasterForKey(ctx, key)
	case *redis.Client:
		return c, nil
	}
	return nil, checkReplicaClient(s.c) // New refused it already
}

// reroute asks a Cluster client to read the slot map again after err,
// which may come from a master that failed over or lost its slots: the
// node clients durable writes through do not follow redirections
// themselves. The call that failed still fails.
func (s *Store) reroute(err error) {
	if cc, ok := s.c.(*redis.ClusterClient); ok && err != nil {
		cc.ReloadState(context.Background())
	}
}

// durableEach runs sc once for each key, with the same arguments, with the
// guarantee of durable: one pipeline per master, each followed by WAIT
// when Options.Replicas is set. Scripts the server does not hold are sent
// again in full.
func (s *Store) durableEach(ctx context.Context, sc *redis.Script, keys []string, args ...any) error {
	if s.replicas == 0 {
		return s.runEach(ctx, s.c, sc, keys, args, nil)
	}
	groups := map[*redis.Client][]string{}
	var order []*redis.Client
	for _, k := range keys {
		node, err := s.master(ctx, k)
		if err != nil {
			return err
		}
		if _, ok := groups[node]; !ok {
			order = append(order, node)
		}
		groups[node] = append(groups[node], k)
	}
	for _, node := range order {
		var wait *redis.Cmd
		err := s.runEach(ctx, node, sc, groups[node], args, func(p redis.Pipeliner) {
			wait = s.wait(ctx, p)
		})
		if err != nil {
			s.reroute(err)
			return err
		}
		if err := s.acknowledged(wait); err != nil {
			return err
		}
	}
	return nil
}
