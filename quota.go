package dpop

import (
	"errors"
	"hash/maphash"
	"math"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Quota bounds the room one party may take in the replay cache, so that a
// client, or the holder of one grant or one access token, sending proofs as
// fast as it can fills its own share and not the cache every other party
// needs (RFC 9449 §11.1 makes the cache mandatory; its capacity is shared).
//
// A proof is charged to up to two parties, named by the caller in
// [Request]: the client, and within it the grant (at the token endpoint) or
// the access token (at a resource). Each party has a budget of entries it
// may keep alive in the replay cache. Budgets are token buckets measured in
// entry lifetime: a party starts with room for its whole budget, a proof
// costs the lifetime its replay entry will have, and room comes back at the
// budget's rate, so that at any time a party's live entries are at most about
// twice its budget, whatever their lifetime (with server nonces, entries live
// longer and a party gets fewer of them). A proof over either budget is
// refused with [ErrQuota] and a retry delay, after its signature is checked
// and before it reaches the replay cache: it costs no shared state.
//
// Budgets are counted per process: with several instances, a party gets its
// budget on each.
type Quota struct {
	// PerClient is the budget of one client: how many replay entries (of
	// the lifetime an entry has without nonces) its proofs may keep alive.
	// Zero selects the endpoint's default; negative turns the client
	// budget off.
	PerClient int
	// PerGrant is the budget of one grant or access token within a client.
	// Zero selects the endpoint's default; negative turns it off.
	PerGrant int
	// MaxParties bounds how many parties are tracked (default
	// DefaultQuotaParties). The least recently charged party is forgotten
	// to make room, which gives it back a full budget.
	MaxParties int
}

// Default budgets. A client may keep a tenth of the replay cache, and one
// grant or access token at a resource half of that: with the default cache
// (DefaultReplayCacheCapacity) and freshness window, about 140 and 70
// proofs a second, sustained (with nonces, whose entries live two to four
// minutes with DefaultNonceStep, about 55 and 28). When the cache tells its
// capacity (a [MemoryReplayCache] or a store built on one has a Capacity
// method) the shares follow it; otherwise the numbers below, sized for the
// default cache, apply. At a token endpoint, where a legitimate client asks for a
// few tokens an hour, one grant (one user's authorization, or one refresh
// token chain) gets DefaultGrantQuota: under 1.5 requests a second.
const (
	DefaultClientQuota = DefaultReplayCacheCapacity / 10
	DefaultTokenQuota  = DefaultClientQuota / 2
	DefaultGrantQuota  = 100
	// DefaultQuotaParties is the default of Quota.MaxParties.
	DefaultQuotaParties = 50_000
)

// capacityOf returns the number of entries a replay cache holds, when it
// says.
func capacityOf(c ReplayCache) (int, bool) {
	if s, ok := c.(interface{ Capacity() int }); ok && s.Capacity() > 0 {
		return s.Capacity(), true
	}
	return 0, false
}

// DefaultQuota returns the budgets a verifier over cache uses for the fields
// of VerifierOptions.Quota left zero: a tenth of the cache per client and a
// twentieth per grant or access token when the cache tells its capacity,
// DefaultClientQuota and DefaultTokenQuota otherwise.
func DefaultQuota(cache ReplayCache) Quota {
	if n, ok := capacityOf(cache); ok {
		return Quota{PerClient: max(n/10, 1), PerGrant: max(n/20, 1), MaxParties: DefaultQuotaParties}
	}
	return Quota{PerClient: DefaultClientQuota, PerGrant: DefaultTokenQuota, MaxParties: DefaultQuotaParties}
}

// withDefaults fills zero fields from DefaultQuota(cache).
func (q Quota) withDefaults(cache ReplayCache) (Quota, error) {
	if q.MaxParties < 0 {
		return q, errors.New("dpop: negative Quota.MaxParties")
	}
	def := DefaultQuota(cache)
	if q.PerClient == 0 {
		q.PerClient = def.PerClient
	}
	if q.PerGrant == 0 {
		q.PerGrant = def.PerGrant
	}
	if q.MaxParties == 0 {
		q.MaxParties = def.MaxParties
	}
	return q, nil
}

// quotas holds the token buckets of the parties a verifier has charged.
type quotas struct {
	perClient, perGrant int64 // budgets; <= 0: off
	unit                time.Duration
	seed                maphash.Seed
	shards              []quotaShard
}

type quotaShard struct {
	mu  sync.Mutex
	lru *simplelru.LRU[partyKey, *bucket]
	_   [40]byte // keeps neighbouring shards' locks off one cache line
}

// partyKey identifies a party by a keyed 64-bit hash of its kind and name,
// so that names of any length take the same small room. The seed is random
// per process, so collisions cannot be chosen.
type partyKey uint64

// bucket is one party's room, in nanoseconds of entry lifetime, as of last.
type bucket struct {
	level, last int64
}

const quotaShards = 16

// newQuotas returns the budgets of q; unit is the lifetime of a replay entry
// without nonces, the unit budgets are counted in.
func newQuotas(q Quota, unit time.Duration) (*quotas, error) {
	per := max(q.MaxParties/quotaShards, 1)
	// A budget so large that its room would not fit an int64 is as good as
	// unlimited: clamp it rather than let it wrap.
	limit := int64(math.MaxInt64) / int64(unit)
	t := &quotas{perClient: min(int64(q.PerClient), limit), perGrant: min(int64(q.PerGrant), limit), unit: unit, seed: maphash.MakeSeed(), shards: make([]quotaShard, quotaShards)}
	for i := range t.shards {
		l, err := simplelru.NewLRU[partyKey, *bucket](per, nil)
		if err != nil {
			return nil, err
		}
		t.shards[i].lru = l
	}
	return t, nil
}

func (t *quotas) key(kind byte, client, grant string) partyKey {
	var h maphash.Hash
	h.SetSeed(t.seed)
	h.WriteByte(kind)
	h.WriteString(client)
	h.WriteByte(0)
	h.WriteString(grant)
	return partyKey(h.Sum64())
}

// charge takes cost (an entry lifetime) from the client's and the grant's
// budgets. When either has too little room, nothing is taken and charge
// returns how long until there will be enough.
func (t *quotas) charge(client, grant string, cost time.Duration, now time.Time) (retry time.Duration, ok bool) {
	if client == "" && grant == "" {
		return 0, true
	}
	var taken partyKey
	var tookClient bool
	if client != "" && t.perClient > 0 {
		taken = t.key('c', client, "")
		if retry, ok := t.take(taken, t.perClient, int64(cost), now.UnixNano()); !ok {
			return retry, false
		}
		tookClient = true
	}
	if grant != "" && t.perGrant > 0 {
		if retry, ok := t.take(t.key('g', client, grant), t.perGrant, int64(cost), now.UnixNano()); !ok {
			if tookClient {
				t.give(taken, t.perClient, int64(cost))
			}
			return retry, false
		}
	}
	return 0, true
}

// refund gives back a charge that took no replay entry.
func (t *quotas) refund(client, grant string, cost time.Duration) {
	if client != "" && t.perClient > 0 {
		t.give(t.key('c', client, ""), t.perClient, int64(cost))
	}
	if grant != "" && t.perGrant > 0 {
		t.give(t.key('g', client, grant), t.perGrant, int64(cost))
	}
}

// take removes cost from the bucket of k, whose budget is budget entries.
func (t *quotas) take(k partyKey, budget, cost, now int64) (time.Duration, bool) {
	s := &t.shards[uint64(k)%quotaShards]
	capacity := budget * int64(t.unit) // room, in entry-nanoseconds
	// One proof always fits a full bucket, however small the budget and
	// however long its entry lives (nonces): else it would wait forever.
	cost = min(cost, capacity)
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.lru.Get(k)
	if !ok {
		b = &bucket{level: capacity, last: now}
		s.lru.Add(k, b)
	}
	if elapsed := now - b.last; elapsed > 0 {
		// Room comes back at budget entry-nanoseconds per nanosecond, up
		// to capacity; the product is computed only below the missing
		// room, where it cannot overflow.
		if missing := capacity - b.level; elapsed >= missing/budget {
			b.level = capacity
		} else {
			b.level += elapsed * budget
		}
		b.last = now
	}
	if b.level < cost {
		wait := (cost - b.level + budget - 1) / budget
		return time.Duration(wait), false
	}
	b.level -= cost
	return 0, true
}

// give returns cost to the bucket of k (a charge undone).
func (t *quotas) give(k partyKey, budget, cost int64) {
	s := &t.shards[uint64(k)%quotaShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.lru.Peek(k); ok {
		b.level = min(budget*int64(t.unit), b.level+cost)
	}
}
