//go:build linux

package transport

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// listenTCP binds cfg.Addr and starts cfg.Loops epoll event loops on it.
// cfg is validated and defaulted.
func listenTCP(cfg TCPConfig, h Handler) (Listener, error) {
	fd, addr, err := bindTCP(cfg)
	if err != nil {
		return nil, fmt.Errorf("transport: tcp listen %s: %w", cfg.Addr, err)
	}
	l := &tcpListener{
		cfg:      cfg,
		g:        guard{h: h, log: cfg.Log},
		log:      cfg.Log,
		fd:       fd,
		addr:     addr,
		wildcard: addr.IP == nil || addr.IP.IsUnspecified(),
	}
	for range cfg.Loops {
		lp, err := newTCPLoop(l)
		if err != nil {
			for _, lp := range l.loops {
				lp.release()
			}
			_ = unix.Close(fd)
			return nil, fmt.Errorf("transport: tcp listen %s: %w", cfg.Addr, err)
		}
		l.loops = append(l.loops, lp)
	}
	for _, lp := range l.loops {
		l.wg.Add(1)
		go lp.run()
	}
	l.log.Info().Str("addr", addr.String()).Int("loops", cfg.Loops).Msg("transport: tcp listener started")
	return l, nil
}

// bindTCP creates the non-blocking listening socket: SO_REUSEADDR, the
// socket buffer sizes and TCP keep-alive and TCP_NODELAY, which Linux
// copies to every accepted socket, so none of them costs a call per
// connection.
func bindTCP(cfg TCPConfig) (int, *net.TCPAddr, error) {
	ta, err := net.ResolveTCPAddr("tcp", cfg.Addr)
	if err != nil {
		return -1, nil, err
	}
	family, sa := unix.AF_INET6, unix.Sockaddr(nil)
	switch ip4 := ta.IP.To4(); {
	case ta.IP == nil || ta.IP.IsUnspecified() && ip4 == nil:
		// ":port" or "[::]:port": dual stack, like the net package.
		sa = &unix.SockaddrInet6{Port: ta.Port}
	case ip4 != nil:
		family = unix.AF_INET
		s := &unix.SockaddrInet4{Port: ta.Port}
		copy(s.Addr[:], ip4)
		sa = s
	default:
		s := &unix.SockaddrInet6{Port: ta.Port}
		copy(s.Addr[:], ta.IP.To16())
		if ta.Zone != "" {
			ifi, err := net.InterfaceByName(ta.Zone)
			if err != nil {
				return -1, nil, err
			}
			s.ZoneId = uint32(ifi.Index)
		}
		sa = s
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil && family == unix.AF_INET6 && ta.IP == nil {
		// No IPv6 on this host: the wildcard is IPv4's.
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: ta.Port}
		fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	}
	if err != nil {
		return -1, nil, os.NewSyscallError("socket", err)
	}
	opts := []struct {
		name       string
		level, opt int
		v          int
		when       bool
	}{
		{"SO_REUSEADDR", unix.SOL_SOCKET, unix.SO_REUSEADDR, 1, true},
		{"IPV6_V6ONLY", unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0, family == unix.AF_INET6 && ta.IP == nil},
		{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY, 1, true},
		{"SO_RCVBUF", unix.SOL_SOCKET, unix.SO_RCVBUF, cfg.SocketRecvBuffer, cfg.SocketRecvBuffer > 0},
		{"SO_SNDBUF", unix.SOL_SOCKET, unix.SO_SNDBUF, cfg.SocketSendBuffer, cfg.SocketSendBuffer > 0},
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1, cfg.KeepAlive > 0},
		{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, keepAliveSecs(cfg.KeepAlive), cfg.KeepAlive > 0},
		{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, keepAliveSecs(cfg.KeepAlive), cfg.KeepAlive > 0},
		{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 9, cfg.KeepAlive > 0},
	}
	for _, o := range opts {
		if !o.when {
			continue
		}
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.v); err != nil {
			_ = unix.Close(fd)
			return -1, nil, os.NewSyscallError("setsockopt "+o.name, err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		_ = unix.Close(fd)
		return -1, nil, os.NewSyscallError("bind", err)
	}
	if err := unix.Listen(fd, listenBacklog()); err != nil {
		_ = unix.Close(fd)
		return -1, nil, os.NewSyscallError("listen", err)
	}
	bound, err := unix.Getsockname(fd)
	if err != nil {
		_ = unix.Close(fd)
		return -1, nil, os.NewSyscallError("getsockname", err)
	}
	addr := sockaddrTCP(bound)
	if addr == nil {
		_ = unix.Close(fd)
		return -1, nil, errors.New("getsockname: not a TCP address")
	}
	return fd, addr, nil
}

func keepAliveSecs(d time.Duration) int { return max(int(d/time.Second), 1) }

// listenBacklog is the kernel's accept queue limit (somaxconn), which
// listen(2) would clamp a larger value to anyway.
func listenBacklog() int {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 0 {
			return min(n, 1<<16-1)
		}
	}
	return unix.SOMAXCONN
}

// sockaddrTCP converts a socket address into a *net.TCPAddr, or nil.
func sockaddrTCP(sa unix.Sockaddr) *net.TCPAddr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(append([]byte(nil), sa.Addr[:]...)), Port: sa.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(append([]byte(nil), sa.Addr[:]...)), Port: sa.Port, Zone: zoneName(sa.ZoneId)}
	}
	return nil
}

func zoneName(id uint32) string {
	if id == 0 {
		return ""
	}
	if ifi, err := net.InterfaceByIndex(int(id)); err == nil {
		return ifi.Name
	}
	return strconv.FormatUint(uint64(id), 10)
}

// tcpListener is one listening socket served by its event loops. Every
// loop polls the listening socket (EPOLLEXCLUSIVE: one loop is woken per
// incoming connection, in practice mostly the same one) and deals what it
// accepts to the loops round-robin: a connection for itself is opened at
// once, one for another loop is handed over through that loop's list.
type tcpListener struct {
	cfg TCPConfig
	g   guard
	log zerolog.Logger

	fd       int // listening socket; closed after the loops exit
	addr     *net.TCPAddr
	wildcard bool // bound to an unspecified IP: LocalAddr asks the socket

	loops []*tcpLoop
	wg    sync.WaitGroup // one per running loop
	next  atomic.Uint32  // round-robin position for the next connection

	closing   atomic.Bool
	closeOnce sync.Once
}

// Addr implements Listener.
func (l *tcpListener) Addr() net.Addr { return l.addr }

// Close implements Listener: each loop stops accepting, writes what is
// queued once (without waiting for a slow peer), closes its connections
// (Handler.OnClose with ErrListenerClosed) and exits.
func (l *tcpListener) Close() error {
	l.closeOnce.Do(func() {
		l.closing.Store(true)
		for _, lp := range l.loops {
			lp.stop.Store(true)
			lp.signal()
		}
		l.wg.Wait()
		for _, lp := range l.loops {
			lp.release()
		}
		_ = unix.Close(l.fd)
		l.log.Info().Str("addr", l.addr.String()).Msg("transport: tcp listener closed")
	})
	return nil
}

// tcpLoop is one event loop: a goroutine in epoll_wait over the listening
// socket, an eventfd and its connections, which it reads, runs the
// Handler for, writes and closes.
//
// Writes from any goroutine append to the connection's queue and put the
// connection on the loop's pending list; the loop writes every pending
// connection after each batch of events, one writev per connection. The
// eventfd is written only when the loop sleeps in epoll_wait: a reply, or
// a message to another connection on the same loop, costs no wake-up, and
// many messages to one connection within a batch go out in one writev.
type tcpLoop struct {
	l    *tcpListener
	epfd int
	efd  int

	stop     atomic.Bool // Listener.Close: close everything and exit
	sleeping atomic.Bool // in (or about to enter) a blocking epoll_wait

	pmu      sync.Mutex
	pending  []*tcpConn // connections with writes or a close to perform
	incoming []accepted // connections another loop accepted for this one
	done     bool       // the loop has shut down: incoming is refused

	// Loop-only.
	conns     []*tcpConn // by file descriptor
	buf       []byte     // the read buffer every connection shares
	events    []unix.EpollEvent
	work      []*tcpConn // pending, taken
	iov       []unix.Iovec
	dones     []func(error)
	acceptOff time.Time // accepting paused (out of descriptors) until then
}

const (
	minEvents = 128
	maxEvents = 1024
	// acceptBurst is how many connections one readable listener event
	// accepts before the loop serves its other sockets again.
	acceptBurst = 16
	// acceptPause is how long a loop stops accepting after running out
	// of file descriptors (the listener would otherwise stay readable and
	// spin the loop).
	acceptPause = 100 * time.Millisecond
)

func newTCPLoop(l *tcpListener) (*tcpLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	lp := &tcpLoop{l: l, epfd: epfd, efd: efd, buf: make([]byte, l.cfg.ReadBufferSize),
		events: make([]unix.EpollEvent, minEvents)}
	if err := lp.ctl(unix.EPOLL_CTL_ADD, efd, unix.EPOLLIN); err != nil {
		lp.release()
		return nil, err
	}
	if err := lp.ctl(unix.EPOLL_CTL_ADD, l.fd, unix.EPOLLIN|unix.EPOLLEXCLUSIVE); err != nil {
		lp.release()
		return nil, err
	}
	return lp, nil
}

func (lp *tcpLoop) ctl(op, fd int, events uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	if err := unix.EpollCtl(lp.epfd, op, fd, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// release closes the loop's descriptors; after run returned (or when it
// never ran).
func (lp *tcpLoop) release() {
	_ = unix.Close(lp.epfd)
	_ = unix.Close(lp.efd)
}

// signal wakes the loop from epoll_wait.
func (lp *tcpLoop) signal() {
	one := uint64(1)
	b := (*[8]byte)(unsafe.Pointer(&one))[:]
	for {
		_, err := unix.Write(lp.efd, b)
		if err != unix.EINTR {
			return // EAGAIN: the counter is full, the loop is woken anyway
		}
	}
}

// push puts c on the pending list, waking the loop if it sleeps. The
// caller holds c.mu, so no push follows the connection's close, after
// which the loop may have exited and released its eventfd.
func (lp *tcpLoop) push(c *tcpConn) {
	lp.pmu.Lock()
	lp.pending = append(lp.pending, c)
	lp.pmu.Unlock()
	// The loop sets sleeping before it looks at pending, and a pusher
	// looks at sleeping after it appended: one of the two sees the other.
	if lp.sleeping.Load() && lp.sleeping.CompareAndSwap(true, false) {
		lp.signal()
	}
}

func (lp *tcpLoop) hasPending() bool {
	lp.pmu.Lock()
	defer lp.pmu.Unlock()
	return len(lp.pending) > 0 || len(lp.incoming) > 0
}

// accepted is a connection accepted by one loop for another.
type accepted struct {
	fd int
	sa unix.Sockaddr
}

// handOver gives lp a connection another loop accepted; a loop that has
// shut down closes it. It runs while the accepting loop runs, so before
// Listener.Close releases any loop's eventfd.
func (lp *tcpLoop) handOver(fd int, sa unix.Sockaddr) {
	lp.pmu.Lock()
	if lp.done {
		lp.pmu.Unlock()
		_ = unix.Close(fd)
		return
	}
	lp.incoming = append(lp.incoming, accepted{fd, sa})
	lp.pmu.Unlock()
	if lp.sleeping.Load() && lp.sleeping.CompareAndSwap(true, false) {
		lp.signal()
	}
}

// openIncoming opens the connections handed over by other loops.
func (lp *tcpLoop) openIncoming() {
	lp.pmu.Lock()
	in := lp.incoming
	lp.incoming = nil
	lp.pmu.Unlock()
	for _, a := range in {
		lp.open(a.fd, a.sa)
	}
}

// run is the loop's goroutine. After a batch of events it polls again
// without blocking (a raw system call, invisible to the scheduler); only
// when that finds nothing does it yield to other goroutines once and then
// block, so a busy loop does not hand its thread to the scheduler on
// every turn.
func (lp *tcpLoop) run() {
	defer lp.l.wg.Done()
	spin := false
	for {
		timeout := -1
		if !lp.acceptOff.IsZero() {
			timeout = max(int(time.Until(lp.acceptOff)/time.Millisecond), 0) + 1
		}
		if spin || lp.stop.Load() {
			timeout = 0
		} else {
			lp.sleeping.Store(true)
			if lp.hasPending() {
				timeout = 0
			}
		}
		n, err := lp.wait(timeout)
		lp.sleeping.Store(false)
		if err != nil && err != unix.EINTR {
			lp.l.log.Error().Err(err).Msg("transport: epoll_wait failed; closing the loop's connections")
			lp.shutdown(os.NewSyscallError("epoll_wait", err))
			return
		}
		if n <= 0 && spin {
			spin = false
			runtime.Gosched()
		} else {
			spin = n > 0
		}
		for i := range n {
			ev := &lp.events[i]
			switch fd := int(ev.Fd); fd {
			case lp.efd:
				var b [8]byte
				_, _ = unix.Read(lp.efd, b[:])
			case lp.l.fd:
				lp.accept()
			default:
				lp.serve(fd, ev.Events)
			}
		}
		if n == len(lp.events) && n < maxEvents {
			lp.events = make([]unix.EpollEvent, 2*n)
		}
		if !lp.acceptOff.IsZero() && !time.Now().Before(lp.acceptOff) {
			lp.acceptOff = time.Time{}
			if err := lp.ctl(unix.EPOLL_CTL_ADD, lp.l.fd, unix.EPOLLIN|unix.EPOLLEXCLUSIVE); err != nil {
				lp.l.log.Error().Err(err).Msg("transport: resume accepting")
			}
		}
		lp.openIncoming()
		lp.flushPending()
		if lp.stop.Load() {
			lp.shutdown(ErrListenerClosed)
			return
		}
	}
}

// wait is epoll_wait; a non-blocking one is a raw system call.
func (lp *tcpLoop) wait(timeout int) (int, error) {
	p := unsafe.Pointer(&lp.events[0])
	var r uintptr
	var e unix.Errno
	if timeout == 0 {
		r, _, e = unix.RawSyscall6(unix.SYS_EPOLL_WAIT, uintptr(lp.epfd), uintptr(p), uintptr(len(lp.events)), 0, 0, 0)
	} else {
		r, _, e = unix.Syscall6(unix.SYS_EPOLL_WAIT, uintptr(lp.epfd), uintptr(p), uintptr(len(lp.events)), uintptr(timeout), 0, 0)
	}
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// accept takes up to acceptBurst connections off the listening socket.
func (lp *tcpLoop) accept() {
	for range acceptBurst {
		fd, sa, err := unix.Accept4(lp.l.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		switch {
		case err == nil:
		case err == unix.EAGAIN:
			return
		case err == unix.EINTR || err == unix.ECONNABORTED:
			continue
		case err == unix.EMFILE || err == unix.ENFILE || err == unix.ENOBUFS || err == unix.ENOMEM:
			// The pending connection stays queued and the listener
			// readable: stop polling it for a while.
			lp.l.log.Warn().Err(err).Dur("retry_in", acceptPause).Msg("transport: accept failed")
			if err := lp.ctl(unix.EPOLL_CTL_DEL, lp.l.fd, 0); err == nil {
				lp.acceptOff = time.Now().Add(acceptPause)
			}
			return
		default:
			lp.l.log.Warn().Err(err).Msg("transport: accept failed")
			return
		}
		if lp.l.closing.Load() {
			_ = unix.Close(fd)
			continue
		}
		loops := lp.l.loops
		if to := loops[int(lp.l.next.Add(1))%len(loops)]; to != lp {
			to.handOver(fd, sa)
		} else {
			lp.open(fd, sa)
		}
	}
}

// open registers an accepted socket and calls Handler.OnOpen.
func (lp *tcpLoop) open(fd int, sa unix.Sockaddr) {
	c := &tcpConn{lp: lp, fd: int32(fd)}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		c.rip[10], c.rip[11] = 0xff, 0xff
		copy(c.rip[12:], sa.Addr[:])
		c.rport = uint16(sa.Port)
	case *unix.SockaddrInet6:
		c.rip = sa.Addr
		c.rport = uint16(sa.Port)
		c.rzone = sa.ZoneId
	}
	if err := lp.ctl(unix.EPOLL_CTL_ADD, fd, unix.EPOLLIN); err != nil {
		lp.l.log.Warn().Err(err).Msg("transport: register connection")
		_ = unix.Close(fd)
		return
	}
	for fd >= len(lp.conns) {
		lp.conns = append(lp.conns[:cap(lp.conns)], nil)
	}
	lp.conns[fd] = c
	if err := lp.l.g.open(c); err != nil {
		lp.closeConn(c, err)
	}
}

// serve handles the events of one connection.
func (lp *tcpLoop) serve(fd int, events uint32) {
	if fd >= len(lp.conns) || lp.conns[fd] == nil {
		return // closed earlier in this batch
	}
	c := lp.conns[fd]
	if events&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP|unix.EPOLLRDHUP) != 0 {
		if !lp.read(c) {
			return
		}
	}
	if events&unix.EPOLLOUT != 0 {
		c.mu.Lock()
		c.mu.blocked = false
		c.mu.Unlock()
		lp.flush(c)
	}
}

// read reads once into the loop's buffer and offers the bytes (after any
// the handler left unconsumed) to Handler.OnData. It returns false when
// the connection was closed.
func (lp *tcpLoop) read(c *tcpConn) bool {
	var n int
	var err error
	for {
		n, err = unix.Read(int(c.fd), lp.buf)
		if err != unix.EINTR {
			break
		}
	}
	switch {
	case err == unix.EAGAIN:
		return true
	case err != nil:
		lp.closeConn(c, os.NewSyscallError("read", err))
		return false
	case n == 0:
		lp.closeConn(c, nil) // the peer's orderly end
		return false
	}
	if c.closing.Load() {
		return true // nobody will consume these bytes
	}
	data := lp.buf[:n]
	held := c.x != nil && len(c.x.in) > 0
	if held {
		c.x.in = append(c.x.in, data...)
		data = c.x.in
	}
	consumed, herr := lp.l.g.data(c, data)
	rest := data[consumed:]
	switch {
	case len(rest) == 0:
		if held {
			c.x.in = nil
		}
	case held && (cap(c.x.in) <= keepReadSize || len(rest) > keepReadSize/2):
		c.x.in = c.x.in[:copy(c.x.in, rest)]
	default:
		c.cold().in = append(make([]byte, 0, max(len(rest), 512)), rest...)
	}
	switch {
	case herr != nil:
		c.closeOnLoop(herr)
	case len(rest) > lp.l.cfg.MaxBuffered:
		c.closeOnLoop(fmt.Errorf("%w: %d > %d bytes", ErrInboundOverflow, len(rest), lp.l.cfg.MaxBuffered))
	}
	return true
}

// flushRounds bounds how many times one flushPending goes over the
// pending list again for what the dones of its writes queued.
const flushRounds = 8

// flushPending writes (and closes) every connection put on the pending
// list. A done often queues the next write at once (the broker has one
// write under way per connection and gathers what came meanwhile), so the
// list is gone over again while it refills, a few rounds at most before
// the loop looks at its sockets again.
func (lp *tcpLoop) flushPending() {
	for range flushRounds {
		lp.pmu.Lock()
		lp.work, lp.pending = lp.pending, lp.work[:0]
		lp.pmu.Unlock()
		if len(lp.work) == 0 {
			return
		}
		for _, c := range lp.work {
			lp.flush(c)
		}
		clear(lp.work)
	}
}

// flush writes c's queue as far as the socket takes it and performs a
// requested close once the queue is written (or at once if the socket is
// full: a close does not wait for a slow peer).
func (lp *tcpLoop) flush(c *tcpConn) {
	c.mu.Lock()
	c.mu.pending = false
	if c.mu.closed || c.mu.blocked {
		c.mu.Unlock()
		return
	}
	q := c.mu.queue
	closeReq := c.mu.closeRequested
	c.mu.Unlock()
	if len(q) > 0 && !lp.write(c, q) {
		return
	}
	if closeReq {
		lp.closeConn(c, c.closeErr())
	}
}

// write writes the writes q (a prefix of c's queue, which only the loop
// shortens) with writev until they are written or the socket is full,
// calls the dones of those written and removes them from the queue. It
// returns false when the connection was closed by a write error.
func (lp *tcpLoop) write(c *tcpConn, q []tcpWrite) bool {
	for len(q) > 0 {
		// Gather the vector: skip what an earlier partial write sent of
		// the first write; at most iovMax vectors.
		iov, want := lp.iov[:0], 0
		off := c.headOff()
		for _, w := range q {
			for _, b := range w.bufs {
				if off >= len(b) {
					off -= len(b)
					continue
				}
				b = b[off:]
				off = 0
				iov = append(iov, unix.Iovec{Base: &b[0], Len: uint64(len(b))})
				want += len(b)
				if len(iov) == iovMax {
					break
				}
			}
			if len(iov) == iovMax {
				break
			}
		}
		lp.iov = iov
		var n int
		var err error
		if len(iov) > 0 {
			for {
				r, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(c.fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
				n, err = int(r), nil
				if e != 0 {
					n, err = 0, e
				}
				if err != unix.EINTR {
					break
				}
			}
		}
		clear(iov)
		if err != nil && err != unix.EAGAIN {
			lp.closeConn(c, os.NewSyscallError("writev", err))
			return false
		}
		c.queued.Add(-int64(n))

		// Retire the writes now complete (zero-length ones included).
		c.mu.Lock()
		queue := c.mu.queue
		rem := c.headOff() + n
		k := 0
		dones := lp.dones[:0]
		for k < len(q) && rem >= queue[k].n {
			rem -= queue[k].n
			dones = append(dones, queue[k].done)
			k++
		}
		if rem > 0 || c.x != nil {
			c.cold().headOff = rem
		}
		left := copy(queue, queue[k:])
		clear(queue[left:])
		if left == 0 {
			putQueue(queue)
			c.mu.queue = nil
		} else {
			c.mu.queue = queue[:left]
		}
		full := k < len(q)
		if full && (err == unix.EAGAIN || n < want) {
			c.mu.blocked = true
		}
		blocked := c.mu.blocked
		q = c.mu.queue[:len(q)-k]
		c.mu.Unlock()

		for _, d := range dones {
			if d != nil {
				d(nil)
			}
		}
		clear(dones)
		lp.dones = dones[:0]

		if blocked {
			if !c.outArmed {
				c.outArmed = true
				if err := lp.ctl(unix.EPOLL_CTL_MOD, int(c.fd), unix.EPOLLIN|unix.EPOLLOUT); err != nil {
					lp.closeConn(c, err)
					return false
				}
			}
			return true
		}
	}
	if c.outArmed {
		c.outArmed = false
		if err := lp.ctl(unix.EPOLL_CTL_MOD, int(c.fd), unix.EPOLLIN); err != nil {
			lp.closeConn(c, err)
			return false
		}
	}
	return true
}

// closeConn closes c on its loop: the socket goes, the writes not yet
// written fail with ErrClosed, and Handler.OnClose is called.
func (lp *tcpLoop) closeConn(c *tcpConn, reason error) {
	c.closing.Store(true)
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return
	}
	c.mu.closed = true
	left := c.mu.queue
	c.mu.queue = nil
	c.mu.Unlock()

	lp.conns[c.fd] = nil
	_ = unix.Close(int(c.fd)) // also leaves the epoll set
	if c.x != nil {
		c.x.in = nil
	}
	for _, w := range left {
		c.queued.Add(-int64(w.n))
		if w.done != nil {
			w.done(ErrClosed)
		}
	}
	c.queued.Store(0)
	if reason == nil && lp.l.closing.Load() {
		reason = ErrListenerClosed
	}
	lp.l.g.close(c, reason)
}

// shutdown closes every connection of the loop with reason, for
// Listener.Close (or a failed epoll_wait): what is queued is written once,
// without waiting. The loop no longer accepts, so no connection is added.
func (lp *tcpLoop) shutdown(reason error) {
	_ = lp.ctl(unix.EPOLL_CTL_DEL, lp.l.fd, 0)
	lp.pmu.Lock()
	lp.done = true
	in := lp.incoming
	lp.incoming = nil
	lp.pmu.Unlock()
	for _, a := range in {
		_ = unix.Close(a.fd) // never opened: no Handler call
	}
	for _, c := range lp.conns {
		if c == nil {
			continue
		}
		if c.closeErr() == nil {
			c.cold().closeErr = reason
		}
		_ = c.Close()
		lp.flush(c) // writes once, then closes (a close does not wait)
	}
	lp.flushPending()
}

// tcpConn is a Conn on an event loop. It is kept to 112 bytes (a size
// class): what few connections need lives in tcpCold.
//
// Loop-only fields (x, outArmed) are touched by the loop goroutine only;
// anything another goroutine touches is atomic or under mu.
type tcpConn struct {
	lp *tcpLoop
	x  *tcpCold // loop-only, allocated on first use

	queued  atomic.Int64 // accepted by AsyncWritev, not yet written
	rip     [16]byte     // remote IP, IPv4 as ::ffff:a.b.c.d
	fd      int32
	rzone   uint32      // IPv6 zone index of the remote address
	closing atomic.Bool // close requested or done: no more OnData
	rport   uint16
	// outArmed: EPOLLOUT is registered (the socket was full).
	outArmed bool

	mu struct {
		sync.Mutex
		queue          []tcpWrite // accepted, not yet completely written
		ctx            any        // Context
		pending        bool       // on the loop's pending list
		blocked        bool       // the socket is full: the loop waits for EPOLLOUT
		closed         bool       // closed on the loop
		closeRequested bool       // Close was called
	}
}

// tcpCold is the loop-only state of a connection that most connections
// never need.
type tcpCold struct {
	in       []byte // inbound bytes the handler left unconsumed
	headOff  int    // bytes of the first queued write already written
	closeErr error  // the reason given to Handler.OnClose
}

func (c *tcpConn) cold() *tcpCold {
	if c.x == nil {
		c.x = new(tcpCold)
	}
	return c.x
}

func (c *tcpConn) headOff() int {
	if c.x == nil {
		return 0
	}
	return c.x.headOff
}

func (c *tcpConn) closeErr() error {
	if c.x == nil {
		return nil
	}
	return c.x.closeErr
}

// Context implements Conn.
func (c *tcpConn) Context() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.ctx
}

// SetContext implements Conn.
func (c *tcpConn) SetContext(v any) {
	c.mu.Lock()
	c.mu.ctx = v
	c.mu.Unlock()
}

// iovMax is the vectors one writev takes (IOV_MAX on Linux).
const iovMax = 1024

type tcpWrite struct {
	bufs [][]byte
	n    int
	done func(error)
}

// queueCap is the capacity of a pooled write queue: the broker has one
// write under way per connection, replies and control packets add a few.
const queueCap = 4

// queuePool recycles write queues of queueCap, so an idle connection
// holds none and a busy one allocates none. A queue that grew beyond
// queueCap is left to the collector.
var queuePool = sync.Pool{New: func() any { return new([queueCap]tcpWrite) }}

func getQueue() []tcpWrite { return queuePool.Get().(*[queueCap]tcpWrite)[:0] }

func putQueue(q []tcpWrite) {
	if cap(q) == queueCap {
		queuePool.Put((*[queueCap]tcpWrite)(q[:queueCap]))
	}
}

// AsyncWritev implements Conn.
func (c *tcpConn) AsyncWritev(bufs [][]byte, done func(error)) error {
	n := bufsLen(bufs)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed || c.mu.closeRequested {
		return ErrClosed
	}
	if c.mu.queue == nil {
		c.mu.queue = getQueue()
	}
	c.mu.queue = append(c.mu.queue, tcpWrite{bufs: bufs, n: n, done: done})
	c.queued.Add(int64(n))
	if !c.mu.pending && !c.mu.blocked {
		c.mu.pending = true
		c.lp.push(c)
	}
	return nil
}

// Outbound implements Conn: the bytes queued and not yet written.
func (c *tcpConn) Outbound() int { return int(c.queued.Load()) }

// Close implements Conn. The loop closes the connection after writing
// the writes accepted before.
func (c *tcpConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed || c.mu.closeRequested {
		return nil
	}
	c.mu.closeRequested = true
	c.closing.Store(true)
	if c.mu.blocked {
		// The socket is full: the writes queued go no further; close
		// now rather than wait for the peer.
		c.mu.blocked = false
	}
	if !c.mu.pending {
		c.mu.pending = true
		c.lp.push(c)
	}
	return nil
}

// closeOnLoop records why the connection closes and requests the close.
func (c *tcpConn) closeOnLoop(reason error) {
	if c.closeErr() == nil {
		c.cold().closeErr = reason
	}
	_ = c.Close()
}

// RemoteAddr implements Conn; the address is built on each call from the
// compact form the connection keeps.
func (c *tcpConn) RemoteAddr() net.Addr {
	a := &net.TCPAddr{Port: int(c.rport), Zone: zoneName(c.rzone)}
	if ip := net.IP(c.rip[:]); ip.To4() != nil {
		a.IP = append(net.IP(nil), c.rip[12:]...)
	} else {
		a.IP = append(net.IP(nil), c.rip[:]...)
	}
	return a
}

// LocalAddr implements Conn: the listener's address, or for a wildcard
// listener the socket's own (asked on each call while it is open).
func (c *tcpConn) LocalAddr() net.Addr {
	if !c.lp.l.wildcard {
		return c.lp.l.addr
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.mu.closed {
		if sa, err := unix.Getsockname(int(c.fd)); err == nil {
			if a := sockaddrTCP(sa); a != nil {
				return a
			}
		}
	}
	return c.lp.l.addr
}

func (c *tcpConn) Transport() string                     { return "tcp" }
func (c *tcpConn) PeerCertificates() []*x509.Certificate { return nil }
