package main

import (
	"math"

	"github.com/mai-go/mai/examples/resp/resp"
	"github.com/mai-go/mai/examples/resp/store"
)

// Replies used often enough to be built once. Encoding only reads them.
var (
	replyOK     = resp.Simple("OK")
	replyPong   = resp.Simple("PONG")
	replyNull   = resp.NullBulk()
	replyEmpty  = resp.Array()
	errSyntax   = resp.Error("ERR syntax error")
	errNotInt   = resp.Error(store.ErrNotInteger.Error())
	errBadDB    = resp.Error("ERR DB index is out of range")
	intOne      = resp.Int(1)
	emptyString = resp.Bulk([]byte{})
)

// command is one entry of the command table. arity follows Redis: n > 0
// means exactly n arguments (the name included), n < 0 at least -n.
type command struct {
	name  string
	arity int
	run   func(s *server, args []resp.Value) resp.Value
}

var commands map[string]*command

func init() {
	list := []*command{
		{"ping", -1, cmdPing},
		{"echo", 2, cmdEcho},
		{"set", -3, cmdSet},
		{"get", 2, cmdGet},
		{"del", -2, cmdDel},
		{"exists", -2, cmdExists},
		{"incr", 2, func(s *server, a []resp.Value) resp.Value { return s.incrBy(a[1].Str, 1) }},
		{"decr", 2, func(s *server, a []resp.Value) resp.Value { return s.incrBy(a[1].Str, -1) }},
		{"incrby", 3, cmdIncrBy},
		{"mget", -2, cmdMGet},
		{"mset", -3, cmdMSet},
		{"ttl", 2, cmdTTL},
		{"pttl", 2, cmdTTL},
		{"dbsize", 1, func(s *server, _ []resp.Value) resp.Value { return resp.Int(int64(s.store.Len())) }},
		{"flushall", -1, cmdFlush},
		{"flushdb", -1, cmdFlush},
		{"select", 2, cmdSelect},
		{"config", -2, cmdConfig},
		{"command", -1, cmdCommand},
		{"client", -2, cmdClient},
		{"quit", -1, func(*server, []resp.Value) resp.Value { return replyOK }},
	}
	commands = make(map[string]*command, len(list))
	for _, c := range list {
		commands[c.name] = c
	}
}

// server executes commands against its store. It is safe for concurrent
// use: all state is in the store.
type server struct {
	store *store.Store
}

// lookup finds the command named by name, case-insensitively, without
// allocating.
func lookup(name []byte) *command {
	var buf [16]byte
	if len(name) > len(buf) {
		return nil
	}
	low := buf[:len(name)]
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		low[i] = c
	}
	return commands[string(low)]
}

// exec runs one command (an array of bulk strings, as the server codec
// decodes them) and returns its reply. The reply may alias args (ECHO) or
// the store's immutable values, so it must be sent before the frame's
// OnFrame returns, which Send does (it encodes at once).
func (s *server) exec(args []resp.Value) resp.Value {
	cmd := lookup(args[0].Str)
	if cmd == nil {
		return unknownCommand(args)
	}
	if (cmd.arity > 0 && len(args) != cmd.arity) || (cmd.arity < 0 && len(args) < -cmd.arity) {
		return wrongArity(cmd.name)
	}
	return cmd.run(s, args)
}

func wrongArity(name string) resp.Value {
	return resp.Error("ERR wrong number of arguments for '" + name + "' command")
}

// unknownCommand formats Redis's reply to an unknown command: the name as
// sent and the first arguments quoted, up to 128 bytes of them, with CR and
// LF turned into spaces.
func unknownCommand(args []resp.Value) resp.Value {
	b := make([]byte, 0, 128)
	b = append(b, "ERR unknown command '"...)
	b = append(b, truncate(args[0].Str, 128)...)
	b = append(b, "', with args beginning with: "...)
	var list []byte
	for _, a := range args[1:] {
		if len(list) >= 128 {
			break
		}
		room := 128 - len(list)
		list = append(list, '\'')
		list = append(list, truncate(a.Str, room)...)
		list = append(list, '\'', ' ')
	}
	b = append(b, list...)
	for i, c := range b {
		if c == '\r' || c == '\n' {
			b[i] = ' '
		}
	}
	return resp.Value{Kind: resp.KindError, Str: b}
}

func truncate(b []byte, n int) []byte {
	if n < 0 {
		n = 0
	}
	if len(b) > n {
		return b[:n]
	}
	return b
}

func cmdPing(_ *server, args []resp.Value) resp.Value {
	switch len(args) {
	case 1:
		return replyPong
	case 2:
		return resp.Bulk(args[1].Str)
	}
	return wrongArity("ping")
}

func cmdEcho(_ *server, args []resp.Value) resp.Value { return resp.Bulk(args[1].Str) }

func cmdGet(s *server, args []resp.Value) resp.Value {
	if v, ok := s.store.Get(args[1].Str); ok {
		return resp.Bulk(v)
	}
	return replyNull
}

// cmdSet implements SET key value [NX|XX] [GET] [EX s|PX ms|EXAT t|PXAT t|KEEPTTL]
// with Redis 7's checks and messages.
func cmdSet(s *server, args []resp.Value) resp.Value {
	var (
		opts     store.SetOptions
		get      bool
		unit     int64 // milliseconds per unit of the expire argument; 0: none
		absolute bool
		expire   []byte
	)
	for j := 3; j < len(args); j++ {
		opt := args[j].Str
		hasNext := j+1 < len(args)
		switch {
		case eqFold(opt, "nx") && opts.Mode != store.SetXX:
			opts.Mode = store.SetNX
		case eqFold(opt, "xx") && opts.Mode != store.SetNX:
			opts.Mode = store.SetXX
		case eqFold(opt, "get"):
			get = true
		case eqFold(opt, "keepttl") && unit == 0:
			opts.KeepTTL = true
		// As in Redis, an expiry option may repeat (the last one wins) but
		// not be mixed with another.
		case (unit == 0 || (unit == 1000 && !absolute)) && !opts.KeepTTL && hasNext && eqFold(opt, "ex"):
			unit, expire, j = 1000, args[j+1].Str, j+1
		case (unit == 0 || (unit == 1 && !absolute)) && !opts.KeepTTL && hasNext && eqFold(opt, "px"):
			unit, expire, j = 1, args[j+1].Str, j+1
		case (unit == 0 || (unit == 1000 && absolute)) && !opts.KeepTTL && hasNext && eqFold(opt, "exat"):
			unit, absolute, expire, j = 1000, true, args[j+1].Str, j+1
		case (unit == 0 || (unit == 1 && absolute)) && !opts.KeepTTL && hasNext && eqFold(opt, "pxat"):
			unit, absolute, expire, j = 1, true, args[j+1].Str, j+1
		default:
			return errSyntax
		}
	}
	if unit != 0 {
		n, ok := store.ParseInt(expire)
		if !ok {
			return errNotInt
		}
		if n <= 0 || n > math.MaxInt64/unit {
			return resp.Error("ERR invalid expire time in 'set' command")
		}
		ms := n * unit
		if !absolute {
			now := s.store.Now()
			if ms > math.MaxInt64-now {
				return resp.Error("ERR invalid expire time in 'set' command")
			}
			ms += now
		}
		opts.ExpireAt = ms
	}
	stored, old, hadOld := s.store.Set(args[1].Str, args[2].Str, opts)
	switch {
	case get && hadOld:
		return resp.Bulk(old)
	case get, !stored:
		return replyNull
	}
	return replyOK
}

func eqFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func cmdDel(s *server, args []resp.Value) resp.Value { return countKeys(args[1:], s.store.Del) }

func cmdExists(s *server, args []resp.Value) resp.Value {
	return countKeys(args[1:], s.store.Exists)
}

// countKeys replies with the number of keys for which f is true.
func countKeys(keys []resp.Value, f func(key []byte) bool) resp.Value {
	n := int64(0)
	for _, k := range keys {
		if f(k.Str) {
			n++
		}
	}
	return resp.Int(n)
}

func (s *server) incrBy(key []byte, delta int64) resp.Value {
	n, err := s.store.IncrBy(key, delta)
	if err != nil {
		return resp.Error(err.Error())
	}
	return resp.Int(n)
}

func cmdIncrBy(s *server, args []resp.Value) resp.Value {
	delta, ok := store.ParseInt(args[2].Str)
	if !ok {
		return errNotInt
	}
	return s.incrBy(args[1].Str, delta)
}

func cmdMGet(s *server, args []resp.Value) resp.Value {
	keys := make([][]byte, len(args)-1)
	for i, a := range args[1:] {
		keys[i] = a.Str
	}
	vals, found := s.store.MGet(keys)
	out := make([]resp.Value, len(keys))
	for i := range out {
		if found[i] {
			out[i] = resp.Bulk(vals[i])
		} else {
			out[i] = replyNull
		}
	}
	return resp.Array(out...)
}

func cmdMSet(s *server, args []resp.Value) resp.Value {
	if len(args)%2 == 0 {
		return wrongArity("mset")
	}
	pairs := make([][]byte, len(args)-1)
	for i, a := range args[1:] {
		pairs[i] = a.Str
	}
	s.store.MSet(pairs)
	return replyOK
}

func cmdTTL(s *server, args []resp.Value) resp.Value {
	ms := s.store.PTTL(args[1].Str)
	if ms >= 0 && eqFold(args[0].Str, "ttl") {
		ms = (ms + 500) / 1000
	}
	return resp.Int(ms)
}

func cmdFlush(s *server, args []resp.Value) resp.Value {
	if len(args) > 2 || (len(args) == 2 && !eqFold(args[1].Str, "sync") && !eqFold(args[1].Str, "async")) {
		return errSyntax
	}
	s.store.Flush()
	return replyOK
}

func cmdSelect(_ *server, args []resp.Value) resp.Value {
	n, ok := store.ParseInt(args[1].Str)
	switch {
	case !ok:
		return errNotInt
	case n != 0:
		return errBadDB
	}
	return replyOK
}

// cmdConfig answers CONFIG GET for the parameters redis-benchmark and
// redis-cli ask about, as a server without persistence, and accepts CONFIG
// SET and RESETSTAT without doing anything.
func cmdConfig(_ *server, args []resp.Value) resp.Value {
	sub := args[1].Str
	switch {
	case eqFold(sub, "get"):
		if len(args) < 3 {
			return wrongArity("config|get")
		}
		var out []resp.Value
		for _, p := range args[2:] {
			switch {
			case eqFold(p.Str, "save"):
				out = append(out, resp.BulkString("save"), emptyString)
			case eqFold(p.Str, "appendonly"):
				out = append(out, resp.BulkString("appendonly"), resp.BulkString("no"))
			case eqFold(p.Str, "databases"):
				out = append(out, resp.BulkString("databases"), resp.BulkString("1"))
			}
		}
		return resp.Array(out...)
	case eqFold(sub, "set"), eqFold(sub, "resetstat"):
		return replyOK
	}
	return unknownSubcommand(sub, "CONFIG")
}

func unknownSubcommand(sub []byte, cmd string) resp.Value {
	b := append([]byte("ERR unknown subcommand '"), truncate(sub, 128)...)
	b = append(b, "'. Try "+cmd+" HELP."...)
	for i, c := range b {
		if c == '\r' || c == '\n' {
			b[i] = ' '
		}
	}
	return resp.Value{Kind: resp.KindError, Str: b}
}

// cmdCommand answers COMMAND COUNT with the table's size and every other
// form (COMMAND, COMMAND DOCS from redis-cli, COMMAND INFO) with an empty
// array: the clients treat that as "no metadata".
func cmdCommand(_ *server, args []resp.Value) resp.Value {
	if len(args) == 2 && eqFold(args[1].Str, "count") {
		return resp.Int(int64(len(commands)))
	}
	return replyEmpty
}

func cmdClient(_ *server, args []resp.Value) resp.Value {
	sub := args[1].Str
	switch {
	case eqFold(sub, "setname"), eqFold(sub, "setinfo"):
		return replyOK
	case eqFold(sub, "getname"):
		return replyNull
	case eqFold(sub, "id"):
		return intOne
	}
	return unknownSubcommand(sub, "CLIENT")
}

// isQuit reports whether a command is QUIT, after which the server closes
// the connection.
func isQuit(args []resp.Value) bool { return eqFold(args[0].Str, "quit") }
