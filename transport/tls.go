package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// TLSConfig configures the TLS listener (crypto/tls over net.Listen, a
// reader and a writer goroutine per connection).
type TLSConfig struct {
	// Addr is the "host:port" to bind, e.g. ":8883" or "127.0.0.1:0".
	Addr string

	// TLS is required: certificates, ClientAuth and ClientCAs as the
	// caller wants them. It is used as given, not copied.
	TLS *tls.Config

	// Log receives listener lifecycle, handshake failures (Debug) and
	// handler panics (Error). Zero value: discard.
	Log zerolog.Logger

	// HandshakeTimeout bounds the TLS handshake. 0 = 10 s.
	HandshakeTimeout time.Duration

	// MaxBuffered caps the unconsumed inbound bytes of one connection, in
	// bytes; above it the connection is closed with ErrInboundOverflow.
	// 0 = DefaultMaxBuffered (1 MiB + 64 KiB).
	MaxBuffered int

	// WriteTimeout bounds one batch of queued writes; a peer that does not
	// read for this long is disconnected. 0 = 30 s; negative = none.
	WriteTimeout time.Duration

	// CloseTimeout bounds flushing the queued writes when a connection is
	// closed (Conn.Close, a Handler error, Listener.Close). 0 = 2 s.
	CloseTimeout time.Duration

	// KeepAlive is the TCP keep-alive period. 0 = 15 s; negative disables.
	KeepAlive time.Duration
}

// Validate reports the first invalid field.
func (c *TLSConfig) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return &ConfigError{Field: "Addr", Reason: err.Error()}
	}
	if err := validateServerTLS(c.TLS, true); err != nil {
		return err
	}
	switch {
	case c.HandshakeTimeout < 0:
		return &ConfigError{Field: "HandshakeTimeout", Reason: "negative"}
	case c.MaxBuffered < 0:
		return &ConfigError{Field: "MaxBuffered", Reason: "negative"}
	case c.CloseTimeout < 0:
		return &ConfigError{Field: "CloseTimeout", Reason: "negative"}
	}
	return nil
}

func validateServerTLS(cfg *tls.Config, required bool) error {
	if cfg == nil {
		if required {
			return &ConfigError{Field: "TLS", Reason: "nil"}
		}
		return nil
	}
	if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil {
		return &ConfigError{Field: "TLS", Reason: "no server certificate (Certificates, GetCertificate or GetConfigForClient)"}
	}
	return nil
}

func streamDefaults(maxBuffered int, writeTimeout, closeTimeout time.Duration) (int, time.Duration, time.Duration) {
	if maxBuffered == 0 {
		maxBuffered = DefaultMaxBuffered
	}
	if writeTimeout == 0 {
		writeTimeout = defaultWriteTimeout
	}
	if closeTimeout == 0 {
		closeTimeout = defaultCloseTimeout
	}
	return maxBuffered, writeTimeout, closeTimeout
}

// ListenTLS binds cfg.Addr and serves TLS connections on it. It returns
// once the socket is bound; a bind error is returned here.
func ListenTLS(cfg TLSConfig, h Handler) (Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, &ConfigError{Field: "Handler", Reason: "nil"}
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = defaultHandshakeTimeout
	}
	maxBuf, wt, ct := streamDefaults(cfg.MaxBuffered, cfg.WriteTimeout, cfg.CloseTimeout)
	gl, err := listenGo(cfg.Addr, cfg.KeepAlive, streamOptions{
		kind: "tls", maxBuffered: maxBuf, writeTimeout: wt, closeTimeout: ct,
	}, h, cfg.Log)
	if err != nil {
		return nil, err
	}
	l := &tlsListener{goListener: gl, cfg: cfg}
	l.start(l.serve)
	return l, nil
}

type tlsListener struct {
	*goListener
	cfg TLSConfig
}

// goListener accepts connections that each run on their own goroutines
// (a streamConn): TLS, and plain TCP where there are no epoll loops.
type goListener struct {
	sl         *streamListener
	ln         net.Listener
	log        zerolog.Logger
	done       chan struct{} // closed by Close
	acceptDone chan struct{} // closed when the accept loop returned
	closeOnce  sync.Once
}

// listenGo binds addr for a goroutine-driven listener of opts.kind; start
// it once the listener that embeds it is built.
func listenGo(addr string, keepAlive time.Duration, opts streamOptions, h Handler, log zerolog.Logger) (*goListener, error) {
	lc := net.ListenConfig{KeepAlive: keepAlive}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: %s listen %s: %w", opts.kind, addr, err)
	}
	sl := newStreamListener(h, opts, guard{log: log})
	return &goListener{sl: sl, ln: ln, log: log, done: make(chan struct{}), acceptDone: make(chan struct{})}, nil
}

// start accepts on the listener's socket until Close; serve runs each
// connection on its own goroutine and must call sl.wg.Done when it
// returns.
func (l *goListener) start(serve func(net.Conn)) {
	go func() {
		defer close(l.acceptDone)
		acceptLoop(l.ln, l.done, l.log, func(raw net.Conn) {
			if !l.sl.enter() {
				_ = raw.Close()
				return
			}
			go serve(raw)
		})
	}()
	l.log.Info().Str("addr", l.ln.Addr().String()).Msg("transport: " + l.sl.opts.kind + " listener started")
}

// Addr implements Listener.
func (l *goListener) Addr() net.Addr { return l.ln.Addr() }

// Close implements Listener.
func (l *goListener) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		_ = l.ln.Close()
		<-l.acceptDone
		l.sl.closeAll()
		l.log.Info().Str("addr", l.ln.Addr().String()).Msg("transport: " + l.sl.opts.kind + " listener closed")
	})
	return nil
}

// acceptLoop accepts until ln is closed, backing off on errors such as
// running out of file descriptors.
func acceptLoop(ln net.Listener, done <-chan struct{}, log zerolog.Logger, serve func(net.Conn)) {
	var backoff time.Duration
	for {
		raw, err := ln.Accept()
		if err != nil {
			select {
			case <-done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			log.Warn().Err(err).Dur("retry_in", backoff).Msg("transport: accept failed")
			t := time.NewTimer(backoff)
			select {
			case <-done:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		backoff = 0
		serve(raw)
	}
}

// serve runs one connection: handshake, then the streamConn loops.
func (l *tlsListener) serve(raw net.Conn) {
	defer l.sl.wg.Done()
	tc := tls.Server(raw, l.cfg.TLS)
	c := newStreamConn(l.sl, &tlsWire{conn: tc}, raw)
	if !l.sl.register(c) {
		_ = raw.Close()
		return
	}
	defer l.sl.unregister(c)

	_ = raw.SetDeadline(time.Now().Add(l.cfg.HandshakeTimeout))
	if err := tc.Handshake(); err != nil {
		l.cfg.Log.Debug().Str("remote", addrString(raw.RemoteAddr())).Err(err).Msg("transport: tls handshake failed")
		_ = raw.Close()
		return
	}
	_ = raw.SetDeadline(time.Time{})
	if c.closing.Load() { // the listener closed during the handshake
		_ = raw.Close()
		return
	}
	c.peerCerts = tc.ConnectionState().PeerCertificates
	c.run()
}

// tlsCoalesce is the largest TLS record payload: small buffers of a batch
// are copied together up to this size so that each becomes one record and
// one write instead of one per buffer.
const tlsCoalesce = 16 << 10

var coalescePool = sync.Pool{New: func() any {
	b := make([]byte, 0, tlsCoalesce)
	return &b
}}

// tlsWire is a streamConn's view of a TLS stream.
type tlsWire struct {
	conn *tls.Conn
}

func (w *tlsWire) Read(p []byte) (int, error) { return w.conn.Read(p) }

func (w *tlsWire) setWriteDeadline(t time.Time) { _ = w.conn.SetWriteDeadline(t) }

func (w *tlsWire) writeBatch(bufs [][]byte) error {
	sp := coalescePool.Get().(*[]byte)
	defer coalescePool.Put(sp)
	b := (*sp)[:0]
	for _, p := range bufs {
		if len(b)+len(p) <= tlsCoalesce {
			b = append(b, p...)
			continue
		}
		if len(b) > 0 {
			if _, err := w.conn.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
		if len(p) >= tlsCoalesce {
			if _, err := w.conn.Write(p); err != nil {
				return err
			}
			continue
		}
		b = append(b, p...)
	}
	if len(b) > 0 {
		if _, err := w.conn.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// closeGraceful sends close_notify (crypto/tls bounds it by 5 s) and
// closes the socket.
func (w *tlsWire) closeGraceful(error) { _ = w.conn.Close() }

func (w *tlsWire) readErr(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
