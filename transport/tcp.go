package transport

import (
	"net"
	"runtime"
	"time"

	"github.com/rs/zerolog"
)

// TCPConfig configures the plain TCP listener on epoll event loops.
// The zero value of every field but Addr is a sensible default.
type TCPConfig struct {
	// Addr is the "host:port" to bind, e.g. ":1883" or "127.0.0.1:0".
	// A port of 0 picks a free port; Listener.Addr reports it.
	Addr string

	// Loops is the number of event loops (goroutines doing socket I/O and
	// running the Handler). 0 = runtime.NumCPU(). Each loop accepts
	// connections onto itself.
	Loops int

	// Log receives listener lifecycle, handler panics (Error) and accept
	// failures. Zero value: discard.
	Log zerolog.Logger

	// MaxBuffered caps the unconsumed inbound bytes of one connection, in
	// bytes; a connection above it is closed with ErrInboundOverflow. It is
	// a safety net: the protocol layer rejects oversize packets by their
	// header. 0 = DefaultMaxBuffered (1 MiB + 64 KiB).
	MaxBuffered int

	// KeepAlive is the TCP keep-alive idle time and probe interval (9
	// probes). 0 = 15 s; negative disables keep-alive.
	KeepAlive time.Duration

	// ReadBufferSize is the bytes each loop reads from a socket per
	// readable event, into one buffer the loop's connections share.
	// 0 = 64 KiB.
	ReadBufferSize int

	// SocketRecvBuffer and SocketSendBuffer set SO_RCVBUF / SO_SNDBUF in
	// bytes on the listening socket (inherited by accepted ones).
	// 0 = the operating system's default.
	SocketRecvBuffer int
	SocketSendBuffer int
}

// Validate reports the first invalid field.
func (c *TCPConfig) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return &ConfigError{Field: "Addr", Reason: err.Error()}
	}
	switch {
	case c.Loops < 0:
		return &ConfigError{Field: "Loops", Reason: "negative"}
	case c.MaxBuffered < 0:
		return &ConfigError{Field: "MaxBuffered", Reason: "negative"}
	case c.ReadBufferSize < 0:
		return &ConfigError{Field: "ReadBufferSize", Reason: "negative"}
	case c.SocketRecvBuffer < 0:
		return &ConfigError{Field: "SocketRecvBuffer", Reason: "negative"}
	case c.SocketSendBuffer < 0:
		return &ConfigError{Field: "SocketSendBuffer", Reason: "negative"}
	}
	return nil
}

// ListenTCP binds cfg.Addr and serves it on event loops. It returns once
// the listener is bound and its loops run; a bind error is returned here.
func ListenTCP(cfg TCPConfig, h Handler) (Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, &ConfigError{Field: "Handler", Reason: "nil"}
	}
	if cfg.Loops == 0 {
		cfg.Loops = runtime.NumCPU()
	}
	if cfg.MaxBuffered == 0 {
		cfg.MaxBuffered = DefaultMaxBuffered
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = 15 * time.Second
	}
	if cfg.ReadBufferSize == 0 {
		cfg.ReadBufferSize = 64 << 10
	}
	return listenTCP(cfg, h)
}
