package store

import (
	"testing"
	"time"
)

// TestClientCache: entries end after the TTL, reads and writes are
// copies, Forget drops an entry, the size bounds the cache, and a
// non-positive TTL gives a nil cache that keeps nothing.
func TestClientCache(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	cc := NewClientCache(time.Second, 2, func() time.Time { return now })
	c := &Client{ID: "a", RedirectURIs: []string{"https://a.example/cb"}}
	cc.Put(c)
	c.RedirectURIs[0] = "https://evil.example/" // the caller's copy
	got, ok := cc.Get("a")
	if !ok || got.RedirectURIs[0] != "https://a.example/cb" {
		t.Fatalf("Get = %+v, %v; want the client as put", got, ok)
	}
	got.RedirectURIs[0] = "https://evil.example/"
	if again, _ := cc.Get("a"); again.RedirectURIs[0] != "https://a.example/cb" {
		t.Error("a client returned by Get shares memory with the cache")
	}
	now = now.Add(999 * time.Millisecond)
	if _, ok := cc.Get("a"); !ok {
		t.Error("entry ended before its TTL")
	}
	now = now.Add(time.Millisecond)
	if _, ok := cc.Get("a"); ok {
		t.Error("entry outlived its TTL")
	}
	cc.Put(&Client{ID: "b"})
	cc.Forget("b")
	if _, ok := cc.Get("b"); ok {
		t.Error("Forget kept the entry")
	}
	for _, id := range []string{"x", "y", "z"} {
		cc.Put(&Client{ID: id})
	}
	if n := cc.clients.Len(); n != 2 {
		t.Errorf("cache of size 2 holds %d clients", n)
	}
	// A read that began before a save is not kept over it.
	gen := cc.Generation()
	cc.Put(&Client{ID: "x", RedirectURIs: []string{"https://new.example/cb"}})
	cc.PutRead(&Client{ID: "x", RedirectURIs: []string{"https://old.example/cb"}}, gen)
	if got, ok := cc.Get("x"); !ok || got.RedirectURIs[0] != "https://new.example/cb" {
		t.Errorf("a read older than a save replaced it: %+v, %v", got, ok)
	}
	gen = cc.Generation()
	cc.PutRead(&Client{ID: "y2"}, gen)
	if _, ok := cc.Get("y2"); !ok {
		t.Error("a read with no save since was not kept")
	}
	var none *ClientCache = NewClientCache(0, 0, nil)
	if none != nil {
		t.Fatal("a zero TTL gave a cache")
	}
	none.Put(&Client{ID: "a"})
	none.PutRead(&Client{ID: "a"}, none.Generation())
	none.Forget("a")
	if _, ok := none.Get("a"); ok {
		t.Error("a nil cache returned a client")
	}
}
