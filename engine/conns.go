package engine

import (
	"errors"
	"fmt"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/bufpool"
)

// The registry of live connections, from any goroutine. Every method here
// is safe for concurrent use; an ID of a closed connection gives an error
// wrapping mai.ErrClosed and never reaches a newer connection.

func (e *ProtocolEngine[F]) lookup(id mai.ConnID, op string) (*conn[F], error) {
	if c := e.reg.get(id); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("%s %v: %w", op, id, mai.ErrClosed)
}

// Send queues frame on connection id (see mai.Context.Send).
func (e *ProtocolEngine[F]) Send(id mai.ConnID, frame F) error {
	c, err := e.lookup(id, "send to")
	if err != nil {
		return err
	}
	return c.Send(frame)
}

// Close closes connection id after writing what is queued for it.
func (e *ProtocolEngine[F]) Close(id mai.ConnID) error {
	c, err := e.lookup(id, "close")
	if err != nil {
		return err
	}
	return c.Close()
}

// Abort closes connection id now, dropping what is queued.
func (e *ProtocolEngine[F]) Abort(id mai.ConnID) error {
	c, err := e.lookup(id, "abort")
	if err != nil {
		return err
	}
	return c.Abort()
}

// Do runs fn with the connection's Context, serialized with its callbacks:
// fn never runs concurrently with another callback of that connection, so
// one connection can hand work to another without locks. Do does not wait
// for fn; fn runs on an engine goroutine before OnClosed, unless the
// connection has closed already, in which case Do returns an error wrapping
// mai.ErrClosed. A panic in fn closes that connection.
func (e *ProtocolEngine[F]) Do(id mai.ConnID, fn func(mai.Context[F])) error {
	if fn == nil {
		return fmt.Errorf("%w: nil function", mai.ErrInvalidOption)
	}
	c, err := e.lookup(id, "do on")
	if err != nil {
		return err
	}
	// Queued and checked in one step: a close that slips in between
	// cannot leave fn queued after OnClosed, never to run.
	if !c.post(event[F]{kind: evDo, fn: fn}) {
		return fmt.Errorf("do on %v: %w", id, mai.ErrClosed)
	}
	return nil
}

// Len returns the number of live connections.
func (e *ProtocolEngine[F]) Len() int { return e.reg.len() }

// IDs returns the IDs of the live connections, in slot order.
func (e *ProtocolEngine[F]) IDs() []mai.ConnID {
	cs := e.reg.snapshot(nil)
	ids := make([]mai.ConnID, len(cs))
	for i, c := range cs {
		ids[i] = c.id
	}
	return ids
}

// Info returns a snapshot of connection id's description and counters.
func (e *ProtocolEngine[F]) Info(id mai.ConnID) (mai.ConnInfo, error) {
	c, err := e.lookup(id, "info of")
	if err != nil {
		return mai.ConnInfo{}, err
	}
	return c.Info(), nil
}

// Conns returns a snapshot of every live connection's info.
func (e *ProtocolEngine[F]) Conns() []mai.ConnInfo {
	cs := e.reg.snapshot(nil)
	out := make([]mai.ConnInfo, len(cs))
	for i, c := range cs {
		out[i] = c.Info()
	}
	return out
}

// BroadcastResult counts what Broadcast did.
type BroadcastResult struct {
	Sent    int // frames queued
	Skipped int // connections over their high water mark (mai.ErrBackpressure)
	Failed  int // connections closing, or encode errors
	Err     error
}

// Broadcast sends frame to every live connection for which filter returns
// true (all when filter is nil). Connections over their outbound high water
// mark are skipped and counted, not waited for. Err holds the first error
// other than backpressure or a closed connection.
func (e *ProtocolEngine[F]) Broadcast(frame F, filter func(mai.ConnInfo) bool) BroadcastResult {
	var r BroadcastResult
	for _, c := range e.reg.snapshot(nil) {
		if filter != nil && !filter(c.Info()) {
			continue
		}
		err := c.Send(frame)
		switch {
		case err == nil:
			r.Sent++
		case errors.Is(err, mai.ErrBackpressure):
			r.Skipped++
		default:
			r.Failed++
			if r.Err == nil && !errors.Is(err, mai.ErrClosed) {
				r.Err = err
			}
		}
	}
	return r
}

// Stats are engine-wide counters.
type Stats struct {
	Live      int                         // connections now
	Accepted  uint64                      // connections taken since New
	Rejected  map[mai.RejectReason]uint64 // refused by admission, by reason
	Listeners int
	Pool      bufpool.Stats
}

// Stats returns the engine's counters.
func (e *ProtocolEngine[F]) Stats() Stats {
	e.lifeMu.Lock()
	nl := len(e.listeners)
	e.lifeMu.Unlock()
	rej := make(map[mai.RejectReason]uint64, len(e.rejected))
	for i := range e.rejected {
		if n := e.rejected[i].Load(); n > 0 {
			rej[mai.RejectReason(i)] = n
		}
	}
	return Stats{Live: e.reg.len(), Accepted: e.accepted.Load(), Rejected: rej, Listeners: nl, Pool: e.pool.Stats()}
}
