//go:build !unix

package engine

// rawWrite is not available: every write goes through writeAll.
func rawWrite(uintptr, []byte) (int, error) { return 0, nil }

// rawWriteBatch is not available either.
func rawWriteBatch(uintptr, []byte, []seg) (int, error) { return 0, nil }
