package store_test

import (
	"testing"

	"github.com/dpopkit/dpop/adaptertest"
	"github.com/dpopkit/dpop/store"
)

func TestMemoryConformance(t *testing.T) {
	adaptertest.Run(t, func(t *testing.T) (store.Store, func()) {
		m, err := store.NewMemory(store.MemoryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return m, func() { m.Close() }
	})
}
