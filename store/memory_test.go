package store_test

import (
	"testing"

	"github.com/dpopkit/dpop/adaptertest"
	"github.com/dpopkit/dpop/store"
)

func TestMemoryConformance(t *testing.T) { adaptertest.Run(t, newMemory) }

// TestMemoryInstances: two instances in one process over one memory store
// act as one service.
func TestMemoryInstances(t *testing.T) { adaptertest.RunInstances(t, adaptertest.SameStore(newMemory)) }

func newMemory(t *testing.T) (store.Store, func()) {
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return m, func() { m.Close() }
}
