package store

import (
	"context"
	"time"

	"github.com/dpopkit/dpop"
)

var _ AccessTokenUser = (*Memory)(nil)

// UseAccessToken implements [AccessTokenUser] with UseAccessTokenApart:
// both steps are in process, so there is no round trip to save; a token
// revoked between the two is refused by the next request.
func (m *Memory) UseAccessToken(ctx context.Context, h TokenHash, jkt string, key dpop.ReplayKey, ttl time.Duration) (*AccessToken, bool, error) {
	return UseAccessTokenApart(ctx, m, h, jkt, key, ttl)
}
