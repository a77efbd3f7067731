package middleware

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/dpopkit/dpop/internal/jose"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Limits of the JWKS key management of JWTValidator.
const (
	// jwksRefreshInterval is how often the cached JWKS is fetched again in
	// the background, whatever the server's caching headers say.
	jwksRefreshInterval = 5 * time.Minute
	// jwksRefreshWindow is how often the background refresher wakes up.
	jwksRefreshWindow = time.Minute
	// jwksRefetchInterval is the least time between two fetches triggered
	// by a token (an unknown kid, or no usable key set) once a key set has
	// been fetched.
	jwksRefetchInterval = 30 * time.Second
	// jwksFirstRetry is, until a first key set has been fetched, the delay
	// after the second failed fetch before a token may trigger another;
	// it doubles after each failure up to jwksRefetchInterval. The first
	// token after a failed start-up fetch fetches at once: an
	// authorization server in the same process is often not listening yet
	// when the validator is made.
	jwksFirstRetry = 250 * time.Millisecond
	// jwksFetchTimeout bounds one fetch of the JWKS, including the body.
	jwksFetchTimeout = 10 * time.Second
	// jwksMaxBytes bounds the JWKS document.
	jwksMaxBytes = 512 << 10
)

// keySet is where a JWTValidator gets the authorization server's public
// keys (RFC 7517 §5): a static set, or a JWKS URL (RFC 8414 §2 jwks_uri)
// kept in a jwx cache, fetched again in the background and, on a token's
// demand, under the refetch rule.
type keySet struct {
	// static is the set given as JWTOptions.Keys; nil with a JWKS URL.
	static jwk.Set

	// With a JWKS URL: the cache, its lifetime, the clock of the refetch
	// rule.
	life  context.Context
	cache *jwk.Cache
	url   string
	now   func() time.Time
	// refetch is a one-slot semaphore serializing token-triggered
	// fetches; it guards the fields below.
	refetch   chan struct{}
	lastFetch time.Time
	lastErr   error
	fetched   bool // a key set has been fetched once
	// ready is fetched, readable without the refetch slot: until then the
	// jwx cache would fetch on every read, bypassing the backoff.
	ready atomic.Bool
	retry time.Duration // before the first set: the wait after lastFetch
}

// newStaticKeys checks keys and keeps their public halves.
func newStaticKeys(keys jwk.Set) (*keySet, error) {
	pub, err := publicVerificationKeys(keys)
	if err != nil {
		return nil, err
	}
	return &keySet{static: pub}, nil
}

// newJWKSKeys registers url in a key cache living as long as life, and
// fetches it once; a failure is reported later, by key, as unavailable.
func newJWKSKeys(life context.Context, url string, client *http.Client, now func() time.Time) (*keySet, error) {
	s := &keySet{life: life, url: url, now: now, refetch: make(chan struct{}, 1)}
	s.cache = jwk.NewCache(life, jwk.WithRefreshWindow(jwksRefreshWindow))
	fetcher := &jwksFetcher{life: life, client: client}
	if err := s.cache.Register(url, jwk.WithHTTPClient(fetcher), jwk.WithRefreshInterval(jwksRefreshInterval)); err != nil {
		return nil, fmt.Errorf("middleware: JWKS cache: %w", err)
	}
	s.fetch(life)
	return s, nil
}

// key returns the public key of the one key of the set named kid, fit for
// spec (RFC 7515 §4.1.4, RFC 9068 §4), fetching the JWKS again when needed
// and allowed. A set that cannot be had is ErrValidatorUnavailable.
func (s *keySet) key(ctx context.Context, kid string, spec jose.Spec) (crypto.PublicKey, error) {
	if s.static != nil {
		return jose.PickKey(s.static, kid, spec)
	}
	// Until a set was fetched, only fetchLimited may fetch, within its
	// backoff: the jwx cache would fetch on every read, asking a JWKS
	// endpoint that is down once per token.
	if s.ready.Load() {
		if set, err := s.cached(ctx); err == nil {
			k, err := jose.PickKey(set, kid, spec)
			if !errors.Is(err, jose.ErrUnknownKid) {
				return k, err
			}
		}
	}
	// No usable set, or an unknown kid: the set may have changed.
	set, err := s.fetchLimited(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: jwt: JWKS: %w", ErrValidatorUnavailable, err)
	}
	return jose.PickKey(set, kid, spec)
}

// cached returns the cached key set without fetching.
func (s *keySet) cached(ctx context.Context) (jwk.Set, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksFetchTimeout)
	defer cancel()
	set, err := s.cache.Get(ctx, s.url)
	if err == nil && set == nil {
		err = errors.New("no key set")
	}
	return set, err
}

// fetchLimited fetches the JWKS unless a token-triggered fetch happened
// too recently (jwksRefetchInterval, or before the first set the backoff
// from jwksFirstRetry); then it returns what that fetch left: the cached
// set, or its error. Callers wait for a fetch in progress.
func (s *keySet) fetchLimited(ctx context.Context) (jwk.Set, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	wait := jwksRefetchInterval
	if !s.fetched {
		wait = s.retry
	}
	now := s.now()
	if !s.lastFetch.IsZero() && !now.Before(s.lastFetch) && now.Sub(s.lastFetch) < wait {
		if s.lastErr != nil {
			return nil, s.lastErr
		}
		return s.cached(ctx)
	}
	return s.fetchLocked(ctx)
}

// fetch fetches the JWKS now, holding the refetch slot.
func (s *keySet) fetch(ctx context.Context) (jwk.Set, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	return s.fetchLocked(ctx)
}

// lock takes the refetch slot, waiting for a fetch in progress, or gives
// up when ctx is done.
func (s *keySet) lock(ctx context.Context) error {
	select {
	case s.refetch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// unlock releases the refetch slot.
func (s *keySet) unlock() { <-s.refetch }

// fetchLocked fetches the JWKS and records the attempt; the caller holds
// the refetch slot. The fetch does not end with the caller's context, only
// with the cache's life or the timeout.
func (s *keySet) fetchLocked(ctx context.Context) (jwk.Set, error) {
	first := s.lastFetch.IsZero()
	s.lastFetch = s.now()
	set, err := s.refresh(ctx)
	s.lastErr = err
	switch {
	case err == nil:
		s.fetched = true
		s.ready.Store(true)
	case !s.fetched && first:
		s.retry = 0 // the first token fetches at once
	case !s.fetched:
		s.retry = min(max(2*s.retry, jwksFirstRetry), jwksRefetchInterval)
	}
	return set, err
}

// refresh fetches the JWKS into the cache.
func (s *keySet) refresh(ctx context.Context) (jwk.Set, error) {
	if err := s.life.Err(); err != nil {
		return nil, fmt.Errorf("key cache stopped: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksFetchTimeout)
	defer cancel()
	stop := context.AfterFunc(s.life, cancel)
	defer stop()
	set, err := s.cache.Refresh(ctx, s.url)
	if err == nil && set == nil {
		err = errors.New("no key set")
	}
	return set, err
}

// publicVerificationKeys returns the public halves of keys, refusing
// symmetric keys, keys without a kid and signature keys that fit no
// algorithm of the JOSE profile (an RSA key of 1024 bits, say), which could
// verify no token.
func publicVerificationKeys(keys jwk.Set) (jwk.Set, error) {
	out := jwk.NewSet()
	for i := range keys.Len() {
		k, _ := keys.Key(i)
		if k == nil || k.KeyType() == jwa.OctetSeq {
			return nil, errors.New("middleware: JWTOptions.Keys must hold asymmetric public keys")
		}
		if k.KeyID() == "" {
			return nil, errors.New("middleware: every key of JWTOptions.Keys needs a kid")
		}
		if err := fitsProfile(k); err != nil {
			return nil, fmt.Errorf("middleware: JWTOptions.Keys[%d] (kid %q): %w", i, k.KeyID(), err)
		}
		pub, err := k.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("middleware: JWTOptions.Keys: %w", err)
		}
		if err := out.AddKey(pub); err != nil {
			return nil, fmt.Errorf("middleware: JWTOptions.Keys: %w", err)
		}
	}
	return out, nil
}

// fitsProfile returns nil when k may verify tokens of at least one
// algorithm of the JOSE profile (its own alg, when it names one), or is an
// encryption key, which is never used; otherwise why it fits none.
func fitsProfile(k jwk.Key) error {
	if k.KeyUsage() == string(jwk.ForEncryption) {
		return nil
	}
	if a := k.Algorithm().String(); a != "" {
		spec, ok := jose.Lookup(a)
		if !ok {
			return fmt.Errorf("alg %q is not allowed (asymmetric JWS algorithms only: %v)", a, jose.Names())
		}
		_, err := jose.KeyFor(k, spec, jwk.KeyOpVerify)
		return err
	}
	var first error
	for _, name := range jose.Names() {
		spec, _ := jose.Lookup(name)
		_, err := jose.KeyFor(k, spec, jwk.KeyOpVerify)
		if err == nil {
			return nil
		}
		if first == nil && spec.KTY == k.KeyType().String() {
			first = err
		}
	}
	if first == nil {
		first = fmt.Errorf("%w: no algorithm takes a %s key", jose.ErrKeyFit, k.KeyType())
	}
	return first
}

// jwksFetcher is the HTTP client of the key cache: every fetch is bounded
// in time and size, and only a 200 answer is handed to the JWKS parser.
type jwksFetcher struct {
	life   context.Context
	client *http.Client
}

// Get fetches the JWKS (RFC 7517 §5) at u.
func (f *jwksFetcher) Get(u string) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(f.life, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	res, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("JWKS endpoint answered %d", res.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, jwksMaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the JWKS: %w", err)
	}
	if len(body) > jwksMaxBytes {
		return nil, errors.New("the JWKS is too large")
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	return res, nil
}
