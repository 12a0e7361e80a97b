package stats

// Result is what one load generator run reports: one JSON line on stdout,
// prefixed with "RESULT ".
type Result struct {
	Mode    string  `json:"mode"`
	Conns   int     `json:"conns"`
	Size    int     `json:"size"`
	Depth   int     `json:"depth"`
	Seconds float64 `json:"seconds"` // length of the measured window

	Frames       int64   `json:"frames"` // replies received and verified in the window
	FramesPerSec float64 `json:"frames_per_sec"`
	MBPerSec     float64 `json:"mb_per_sec"` // payload bytes echoed per second, 10^6 bytes, one direction
	P50us        float64 `json:"p50_us"`
	P99us        float64 `json:"p99_us"`
	P999us       float64 `json:"p999_us"`
	Errors       int64   `json:"errors"` // bad replies and I/O errors (a correct run has none)
	FirstError   string  `json:"first_error,omitempty"`

	ServerCPUSec float64 `json:"server_cpu_sec"`
	ClientCPUSec float64 `json:"client_cpu_sec"`
	// ServerUsPerFrame is server CPU microseconds per echoed frame, which
	// is the same number as server CPU seconds per million frames.
	ServerUsPerFrame float64 `json:"server_us_per_frame"`
	// ServerUserSec and ServerSysSec split ServerCPUSec into the time the
	// server ran its own code and the time the kernel ran for it (system
	// calls, and the TCP work they do).
	ServerUserSec float64 `json:"server_user_sec"`
	ServerSysSec  float64 `json:"server_sys_sec"`
	// ForeignPct is the CPU time of both cores that neither the server nor
	// the client used during the window, in percent of one core: other
	// processes (builds, tests), the kernel's own threads, and steal.
	ForeignPct float64 `json:"foreign_pct"`
	StealPct   float64 `json:"steal_pct"`

	// Syscalls is set with -perf-ctl: the server's system calls per frame,
	// counted in a window of its own after the measured one, so that the
	// counting does not weigh on the figures above. The load generator
	// reports the window (Seconds, Frames); the benchmark, which reads the
	// counts once perf stat has exited, fills in the rest.
	Syscalls *Syscalls `json:"syscalls,omitempty"`
}
