// Package store is the RESP example server's keyspace: an in-memory map
// from keys to byte strings with optional expiry, sharded so that
// connections served on different goroutines rarely contend.
//
// Values are immutable once stored: Set copies its value in and every update
// stores a new slice, so the slice Get returns may be read (encoded into a
// reply) after the shard's lock is released.
package store

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Errors with Redis's wording, so a server can reply "-" + err.Error().
var (
	ErrNotInteger = errors.New("ERR value is not an integer or out of range")
	ErrOverflow   = errors.New("ERR increment or decrement would overflow")
)

const (
	defaultShards = 64
	maxShards     = 1 << 16
)

type entry struct {
	val      []byte
	expireAt int64 // unix milliseconds; 0: no expiry
}

func (e *entry) live(now int64) bool { return e.expireAt == 0 || now < e.expireAt }

// alive is live with the clock read only for a key that has an expiry: most
// keys have none, and reading the clock on every command costs about 5% of
// the server's CPU at a million commands a second.
func (s *Store) alive(e *entry) bool { return e.expireAt == 0 || s.now() < e.expireAt }

// liveLocked returns key's entry if it is live, deleting it if it expired.
// sh is key's shard, write-locked.
func (s *Store) liveLocked(sh *shard, key []byte) (entry, bool) {
	e, found := sh.m[string(key)]
	if found && !s.alive(&e) {
		delete(sh.m, string(key))
		return entry{}, false
	}
	return e, found
}

type shard struct {
	mu sync.RWMutex
	m  map[string]entry
	_  [40]byte // keep shards' locks on separate cache lines
}

// Store is a sharded keyspace. It is safe for concurrent use. The zero
// Store is not usable; call New.
type Store struct {
	shards []shard
	mask   uint32
	now    func() int64
}

// New returns a Store with n shards, rounded up to a power of two (0 means
// 64; at most 65536).
func New(n int) *Store {
	if n <= 0 {
		n = defaultShards
	}
	n = min(n, maxShards)
	size := 1
	for size < n {
		size <<= 1
	}
	s := &Store{shards: make([]shard, size), mask: uint32(size - 1)}
	for i := range s.shards {
		s.shards[i].m = make(map[string]entry)
	}
	s.now = func() int64 { return time.Now().UnixMilli() }
	return s
}

// SetClock replaces the time source (unix milliseconds), for tests. Call it
// before using the Store.
func (s *Store) SetClock(now func() int64) { s.now = now }

// Now returns the Store's current time in unix milliseconds.
func (s *Store) Now() int64 { return s.now() }

func (s *Store) shardOf(key []byte) *shard { return &s.shards[s.shardIndex(key)] }

func (s *Store) shardIndex(key []byte) uint32 {
	// FNV-1a, inline so that hashing a []byte key does not allocate.
	h := uint32(2166136261)
	for _, b := range key {
		h ^= uint32(b)
		h *= 16777619
	}
	return h & s.mask
}

// Get returns the value of key, or ok false when it is missing or expired.
// The returned slice must not be modified.
func (s *Store) Get(key []byte) (val []byte, ok bool) {
	sh := s.shardOf(key)
	sh.mu.RLock()
	e, found := sh.m[string(key)]
	if found && s.alive(&e) {
		val, ok = e.val, true
	}
	sh.mu.RUnlock()
	return val, ok
}

// PTTL returns the milliseconds left before key expires, -1 when it has no
// expiry, -2 when it does not exist (Redis's PTTL).
func (s *Store) PTTL(key []byte) int64 {
	sh := s.shardOf(key)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	now := s.now()
	e, found := sh.m[string(key)]
	switch {
	case !found || !e.live(now):
		return -2
	case e.expireAt == 0:
		return -1
	}
	return e.expireAt - now
}

// SetMode is a SET condition.
type SetMode uint8

// SET conditions.
const (
	SetAlways SetMode = iota
	SetNX             // only if the key does not exist
	SetXX             // only if the key exists
)

// SetOptions are SET's options.
type SetOptions struct {
	Mode     SetMode
	ExpireAt int64 // unix milliseconds; 0: no expiry
	KeepTTL  bool  // keep the key's current expiry (ExpireAt ignored)
}

// Set stores a copy of val under key. It reports whether the value was
// stored (false when the NX or XX condition failed) and returns the previous
// live value, if any (for SET ... GET).
func (s *Store) Set(key, val []byte, o SetOptions) (stored bool, old []byte, hadOld bool) {
	sh := s.shardOf(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, found := s.liveLocked(sh, key)
	if found {
		old, hadOld = e.val, true
	}
	if (o.Mode == SetNX && found) || (o.Mode == SetXX && !found) {
		return false, old, hadOld
	}
	exp := o.ExpireAt
	if o.KeepTTL && found {
		exp = e.expireAt
	}
	// A new slice, never the old one overwritten: a reader may hold e.val.
	// Assigning to an existing key does not allocate the key again.
	sh.m[string(key)] = entry{val: append(make([]byte, 0, len(val)), val...), expireAt: exp}
	return true, old, hadOld
}

// Del removes key and reports whether a live key was removed.
func (s *Store) Del(key []byte) bool {
	sh := s.shardOf(key)
	sh.mu.Lock()
	e, found := sh.m[string(key)]
	if found {
		delete(sh.m, string(key))
	}
	sh.mu.Unlock()
	return found && s.alive(&e)
}

// Exists reports whether key holds a live value.
func (s *Store) Exists(key []byte) bool {
	_, ok := s.Get(key)
	return ok
}

// IncrBy adds delta to the integer stored at key (0 when missing) and
// returns the result, keeping the key's expiry, as Redis's INCRBY does.
func (s *Store) IncrBy(key []byte, delta int64) (int64, error) {
	sh := s.shardOf(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, found := s.liveLocked(sh, key)
	var cur int64
	var exp int64
	if found {
		n, ok := ParseInt(e.val)
		if !ok {
			return 0, ErrNotInteger
		}
		cur, exp = n, e.expireAt
	}
	if (delta > 0 && cur > math.MaxInt64-delta) || (delta < 0 && cur < math.MinInt64-delta) {
		return 0, ErrOverflow
	}
	cur += delta
	sh.m[string(key)] = entry{val: strconv.AppendInt(nil, cur, 10), expireAt: exp}
	return cur, nil
}

// ParseInt parses b as Redis parses an integer value: an optional '-' and
// decimal digits, no leading zeros, no spaces, within int64.
func ParseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	if len(b) == 1 && b[0] == '0' {
		return 0, true
	}
	neg := b[0] == '-'
	d := b
	if neg {
		d = b[1:]
	}
	if len(d) == 0 || d[0] < '1' || d[0] > '9' {
		return 0, false
	}
	var n uint64
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (math.MaxUint64-9)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if neg {
		if n > 1<<63 {
			return 0, false
		}
		return int64(-n), true
	}
	if n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}

// lockAll takes the locks of the shards of keys in a fixed order, so that a
// multi-key operation is atomic and cannot deadlock with another; it returns
// the unlock function.
func (s *Store) lockAll(keys [][]byte, write bool) func() {
	idx := make([]int, 0, len(keys))
	for _, k := range keys {
		idx = append(idx, int(s.shardIndex(k)))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		if write {
			s.shards[i].mu.Lock()
		} else {
			s.shards[i].mu.RLock()
		}
	}
	return func() {
		for _, i := range idx {
			if write {
				s.shards[i].mu.Unlock()
			} else {
				s.shards[i].mu.RUnlock()
			}
		}
	}
}

// MSet stores copies of pairs (key, value, key, value, ...) atomically,
// clearing their expiry. len(pairs) must be even.
func (s *Store) MSet(pairs [][]byte) {
	keys := make([][]byte, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		keys = append(keys, pairs[i])
	}
	unlock := s.lockAll(keys, true)
	defer unlock()
	for i := 0; i+1 < len(pairs); i += 2 {
		v := append(make([]byte, 0, len(pairs[i+1])), pairs[i+1]...)
		s.shardOf(pairs[i]).m[string(pairs[i])] = entry{val: v}
	}
}

// MGet returns the values of keys as one atomic snapshot; a missing or
// expired key gives a nil entry and false in found.
func (s *Store) MGet(keys [][]byte) (vals [][]byte, found []bool) {
	vals = make([][]byte, len(keys))
	found = make([]bool, len(keys))
	unlock := s.lockAll(keys, false)
	defer unlock()
	for i, k := range keys {
		if e, ok := s.shardOf(k).m[string(k)]; ok && s.alive(&e) {
			vals[i], found[i] = e.val, true
		}
	}
	return vals, found
}

// Len returns the number of keys, expired ones not yet swept included.
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}

// Flush removes every key.
func (s *Store) Flush() {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		clear(sh.m)
		sh.mu.Unlock()
	}
}

// Sweep removes expired keys, looking at no more than budget keys per shard
// (Go's map iteration starts at a random place, so repeated sweeps cover the
// whole map). It returns how many keys it removed. Call it periodically:
// reads never return expired keys, Sweep only reclaims their memory.
func (s *Store) Sweep(budget int) int {
	now := s.now()
	removed := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		seen := 0
		for k, e := range sh.m {
			if seen == budget {
				break
			}
			seen++
			if !e.live(now) {
				delete(sh.m, k)
				removed++
			}
		}
		sh.mu.Unlock()
	}
	return removed
}
