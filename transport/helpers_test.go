package transport

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/internal/testcert"
)

const (
	waitFor = 10 * time.Second
	tick    = 5 * time.Millisecond
)

// closeEvent is one Handler.OnClose call.
type closeEvent struct {
	c   Conn
	err error
}

// testHandler records the lifecycle and delegates OnData; by default it
// echoes complete lines.
type testHandler struct {
	open func(c Conn)
	data func(c Conn, b []byte) (int, error)

	opened chan Conn
	closed chan closeEvent

	mu     sync.Mutex
	counts map[Conn]*closeCount
}

type closeCount struct {
	opens, datas, closes atomic.Int32
	afterClose           atomic.Bool // a callback came after OnClose
}

func newTestHandler() *testHandler {
	return &testHandler{
		data:   echoLines,
		opened: make(chan Conn, 1024),
		closed: make(chan closeEvent, 1024),
		counts: make(map[Conn]*closeCount),
	}
}

func (h *testHandler) count(c Conn) *closeCount {
	h.mu.Lock()
	defer h.mu.Unlock()
	cc := h.counts[c]
	if cc == nil {
		cc = &closeCount{}
		h.counts[c] = cc
	}
	return cc
}

func (h *testHandler) OnOpen(c Conn) {
	cc := h.count(c)
	if cc.opens.Add(1) != 1 || cc.closes.Load() != 0 {
		cc.afterClose.Store(true)
	}
	if h.open != nil {
		h.open(c)
	}
	h.opened <- c
}

func (h *testHandler) OnData(c Conn, b []byte) (int, error) {
	cc := h.count(c)
	cc.datas.Add(1)
	if cc.closes.Load() != 0 || cc.opens.Load() != 1 {
		cc.afterClose.Store(true)
	}
	return h.data(c, b)
}

func (h *testHandler) OnClose(c Conn, err error) {
	h.count(c).closes.Add(1)
	h.closed <- closeEvent{c, err}
}

// waitOpen returns the next opened connection.
func (h *testHandler) waitOpen(t testing.TB) Conn {
	t.Helper()
	select {
	case c := <-h.opened:
		return c
	case <-time.After(waitFor):
		t.Fatal("no OnOpen")
		return nil
	}
}

// waitClose returns the next OnClose event.
func (h *testHandler) waitClose(t testing.TB) closeEvent {
	t.Helper()
	select {
	case ev := <-h.closed:
		return ev
	case <-time.After(waitFor):
		t.Fatal("no OnClose")
		return closeEvent{}
	}
}

// checkOnce asserts that every connection seen got OnOpen and OnClose
// exactly once, with OnData only in between.
func (h *testHandler) checkOnce(t testing.TB) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for c, cc := range h.counts {
		require.EqualValues(t, 1, cc.opens.Load(), "OnOpen count for %v", c.RemoteAddr())
		require.EqualValues(t, 1, cc.closes.Load(), "OnClose count for %v", c.RemoteAddr())
		require.False(t, cc.afterClose.Load(), "callback out of order for %v", c.RemoteAddr())
	}
}

var errPanicLine = errors.New("test: panic line")

// echoLines consumes every complete line and writes it back. The line
// "panic" makes it panic. data is copied: it is only valid during the call.
func echoLines(c Conn, data []byte) (int, error) {
	i := bytes.LastIndexByte(data, '\n')
	if i < 0 {
		return 0, nil
	}
	out := bytes.Clone(data[:i+1])
	if bytes.HasPrefix(out, []byte("panic\n")) || bytes.Contains(out, []byte("\npanic\n")) {
		panic(errPanicLine)
	}
	return i + 1, c.AsyncWritev([][]byte{out}, nil)
}

// kind is one listener flavour under test.
type kind struct {
	name      string
	transport string
	cn        string // CN of the client certificate the dialer presents
	// start listens on o.addr (default 127.0.0.1:0).
	start func(h Handler, o listenOpts) (Listener, error)
	dial  func(t testing.TB, addr net.Addr) io.ReadWriteCloser
	// setup prepares certificates; called by listen.
	setup func(t testing.TB)
}

// listenOpts are the settings the matrix tests vary.
type listenOpts struct {
	addr        string
	maxBuffered int
}

func (o listenOpts) addrOr() string {
	if o.addr == "" {
		return "127.0.0.1:0"
	}
	return o.addr
}

// listen starts k's listener with default options, closed at test end.
func (k kind) listen(t testing.TB, h Handler) Listener {
	return k.listenWith(t, h, listenOpts{})
}

func (k kind) listenWith(t testing.TB, h Handler, o listenOpts) Listener {
	t.Helper()
	if k.setup != nil {
		k.setup(t)
	}
	return listenT(t)(k.start(h, o))
}

const clientCN = "device-7"

func kinds() []kind {
	return []kind{
		{
			name: "tcp", transport: "tcp",
			start: func(h Handler, o listenOpts) (Listener, error) {
				return ListenTCP(TCPConfig{Addr: o.addrOr(), Loops: 2, MaxBuffered: o.maxBuffered}, h)
			},
			dial: dialTCP,
		},
		tlsKind("tls", false),
		tlsKind("tls-client-cert", true),
		{
			name: "ws", transport: "ws",
			start: func(h Handler, o listenOpts) (Listener, error) {
				return ListenWS(WSConfig{Addr: o.addrOr(), MaxBuffered: o.maxBuffered}, h)
			},
			dial: func(t testing.TB, addr net.Addr) io.ReadWriteCloser {
				return dialWS(t, "ws://"+addr.String()+"/mqtt", nil, []string{"mqtt"})
			},
		},
		wssKind(),
	}
}

func tlsKind(name string, clientCert bool) kind {
	b := new(*testcert.Bundle)
	k := kind{name: name, transport: "tls"}
	if clientCert {
		k.cn = clientCN
	}
	k.setup = func(t testing.TB) { *b = testcert.New(t, clientCN) }
	k.start = func(h Handler, o listenOpts) (Listener, error) {
		auth := tls.NoClientCert
		if clientCert {
			auth = tls.RequireAndVerifyClientCert
		}
		return ListenTLS(TLSConfig{Addr: o.addrOr(), TLS: (*b).ServerTLS(auth), MaxBuffered: o.maxBuffered}, h)
	}
	k.dial = func(t testing.TB, addr net.Addr) io.ReadWriteCloser {
		c, err := tls.Dial("tcp", addr.String(), (*b).ClientTLS(clientCert))
		require.NoError(t, err)
		return c
	}
	return k
}

func wssKind() kind {
	b := new(*testcert.Bundle)
	return kind{
		name: "wss", transport: "wss", cn: clientCN,
		setup: func(t testing.TB) { *b = testcert.New(t, clientCN) },
		start: func(h Handler, o listenOpts) (Listener, error) {
			return ListenWS(WSConfig{
				Addr:        o.addrOr(),
				TLS:         (*b).ServerTLS(tls.RequireAndVerifyClientCert),
				MaxBuffered: o.maxBuffered,
			}, h)
		},
		dial: func(t testing.TB, addr net.Addr) io.ReadWriteCloser {
			return dialWS(t, "wss://"+addr.String()+"/mqtt", (*b).ClientTLS(true), []string{"mqtt"})
		},
	}
}

// listenT fails the test on a listen error and closes the listener at the
// end of the test.
func listenT(t testing.TB) func(Listener, error) Listener {
	return func(l Listener, err error) Listener {
		t.Helper()
		require.NoError(t, err)
		t.Cleanup(func() { _ = l.Close() })
		return l
	}
}

func dialTCP(t testing.TB, addr net.Addr) io.ReadWriteCloser {
	c, err := net.Dial("tcp", addr.String())
	require.NoError(t, err)
	return c
}

// wsStream is a WebSocket client as a byte stream: each Write is one binary
// message; Read concatenates inbound messages.
type wsStream struct {
	ws *websocket.Conn
	r  io.Reader
}

func dialWS(t testing.TB, url string, tc *tls.Config, protos []string) *wsStream {
	t.Helper()
	d := websocket.Dialer{TLSClientConfig: tc, Subprotocols: protos, HandshakeTimeout: waitFor}
	ws, resp, err := d.Dial(url, nil)
	require.NoError(t, err)
	_ = resp.Body.Close()
	return &wsStream{ws: ws}
}

func (s *wsStream) Write(p []byte) (int, error) {
	if err := s.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (s *wsStream) Read(p []byte) (int, error) {
	for {
		if s.r == nil {
			mt, r, err := s.ws.NextReader()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					return 0, io.EOF
				}
				return 0, err
			}
			if mt != websocket.BinaryMessage {
				return 0, fmt.Errorf("unexpected message type %d", mt)
			}
			s.r = r
		}
		n, err := s.r.Read(p)
		if errors.Is(err, io.EOF) {
			s.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (s *wsStream) Close() error { return s.ws.Close() }

// readEOF reads until the peer ends the stream and returns what came.
func readEOF(t testing.TB, c io.ReadWriteCloser) []byte {
	t.Helper()
	if d, ok := c.(interface{ SetReadDeadline(time.Time) error }); ok {
		_ = d.SetReadDeadline(time.Now().Add(waitFor))
	} else if s, ok := c.(*wsStream); ok {
		_ = s.ws.SetReadDeadline(time.Now().Add(waitFor))
	}
	var buf bytes.Buffer
	_, err := io.Copy(&buf, c)
	if err != nil && !isPeerGone(err) {
		require.NoError(t, err)
	}
	return buf.Bytes()
}

// readN reads exactly n bytes.
func readN(t testing.TB, c io.ReadWriteCloser, n int) []byte {
	t.Helper()
	if d, ok := c.(interface{ SetReadDeadline(time.Time) error }); ok {
		_ = d.SetReadDeadline(time.Now().Add(waitFor))
	} else if s, ok := c.(*wsStream); ok {
		_ = s.ws.SetReadDeadline(time.Now().Add(waitFor))
	}
	buf := make([]byte, n)
	_, err := io.ReadFull(c, buf)
	require.NoError(t, err)
	return buf
}

// isPeerGone: a reset instead of a FIN is also an end for these tests.
func isPeerGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}
