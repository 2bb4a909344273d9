package transport

import (
	"crypto/x509"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of the goroutine-driven (TLS, WebSocket) listeners.
const (
	defaultHandshakeTimeout = 10 * time.Second
	defaultWriteTimeout     = 30 * time.Second
	defaultCloseTimeout     = 2 * time.Second
)

// streamOptions are the settings every goroutine-driven listener shares.
type streamOptions struct {
	kind         string // Conn.Transport: "tls", "ws" or "wss"
	maxBuffered  int
	writeTimeout time.Duration // < 0: none
	closeTimeout time.Duration
}

// wire is the byte-level side of a streamConn: a TLS stream or WebSocket
// messages. Read is called by the reader goroutine only, writeBatch and
// closeGraceful by the writer goroutine only.
type wire interface {
	// Read reads the next bytes of the inbound byte stream.
	Read(p []byte) (int, error)
	// setWriteDeadline bounds the following writes (zero: none).
	setWriteDeadline(t time.Time)
	// writeBatch writes bufs, in order, as one unit (a WebSocket message).
	writeBatch(bufs [][]byte) error
	// closeGraceful ends the stream in its protocol's orderly way
	// (close_notify, a close frame with a code derived from reason) and
	// closes the socket.
	closeGraceful(reason error)
	// readErr maps an error from Read into the reason given to
	// Handler.OnClose when the peer ended the connection: nil for an
	// orderly end.
	readErr(err error) error
}

// streamListener tracks the connections of a goroutine-driven listener so
// that Close can close them and wait for their goroutines.
type streamListener struct {
	g    guard
	opts streamOptions

	wg sync.WaitGroup // one per connection goroutine (and pending handler)

	mu struct {
		sync.Mutex
		closed bool
		conns  map[*streamConn]struct{}
	}
}

func newStreamListener(h Handler, opts streamOptions, g guard) *streamListener {
	l := &streamListener{g: g, opts: opts}
	l.g.h = h
	l.mu.conns = make(map[*streamConn]struct{})
	return l
}

// enter accounts for a goroutine that may create a connection; false once
// the listener is closed. A true result must be paired with l.wg.Done.
func (l *streamListener) enter() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return false
	}
	l.wg.Add(1)
	return true
}

// register adds c to the set closed by closeAll; false once closed.
func (l *streamListener) register(c *streamConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return false
	}
	l.mu.conns[c] = struct{}{}
	return true
}

func (l *streamListener) unregister(c *streamConn) {
	l.mu.Lock()
	delete(l.mu.conns, c)
	l.mu.Unlock()
}

// closeAll refuses new connections, closes the registered ones (flushing
// their queued writes for at most closeTimeout) and waits for every
// connection goroutine.
func (l *streamListener) closeAll() {
	l.mu.Lock()
	l.mu.closed = true
	conns := make([]*streamConn, 0, len(l.mu.conns))
	for c := range l.mu.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		if c.running.Load() {
			c.closeWith(ErrListenerClosed)
		} else {
			// Still handshaking: nothing to flush, and a handshake
			// waiting for the peer only ends when the socket closes.
			c.hardClose(ErrListenerClosed)
		}
	}
	l.wg.Wait()
}

// streamConn is a Conn served by two goroutines: the reader (the one that
// calls run) reads into a reusable buffer and calls the Handler; the writer
// owns all socket writes and runs the write queue.
//
// Closing: closeWith (Close, a Handler error, listener Close) refuses new
// writes and lets the writer flush what is queued, then end the stream
// gracefully; a timer hard-closes it if that takes more than closeTimeout.
// hardClose (a read or write error) closes the socket at once. Either way the socket's close ends the reader's Read,
// and the reader, after the writer exited, fails leftover writes and calls
// Handler.OnClose.
type streamConn struct {
	ctxHolder

	l         *streamListener
	w         wire
	raw       net.Conn // the TCP socket under TLS / WebSocket
	remote    net.Addr
	local     net.Addr
	peerCerts []*x509.Certificate // set before OnOpen, read-only after

	outbound atomic.Int64 // bytes accepted by AsyncWritev, not yet written
	closing  atomic.Bool  // a close was requested: no more OnData
	running  atomic.Bool  // run was called (the handshake is over)

	wake       chan struct{} // capacity 1: the writer has something to do
	stop       chan struct{} // closed by hardClose: the writer exits
	stopOnce   sync.Once
	writerDone chan struct{}

	mu struct {
		sync.Mutex
		queue      []streamWrite // accepted, not yet taken by the writer
		closed     bool          // no more writes accepted
		reason     error         // first close reason, for Handler.OnClose
		closeTimer *time.Timer   // hard-closes a graceful close that takes too long
	}
}

type streamWrite struct {
	bufs [][]byte
	n    int
	done func(error)
}

func newStreamConn(l *streamListener, w wire, raw net.Conn) *streamConn {
	return &streamConn{
		l:          l,
		w:          w,
		raw:        raw,
		remote:     raw.RemoteAddr(),
		local:      raw.LocalAddr(),
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
}

// run serves an established connection on the calling goroutine until it
// is closed; it calls OnOpen, OnData and OnClose.
func (c *streamConn) run() {
	c.running.Store(true)
	go c.writeLoop()

	if err := c.l.g.open(c); err != nil {
		c.hardClose(err)
	}

	in := inbound{max: c.l.opts.maxBuffered}
	var readErr error
	for {
		n, err := c.w.Read(in.space())
		if n > 0 && !c.closing.Load() {
			in.received(n)
			consumed, herr := c.l.g.data(c, in.pending())
			in.consume(consumed)
			switch {
			case herr != nil:
				c.closeWith(herr)
			case in.buffered() > in.max:
				c.closeWith(fmt.Errorf("%w: %d > %d bytes", ErrInboundOverflow, in.buffered(), in.max))
			}
		}
		if err != nil {
			readErr = err
			break
		}
	}

	// Whatever ended the read side, the socket goes now (the reason of an
	// earlier close request is kept).
	c.hardClose(c.w.readErr(readErr))
	<-c.writerDone

	c.mu.Lock()
	left := c.mu.queue
	c.mu.queue = nil
	reason := c.mu.reason
	if c.mu.closeTimer != nil {
		c.mu.closeTimer.Stop()
	}
	c.mu.Unlock()
	for _, w := range left {
		c.outbound.Add(-int64(w.n))
		if w.done != nil {
			w.done(ErrClosed)
		}
	}
	c.l.g.close(c, reason)
}

// AsyncWritev implements Conn: it appends to the queue and wakes the
// writer; it never blocks on the socket.
func (c *streamConn) AsyncWritev(bufs [][]byte, done func(error)) error {
	n := bufsLen(bufs)
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.mu.queue = append(c.mu.queue, streamWrite{bufs: bufs, n: n, done: done})
	c.outbound.Add(int64(n))
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
	return nil
}

// Outbound implements Conn.
func (c *streamConn) Outbound() int { return int(c.outbound.Load()) }

// Close implements Conn: writes queued before it are flushed (for at most
// the listener's close timeout), then the stream ends gracefully.
func (c *streamConn) Close() error {
	c.closeWith(nil)
	return nil
}

// closeWith requests a graceful close with the given reason.
func (c *streamConn) closeWith(reason error) {
	c.closing.Store(true)
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return
	}
	c.mu.closed = true
	c.mu.reason = reason
	// The flush gets closeTimeout, whatever the write deadline; a write
	// blocked on a peer that does not read ends when the socket closes.
	c.mu.closeTimer = time.AfterFunc(c.l.opts.closeTimeout, func() { c.hardClose(nil) })
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// hardClose closes the socket at once; reason is kept unless a close was
// requested before.
func (c *streamConn) hardClose(reason error) {
	c.closing.Store(true)
	c.mu.Lock()
	if !c.mu.closed {
		c.mu.closed = true
		c.mu.reason = reason
	}
	c.mu.Unlock()
	c.stopOnce.Do(func() {
		close(c.stop)
		_ = c.raw.Close()
	})
}

// writeLoop is the writer goroutine.
func (c *streamConn) writeLoop() {
	defer close(c.writerDone)
	var (
		batch []streamWrite
		bufs  [][]byte
	)
	for {
		select {
		case <-c.wake:
		case <-c.stop:
			return
		}
		for {
			select {
			case <-c.stop:
				return // hard-closed: the reader fails what is left
			default:
			}
			c.mu.Lock()
			batch = c.takeBatch(batch[:0])
			closed := c.mu.closed
			reason := c.mu.reason
			c.mu.Unlock()

			if len(batch) == 0 {
				if closed {
					// Everything queued before the close is written.
					c.w.closeGraceful(reason)
					c.hardClose(nil)
					return
				}
				break
			}

			if c.l.opts.writeTimeout > 0 {
				c.w.setWriteDeadline(time.Now().Add(c.l.opts.writeTimeout))
			}
			bufs = bufs[:0]
			for _, w := range batch {
				bufs = append(bufs, w.bufs...)
			}
			err := c.w.writeBatch(bufs)
			clear(bufs) // drop references to the caller's buffers
			for i, w := range batch {
				c.outbound.Add(-int64(w.n))
				if w.done != nil {
					w.done(err)
				}
				batch[i] = streamWrite{}
			}
			if err != nil {
				c.hardClose(fmt.Errorf("transport: write: %w", err))
				return
			}
		}
	}
}

// maxBatch is the size (bytes) at which the writer stops adding queued
// writes to one batch: one WebSocket message stays a reasonable size for
// clients, and Outbound and the done calls follow the writer's progress.
const maxBatch = 64 << 10

// takeBatch moves the oldest queued writes, up to maxBatch bytes (at least
// one write), from the queue to batch; c.mu must be held.
func (c *streamConn) takeBatch(batch []streamWrite) []streamWrite {
	q := c.mu.queue
	size, k := 0, 0
	for k < len(q) && (k == 0 || size+q[k].n <= maxBatch) {
		size += q[k].n
		k++
	}
	batch = append(batch, q[:k]...)
	n := copy(q, q[k:])
	clear(q[n:])
	c.mu.queue = q[:n]
	return batch
}

func (c *streamConn) RemoteAddr() net.Addr                  { return c.remote }
func (c *streamConn) LocalAddr() net.Addr                   { return c.local }
func (c *streamConn) Transport() string                     { return c.l.opts.kind }
func (c *streamConn) PeerCertificates() []*x509.Certificate { return c.peerCerts }

// inbound is the read buffer of a goroutine-driven connection: buf[start:end]
// holds bytes received and not yet consumed by the Handler.
type inbound struct {
	buf        []byte
	start, end int
	max        int // MaxBuffered: the reader closes the connection above it
}

// space returns the free tail to read into, at least minFree bytes. When
// the tail is shorter it moves the unconsumed bytes to the front if they
// fill at most half the buffer, else it doubles the buffer (so the buffer
// stays below 4*(MaxBuffered+minReadSize)).
func (in *inbound) space() []byte {
	if in.buf == nil {
		in.buf = make([]byte, minReadSize)
	}
	if len(in.buf)-in.end >= minFree {
		return in.buf[in.end:]
	}
	pending := in.end - in.start
	if pending <= len(in.buf)/2 {
		copy(in.buf, in.buf[in.start:in.end])
	} else {
		size := 2 * len(in.buf)
		for size-pending < minFree || pending > size/2 {
			size *= 2
		}
		nb := make([]byte, size)
		copy(nb, in.buf[in.start:in.end])
		in.buf = nb
	}
	in.start, in.end = 0, pending
	return in.buf[in.end:]
}

// received accounts for n bytes read into the slice space returned.
func (in *inbound) received(n int) { in.end += n }

// pending returns the unconsumed bytes; valid until the next space call.
func (in *inbound) pending() []byte { return in.buf[in.start:in.end] }

// buffered is the number of unconsumed bytes.
func (in *inbound) buffered() int { return in.end - in.start }

// consume drops the first n pending bytes. A drained buffer that grew past
// keepReadSize is released so idle connections stay small.
func (in *inbound) consume(n int) {
	in.start += n
	if in.start < in.end {
		return
	}
	in.start, in.end = 0, 0
	if len(in.buf) > keepReadSize {
		in.buf = nil
	}
}
