package redisstore

import (
	"strings"
	"testing"
	"time"

	"github.com/dpopkit/dpop/store"
)

// TestDecodedTokens: a record decodes to the token encodeToken wrote, the
// same text a second time comes from the cache, and each caller owns what
// it gets (changing its slices changes neither the cache nor another
// caller's token); a malformed record is an error and is not kept, nor is
// a record over maxDecodedRecord; the cache stops at its bound.
func TestDecodedTokens(t *testing.T) {
	d := newDecodedTokens()
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	want := store.AccessToken{GrantID: "g", ClientID: "c", Subject: "alice", Scope: "read", JKT: "jkt",
		Audience: []string{"https://api.example"}, Claims: []byte(`{"tenant":"t1"}`), IssuedAt: at, ExpiresAt: at.Add(time.Hour)}
	rec, err := encodeToken(want)
	if err != nil {
		t.Fatal(err)
	}
	first, err := d.access(string(rec))
	if err != nil {
		t.Fatal(err)
	}
	if d.c.Len() != 1 {
		t.Fatalf("%d entries after one record, want 1", d.c.Len())
	}
	first.Audience[0] = "changed"
	first.Claims[0] = 'X'
	second, err := d.access(string(rec))
	if err != nil {
		t.Fatal(err)
	}
	if d.c.Len() != 1 {
		t.Fatalf("%d entries after the same record twice, want 1", d.c.Len())
	}
	if second.Audience[0] != want.Audience[0] || string(second.Claims) != string(want.Claims) ||
		second.GrantID != want.GrantID || second.JKT != want.JKT || !second.ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("second read %+v, want %+v (a caller's change leaked into the cache)", second, want)
	}
	if _, err := d.access(`{"jkt":`); err == nil || d.c.Len() != 1 {
		t.Fatalf("malformed record: err %v, %d entries", err, d.c.Len())
	}
	big := want
	big.Claims = []byte(`{"blob":"` + strings.Repeat("x", maxDecodedRecord) + `"}`)
	bigRec, _ := encodeToken(big)
	if got, err := d.access(string(bigRec)); err != nil || string(got.Claims) != string(big.Claims) || d.c.Len() != 1 {
		t.Fatalf("record over %d bytes: err %v, %d entries (want it decoded and not kept)", maxDecodedRecord, err, d.c.Len())
	}
	for i := 0; i < decodedAccessTokens+10; i++ {
		w := want
		w.Subject = string(rune('a'+i%26)) + time.Duration(i).String()
		r, _ := encodeToken(w)
		if _, err := d.access(string(r)); err != nil {
			t.Fatal(err)
		}
	}
	if d.c.Len() != decodedAccessTokens {
		t.Fatalf("%d entries, want the bound %d", d.c.Len(), decodedAccessTokens)
	}
}
