package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"
)

// WSConfig configures the WebSocket listener (net/http and gorilla/websocket,
// a reader and a writer goroutine per connection).
type WSConfig struct {
	// Addr is the "host:port" to bind, e.g. ":8083" or "127.0.0.1:0".
	Addr string

	// Path is the HTTP path that upgrades to WebSocket; other paths get
	// 404. "" = "/mqtt".
	Path string

	// TLS, when non-nil, makes this a WSS listener; certificates,
	// ClientAuth and ClientCAs as the caller wants them. It is copied, and
	// the copy offers only HTTP/1.1 in ALPN (WebSocket needs it).
	TLS *tls.Config

	// Log receives listener lifecycle, failed upgrades (Debug) and handler
	// panics (Error). Zero value: discard.
	Log zerolog.Logger

	// CheckOrigin decides whether a browser's Origin may connect. nil =
	// every origin: MQTT authenticates in CONNECT, not with the browser's
	// cookies, so a cross-origin page gains nothing it could not get by
	// connecting directly.
	CheckOrigin func(r *http.Request) bool

	// HandshakeTimeout bounds the TLS handshake, the HTTP upgrade request
	// and the upgrade response. 0 = 10 s.
	HandshakeTimeout time.Duration

	// MaxBuffered caps the unconsumed inbound bytes of one connection, in
	// bytes; above it the connection is closed with ErrInboundOverflow.
	// 0 = DefaultMaxBuffered (1 MiB + 64 KiB).
	MaxBuffered int

	// WriteTimeout bounds writing one frame; a peer that does not read for
	// this long is disconnected. 0 = 30 s; negative = none.
	WriteTimeout time.Duration

	// CloseTimeout bounds flushing the queued writes when a connection is
	// closed (Conn.Close, a Handler error, Listener.Close). 0 = 2 s.
	CloseTimeout time.Duration

	// KeepAlive is the TCP keep-alive period. 0 = 15 s; negative disables.
	KeepAlive time.Duration

	// ReadBufferSize is gorilla's per-connection read buffer in bytes.
	// 0 = 4 KiB.
	ReadBufferSize int

	// WriteBufferSize is the largest frame written, in bytes: a batch of
	// writes is one message of as many frames as it needs. The buffers are
	// pooled, not held by idle connections. 0 = 16 KiB.
	WriteBufferSize int
}

// Validate reports the first invalid field.
func (c *WSConfig) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return &ConfigError{Field: "Addr", Reason: err.Error()}
	}
	if c.Path != "" && !strings.HasPrefix(c.Path, "/") {
		return &ConfigError{Field: "Path", Reason: fmt.Sprintf("%q does not start with /", c.Path)}
	}
	if err := validateServerTLS(c.TLS, false); err != nil {
		return err
	}
	switch {
	case c.HandshakeTimeout < 0:
		return &ConfigError{Field: "HandshakeTimeout", Reason: "negative"}
	case c.MaxBuffered < 0:
		return &ConfigError{Field: "MaxBuffered", Reason: "negative"}
	case c.CloseTimeout < 0:
		return &ConfigError{Field: "CloseTimeout", Reason: "negative"}
	case c.ReadBufferSize < 0:
		return &ConfigError{Field: "ReadBufferSize", Reason: "negative"}
	case c.WriteBufferSize < 0:
		return &ConfigError{Field: "WriteBufferSize", Reason: "negative"}
	}
	return nil
}

// Subprotocols the WebSocket listener accepts, in order of preference: the
// MQTT 3.1.1 / 5 name and the MQTT 3.1 one. A client offering none is
// accepted too.
var wsSubprotocols = []string{"mqtt", "mqttv3.1"}

// ListenWS binds cfg.Addr and serves MQTT over WebSocket (WSS when cfg.TLS
// is set) on cfg.Path. It returns once the socket is bound; a bind error is
// returned here.
func ListenWS(cfg WSConfig, h Handler) (Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, &ConfigError{Field: "Handler", Reason: "nil"}
	}
	if cfg.Path == "" {
		cfg.Path = "/mqtt"
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = defaultHandshakeTimeout
	}
	if cfg.CheckOrigin == nil {
		cfg.CheckOrigin = func(*http.Request) bool { return true }
	}
	if cfg.WriteBufferSize == 0 {
		cfg.WriteBufferSize = 16 << 10
	}
	maxBuf, wt, ct := streamDefaults(cfg.MaxBuffered, cfg.WriteTimeout, cfg.CloseTimeout)
	kind := "ws"
	if cfg.TLS != nil {
		kind = "wss"
	}

	lc := net.ListenConfig{KeepAlive: cfg.KeepAlive}
	ln, err := lc.Listen(context.Background(), "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("transport: %s listen %s: %w", kind, cfg.Addr, err)
	}
	if cfg.TLS != nil {
		tc := cfg.TLS.Clone()
		tc.NextProtos = []string{"http/1.1"}
		ln = tls.NewListener(ln, tc)
	}

	l := &wsListener{
		sl: newStreamListener(h, streamOptions{
			kind: kind, maxBuffered: maxBuf, writeTimeout: wt, closeTimeout: ct,
		}, guard{log: cfg.Log}),
		cfg: cfg,
		ln:  ln,
		upgrader: websocket.Upgrader{
			HandshakeTimeout: cfg.HandshakeTimeout,
			ReadBufferSize:   cfg.ReadBufferSize,
			WriteBufferSize:  cfg.WriteBufferSize,
			WriteBufferPool:  &sync.Pool{},
			Subprotocols:     wsSubprotocols,
			CheckOrigin:      cfg.CheckOrigin,
		},
		serveDone: make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc(cfg.Path, l.handle)
	l.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: cfg.HandshakeTimeout,
		// Only an upgrade request is served per connection; an idle
		// keep-alive connection that never upgrades is dropped.
		IdleTimeout: cfg.HandshakeTimeout,
		// Non-nil and empty: no HTTP/2 (WebSocket needs HTTP/1.1).
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:     log.New(debugWriter{cfg.Log}, "", 0),
	}
	go func() {
		defer close(l.serveDone)
		if err := l.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Log.Error().Err(err).Str("addr", ln.Addr().String()).Msg("transport: websocket listener stopped")
		}
	}()
	cfg.Log.Info().Str("addr", ln.Addr().String()).Str("proto", kind).Str("path", cfg.Path).Msg("transport: websocket listener started")
	return l, nil
}

type wsListener struct {
	sl        *streamListener
	cfg       WSConfig
	ln        net.Listener
	srv       *http.Server
	upgrader  websocket.Upgrader
	serveDone chan struct{} // closed when srv.Serve returned
	closeOnce sync.Once
}

// Addr implements Listener.
func (l *wsListener) Addr() net.Addr { return l.ln.Addr() }

// Close implements Listener. http.Server.Close closes the listener and the
// connections not yet upgraded; the upgraded (hijacked) ones are ours.
func (l *wsListener) Close() error {
	l.closeOnce.Do(func() {
		l.sl.mu.Lock()
		l.sl.mu.closed = true // new requests get 503 from now on
		l.sl.mu.Unlock()
		_ = l.srv.Close()
		<-l.serveDone
		l.sl.closeAll()
		l.cfg.Log.Info().Str("addr", l.ln.Addr().String()).Msg("transport: websocket listener closed")
	})
	return nil
}

// handle upgrades one request and serves the connection on this goroutine.
func (l *wsListener) handle(w http.ResponseWriter, r *http.Request) {
	if !l.sl.enter() {
		http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		return
	}
	defer l.sl.wg.Done()

	ws, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// The upgrader has answered the request (or the conn is gone).
		l.cfg.Log.Debug().Str("remote", r.RemoteAddr).Err(err).Msg("transport: websocket upgrade failed")
		return
	}
	raw := ws.NetConn()
	wire := &wsWire{ws: ws, closeTimeout: l.sl.opts.closeTimeout}
	c := newStreamConn(l.sl, wire, raw)
	if tc, ok := raw.(*tls.Conn); ok {
		// Hard closes and addresses use the TCP socket itself: closing the
		// TLS layer would first try to send close_notify.
		c.raw = tc.NetConn()
		c.peerCerts = tc.ConnectionState().PeerCertificates
	}
	if !l.sl.register(c) {
		_ = c.raw.Close()
		return
	}
	defer l.sl.unregister(c)
	c.run()
}

// wsWire is a streamConn's view of a WebSocket: inbound binary messages
// concatenated into one byte stream, each write batch one binary message.
type wsWire struct {
	ws           *websocket.Conn
	r            io.Reader // the message being read, nil between messages
	closeTimeout time.Duration
}

// Read returns bytes of the current binary message, moving on to the next
// message at the end of one. A text message ends the connection
// [MQTT-6.0.0-1].
func (w *wsWire) Read(p []byte) (int, error) {
	for {
		if w.r == nil {
			mt, r, err := w.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if mt != websocket.BinaryMessage {
				return 0, ErrNonBinary
			}
			w.r = r
		}
		n, err := w.r.Read(p)
		if errors.Is(err, io.EOF) {
			w.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// setWriteDeadline sets gorilla's deadline, which it applies to every frame.
func (w *wsWire) setWriteDeadline(t time.Time) { _ = w.ws.SetWriteDeadline(t) }

func (w *wsWire) writeBatch(bufs [][]byte) error {
	mw, err := w.ws.NextWriter(websocket.BinaryMessage)
	if err != nil {
		return err
	}
	for _, b := range bufs {
		if _, err := mw.Write(b); err != nil {
			_ = mw.Close()
			return err
		}
	}
	return mw.Close()
}

// closeGraceful sends a close frame whose code tells the peer why; the
// caller closes the socket.
func (w *wsWire) closeGraceful(reason error) {
	code := websocket.CloseNormalClosure
	switch {
	case reason == nil:
	case errors.Is(reason, ErrListenerClosed):
		code = websocket.CloseGoingAway
	case errors.Is(reason, ErrInboundOverflow):
		code = websocket.CloseMessageTooBig
	case errors.Is(reason, ErrHandlerPanic):
		code = websocket.CloseInternalServerErr
	default:
		code = websocket.CloseProtocolError
	}
	_ = w.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(w.closeTimeout))
}

// readErr treats a close frame with a normal code, and a TCP end without
// one (gorilla's 1006), like a TCP EOF: an orderly end by the peer.
func (w *wsWire) readErr(err error) error {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		switch ce.Code {
		case websocket.CloseNormalClosure, websocket.CloseGoingAway,
			websocket.CloseNoStatusReceived, websocket.CloseAbnormalClosure:
			return nil
		}
		return err
	}
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// debugWriter adapts net/http's error log (TLS handshake failures and the
// like, caused by clients) to Debug lines.
type debugWriter struct{ l zerolog.Logger }

func (d debugWriter) Write(p []byte) (int, error) {
	d.l.Debug().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
