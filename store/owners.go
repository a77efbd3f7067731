package store

import "container/heap"

// ownerSlot is the width, in nanoseconds, of the expiry slots an owner's
// records are counted in: a record counts as live until the end of its slot,
// at most a minute after it expires.
const ownerSlot = int64(60e9)

// ownerCount counts one owner's live records by expiry slot, so that records
// that have expired stop counting whether or not the table has reclaimed
// them yet (with lifetimes that differ, an expired record may wait behind
// live ones). Counting is O(log slots) per record.
type ownerCount struct {
	live  int           // records in slots that have not ended
	slots map[int64]int // slot -> records; ended and emptied slots are dropped
	// order holds the slots, earliest first; a slot that emptied stays
	// until it ends (and may be there twice if it filled again), which
	// expire skips: removal never searches the heap.
	order slotHeap
}

// expire drops the slots that ended by now.
func (c *ownerCount) expire(now int64) {
	for len(c.order) > 0 && (c.order[0]+1)*ownerSlot <= now {
		s := heap.Pop(&c.order).(int64)
		c.live -= c.slots[s] // 0 for a slot that emptied or was popped before
		delete(c.slots, s)
	}
}

func (c *ownerCount) add(exp int64) {
	s := exp / ownerSlot
	if _, ok := c.slots[s]; !ok {
		heap.Push(&c.order, s)
	}
	c.slots[s]++
	c.live++
}

// remove uncounts a record; one whose slot already ended was uncounted then.
func (c *ownerCount) remove(exp int64) {
	s := exp / ownerSlot
	n, ok := c.slots[s]
	if !ok {
		return
	}
	c.live--
	if n > 1 {
		c.slots[s] = n - 1
		return
	}
	delete(c.slots, s)
}

// slotHeap is a min-heap of slots (container/heap).
type slotHeap []int64

func (h slotHeap) Len() int           { return len(h) }
func (h slotHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h slotHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *slotHeap) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *slotHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
