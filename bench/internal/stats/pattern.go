package stats

// FillPattern fills b with pseudo-random bytes that depend on seed, so the
// load generator and the tests can tell one connection's payload from
// another's and verify every reply byte for byte.
func FillPattern(b []byte, seed int) {
	x := uint32(seed)*2654435761 + 12345
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
}
