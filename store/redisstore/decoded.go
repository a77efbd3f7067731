package redisstore

import (
	"bytes"
	"slices"

	"github.com/dpopkit/dpop/store"
	lru "github.com/hashicorp/golang-lru/v2"
)

// decodedAccessTokens is how many decoded access token records a Store
// keeps (about 1 KB each, at most about 4 KB): the tokens in use at the
// resource servers it serves, whose every request reads the token's record
// again (UseAccessToken).
const decodedAccessTokens = 4096

// maxDecodedRecord is the longest record kept decoded: a token carrying
// large host claims is decoded on each read instead, so that the cache
// stays within about 16 MB whatever the tokens hold.
const maxDecodedRecord = 2 << 10

// decodedTokens keeps access token records decoded, keyed by the stored
// JSON itself: the same text always decodes to the same token, so an entry
// can never be stale, and a record that changes (a token saved again under
// its hash) is a new key. It saves a JSON decoding per request at the
// resource; it is bounded, and a flood of distinct tokens only evicts.
type decodedTokens struct {
	c *lru.Cache[string, store.AccessToken]
}

func newDecodedTokens() decodedTokens {
	c, _ := lru.New[string, store.AccessToken](decodedAccessTokens) // size is positive
	return decodedTokens{c}
}

// access decodes rec, an access token's JSON record, or returns the token
// it decoded from the same text before. The caller owns the token
// returned: its slices are copies.
func (d decodedTokens) access(rec string) (*store.AccessToken, error) {
	t, ok := d.c.Get(rec)
	if !ok {
		var err error
		if t, err = decodeToken(rec, "access token"); err != nil {
			return nil, err
		}
		if len(rec) <= maxDecodedRecord {
			d.c.Add(rec, t)
		}
	}
	t.Audience = slices.Clone(t.Audience)
	t.Claims = bytes.Clone(t.Claims)
	return &t, nil
}
