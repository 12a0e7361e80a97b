//go:build !unix

package engine

// rawWritev is not available: every write goes through writeAll.
func rawWritev(uintptr, []byte, []byte) (int, error) { return 0, nil }
