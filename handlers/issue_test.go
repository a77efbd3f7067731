package handlers

import (
	"context"
	"errors"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// issuingStore is a memory store with store.AccessTokenIssuer, counting its
// calls and keeping the hash of the last token it was asked to save.
type issuingStore struct {
	*store.Memory
	mu    sync.Mutex
	calls int
	last  store.TokenHash
}

func (s *issuingStore) InsertAndSaveAccessToken(ctx context.Context, key dpop.ReplayKey, ttl time.Duration, h store.TokenHash, t *store.AccessToken) (bool, error) {
	s.mu.Lock()
	s.calls++
	s.last = h
	s.mu.Unlock()
	ok, err := s.Insert(ctx, key, ttl)
	if err != nil || !ok {
		return false, err
	}
	return true, s.SaveAccessToken(ctx, h, t)
}

func (s *issuingStore) took() (int, store.TokenHash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, s.last
}

func issuing(m *store.Memory) *issuingStore { return &issuingStore{Memory: m} }

// oneRoundTrip is edit (nil: none) with Config.OneRoundTrip set.
func oneRoundTrip(edit func(*Config)) func(*Config) {
	return func(c *Config) {
		c.OneRoundTrip = true
		if edit != nil {
			edit(c)
		}
	}
}

// TestTokenIssueOneCall: with Config.OneRoundTrip and opaque tokens in a store that is also the
// replay cache and implements store.AccessTokenIssuer, a client credentials
// request records its proof and saves its token in one call; a replayed
// proof is refused and saves no token.
func TestTokenIssueOneCall(t *testing.T) {
	h, s := wrappedHarness(t, issuing, oneRoundTrip(nil))
	headers := confHeaders(h, h.signer)
	r := wantToken(t, h.postForm(DefaultPaths.Token, ccForm(), headers), TokenTypeDPoP)
	n, last := s.took()
	if n != 1 || last != store.HashToken(r.str("access_token")) {
		t.Fatalf("%d InsertAndSaveAccessToken calls, last for another token; want 1 for the issued one", n)
	}
	rec, err := h.store.GetAccessToken(context.Background(), last)
	if err != nil || rec.ClientID != confID || rec.JKT != h.signer.JKT() {
		t.Fatalf("saved token %+v, %v", rec, err)
	}
	// The same proof again: refused, and its token is not saved.
	wantError(t, h.postForm(DefaultPaths.Token, ccForm(), headers), 400, dpop.CodeInvalidProof)
	n, last = s.took()
	if n != 2 {
		t.Fatalf("%d InsertAndSaveAccessToken calls, want 2", n)
	}
	if _, err := h.store.GetAccessToken(context.Background(), last); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the replayed request's token: %v, want ErrNotFound", err)
	}
	// Other grants keep their two calls.
	code := h.saveCode(confID, nil)
	wantToken(t, h.postForm(DefaultPaths.Token, codeForm(code), confHeaders(h, h.signer)), TokenTypeDPoP)
	if n, _ = s.took(); n != 2 {
		t.Errorf("an authorization code grant called InsertAndSaveAccessToken")
	}
}

// TestTokenIssueOneCallOnlyWhenSame: the one call is used only when asked
// for, with opaque tokens and when the verifier's replay cache is the store; otherwise the
// proof and the token take their two calls, and a Bearer request (no proof)
// saves its token as before.
func TestTokenIssueOneCallOnlyWhenSame(t *testing.T) {
	other, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	for name, edit := range map[string]func(*Config){
		"separate replay cache": oneRoundTrip(func(c *Config) { c.DPoP.ReplayCache = other }),
		"JWT access tokens":     oneRoundTrip(func(c *Config) { c.AccessTokenFormat = FormatJWT; c.SigningKeys = keySet(esKey(t, "k1")) }),
		"not asked for":         nil,
	} {
		t.Run(name, func(t *testing.T) {
			h, s := wrappedHarness(t, issuing, edit)
			wantToken(t, h.tokenRequest(ccForm()), TokenTypeDPoP)
			if n, _ := s.took(); n != 0 {
				t.Errorf("%d InsertAndSaveAccessToken calls, want none", n)
			}
		})
	}
	t.Run("same cache set explicitly", func(t *testing.T) {
		h, s := wrappedHarness(t, issuing, oneRoundTrip(func(c *Config) { c.DPoP.ReplayCache = c.Store }))
		wantToken(t, h.tokenRequest(ccForm()), TokenTypeDPoP)
		if n, _ := s.took(); n != 1 {
			t.Errorf("%d InsertAndSaveAccessToken calls, want 1", n)
		}
	})
	t.Run("Bearer", func(t *testing.T) {
		h, s := wrappedHarness(t, issuing, oneRoundTrip(func(c *Config) { c.AllowBearer = true }))
		r := h.postBasic(DefaultPaths.Token, url.Values{"grant_type": {"client_credentials"}}, bearerID+":"+bearerSecret)
		tok := wantToken(t, r, TokenTypeBearer).str("access_token")
		if n, _ := s.took(); n != 0 {
			t.Errorf("%d InsertAndSaveAccessToken calls for a Bearer request", n)
		}
		if _, err := h.store.GetAccessToken(context.Background(), store.HashToken(tok)); err != nil {
			t.Errorf("Bearer token not saved: %v", err)
		}
	})
}
