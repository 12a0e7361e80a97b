//go:build !linux

package engine

// sockUnread is 0 where the engine does not ask the kernel: no linger.
func sockUnread(int) int { return 0 }

func sockUnsent(int) int { return 0 }

func dupFD(int) (int, bool) { return -1, false }
