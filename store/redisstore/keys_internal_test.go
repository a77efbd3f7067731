package redisstore

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop"
	"github.com/dpopkit/dpop/store"
)

// slot is the Redis Cluster hash slot of key: CRC16 (XMODEM) of its hash
// tag, the text between the first '{' and the next '}' when that is not
// empty, or of the whole key, modulo 16384.
func slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

func TestSlotReference(t *testing.T) {
	// The CRC16 check value of the Redis Cluster specification, and its
	// hash tag examples.
	if got := slot("123456789"); got != 0x31c3 {
		t.Errorf("slot(123456789) = %d, want %d", got, 0x31c3)
	}
	if slot("{user1000}.following") != slot("{user1000}.followers") || slot("{user1000}.following") != slot("user1000") {
		t.Error("keys with one tag hash apart")
	}
	if slot("foo{}{bar}") == slot("bar") {
		t.Error("an empty tag was taken as a tag")
	}
}

// TestScriptKeysShareASlot: every key a script touches, declared or derived
// from a record, lies in the slot of its first key, for any token hash and
// grant id; single-key records carry no tag and spread.
func TestScriptKeysShareASlot(t *testing.T) {
	s, err := New(Options{Client: nil, Prefix: "p:"})
	if err == nil || s != nil {
		t.Fatal("New accepted a nil client")
	}
	s = &Store{prefix: "tenant:a:"}
	grantSlots := map[int]bool{}
	for i := range 200 {
		var h, next store.TokenHash
		rand.Read(h[:])
		rand.Read(next[:])
		h[0] = byte(i) // every group
		grant := string(h[:5]) + "{}\x00 grant"
		keys := s.grantKeys(grant)
		id := b64.EncodeToString([]byte(grant))
		// Access token lookup: the token and the derived grant key.
		at := s.accessKey(h)
		if derived := s.grantPrefix(accessTag(h)) + id; slot(derived) != slot(at) {
			t.Fatalf("access token %q and grant key %q in slots %d and %d", at, derived, slot(at), slot(derived))
		}
		found := false
		for _, k := range keys {
			found = found || k == s.grantPrefix(accessTag(h))+id
			grantSlots[slot(k)] = true
		}
		if !found {
			t.Fatalf("RevokeGrant writes no copy beside %q", at)
		}
		// Refresh lookup and rotation: old, new, derived grant key and
		// derived list of the grant's consumed tokens.
		old, nw := s.refreshKey(h), s.refreshKey(next)
		if slot(old) != slot(nw) || slot(old) != slot(s.grantPrefix(refreshTag)+id) || keys[len(keys)-1] != s.grantPrefix(refreshTag)+id {
			t.Fatal("refresh token keys and their grant key are in different slots")
		}
		if slot(s.consumedPrefix()+id) != slot(old) {
			t.Fatal("the list of a grant's consumed refresh tokens is not in the refresh tokens' slot")
		}
		// Single-key records hash whole: no tag.
		for _, k := range []string{s.codeKey(h), s.replayKey(dpop.ReplayKey(h)), s.clientKey("{" + grant + "}")} {
			if strings.ContainsAny(k, "{}") {
				t.Fatalf("single-key record %q has a hash tag", k)
			}
		}
	}
	if len(grantSlots) != accessGroups+1 {
		t.Errorf("grant revocations span %d slots, want %d", len(grantSlots), accessGroups+1)
	}
}

func TestRounding(t *testing.T) {
	for d, want := range map[time.Duration]int64{time.Millisecond: 1, time.Microsecond: 1, 1500 * time.Microsecond: 2, time.Minute: 60000} {
		if got := ceilMillis(d); got != want {
			t.Errorf("ceilMillis(%v) = %d, want %d", d, got, want)
		}
	}
	base := time.UnixMilli(1_700_000_000_000)
	if got := ceilUnixMilli(base); got != base.UnixMilli() {
		t.Errorf("ceilUnixMilli of a whole millisecond moved it: %d", got)
	}
	if got := ceilUnixMilli(base.Add(time.Nanosecond)); got != base.UnixMilli()+1 {
		t.Errorf("ceilUnixMilli rounded down: %d", got)
	}
}
