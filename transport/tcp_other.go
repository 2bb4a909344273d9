//go:build !linux

package transport

import (
	"errors"
	"io"
	"net"
	"time"
)

// listenTCP serves plain TCP with a reader and a writer goroutine per
// connection, as TLS is served: the epoll event loops are Linux only.
// Loops and ReadBufferSize have no effect here.
func listenTCP(cfg TCPConfig, h Handler) (Listener, error) {
	maxBuf, wt, ct := streamDefaults(cfg.MaxBuffered, 0, 0)
	gl, err := listenGo(cfg.Addr, cfg.KeepAlive, streamOptions{
		kind: "tcp", maxBuffered: maxBuf, writeTimeout: wt, closeTimeout: ct,
	}, h, cfg.Log)
	if err != nil {
		return nil, err
	}
	l := &plainListener{goListener: gl, cfg: cfg}
	l.start(l.serve)
	return l, nil
}

type plainListener struct {
	*goListener
	cfg TCPConfig
}

func (l *plainListener) serve(raw net.Conn) {
	defer l.sl.wg.Done()
	if tc, ok := raw.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
		if l.cfg.SocketRecvBuffer > 0 {
			_ = tc.SetReadBuffer(l.cfg.SocketRecvBuffer)
		}
		if l.cfg.SocketSendBuffer > 0 {
			_ = tc.SetWriteBuffer(l.cfg.SocketSendBuffer)
		}
	}
	c := newStreamConn(l.sl, plainWire{raw}, raw)
	if !l.sl.register(c) {
		_ = raw.Close()
		return
	}
	defer l.sl.unregister(c)
	c.run()
}

// plainWire is a streamConn's view of a plain TCP socket.
type plainWire struct{ conn net.Conn }

func (w plainWire) Read(p []byte) (int, error) { return w.conn.Read(p) }

func (w plainWire) setWriteDeadline(t time.Time) { _ = w.conn.SetWriteDeadline(t) }

func (w plainWire) writeBatch(bufs [][]byte) error {
	// WriteTo consumes the vector it is given: a copy keeps the caller's.
	v := make(net.Buffers, len(bufs))
	copy(v, bufs)
	_, err := v.WriteTo(w.conn)
	return err
}

func (w plainWire) closeGraceful(error) { _ = w.conn.Close() }

func (w plainWire) readErr(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
