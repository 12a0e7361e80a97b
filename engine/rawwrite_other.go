//go:build !unix

package engine

// rawWrite is not available: every write goes through writeAll.
func rawWrite(uintptr, []byte) (int, error) { return 0, nil }

// rawWritev is not available either.
func rawWritev(uintptr, []byte, []byte) (int, error) { return 0, nil }
