package engine

import (
	"sync"

	"github.com/mai-go/mai"
)

// registry is the slab of live connections: O(1) insert, remove and lookup by
// ID, with a generation per slot so that an ID of a closed connection never
// finds a newer connection that reuses the slot.
type registry[F any] struct {
	mu    sync.RWMutex // guards slots, free, live
	slots []slot[F]
	free  []uint32 // indices of empty slots, used LIFO
	live  int
}

type slot[F any] struct {
	c        *conn[F]
	gen      uint32
	reserved bool // an ID is handed out, the connection not published yet
}

func (r *registry[F]) init(capacity int) {
	r.slots = make([]slot[F], 0, capacity)
	r.free = make([]uint32, 0, capacity)
}

// reserve takes a free slot and returns its new ID. The slot finds nothing
// until publish: a connection is published only once it is complete.
func (r *registry[F]) reserve() mai.ConnID {
	r.mu.Lock()
	defer r.mu.Unlock()
	var i uint32
	if n := len(r.free); n > 0 {
		i = r.free[n-1]
		r.free = r.free[:n-1]
	} else {
		r.slots = append(r.slots, slot[F]{})
		i = uint32(len(r.slots) - 1)
	}
	s := &r.slots[i]
	s.gen++
	if s.gen == 0 { // wrapped: 0 is reserved so the zero ConnID never exists
		s.gen = 1
	}
	s.reserved = true
	return mai.NewConnID(i, s.gen)
}

// publish makes c findable under id. It reports false if id was removed
// meanwhile (the connection closed before it was complete).
func (r *registry[F]) publish(id mai.ConnID, c *conn[F]) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &r.slots[id.Slot()]
	if s.gen != id.Generation() || !s.reserved {
		return false
	}
	s.reserved = false
	s.c = c
	r.live++
	return true
}

// remove frees the slot of id if it still holds that connection (or its
// reservation).
func (r *registry[F]) remove(id mai.ConnID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := id.Slot()
	if int(i) >= len(r.slots) {
		return
	}
	s := &r.slots[i]
	if s.gen != id.Generation() || (s.c == nil && !s.reserved) {
		return
	}
	if s.c != nil {
		r.live--
	}
	s.c, s.reserved = nil, false
	r.free = append(r.free, i)
}

// get returns the live connection with id, or nil.
func (r *registry[F]) get(id mai.ConnID) *conn[F] {
	r.mu.RLock()
	defer r.mu.RUnlock()
	i := id.Slot()
	if int(i) >= len(r.slots) {
		return nil
	}
	s := r.slots[i]
	if s.gen != id.Generation() {
		return nil
	}
	return s.c
}

func (r *registry[F]) len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.live
}

// snapshot appends the live connections to dst and returns it.
func (r *registry[F]) snapshot(dst []*conn[F]) []*conn[F] {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for i := range r.slots {
		if c := r.slots[i].c; c != nil {
			dst = append(dst, c)
		}
	}
	return dst
}
