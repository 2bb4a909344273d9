//go:build !linux

package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// listenTCP serves plain TCP with a reader and a writer goroutine per
// connection, as TLS is served: the epoll event loops are Linux only.
// Loops and ReadBufferSize have no effect here.
func listenTCP(cfg TCPConfig, h Handler) (Listener, error) {
	maxBuf, wt, ct := streamDefaults(cfg.MaxBuffered, 0, 0)
	lc := net.ListenConfig{KeepAlive: cfg.KeepAlive}
	ln, err := lc.Listen(context.Background(), "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("transport: tcp listen %s: %w", cfg.Addr, err)
	}
	l := &plainListener{
		sl: newStreamListener(h, streamOptions{
			kind: "tcp", maxBuffered: maxBuf, writeTimeout: wt, closeTimeout: ct,
		}, guard{log: cfg.Log}),
		cfg:        cfg,
		ln:         ln,
		done:       make(chan struct{}),
		acceptDone: make(chan struct{}),
	}
	go func() {
		defer close(l.acceptDone)
		acceptLoop(l.ln, l.done, l.cfg.Log, func(raw net.Conn) {
			if !l.sl.enter() {
				_ = raw.Close()
				return
			}
			go l.serve(raw)
		})
	}()
	cfg.Log.Info().Str("addr", ln.Addr().String()).Msg("transport: tcp listener started")
	return l, nil
}

type plainListener struct {
	sl         *streamListener
	cfg        TCPConfig
	ln         net.Listener
	done       chan struct{}
	acceptDone chan struct{}
	closeOnce  sync.Once
}

func (l *plainListener) Addr() net.Addr { return l.ln.Addr() }

func (l *plainListener) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		_ = l.ln.Close()
		<-l.acceptDone
		l.sl.closeAll()
		l.cfg.Log.Info().Str("addr", l.ln.Addr().String()).Msg("transport: tcp listener closed")
	})
	return nil
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
