package engine

// The registry of live connections (Len, IDs, Info, Conns, Send, Close,
// Abort, Do, Broadcast by ID) and admission control (protocol.Admitter,
// WithMaxConns).

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/protocol"
)

// eventually polls cond until it holds and fails the test after waitLimit.
// It is for state the engine updates after the last callback a test can
// wait for: a connection leaves the registry after its OnClosed returns,
// and a listener counts a connection after its OnReady may have run.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// echoRoundTrip writes a frame on c and expects it back.
func echoRoundTrip(t testing.TB, c net.Conn, what string) {
	t.Helper()
	want := "echo " + what
	if _, err := c.Write(frame([]byte(want))); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if got, err := readFrame(c); err != nil || string(got) != want {
		t.Fatalf("%s: got %q, %v", what, got, err)
	}
}

// echoRecorder is a recorder whose connections echo every frame except
// "probe", which goes to r.frames instead.
func echoRecorder(t *testing.T) *recorder {
	r := newRecorder(t)
	r.onFrame = func(c mai.Context[[]byte], f []byte) error {
		if string(f) == "probe" {
			r.frames <- recFrame{c.ID(), []byte("probe")}
			return nil
		}
		return c.Send(f)
	}
	return r
}

// TestRegistryInfo: Len, IDs, Info and Conns describe the live connections,
// and the counters count what went in and out.
func TestRegistryInfo(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := echoRecorder(t)
		e, err := New(lengthField(t, 1<<10), r, mai.WithTransport(tr))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { shutdown(t, e) })
		laddr, err := e.ListenNamed("front", "tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		before := time.Now()
		var clients []net.Conn
		var ids []mai.ConnID
		for i := 0; i < 3; i++ {
			clients = append(clients, dial(t, laddr.String()))
			ids = append(ids, recv(t, r.ready, "ready").ID())
		}
		after := time.Now()

		if n := e.Len(); n != 3 {
			t.Errorf("Len %d, want 3", n)
		}
		got := e.IDs()
		if !slices.IsSortedFunc(got, func(a, b mai.ConnID) int { return int(a.Slot()) - int(b.Slot()) }) {
			t.Errorf("IDs %v not in slot order", got)
		}
		if !sameIDs(got, ids) {
			t.Errorf("IDs %v, want %v", got, ids)
		}
		conns := e.Conns()
		var cids []mai.ConnID
		for _, ci := range conns {
			cids = append(cids, ci.ID)
		}
		if !sameIDs(cids, ids) {
			t.Errorf("Conns IDs %v, want %v", cids, ids)
		}
		for i, id := range ids {
			info, err := e.Info(id)
			if err != nil {
				t.Fatal(err)
			}
			if info.ID != id || info.Origin != mai.OriginAccepted || info.Listener != "front" ||
				info.RemoteAddr.String() != clients[i].LocalAddr().String() || info.LocalAddr.String() != laddr.String() ||
				info.Since.Before(before) || info.Since.After(after) || !info.Writable || info.Queued != 0 {
				t.Errorf("Info(%v) = %+v", id, info)
			}
		}

		// Client i sends i+1 frames of 10+i bytes and reads the echoes,
		// then a probe that is not echoed. By the time the probe reaches
		// OnFrame the echoes before it have been written (input is handled
		// in order, each batch flushed before the next input).
		for i, c := range clients {
			payload := make([]byte, 10+i)
			for k := 0; k <= i; k++ {
				if _, err := c.Write(frame(payload)); err != nil {
					t.Fatal(err)
				}
				if _, err := readFrame(c); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := c.Write(frame([]byte("probe"))); err != nil {
				t.Fatal(err)
			}
			if p := recv(t, r.frames, "probe"); p.id != ids[i] {
				t.Fatalf("probe from %v, want %v", p.id, ids[i])
			}
			n := uint64(i + 1)
			want := [4]uint64{n*uint64(4+len(payload)) + 9, n * uint64(4+len(payload)), n + 1, n}
			info, err := e.Info(ids[i])
			if err != nil {
				t.Fatal(err)
			}
			if got := [4]uint64{info.BytesIn, info.BytesOut, info.FramesIn, info.FramesOut}; got != want {
				t.Errorf("client %d: bytes in, out, frames in, out = %v, want %v", i, got, want)
			}
		}
	})
}

func sameIDs(a, b []mai.ConnID) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestRegistryByID: Send, Close, Abort and Do by ID, then the same on the
// IDs of the closed connections.
func TestRegistryByID(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := echoRecorder(t)
		e, addr := server(t, r, lengthField(t, 1<<10), mai.WithTransport(tr))
		a := dial(t, addr)
		idA := recv(t, r.ready, "ready").ID()
		b := dial(t, addr)
		idB := recv(t, r.ready, "ready").ID()
		c := dial(t, addr)
		recv(t, r.ready, "ready")

		if err := e.Send(idA, []byte("to a")); err != nil {
			t.Fatal(err)
		}
		if got, err := readFrame(a); err != nil || string(got) != "to a" {
			t.Fatalf("got %q, %v", got, err)
		}

		// Do runs with the connection's Context, serialized with its
		// callbacks (the recorder checks).
		ran := make(chan mai.ConnID, 1)
		if err := e.Do(idB, func(c mai.Context[[]byte]) {
			r.enter(c, "do")
			defer r.leave(c)
			ran <- c.ID()
			_ = c.Send([]byte("from do"))
		}); err != nil {
			t.Fatal(err)
		}
		if id := recv(t, ran, "Do"); id != idB {
			t.Fatalf("Do ran on %v, want %v", id, idB)
		}
		if got, err := readFrame(b); err != nil || string(got) != "from do" {
			t.Fatalf("got %q, %v", got, err)
		}

		// Close writes what is queued first; Abort does not wait.
		if err := e.Send(idA, []byte("last words")); err != nil {
			t.Fatal(err)
		}
		if err := e.Close(idA); err != nil {
			t.Fatal(err)
		}
		if got, err := readFrame(a); err != nil || string(got) != "last words" {
			t.Fatalf("got %q, %v", got, err)
		}
		expectClosedByPeer(t, a)
		if id := recv(t, r.closed, "OnClosed"); id != idA || r.causeOf(id) != nil {
			t.Fatalf("closed %v with %v, want %v with nil", id, r.causeOf(id), idA)
		}
		if err := e.Abort(idB); err != nil {
			t.Fatal(err)
		}
		expectClosedByPeer(t, b)
		if id := recv(t, r.closed, "OnClosed"); id != idB || !errors.Is(r.causeOf(id), mai.ErrAborted) {
			t.Fatalf("closed %v with %v, want %v with ErrAborted", id, r.causeOf(id), idB)
		}

		for _, id := range []mai.ConnID{idA, idB} {
			for op, err := range map[string]error{
				"Send":  e.Send(id, []byte("late")),
				"Close": e.Close(id),
				"Abort": e.Abort(id),
				"Do":    e.Do(id, func(mai.Context[[]byte]) { t.Error("Do ran on a closed connection") }),
			} {
				if !errors.Is(err, mai.ErrClosed) {
					t.Errorf("%s(%v) after OnClosed: %v, want ErrClosed", op, id, err)
				}
			}
		}
		// Info answers until the connection has left the registry, which
		// happens after OnClosed returns.
		eventually(t, "Len 1", func() bool { return e.Len() == 1 })
		for _, id := range []mai.ConnID{idA, idB} {
			if _, err := e.Info(id); !errors.Is(err, mai.ErrClosed) {
				t.Errorf("Info(%v) after close: %v, want ErrClosed", id, err)
			}
		}
		c.Close()
		recv(t, r.closed, "OnClosed")
		eventually(t, "Len 0", func() bool { return e.Len() == 0 })
		if ids, conns := e.IDs(), e.Conns(); len(ids) != 0 || len(conns) != 0 {
			t.Errorf("IDs %v, Conns %v after every connection closed", ids, conns)
		}
		shutdown(t, e)
		r.check()
	})
}

// TestRegistryBroadcast: Broadcast to all, and to the connections a filter
// picks.
func TestRegistryBroadcast(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := echoRecorder(t)
		e, addr := server(t, r, lengthField(t, 1<<10), mai.WithTransport(tr))
		clients, ids := dialReady(t, r, addr, 4)
		if res := e.Broadcast([]byte("everyone"), nil); res != (BroadcastResult{Sent: 4}) {
			t.Fatalf("Broadcast: %+v", res)
		}
		odd := func(ci mai.ConnInfo) bool { return slices.Index(ids, ci.ID)%2 == 1 }
		if res := e.Broadcast([]byte("odd ones"), odd); res != (BroadcastResult{Sent: 2}) {
			t.Fatalf("filtered Broadcast: %+v", res)
		}
		if res := e.Broadcast([]byte("end"), nil); res.Sent != 4 {
			t.Fatalf("Broadcast: %+v", res)
		}
		for i, c := range clients {
			want := []string{"everyone", "end"}
			if i%2 == 1 {
				want = []string{"everyone", "odd ones", "end"}
			}
			for _, w := range want {
				if got, err := readFrame(c); err != nil || string(got) != w {
					t.Fatalf("client %d: got %q, %v; want %q", i, got, err, w)
				}
			}
		}
	})
}

// TestDeadConnsLeave: connections leave the registry by themselves once
// closed, and their slots are reused; WithConnCapacity under the number of
// connections only pre-sizes the table.
func TestDeadConnsLeave(t *testing.T) {
	const n = 20
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := echoRecorder(t)
		e, addr := server(t, r, lengthField(t, 1<<10), mai.WithTransport(tr), mai.WithConnCapacity(4))
		var clients []net.Conn
		for i := 0; i < n; i++ {
			clients = append(clients, dial(t, addr))
			recv(t, r.ready, "ready")
		}
		if got := e.Len(); got != n {
			t.Fatalf("Len %d, want %d", got, n)
		}
		for _, c := range clients {
			echoRoundTrip(t, c, "with a small table")
			c.Close()
		}
		for i := 0; i < n; i++ {
			recv(t, r.closed, "OnClosed")
		}
		eventually(t, "Len 0", func() bool { return e.Len() == 0 })
		c := dial(t, addr)
		if id := recv(t, r.ready, "ready").ID(); id.Slot() >= n || id.Generation() < 2 {
			t.Errorf("new connection got %v: slot not reused", id)
		}
		echoRoundTrip(t, c, "in a reused slot")
	})
}

// TestDoRelay: a chat-like relay. A frame is an 8-byte destination ID and a
// message; OnFrame hands the message to the destination with Do, whose
// function runs serialized with the destination's own callbacks (the
// recorder checks that nothing overlaps).
func TestDoRelay(t *testing.T) {
	const msgs = 200
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := newRecorder(t)
		var eng atomic.Pointer[ProtocolEngine[[]byte]]
		r.onFrame = func(c mai.Context[[]byte], f []byte) error {
			to := mai.ConnID(binary.BigEndian.Uint64(f))
			msg := append([]byte(nil), f[8:]...)
			return eng.Load().Do(to, func(dst mai.Context[[]byte]) {
				r.enter(dst, "relay")
				defer r.leave(dst)
				if err := dst.Send(msg); err != nil {
					t.Errorf("relay to %v: %v", dst.ID(), err)
				}
			})
		}
		e, addr := server(t, r, lengthField(t, 1<<10), mai.WithTransport(tr))
		eng.Store(e)
		a := dial(t, addr)
		idA := recv(t, r.ready, "ready").ID()
		b := dial(t, addr)
		idB := recv(t, r.ready, "ready").ID()
		talk := func(c net.Conn, to mai.ConnID, from string) error {
			for i := 0; i < msgs; i++ {
				f := binary.BigEndian.AppendUint64(nil, uint64(to))
				f = fmt.Appendf(f, "%s %d", from, i)
				if _, err := c.Write(frame(f)); err != nil {
					return err
				}
			}
			return nil
		}
		listen := func(c net.Conn, from string) error {
			for i := 0; i < msgs; i++ {
				got, err := readFrame(c)
				if err != nil {
					return err
				}
				if want := fmt.Sprintf("%s %d", from, i); string(got) != want {
					return fmt.Errorf("got %q, want %q", got, want)
				}
			}
			return nil
		}
		errs := make(chan error, 4)
		go func() { errs <- talk(a, idB, "a") }()
		go func() { errs <- talk(b, idA, "b") }()
		go func() { errs <- listen(a, "b") }()
		go func() { errs <- listen(b, "a") }()
		for i := 0; i < 4; i++ {
			if err := recv(t, errs, "the relay"); err != nil {
				t.Fatal(err)
			}
		}
		// A relay to a connection that has gone fails in the sender's
		// OnFrame, which closes the sender.
		b.Close()
		recv(t, r.closed, "OnClosed")
		if _, err := a.Write(frame(binary.BigEndian.AppendUint64(nil, uint64(idB)))); err != nil {
			t.Fatal(err)
		}
		expectClosedByPeer(t, a)
		id := recv(t, r.closed, "OnClosed")
		if cause := r.causeOf(id); id != idA || !errors.Is(cause, mai.ErrClosed) {
			t.Errorf("closed %v with %v, want %v with ErrClosed", id, cause, idA)
		}
		shutdown(t, e)
		r.check()
	})
}

// admitter is a recorder that also implements protocol.Admitter: it admits,
// rejects for validation, or rejects with a plain error, as mode says.
type admitter struct {
	*recorder
	mode  atomic.Int32 // admitAll, rejectValidation, rejectPlain
	calls atomic.Int64
	infos chan mai.ConnInfo
}

const (
	admitAll = iota
	rejectValidation
	rejectPlain
)

var _ protocol.Admitter = (*admitter)(nil)

func newAdmitter(t *testing.T) *admitter {
	return &admitter{recorder: echoRecorder(t), infos: make(chan mai.ConnInfo, 64)}
}

func (a *admitter) Admit(info mai.ConnInfo) error {
	a.calls.Add(1)
	a.infos <- info
	switch a.mode.Load() {
	case rejectValidation:
		return mai.Reject(mai.RejectValidation, errors.New("not on the list"))
	case rejectPlain:
		return errors.New("not today")
	}
	return nil
}

func (a *admitter) connsSeen() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.log)
}

// TestAdmission: rejected connections get no callback and are closed, and
// the rejections are counted by reason; a rejected Dial is an error
// matching ErrRejected.
func TestAdmission(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		a := newAdmitter(t)
		e, addr := server(t, a, lengthField(t, 1<<10), mai.WithTransport(tr))

		a.mode.Store(rejectValidation)
		for i := 0; i < 3; i++ {
			c := dial(t, addr)
			info := recv(t, a.infos, "Admit")
			if info.Origin != mai.OriginAccepted || info.Listener != addr || info.ID != 0 ||
				info.RemoteAddr.String() != c.LocalAddr().String() {
				t.Errorf("Admit got %+v", info)
			}
			expectClosedByPeer(t, c)
		}
		a.mode.Store(rejectPlain)
		expectClosedByPeer(t, dial(t, addr))
		recv(t, a.infos, "Admit")

		a.mode.Store(admitAll)
		c := dial(t, addr)
		recv(t, a.infos, "Admit")
		recv(t, a.ready, "ready")
		echoRoundTrip(t, c, "admitted")
		st := e.Stats()
		if want := map[mai.RejectReason]uint64{mai.RejectValidation: 3, mai.RejectCustom: 1}; !mapsEqual(st.Rejected, want) {
			t.Errorf("Rejected %v, want %v", st.Rejected, want)
		}
		if st.Accepted != 1 || st.Live != 1 {
			t.Errorf("Stats %+v, want 1 accepted and live", st)
		}
		if n := a.connsSeen(); n != 1 {
			t.Errorf("callbacks ran for %d connections, want 1", n)
		}

		// An engine that rejects its own dialed connection.
		cl := newAdmitter(t)
		cl.mode.Store(rejectValidation)
		ce, err := New(lengthField(t, 1<<10), cl, mai.WithTransport(tr))
		if err != nil {
			t.Fatal(err)
		}
		defer shutdown(t, ce)
		_, err = ce.Dial(context.Background(), "tcp", addr)
		var re *mai.RejectError
		if !errors.Is(err, mai.ErrRejected) || !errors.As(err, &re) || re.Reason != mai.RejectValidation {
			t.Fatalf("Dial: %v, want a RejectError for validation", err)
		}
		if info := recv(t, cl.infos, "Admit"); info.Origin != mai.OriginDialed || info.RemoteAddr.String() != addr {
			t.Errorf("Admit got %+v", info)
		}
		if n, rej := ce.Len(), ce.Stats().Rejected[mai.RejectValidation]; n != 0 || rej != 1 || cl.connsSeen() != 0 {
			t.Errorf("after a rejected Dial: Len %d, rejected %d, callbacks for %d connections", n, rej, cl.connsSeen())
		}
		shutdown(t, e)
		a.check()
	})
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestMaxConns: beyond WithMaxConns live connections the engine rejects
// with RejectLimit without asking the handler, for accepted and dialed
// connections; a slot freed by a close is available again.
func TestMaxConns(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		a := newAdmitter(t)
		e, addr := server(t, a, lengthField(t, 1<<10), mai.WithTransport(tr), mai.WithMaxConns(2))
		c1, c2 := dial(t, addr), dial(t, addr)
		recv(t, a.ready, "ready")
		recv(t, a.ready, "ready")
		expectClosedByPeer(t, dial(t, addr))
		if n := a.calls.Load(); n != 2 {
			t.Errorf("Admit called %d times, want 2: the limit comes first", n)
		}
		// Dialed connections count too.
		_, other := server(t, echo{}, lengthField(t, 1<<10), mai.WithTransport(tr))
		_, err := e.Dial(context.Background(), "tcp", other)
		var re *mai.RejectError
		if !errors.As(err, &re) || re.Reason != mai.RejectLimit {
			t.Errorf("Dial over the limit: %v, want a RejectError for the limit", err)
		}
		if got := e.Stats().Rejected; !mapsEqual(got, map[mai.RejectReason]uint64{mai.RejectLimit: 2}) {
			t.Errorf("Rejected %v, want 2 for the limit", got)
		}
		echoRoundTrip(t, c2, "under the limit")
		c1.Close()
		recv(t, a.closed, "OnClosed")
		eventually(t, "Len 1", func() bool { return e.Len() == 1 })
		c3 := dial(t, addr)
		recv(t, a.ready, "ready")
		echoRoundTrip(t, c3, "in the freed place")
		if n := a.calls.Load(); n != 3 {
			t.Errorf("Admit called %d times, want 3", n)
		}
	})
}
