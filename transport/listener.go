package transport

import (
	"fmt"
	"net"
	"runtime/debug"

	"github.com/rs/zerolog"
)

// Listener is a running listener.
type Listener interface {
	// Addr returns the bound address; a ":0" port is resolved to the real
	// one. Safe from any goroutine.
	Addr() net.Addr

	// Close stops accepting, closes every connection (Handler.OnClose is
	// called for each before Close returns) and waits for the listener's
	// goroutines to exit. Idempotent; safe from any goroutine except a
	// Handler callback of this listener (which would wait for itself).
	Close() error
}

// Defaults shared by the listener configurations.
const (
	// DefaultMaxBuffered is the default cap on unconsumed inbound bytes per
	// connection: a maximum-size MQTT packet (1 MiB is well above the
	// broker's configurable limit) plus one read's worth of slack.
	DefaultMaxBuffered = 1<<20 + 64<<10

	// minReadSize is the initial read buffer size of a goroutine-driven
	// connection, and minFree the least free space offered to one read.
	minReadSize = 4 << 10
	minFree     = minReadSize / 2

	// keepReadSize is the largest read buffer kept while it is empty; a
	// bigger one (grown for a large packet) is dropped once drained so an
	// idle connection holds little memory.
	keepReadSize = 64 << 10
)

// guard calls a Handler, turning a panic into an error that closes only the
// connection concerned, and checking OnData's consumed count.
type guard struct {
	h   Handler
	log zerolog.Logger
}

func (g *guard) open(c Conn) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = g.panicked(c, "OnOpen", r)
		}
	}()
	g.h.OnOpen(c)
	return nil
}

func (g *guard) data(c Conn, b []byte) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, g.panicked(c, "OnData", r)
		}
	}()
	n, err = g.h.OnData(c, b)
	if err == nil && (n < 0 || n > len(b)) {
		return 0, fmt.Errorf("%w: consumed %d of %d bytes", ErrConsumed, n, len(b))
	}
	return n, err
}

func (g *guard) close(c Conn, err error) {
	defer func() {
		if r := recover(); r != nil {
			_ = g.panicked(c, "OnClose", r)
		}
	}()
	g.h.OnClose(c, err)
}

func (g *guard) panicked(c Conn, callback string, r any) error {
	g.log.Error().
		Str("remote", addrString(c.RemoteAddr())).
		Str("proto", c.Transport()).
		Str("callback", callback).
		Str("panic", fmt.Sprint(r)).
		Str("stack", string(debug.Stack())).
		Msg("transport: handler panicked, closing connection")
	return fmt.Errorf("%w in %s: %v", ErrHandlerPanic, callback, r)
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// bufsLen is the total length of bufs.
func bufsLen(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}
