package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/mqttd/mqttd/codec"
	"golang.org/x/sys/unix"
)

// This file is the connect engine of the conns scenario: the client side of
// C connect+subscribe handshakes at the least CPU per connection, so that
// the connect rate measures the broker and not the tool.
//
// One goroutine (the caller of run) drives every handshake through one
// epoll instance. Each connection in flight has a slot: a non-blocking
// socket, a small state machine (connecting, CONNACK awaited, SUBACK
// awaited), a read buffer and a deadline. At most inflight slots are busy;
// a slot is refilled with the next connection as soon as its handshake
// ends. There is no goroutine, channel or lock per connection.
//
// Every socket is created (and bound to its source address) before the
// clock starts, since the broker sees none of that; then each connection
// costs four system calls and a share of epoll_wait: connect, write,
// epoll_ctl and one or two reads. Over loopback the kernel runs both ends
// of the TCP handshake inside connect and delivers to the broker's socket
// inside write, and those two dominate the tool's CPU.
//
// With pipelining (the default) CONNECT and SUBSCRIBE leave in one write as
// soon as the TCP connection is up, which MQTT allows: a client need not
// wait for the CONNACK before it sends more (3.1.1 and 5, section 3.1.4),
// and a broker that refuses the CONNECT must not process what follows it
// ([MQTT-3.1.4-5] in 3.1.1). Without it the engine waits for the CONNACK
// before it writes the SUBSCRIBE, one round trip at a time, like a
// cautious client library.
//
// A subscribed connection leaves the engine: its socket goes to onOpen
// (still registered with the engine's epoll instance, which run closes on
// return) and the engine forgets it.

// connState is where a handshake stands.
type connState uint8

const (
	stFree       connState = iota // slot unused
	stConnecting                  // TCP connect in progress, CONNECT not written in full
	stConnack                     // CONNECT written, CONNACK awaited (and SUBACK when pipelined)
	stSuback                      // CONNACK accepted, SUBACK awaited (SUBSCRIBE maybe not written in full)
)

// engineReadBuf is a slot's initial read buffer: CONNACK and SUBACK of
// 3.1.1 take 9 bytes, an MQTT 5 CONNACK with properties rarely 100. A
// larger packet grows the buffer.
const engineReadBuf = 256

// connEngine opens, connects and subscribes connections 0 to n-1. Set the
// fields, then call run once. It is not safe for concurrent use: run and
// the callbacks it makes all happen on the caller's goroutine.
type connEngine struct {
	addr     string        // broker, loopback host:port
	spread   int           // source addresses 127.0.0.1..spread in turn; <= 1: the kernel's choice
	inflight int           // handshakes at once, >= 1
	pipeline bool          // CONNECT and SUBSCRIBE in one write
	timeout  time.Duration // per step: TCP connect, CONNACK, SUBACK
	opts     *connOpts
	qos      codec.QoS
	clientID func(i int) string
	topic    func(i int) string
	// onOpen takes connection i, subscribed, with its socket (non-blocking,
	// close-on-exec) and the time of its last write in Unix nanoseconds.
	// The socket is the callee's from then on.
	onOpen func(i, fd int, wrote int64)
	// onFail reports that connection i failed (its socket is closed); it
	// returns false to start no further connection (the ones in flight
	// finish).
	onFail func(i int, err error) bool
	// onStart, when set, is called once every socket is created, right
	// before the first connect: the start of the measurement.
	onStart func()

	ep     int // epoll instance
	domain int
	sa     unix.Sockaddr
	socks  []int32   // socket of each connection not yet started, -1 once started
	base   time.Time // zero of the engine's monotonic clock
	slots  []engineSlot
	free   []int32 // indices of free slots
	busy   int     // slots in use
	hist   Histogram
	// timeouts holds a deadline per step taken, in the order taken. Every
	// step has the same timeout, so the queue is sorted by deadline; the
	// entries of steps already over are stale and skipped.
	timeouts []engineTimeout
	tohead   int
	steps    uint32 // step counter: tags a slot's current step
}

// engineSlot is one handshake in flight.
type engineSlot struct {
	k       int32 // index in connEngine.slots
	fd      int
	i       int // connection index
	state   connState
	gen     uint16 // bumped at each reuse: stale epoll events are ignored
	outWait bool   // registered for EPOLLOUT
	step    uint32 // current step, matched against engineTimeout.step
	started int64  // engine clock at connect: latency origin
	wrote   int64  // engine clock at the last write
	out     []byte // bytes still to write
	pkts    []byte // what out slices: CONNECT (and SUBSCRIBE), reused
	buf     []byte // read buffer; buf[:n] unparsed
	n       int
}

type engineTimeout struct {
	deadline int64
	step     uint32
	slot     int32
}

// run opens connections 0 to n-1 and returns their connect+subscribe
// latencies. It returns early, with ctx's error, when ctx ends: connections
// still in flight are closed, those already passed to onOpen are not. An
// error before onStart (no socket for every connection) fails the run.
func (e *connEngine) run(ctx context.Context, n int) (*Histogram, error) {
	if err := e.resolve(); err != nil {
		return nil, err
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("bench: epoll_create1: %w", err)
	}
	e.ep = ep
	defer unix.Close(ep)
	defer e.closeUnstarted()
	if err := e.prepare(n); err != nil {
		return nil, err
	}
	inflight := min(max(e.inflight, 1), n, 0xffff)
	e.slots = make([]engineSlot, inflight)
	e.free = make([]int32, inflight)
	for k := range e.slots {
		e.slots[k].k = int32(k)
		e.free[k] = int32(inflight - 1 - k)
	}
	events := make([]unix.EpollEvent, min(inflight, 1024))
	next, launching := 0, true
	if e.onStart != nil {
		e.onStart()
	}
	e.base = time.Now()
	for {
		for launching && next < n && len(e.free) > 0 {
			if ctx.Err() != nil {
				break
			}
			if !e.launch(next) {
				launching = false
			}
			next++
		}
		if e.busy == 0 && (!launching || next >= n || ctx.Err() != nil) {
			break
		}
		if ctx.Err() != nil {
			e.abort()
			return nil, ctx.Err()
		}
		nev, err := unix.EpollWait(e.ep, events, e.waitMs())
		if err != nil && !errors.Is(err, unix.EINTR) {
			e.abort()
			return nil, fmt.Errorf("bench: epoll_wait: %w", err)
		}
		for _, ev := range events[:max(nev, 0)] {
			k, gen := int(uint32(ev.Fd)&0xffff), uint16(uint32(ev.Fd)>>16)
			s := &e.slots[k]
			if s.state == stFree || s.gen != gen {
				continue // a connection that left the engine
			}
			if err := e.handle(s, ev.Events); err != nil && !e.fail(k, err) {
				launching = false
			}
		}
		if !e.expire() {
			launching = false
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &e.hist, nil
}

// resolve finds the broker's socket address.
func (e *connEngine) resolve() error {
	ta, err := net.ResolveTCPAddr("tcp", e.addr)
	if err != nil {
		return fmt.Errorf("bench: resolve %s: %w", e.addr, err)
	}
	if ip4 := ta.IP.To4(); ip4 != nil {
		sa := &unix.SockaddrInet4{Port: ta.Port}
		copy(sa.Addr[:], ip4)
		e.domain, e.sa = unix.AF_INET, sa
		return nil
	}
	if e.spread > 1 {
		return fmt.Errorf("bench: source addresses 127.0.0.x need an IPv4 broker address, not %s", e.addr)
	}
	sa := &unix.SockaddrInet6{Port: ta.Port}
	copy(sa.Addr[:], ta.IP.To16())
	e.domain, e.sa = unix.AF_INET6, sa
	return nil
}

func (e *connEngine) now() int64 { return int64(time.Since(e.base)) }

// prepare creates the socket of every connection, bound to its source
// address when there is a spread.
func (e *connEngine) prepare(n int) error {
	e.socks = make([]int32, n)
	for i := range e.socks {
		e.socks[i] = -1
	}
	for i := range e.socks {
		fd, err := unix.Socket(e.domain, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("bench: socket for connection %d of %d (ulimit -n?): %w", i, n, err)
		}
		e.socks[i] = int32(fd)
		if e.spread > 1 {
			// As dialer.dial: bind the source address now, let connect
			// pick the port, so a port may be reused towards another
			// destination.
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1); err != nil {
				return fmt.Errorf("bench: setsockopt IP_BIND_ADDRESS_NO_PORT: %w", err)
			}
			src := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, byte(1 + i%e.spread)}}
			if err := unix.Bind(fd, src); err != nil {
				return fmt.Errorf("bench: bind connection %d to %d.%d.%d.%d: %w", i, src.Addr[0], src.Addr[1],
					src.Addr[2], src.Addr[3], err)
			}
		}
	}
	return nil
}

// closeUnstarted closes the sockets of connections never started.
func (e *connEngine) closeUnstarted() {
	for i, fd := range e.socks {
		if fd >= 0 {
			_ = unix.Close(int(fd))
			e.socks[i] = -1
		}
	}
}

// launch starts connection i in a free slot. It returns false when the
// connection failed and onFail asked to stop.
func (e *connEngine) launch(i int) bool {
	k := e.free[len(e.free)-1]
	e.free = e.free[:len(e.free)-1]
	e.busy++
	s := &e.slots[k]
	s.gen++
	s.i, s.state, s.n, s.outWait = i, stConnecting, 0, false
	s.fd = int(e.socks[i])
	e.socks[i] = -1
	fd := s.fd
	s.started = e.now()
	if err := unix.Connect(fd, e.sa); err != nil && !errors.Is(err, unix.EINPROGRESS) {
		return e.fail(int(k), e.dialErr(i, "connect", err))
	}
	pkt := e.opts.connectPacket(e.clientID(i))
	s.pkts = pkt.Append(s.pkts[:0])
	if e.pipeline {
		sub := subscribePacket(e.topic(i), e.qos)
		s.pkts = sub.Append(s.pkts, e.opts.version)
	}
	s.out = s.pkts
	if s.buf == nil {
		s.buf = make([]byte, engineReadBuf)
	}
	// Over loopback the TCP handshake usually completes inside connect, so
	// write at once; EAGAIN means it is still under way and EPOLLOUT will
	// say when it is done.
	if err := e.flush(s); err != nil {
		return e.fail(int(k), e.dialErr(i, "connect", err))
	}
	if len(s.out) == 0 {
		s.state = stConnack
	}
	s.outWait = len(s.out) > 0
	ev := unix.EpollEvent{Events: e.mask(s), Fd: int32(uint32(k) | uint32(s.gen)<<16)}
	if err := unix.EpollCtl(e.ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return e.fail(int(k), fmt.Errorf("bench: epoll_ctl (connection %d): %w", i, err))
	}
	e.deadline(int(k))
	return true
}

// mask is the epoll interest of slot s: edge-triggered input, and output
// while bytes wait to be written.
func (e *connEngine) mask(s *engineSlot) uint32 {
	m := uint32(unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET)
	if s.outWait {
		m |= unix.EPOLLOUT
	}
	return m
}

// flush writes what s still has to write; EAGAIN leaves the rest in s.out.
func (e *connEngine) flush(s *engineSlot) error {
	for len(s.out) > 0 {
		n, err := unix.Write(s.fd, s.out)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return err
		}
		s.out = s.out[n:]
		s.wrote = e.now()
	}
	return nil
}

// deadline starts a new step of slot k: it must end within the timeout.
func (e *connEngine) deadline(k int) {
	e.steps++
	e.slots[k].step = e.steps
	if e.tohead > 1024 && e.tohead*2 > len(e.timeouts) {
		e.timeouts = e.timeouts[:copy(e.timeouts, e.timeouts[e.tohead:])]
		e.tohead = 0
	}
	e.timeouts = append(e.timeouts, engineTimeout{deadline: e.now() + int64(e.timeout), step: e.steps, slot: int32(k)})
}

// stale reports whether the timeout t belongs to a step that is over.
func (e *connEngine) stale(t engineTimeout) bool {
	s := &e.slots[t.slot]
	return s.state == stFree || s.step != t.step
}

// waitMs is how long epoll_wait may block: until the next deadline, and at
// most 50 ms so that a cancelled context is seen.
func (e *connEngine) waitMs() int {
	for e.tohead < len(e.timeouts) && e.stale(e.timeouts[e.tohead]) {
		e.tohead++
	}
	wait := 50 * time.Millisecond
	if e.tohead < len(e.timeouts) {
		wait = min(wait, time.Duration(e.timeouts[e.tohead].deadline-e.now()))
	}
	if wait <= 0 {
		return 0
	}
	return int((wait + time.Millisecond - 1) / time.Millisecond)
}

// expire fails the handshakes whose step outlived the timeout. It returns
// false when onFail asked to stop.
func (e *connEngine) expire() bool {
	ok := true
	now := e.now()
	for e.tohead < len(e.timeouts) {
		t := e.timeouts[e.tohead]
		if e.stale(t) {
			e.tohead++
			continue
		}
		if t.deadline > now {
			break
		}
		e.tohead++
		s := &e.slots[t.slot]
		var what string
		switch s.state {
		case stConnecting:
			what = "TCP connect to " + e.addr
		case stConnack:
			what = "CONNACK for " + e.clientID(s.i)
		default:
			what = "SUBACK for " + e.topic(s.i)
		}
		err := fmt.Errorf("bench: connection %d: no %s within %s: %w", s.i, what, e.timeout, os.ErrDeadlineExceeded)
		if !e.fail(int(t.slot), err) {
			ok = false
		}
	}
	return ok
}

// handle advances slot s on the epoll events ev.
func (e *connEngine) handle(s *engineSlot, ev uint32) error {
	if s.state == stConnecting && ev&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		if soerr, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && soerr != 0 {
			return e.dialErr(s.i, "connect", unix.Errno(soerr))
		}
	}
	if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 && len(s.out) > 0 {
		if err := e.flush(s); err != nil {
			if s.state == stConnecting {
				return e.dialErr(s.i, "connect", err)
			}
			return fmt.Errorf("bench: send SUBSCRIBE %s: %w", e.topic(s.i), err)
		}
		if len(s.out) == 0 && s.state == stConnecting {
			s.state = stConnack
			e.deadline(int(s.k))
		}
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		if err := e.read(s); err != nil {
			return err
		}
		if s.state == stFree {
			return nil // subscribed and handed over
		}
	}
	return e.rearm(s)
}

// rearm registers slot s for EPOLLOUT while it has bytes to write, and
// drops that interest once it has none.
func (e *connEngine) rearm(s *engineSlot) error {
	if want := len(s.out) > 0; want != s.outWait {
		s.outWait = want
		k := int(s.k)
		ev := unix.EpollEvent{Events: e.mask(s), Fd: int32(uint32(k) | uint32(s.gen)<<16)}
		if err := unix.EpollCtl(e.ep, unix.EPOLL_CTL_MOD, s.fd, &ev); err != nil {
			return fmt.Errorf("bench: epoll_ctl (connection %d): %w", s.i, err)
		}
	}
	return nil
}

// read drains the socket of slot s (edge-triggered: until EAGAIN or a
// short read) and acts on every whole packet.
func (e *connEngine) read(s *engineSlot) error {
	for {
		if s.n == len(s.buf) {
			s.buf = append(s.buf, make([]byte, len(s.buf))...)
		}
		room := len(s.buf) - s.n
		n, err := unix.Read(s.fd, s.buf[s.n:])
		switch {
		case errors.Is(err, unix.EAGAIN):
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return e.readErr(s, err)
		case n == 0:
			return e.readErr(s, io.EOF)
		}
		s.n += n
		if err := e.parse(s); err != nil || s.state == stFree {
			return err
		}
		if n < room {
			// A short read emptied the socket; edge-triggered epoll
			// reports the next bytes to come.
			return nil
		}
	}
}

// readErr names what the broker failed to send.
func (e *connEngine) readErr(s *engineSlot, err error) error {
	if s.state == stConnecting {
		return e.dialErr(s.i, "connect", err)
	}
	if s.state == stConnack {
		return fmt.Errorf("bench: read CONNACK for %s: %w", e.clientID(s.i), eofAsRefusal(err))
	}
	return fmt.Errorf("bench: read SUBACK for %s: %w", e.topic(s.i), eofAsRefusal(err))
}

// parse acts on the whole packets in s.buf[:s.n] and keeps the rest.
func (e *connEngine) parse(s *engineSlot) error {
	off := 0
	defer func() {
		if s.state != stFree {
			s.n = copy(s.buf, s.buf[off:s.n])
		}
	}()
	for off < s.n {
		h, hn, err := codec.ParseHeader(s.buf[off:s.n], 0)
		if errors.Is(err, codec.ErrIncomplete) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("bench: connection %d: %w", s.i, err)
		}
		total := hn + h.Remaining
		if s.n-off < total {
			if total > len(s.buf) {
				nb := make([]byte, total)
				s.n = copy(nb, s.buf[off:s.n])
				s.buf, off = nb, 0
			}
			return nil
		}
		body := s.buf[off+hn : off+total]
		off += total
		switch s.state {
		case stConnecting:
			return fmt.Errorf("bench: connection %d got %s before its CONNECT was sent", s.i, h.Type)
		case stConnack:
			if _, err := e.opts.checkConnack(h, body, e.clientID(s.i)); err != nil {
				return err
			}
			s.state = stSuback
			e.deadline(int(s.k))
			if !e.pipeline {
				sub := subscribePacket(e.topic(s.i), e.qos)
				s.pkts = sub.Append(s.pkts[:0], e.opts.version)
				s.out = s.pkts
				if err := e.flush(s); err != nil {
					return fmt.Errorf("bench: send SUBSCRIBE %s: %w", e.topic(s.i), err)
				}
			}
		case stSuback:
			if h.Type == codec.PINGRESP {
				continue
			}
			if err := e.opts.checkSuback(h, body, e.topic(s.i)); err != nil {
				return err
			}
			if len(s.out) > 0 {
				return fmt.Errorf("bench: SUBSCRIBE %s acknowledged before it was sent", e.topic(s.i))
			}
			if off < s.n {
				// Nothing may follow: the connection is idle from now on,
				// and bytes left here would never be read.
				h, _, _ := codec.ParseHeader(s.buf[off:s.n], 0)
				return fmt.Errorf("bench: connection %d got %s right after SUBACK", s.i, h.Type)
			}
			e.opened(s)
			return nil
		}
	}
	return nil
}

// opened hands a subscribed connection over to onOpen and frees its slot.
func (e *connEngine) opened(s *engineSlot) {
	now := e.now()
	e.hist.Record(now - s.started)
	fd, i, wrote := s.fd, s.i, e.base.UnixNano()+s.wrote
	e.release(s)
	e.onOpen(i, fd, wrote)
}

// fail closes slot k's socket, frees the slot and reports err. It returns
// what onFail returned.
func (e *connEngine) fail(k int, err error) bool {
	s := &e.slots[k]
	i := s.i
	if s.fd >= 0 {
		_ = unix.Close(s.fd) // also leaves the epoll set: the socket has no other descriptor
	}
	e.release(s)
	return e.onFail(i, err)
}

func (e *connEngine) release(s *engineSlot) {
	s.state, s.fd, s.out, s.n = stFree, -1, nil, 0
	if cap(s.buf) > 4*engineReadBuf {
		s.buf = nil // a rare large packet: do not keep its buffer
	}
	e.free = append(e.free, s.k)
	e.busy--
}

// abort closes every connection still in flight, without reporting them.
func (e *connEngine) abort() {
	for k := range e.slots {
		s := &e.slots[k]
		if s.state != stFree {
			if s.fd >= 0 {
				_ = unix.Close(s.fd)
			}
			e.release(s)
		}
	}
}

func (e *connEngine) dialErr(i int, op string, err error) error {
	return fmt.Errorf("bench: dial %s (connection %d): %s: %w", e.addr, i, op, err)
}
