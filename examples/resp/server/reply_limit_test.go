package main

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mai-go/mai/examples/resp/resp"
)

// replyCase starts a server with maxBulk, writes the commands to it in one
// write and returns a reader of its replies.
func replyCase(t *testing.T, maxBulk int, cmds ...resp.Value) *bufio.Reader {
	t.Helper()
	s, err := Start("127.0.0.1:0", Config{MaxBulkLen: maxBulk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	var req []byte
	for _, cmd := range cmds {
		if req, err = resp.AppendValue(req, cmd, resp.Config{MaxBulkLen: maxBulk}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	go func() { _, _ = c.Write(req) }()
	return bufio.NewReader(c)
}

// TestReplyLimit: a reply is bounded by the frame limit, as Config's doc
// says. A 7 KB MGET of one 64 KiB value 1,000 times once drew one reply
// of 65 MB, 500 times the limit; and a CONFIG GET whose reply has more
// elements than the codec encodes was answered as a protocol error, and
// the connection closed. Both are now an error reply, and the connection
// goes on.
func TestReplyLimit(t *testing.T) {
	const maxBulk = 64 << 10
	mget := []string{"MGET"}
	for range 1000 {
		mget = append(mget, "k")
	}
	config := []string{"CONFIG", "GET"}
	for range resp.DefaultMaxArrayLen/2 + 1 {
		config = append(config, "save")
	}
	for _, tc := range []struct {
		name    string
		maxBulk int
		cmds    []resp.Value
		want    []string
	}{
		{"MGET", maxBulk, []resp.Value{resp.Command("SET", "k", strings.Repeat("v", maxBulk)), resp.Command(mget...), resp.Command("PING")},
			[]string{"+OK\r\n", "-ERR reply too large\r\n", "+PONG\r\n"}},
		{"CONFIG GET", 8 << 20, []resp.Value{resp.Command(config...), resp.Command("PING")},
			[]string{"-ERR reply too large\r\n", "+PONG\r\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := replyCase(t, tc.maxBulk, tc.cmds...)
			for i, want := range tc.want {
				line, err := br.ReadString('\n')
				if line != want {
					t.Fatalf("reply %d: %.60q (%v), want %q", i, line, err, want)
				}
			}
		})
	}
}
