package mai

import (
	"errors"
	"fmt"

	"github.com/mai-go/mai/codec"
)

// Sentinel errors. Match them with errors.Is; the engine wraps them with
// details using %w.
var (
	// ErrClosed is returned by operations on a connection or engine that has
	// closed, including operations aimed at a ConnID whose connection has
	// gone (even if its slot now holds a newer connection).
	ErrClosed = errors.New("mai: closed")

	// ErrShutdown is returned by operations on an engine that is shutting
	// down or has stopped. It wraps ErrClosed, so errors.Is(err, ErrClosed)
	// also holds.
	ErrShutdown = fmt.Errorf("mai: engine shut down: %w", ErrClosed)

	// ErrFrameTooLarge reports a frame whose declared or buffered size is
	// over the configured maximum. It is detected before the frame's body is
	// buffered. It is the same value as codec.ErrFrameTooLarge, so codecs
	// and the engine report one error.
	ErrFrameTooLarge = codec.ErrFrameTooLarge

	// ErrInboundLimit reports a connection that held more un-decoded or
	// un-handled input than WithMaxInboundBytes allows. The std and epoll
	// transports stop reading at the bound instead, so there it only
	// reports a partial frame that alone fills it; netpoll cannot stop
	// reading, and reports it for a peer that goes on sending while the
	// connection is paused.
	ErrInboundLimit = errors.New("mai: inbound buffer limit exceeded")

	// ErrBackpressure is returned by Send when the connection's queued
	// outbound bytes are at or over the high water mark and the policy is
	// BackpressureReject.
	ErrBackpressure = errors.New("mai: outbound queue over high water mark")

	// ErrProtocol wraps every error a Codec's Decode returns, so a handler
	// can tell a protocol violation from an I/O error.
	ErrProtocol = errors.New("mai: protocol error")

	// ErrEncode wraps every error a Codec's Encode returns.
	ErrEncode = errors.New("mai: encode failed")

	// ErrPanic wraps a panic recovered from a Handler callback or a Codec.
	ErrPanic = errors.New("mai: panic in callback")

	// ErrAborted is the cause reported to OnClosed for a connection closed
	// with Abort.
	ErrAborted = errors.New("mai: connection aborted")

	// ErrPartialFrame is reported when the peer closed its side with a
	// partial frame still buffered: bytes that do not make a whole frame,
	// after every whole frame received was delivered.
	ErrPartialFrame = errors.New("mai: connection closed with a partial frame")

	// ErrInvalidOption reports an option value the constructor rejected.
	ErrInvalidOption = errors.New("mai: invalid option")

	// ErrRejected is wrapped by the error of a connection refused by
	// admission control (see RejectError).
	ErrRejected = errors.New("mai: connection rejected")

	// ErrUnknownListener is returned when a listener name is not registered.
	ErrUnknownListener = errors.New("mai: unknown listener")

	// ErrDuplicateListener is returned when a listener name is already used.
	ErrDuplicateListener = errors.New("mai: duplicate listener name")

	// ErrUnsupported is returned for a transport or connection type the
	// engine cannot drive on this platform.
	ErrUnsupported = errors.New("mai: unsupported")
)

// TimeoutError is the error of an expired idle, read, write or handshake
// timeout. It implements net.Error with Timeout() true, and matches
// os.ErrDeadlineExceeded-style checks through errors.As.
type TimeoutError struct {
	Kind TimeoutKind
}

func (e *TimeoutError) Error() string   { return "mai: " + e.Kind.String() + " timeout" }
func (e *TimeoutError) Timeout() bool   { return true }
func (e *TimeoutError) Temporary() bool { return false }

// Is makes errors.Is(err, &TimeoutError{Kind: k}) match by kind.
func (e *TimeoutError) Is(target error) bool {
	t, ok := target.(*TimeoutError)
	return ok && t.Kind == e.Kind
}

// Timeout errors, one per kind, returned by Timeout.Err.
var (
	ErrIdleTimeout      error = &TimeoutError{Kind: TimeoutIdle}
	ErrReadTimeout      error = &TimeoutError{Kind: TimeoutRead}
	ErrWriteTimeout     error = &TimeoutError{Kind: TimeoutWrite}
	ErrHandshakeTimeout error = &TimeoutError{Kind: TimeoutHandshake}
)

// RejectReason says why admission control refused a connection.
type RejectReason uint8

const (
	// RejectCustom is a reason of the handler's own.
	RejectCustom RejectReason = iota
	// RejectLimit means a limit was reached (WithMaxConns, or the handler's).
	RejectLimit
	// RejectValidation means the peer failed a check (address, credentials).
	RejectValidation
	numRejectReasons
)

func (r RejectReason) String() string {
	switch r {
	case RejectLimit:
		return "limit"
	case RejectValidation:
		return "validation"
	default:
		return "custom"
	}
}

// RejectError is returned by an admission check to refuse a connection. It
// wraps ErrRejected.
type RejectError struct {
	Reason RejectReason
	Err    error // optional detail
}

// Reject returns a *RejectError with the given reason and detail.
func Reject(reason RejectReason, detail error) *RejectError {
	return &RejectError{Reason: reason, Err: detail}
}

func (e *RejectError) Error() string {
	if e.Err == nil {
		return "mai: connection rejected: " + e.Reason.String()
	}
	return "mai: connection rejected: " + e.Reason.String() + ": " + e.Err.Error()
}

// Unwrap returns ErrRejected and the detail.
func (e *RejectError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrRejected}
	}
	return []error{ErrRejected, e.Err}
}
