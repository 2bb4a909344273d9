package transport

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// TCPConfig configures the plain TCP listener on gnet v2 event loops.
// The zero value of every field but Addr is a sensible default.
type TCPConfig struct {
	// Addr is the "host:port" to bind, e.g. ":1883" or "127.0.0.1:0".
	// A port of 0 picks a free port; Listener.Addr reports it.
	Addr string

	// Loops is the number of event loops (goroutines doing socket I/O and
	// running the Handler). 0 = runtime.NumCPU(). One more goroutine
	// accepts connections and hands them to the loops round-robin.
	Loops int

	// Log receives listener lifecycle, handler panics (Error) and gnet's
	// own messages. Zero value: discard.
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
	// readable event (rounded up to a power of two). 0 = 64 KiB.
	ReadBufferSize int

	// WriteBufferSize is the per-connection static outbound buffer (rounded
	// up to a power of two) in front of an elastic overflow list.
	// 0 = 64 KiB.
	WriteBufferSize int

	// SocketRecvBuffer and SocketSendBuffer set SO_RCVBUF / SO_SNDBUF in
	// bytes on the listening socket (inherited by accepted ones).
	// 0 = the operating system's default.
	SocketRecvBuffer int
	SocketSendBuffer int

	// OutboundRefresh is how often Conn.Outbound is refreshed, on the loop,
	// for connections whose bytes sat in gnet's outbound buffer at the
	// last write (gnet drains that buffer without telling anyone).
	// 0 = 50 ms.
	OutboundRefresh time.Duration
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
	case c.WriteBufferSize < 0:
		return &ConfigError{Field: "WriteBufferSize", Reason: "negative"}
	case c.SocketRecvBuffer < 0:
		return &ConfigError{Field: "SocketRecvBuffer", Reason: "negative"}
	case c.SocketSendBuffer < 0:
		return &ConfigError{Field: "SocketSendBuffer", Reason: "negative"}
	case c.OutboundRefresh < 0:
		return &ConfigError{Field: "OutboundRefresh", Reason: "negative"}
	}
	return nil
}

// ListenTCP binds cfg.Addr and serves it on gnet event loops. It returns
// once the listener is bound and its loops run; a bind error is returned
// here.
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
	if cfg.OutboundRefresh == 0 {
		cfg.OutboundRefresh = 50 * time.Millisecond
	}

	l := &tcpListener{
		cfg:     cfg,
		g:       guard{h: h, log: cfg.Log},
		log:     cfg.Log,
		ready:   make(chan struct{}),
		runDone: make(chan struct{}),
	}
	l.draining.set = make(map[*tcpConn]struct{})

	opts := []gnet.Option{
		gnet.WithMulticore(true),
		gnet.WithNumEventLoop(cfg.Loops),
		gnet.WithLoadBalancing(gnet.RoundRobin),
		// SO_REUSEPORT would make every loop bind the address itself,
		// which for port 0 means a different port per loop: one acceptor
		// feeding the loops keeps a single, reportable address.
		gnet.WithReusePort(false),
		gnet.WithReuseAddr(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithReadBufferCap(cfg.ReadBufferSize),
		gnet.WithWriteBufferCap(cfg.WriteBufferSize),
		gnet.WithSocketRecvBuffer(cfg.SocketRecvBuffer),
		gnet.WithSocketSendBuffer(cfg.SocketSendBuffer),
		gnet.WithTicker(true),
		gnet.WithLogger(gnetLogger{l: cfg.Log}),
		// Keep-alive is set per connection in OnOpen: gnet's listener-level
		// option would overwrite a bind error with its own.
	}

	go func() {
		defer close(l.runDone)
		l.runErr = gnet.Run(l, "tcp://"+cfg.Addr, opts...)
	}()

	select {
	case <-l.ready:
	case <-l.runDone:
		err := l.runErr
		if err == nil {
			err = l.bootErr
		}
		if err == nil {
			err = errors.New("engine stopped while starting")
		}
		return nil, fmt.Errorf("transport: tcp listen %s: %w", cfg.Addr, err)
	}
	l.log.Info().Str("addr", l.addr.String()).Int("loops", cfg.Loops).Msg("transport: tcp listener started")
	return l, nil
}

// tcpListener is the gnet event handler of one TCP listener.
type tcpListener struct {
	gnet.BuiltinEventEngine

	cfg TCPConfig
	g   guard
	log zerolog.Logger

	// Set in OnBoot, before ready is closed; read-only afterwards.
	eng     gnet.Engine
	addr    net.Addr
	bootErr error
	// wildcard: the listener is bound to an unspecified IP, so each
	// connection's local address comes from getsockname.
	wildcard bool
	// keepAliveInherited: keep-alive is set on the listening socket and
	// accepted sockets inherit it (Linux).
	keepAliveInherited bool

	ready     chan struct{} // closed at the first OnTick: the loops run
	readyOnce sync.Once
	runDone   chan struct{} // closed when gnet.Run returned
	runErr    error         // gnet.Run's result, read after runDone

	closing   atomic.Bool // Close was called
	closeOnce sync.Once

	// draining holds connections whose gnet outbound buffer was non-empty
	// when last looked at; OnTick schedules a refresh of their estimate.
	draining struct {
		sync.Mutex
		set map[*tcpConn]struct{}
	}
}

// Addr implements Listener.
func (l *tcpListener) Addr() net.Addr { return l.addr }

// Close implements Listener. gnet closes every connection on its loop
// (Handler.OnClose with ErrListenerClosed) before Run returns.
func (l *tcpListener) Close() error {
	l.closeOnce.Do(func() {
		l.closing.Store(true)
		// Engine.Stop polls for the end every 500 ms; with an already
		// cancelled context it only starts the shutdown, and waiting for
		// gnet.Run to return is both faster and complete.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = l.eng.Stop(ctx)
		<-l.runDone
		l.log.Info().Str("addr", l.addr.String()).Msg("transport: tcp listener closed")
	})
	return nil
}

// OnBoot records the engine and the real bound address.
func (l *tcpListener) OnBoot(eng gnet.Engine) gnet.Action {
	l.eng = eng
	addr, err := engineAddr(eng)
	if err != nil {
		l.bootErr = err
		return gnet.Shutdown
	}
	l.addr = addr
	if ta, ok := addr.(*net.TCPAddr); ok {
		l.wildcard = ta.IP == nil || ta.IP.IsUnspecified()
	}
	if l.cfg.KeepAlive > 0 && runtime.GOOS == "linux" {
		// Linux copies keep-alive settings from the listening socket to
		// every accepted one: four setsockopt calls once instead of per
		// connection.
		if err := listenerKeepAlive(eng, l.cfg.KeepAlive); err != nil {
			l.log.Warn().Err(err).Msg("transport: keep-alive on the listener; setting it per connection")
		} else {
			l.keepAliveInherited = true
		}
	}
	return gnet.None
}

// listenerKeepAlive sets TCP keep-alive (idle time and probe interval d,
// 9 probes) on the engine's listening socket through a duplicate of it.
func listenerKeepAlive(eng gnet.Engine, d time.Duration) error {
	fd, err := eng.Dup()
	if err != nil {
		return fmt.Errorf("dup listener socket: %w", err)
	}
	defer unix.Close(fd)
	secs := max(int(d/time.Second), 1)
	for _, o := range []struct{ level, opt, v int }{
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, secs},
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 9},
	} {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.v); err != nil {
			return fmt.Errorf("setsockopt: %w", err)
		}
	}
	return nil
}

// engineAddr finds the bound address of the engine's only listener from a
// duplicate of its socket (getsockname), which resolves port 0.
func engineAddr(eng gnet.Engine) (net.Addr, error) {
	fd, err := eng.Dup()
	if err != nil {
		return nil, fmt.Errorf("dup listener socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "gnet-listener")
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("inspect listener socket: %w", err)
	}
	addr := ln.Addr()
	// Closing this duplicate does not affect gnet's socket.
	_ = ln.Close()
	return addr, nil
}

// OnTick runs on gnet's ticker goroutine: the first call tells ListenTCP
// that the loops are running; every call refreshes stale Outbound values.
func (l *tcpListener) OnTick() (time.Duration, gnet.Action) {
	l.readyOnce.Do(func() { close(l.ready) })

	l.draining.Lock()
	conns := make([]*tcpConn, 0, len(l.draining.set))
	for c := range l.draining.set {
		conns = append(conns, c)
	}
	l.draining.Unlock()
	for _, c := range conns {
		c.scheduleRefresh()
	}
	return l.cfg.OutboundRefresh, gnet.None
}

func (l *tcpListener) setDraining(c *tcpConn, on bool) {
	l.draining.Lock()
	if on {
		l.draining.set[c] = struct{}{}
	} else {
		delete(l.draining.set, c)
	}
	l.draining.Unlock()
}

// OnOpen wraps the gnet connection and calls Handler.OnOpen.
func (l *tcpListener) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	c := &tcpConn{
		l:      l,
		gc:     gc,
		loop:   gc.EventLoop(),
		remote: cloneAddr(gc.RemoteAddr()),
		local:  l.addr,
	}
	if l.wildcard {
		if a := socketLocalAddr(gc.Fd()); a != nil {
			c.local = a
		}
	}
	gc.SetContext(c)

	if l.cfg.KeepAlive > 0 && !l.keepAliveInherited {
		if err := gc.SetKeepAlive(true, l.cfg.KeepAlive, l.cfg.KeepAlive, 9); err != nil {
			l.log.Debug().Str("remote", addrString(c.remote)).Err(err).Msg("transport: set keep-alive")
		}
	}

	if err := l.g.open(c); err != nil {
		c.closeErr = err
		c.closing.Store(true)
		return nil, gnet.Close
	}
	return nil, gnet.None
}

// OnTraffic offers every buffered inbound byte to Handler.OnData and
// discards what it consumed.
func (l *tcpListener) OnTraffic(gc gnet.Conn) gnet.Action {
	c, _ := gc.Context().(*tcpConn)
	if c == nil {
		return gnet.Close
	}
	total := gc.InboundBuffered()
	if total == 0 {
		return gnet.None
	}
	if c.closing.Load() {
		// Closing: nobody will consume these bytes.
		_, _ = gc.Discard(total)
		return gnet.None
	}
	// data aliases gnet's read buffer (or a pooled copy of a wrapped ring
	// buffer): valid only until Discard, so it is not touched afterwards.
	data, err := gc.Peek(total)
	if err != nil {
		c.closeErr = fmt.Errorf("transport: peek inbound: %w", err)
		return gnet.Close
	}
	c.mu.Lock()
	c.mu.inTraffic = true
	c.mu.Unlock()
	consumed, herr := l.g.data(c, data)
	// Discard(0) would drop the whole buffer: only discard what was consumed.
	if consumed > 0 {
		_, _ = gc.Discard(consumed)
	}
	c.mu.Lock()
	c.mu.inTraffic = false
	direct := c.mu.flushAtEnd
	c.mu.flushAtEnd = false
	c.mu.Unlock()
	if direct && c.flush(nil, false) != nil {
		return gnet.None // the write failed and gnet closed the connection
	}
	switch {
	case herr != nil:
		c.closeOnLoop(herr)
	case total-consumed > l.cfg.MaxBuffered:
		c.closeOnLoop(fmt.Errorf("%w: %d > %d bytes", ErrInboundOverflow, total-consumed, l.cfg.MaxBuffered))
	default:
		c.noteBuffered()
	}
	return gnet.None
}

// OnClose fails the writes not yet written, then calls Handler.OnClose.
func (l *tcpListener) OnClose(gc gnet.Conn, err error) gnet.Action {
	c, _ := gc.Context().(*tcpConn)
	if c == nil {
		return gnet.None
	}
	c.closing.Store(true)
	c.mu.Lock()
	c.mu.closed = true
	left := c.mu.queue
	c.mu.queue = nil
	c.mu.Unlock()
	// A flush task still queued on the loop (or dropped at engine
	// shutdown) finds the queue empty.
	for _, w := range left {
		c.queued.Add(-int64(w.n))
		if w.done != nil {
			w.done(ErrClosed)
		}
	}
	c.buffered.Store(0)
	if c.draining {
		c.draining = false
		l.setDraining(c, false)
	}

	reason := c.closeErr
	switch {
	case reason != nil:
	case l.closing.Load():
		reason = ErrListenerClosed
	case err == nil || errors.Is(err, io.EOF):
	default:
		reason = err
	}
	l.g.close(c, reason)
	return gnet.None
}

// tcpConn is a transport.Conn over a gnet connection.
//
// Writes and Close go through the connection's own FIFO: AsyncWritev
// appends to it and, when it was idle, queues one flush task to the loop
// (a high-priority gnet task); the flush takes everything queued, writes it
// with one writev (what the socket refuses goes to gnet's outbound buffer),
// calls the dones and, once Close was requested, closes the connection on
// the loop. So a burst of writes costs one wake-up and one syscall, and a
// Close follows the writes queued before it.
//
// Loop-only fields (closeErr, draining, iov) are touched by gnet callbacks
// and tasks, which gnet runs on the connection's loop one at a time.
// Anything another goroutine reads is atomic or under mu.
type tcpConn struct {
	ctxHolder

	l      *tcpListener
	gc     gnet.Conn      // its loop-only methods are called on the loop only
	loop   gnet.EventLoop // goroutine-safe
	remote net.Addr
	local  net.Addr

	queued   atomic.Int64 // accepted by AsyncWritev, not yet written by the loop
	buffered atomic.Int64 // gnet's outbound buffer when last looked at
	closing  atomic.Bool  // close requested or done: no more OnData

	closeErr error    // loop-only: the reason given to Handler.OnClose
	draining bool     // loop-only: c is in l.draining
	iov      [][]byte // loop-only: the flush's vector, reused

	// mu guards the fields below. It is held while a task is queued to the
	// loop (flush, refresh) so that no task is queued after OnClose: gnet
	// closes its pollers after the last OnClose and a task queued then
	// would signal a closed (maybe reused) descriptor. Queuing is a
	// lock-free push and a non-blocking eventfd write.
	mu struct {
		sync.Mutex
		queue          []tcpWrite // accepted, not yet taken by a flush
		flushQueued    bool       // a flush task is queued to the loop
		inTraffic      bool       // OnTraffic runs the handler: it flushes at its end
		flushAtEnd     bool       // writes came in during OnTraffic
		closed         bool       // OnClose ran
		closeRequested bool       // Close was called
		refreshQueued  bool       // a refresh task is queued
	}
}

// iovMax is the vectors one writev takes (IOV_MAX on Linux and the BSDs).
const iovMax = 1024

type tcpWrite struct {
	bufs [][]byte
	n    int
	done func(error)
}

// AsyncWritev implements Conn.
func (c *tcpConn) AsyncWritev(bufs [][]byte, done func(error)) error {
	n := bufsLen(bufs)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed || c.mu.closeRequested {
		return ErrClosed
	}
	if c.mu.inTraffic {
		// OnTraffic of this connection is running on the loop: it
		// writes the queue when the handler returns, with no task (no
		// eventfd wake-up, no extra loop turn). A reply to a packet goes
		// out this way.
		c.mu.flushAtEnd = true
	} else if err := c.queueFlush(); err != nil {
		return err
	}
	c.mu.queue = append(c.mu.queue, tcpWrite{bufs: bufs, n: n, done: done})
	c.queued.Add(int64(n))
	return nil
}

// queueFlush queues a flush task unless one is queued; c.mu must be held.
func (c *tcpConn) queueFlush() error {
	if c.mu.flushQueued {
		return nil
	}
	// An empty gnet write is a way to run flushCB on the loop as a
	// high-priority task: gnet issues no syscall for it.
	if err := c.gc.AsyncWritev(nil, flushTask); err != nil {
		return fmt.Errorf("transport: queue write: %w", err)
	}
	c.mu.flushQueued = true
	return nil
}

// flushTask is the gnet callback that runs a connection's flush. A
// connection gnet has released has no context; OnClose took its queue.
func flushTask(gc gnet.Conn, err error) error {
	if c, _ := gc.Context().(*tcpConn); c != nil {
		return c.flush(err, true)
	}
	return nil
}

// flush runs on the loop: it writes everything queued and, when task is
// set (it runs as the queued flush task), performs a requested close. The
// flush at the end of OnTraffic (task false) leaves a close to the task
// Close queued: gnet must not close a connection inside its OnTraffic.
func (c *tcpConn) flush(err error, task bool) error {
	c.mu.Lock()
	if task {
		c.mu.flushQueued = false
	}
	batch := c.mu.queue
	c.mu.queue = nil
	closeNow := task && c.mu.closeRequested && !c.mu.closed
	c.mu.Unlock()
	if err != nil {
		// gnet closed the connection already: OnClose took the queue.
		return nil
	}

	if len(batch) > 0 {
		// One write (the broker has at most one under way per
		// connection) is written as it is; several are gathered into
		// one vector.
		iov := batch[0].bufs
		if len(batch) > 1 {
			c.iov = c.iov[:0]
			for _, w := range batch {
				c.iov = append(c.iov, w.bufs...)
			}
			iov = c.iov
		}
		// On a write error gnet closes the connection (OnClose runs
		// inside Writev); these writes are reported failed here.
		var werr error
		for len(iov) > 0 && werr == nil {
			// writev takes at most IOV_MAX vectors; once the socket
			// refuses bytes, gnet appends the rest to its buffer in order.
			k := min(len(iov), iovMax)
			_, werr = c.gc.Writev(iov[:k])
			iov = iov[k:]
		}
		clear(c.iov)
		if werr != nil {
			werr = fmt.Errorf("transport: write: %w", werr)
		} else {
			c.noteBuffered()
		}
		for i, w := range batch {
			c.queued.Add(-int64(w.n))
			if w.done != nil {
				w.done(werr)
			}
			batch[i] = tcpWrite{}
		}
		if werr != nil {
			return werr // the connection is closed (gnet ignores it)
		}
	}

	if batch != nil {
		c.mu.Lock()
		if c.mu.queue == nil {
			c.mu.queue = batch[:0] // reused: no allocation per flush
		}
		c.mu.Unlock()
	}

	if closeNow {
		// Runs OnClose on this loop before returning; gnet sends what its
		// outbound buffer holds first (best effort, non-blocking).
		_ = c.loop.Close(c.gc)
	}
	return nil
}

// Outbound implements Conn.
func (c *tcpConn) Outbound() int { return int(c.queued.Load() + c.buffered.Load()) }

// Close implements Conn. It is queued to the loop behind the writes
// accepted before it, so those are written first.
func (c *tcpConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed || c.mu.closeRequested {
		return nil
	}
	c.mu.closeRequested = true
	c.closing.Store(true)
	return c.queueFlush()
}

// closeOnLoop records why the connection closes and requests the close.
func (c *tcpConn) closeOnLoop(reason error) {
	if c.closeErr == nil {
		c.closeErr = reason
	}
	_ = c.Close()
}

// noteBuffered refreshes the outbound estimate; on the loop only.
func (c *tcpConn) noteBuffered() {
	b := c.gc.OutboundBuffered()
	c.buffered.Store(int64(b))
	if on := b > 0; on != c.draining {
		c.draining = on
		c.l.setDraining(c, on)
	}
}

// scheduleRefresh queues the refresh (Run) unless one is queued already.
func (c *tcpConn) scheduleRefresh() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed || c.mu.refreshQueued {
		return
	}
	if c.loop.Execute(context.Background(), c) == nil {
		c.mu.refreshQueued = true
	}
}

// Run implements gnet.Runnable: the refresh task (a method, not a
// closure kept per connection).
func (c *tcpConn) Run(context.Context) error {
	c.mu.Lock()
	c.mu.refreshQueued = false
	closed := c.mu.closed
	c.mu.Unlock()
	if !closed {
		c.noteBuffered()
	}
	return nil
}

func (c *tcpConn) RemoteAddr() net.Addr                  { return c.remote }
func (c *tcpConn) LocalAddr() net.Addr                   { return c.local }
func (c *tcpConn) Transport() string                     { return "tcp" }
func (c *tcpConn) PeerCertificates() []*x509.Certificate { return nil }

// cloneAddr deep-copies a TCP address with an IPv6 zone: gnet recycles
// the zone's bytes when the connection closes (an address without one is
// kept as it is, no copy per connection).
func cloneAddr(a net.Addr) net.Addr {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta == nil || ta.Zone == "" {
		return a // only the zone's bytes are recycled
	}
	return &net.TCPAddr{
		IP:   append(net.IP(nil), ta.IP...),
		Port: ta.Port,
		Zone: strings.Clone(ta.Zone),
	}
}
