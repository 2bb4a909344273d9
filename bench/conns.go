package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttd/mqttd/codec"
	"golang.org/x/sys/unix"
)

// maxConnFailures stops the connect phase of conns: past it the broker is
// refusing or failing, and waiting out every timeout would not bound the
// run.
const maxConnFailures = 50

// connsRun is one run of the conns scenario.
type connsRun struct {
	*runner
	conns []*wconn // nil where the connection failed
	// fds are the sockets the connect engine opened, -1 where none, until
	// adopt turns them into conns; wrote is the time of each one's last
	// write (Unix ns), for the keepalive.
	fds       []int32
	wrote     []int64
	connected atomic.Int64
	failures  atomic.Int64
	firstErr  struct {
		sync.Once
		err error // the first connect failure, set once
	}
}

// runConns opens cfg.Conns connections, each subscribed to a topic of its
// own, through the epoll connect engine (connengine.go): one goroutine, at
// most cfg.ConnInflight handshakes at once, CONNECT and SUBSCRIBE pipelined
// unless cfg.NoPipeline. Once subscribed a connection has no goroutine: it
// sits idle while the broker's memory is sampled for cfg.Duration. Then one
// message goes to every connection's topic and a pool of cfg.Workers
// goroutines reads it back, which proves the broker still holds every
// subscription.
func runConns(ctx context.Context, r *runner) (*Result, error) {
	cfg := &r.cfg
	cr := &connsRun{runner: r, conns: make([]*wconn, cfg.Conns), fds: make([]int32, cfg.Conns),
		wrote: make([]int64, cfg.Conns)}
	for i := range cr.fds {
		cr.fds[i] = -1
	}
	defer cr.closeAll()
	res := &Result{Conns: cfg.Conns}

	var before procUsage
	if r.pid > 0 {
		u, err := readProcUsage(r.pid)
		if err != nil {
			return nil, err
		}
		before = u
		res.RSSBefore = u.RSS
	} else {
		r.errs.add(errors.New("broker pid unknown: no memory figures (give -pid)"))
	}

	// Connect phase.
	stop := cr.ticker("connect", func() string {
		return fmt.Sprintf("%d of %d connected", cr.connected.Load(), cfg.Conns)
	})
	// The clock starts once the engine has created every socket, at the
	// first connect: creating sockets is the tool's business alone.
	var (
		began        time.Time
		cpu0         time.Duration
		brokerCPU0   = before.CPU
		overflows0   int64
		overflowsErr error
		steal0       time.Duration
		stealErr     error
	)
	hist, err := cr.connectAll(ctx, func() {
		overflows0, overflowsErr = listenOverflows()
		cpu0, began = selfCPU(), time.Now()
		steal0, stealErr = hostSteal()
		if r.pid > 0 {
			if u, err := readProcUsage(r.pid); err == nil {
				brokerCPU0 = u.CPU
			}
		}
	})
	elapsed := time.Since(began)
	cpu1 := selfCPU()
	steal1, stealErr1 := hostSteal()
	stop()
	if err != nil {
		return nil, err
	}
	if n, err := listenOverflows(); err == nil && overflowsErr == nil && n > overflows0 {
		fmt.Fprintf(cr.progress, "mqttbench conns: warning: %d connection attempts found an accept queue full "+
			"(ListenOverflows, counted machine-wide): the broker's listen backlog is probably below "+
			"-conn-inflight %d, and each drop cost a one-second SYN retransmission\n", n-overflows0, cfg.ConnInflight)
	}
	cr.adopt()
	res.Connected = int(cr.connected.Load())
	res.ConnErrors = uint64(cr.failures.Load())
	res.ConnectS = elapsed.Seconds()
	res.ConnectPerSec = float64(res.Connected) / elapsed.Seconds()
	res.ConnectP99us = durUs(hist.Quantile(0.99))
	res.ToolCPU = (cpu1 - cpu0).Seconds() / elapsed.Seconds()
	if stealErr == nil && stealErr1 == nil {
		res.HostSteal = (steal1 - steal0).Seconds() / elapsed.Seconds()
	}
	if r.pid > 0 {
		if u, err := readProcUsage(r.pid); err == nil {
			res.BrokerCPU = (u.CPU - brokerCPU0).Seconds() / elapsed.Seconds()
			if res.Connected > 0 {
				res.BrokerUsPerConnect = float64((u.CPU - brokerCPU0).Microseconds()) / float64(res.Connected)
			}
		}
	}

	// Idle phase: no goroutine per connection, only the pinger when a
	// keepalive is set.
	stopPing := make(chan struct{})
	var pingWG sync.WaitGroup
	pingWG.Go(func() { r.pinger(stopPing, func() []*wconn { return cr.conns }) })
	var rss atomic.Int64
	stop = cr.ticker("idle", func() string {
		return fmt.Sprintf("%d connections, broker RSS %s", res.Connected, iec(rss.Load()))
	})
	holdEnd := time.Now().Add(cfg.Duration)
	for {
		if r.pid > 0 {
			u, err := readProcUsage(r.pid)
			if err != nil {
				r.errs.add(err)
			} else {
				rss.Store(u.RSS)
				res.RSSAfter = u.RSS
			}
		}
		left := time.Until(holdEnd)
		if left <= 0 || !sleepCtx(ctx, min(left, 500*time.Millisecond)) {
			break
		}
	}
	stop()
	close(stopPing)
	pingWG.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if res.RSSAfter > 0 && res.Connected > 0 {
		res.BrokerRSS = res.RSSAfter
		res.RSSPerConn = float64(res.RSSAfter-res.RSSBefore) / float64(res.Connected)
	}

	// Verify phase.
	verified, lost, broken, err := cr.verify(ctx)
	if err != nil {
		r.errs.add(fmt.Errorf("verify: %w", err))
	}
	res.Verified, res.Lost = verified, lost
	res.ConnErrors += broken
	return res, nil
}

// ticker prints "conns <elapsed> <phase> <what()>" every second until the
// returned function is called.
func (cr *connsRun) ticker(phase string, what func() string) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		began := time.Now()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(cr.progress, "mqttbench conns %4.0fs %-7s %s\n", time.Since(began).Seconds(), phase,
					what())
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// connectAll connects and subscribes every connection through the epoll
// engine (connengine.go) on this goroutine, at most cfg.ConnInflight at
// once. Failed connections are counted and skipped; past maxConnFailures
// no new one starts. start runs when the first connect is about to go out.
// It returns the connect+subscribe latencies; the sockets of the
// subscribed connections are in cr.fds.
func (cr *connsRun) connectAll(ctx context.Context, start func()) (*Histogram, error) {
	cfg := &cr.cfg
	e := connEngine{
		addr:     cfg.Addr,
		spread:   cfg.Spread,
		inflight: cfg.ConnInflight,
		pipeline: !cfg.NoPipeline,
		timeout:  cfg.ConnectTimeout,
		opts:     &cr.opts,
		qos:      cfg.QoS,
		clientID: func(i int) string { return clientID(cr.id, "c", i) },
		topic:    cr.topic,
		onOpen: func(i, fd int, wrote int64) {
			cr.fds[i], cr.wrote[i] = int32(fd), wrote
			cr.connected.Add(1)
		},
		onFail: func(_ int, err error) bool {
			cr.errs.add(err)
			cr.firstErr.Do(func() { cr.firstErr.err = err })
			return cr.failures.Add(1) < maxConnFailures
		},
		onStart: start,
	}
	hist, err := e.run(ctx, cfg.Conns)
	if err != nil {
		return nil, err
	}
	if cr.connected.Load() == 0 {
		return nil, fmt.Errorf("bench: no connection succeeded: %w", cr.firstErr.err)
	}
	return hist, nil
}

// adopt turns the engine's sockets into wconns for the idle and verify
// phases, which use the net package. It runs after the connect phase is
// timed: the extra system calls (a dup and the runtime poller's
// registration) are the tool's, not part of a handshake. A socket that
// cannot be adopted counts as a failed connection.
func (cr *connsRun) adopt() {
	for i, fd := range cr.fds {
		if fd < 0 {
			continue
		}
		cr.fds[i] = -1
		f := os.NewFile(uintptr(fd), "mqttbench-conn")
		nc, err := net.FileConn(f) // a duplicate of fd
		f.Close()
		if err != nil {
			cr.connected.Add(-1)
			cr.failures.Add(1)
			cr.errs.add(fmt.Errorf("bench: connection %d: adopt socket: %w", i, err))
			continue
		}
		c := &wconn{Conn: nc}
		c.lastWrite.Store(cr.wrote[i])
		cr.conns[i] = c
	}
}

// verify publishes one QoS 0 message to every connected topic and reads it
// back from each connection. It returns the connections that got their
// message, those that did not within the drain time, and those that broke.
func (cr *connsRun) verify(ctx context.Context) (verified int, lost, broken uint64, err error) {
	cfg := &cr.cfg
	pub, err := cr.dial.dial(ctx, cfg.Conns)
	if err != nil {
		return 0, 0, 0, err
	}
	defer pub.Close()
	rd := newPacketReader(pub, 512, cr.clk)
	if _, err := handshake(pub, rd, &cr.opts, clientID(cr.id, "v", 0)); err != nil {
		return 0, 0, 0, err
	}
	deadline := time.Now().Add(cfg.Drain + cfg.ConnectTimeout)
	_ = pub.SetWriteDeadline(deadline)
	var pkt codec.Publish
	payload := make([]byte, 0, cfg.Size)
	buf := make([]byte, 0, flushAt+1024)
	for i, c := range cr.conns {
		if c == nil {
			continue
		}
		pkt.Topic = []byte(cr.topic(i))
		pkt.Payload = AppendPayload(payload[:0], Header{Seq: uint64(i), Sent: cr.clk.now()}, cfg.Size)
		buf = pkt.Append(buf, cfg.Version)
		if len(buf) >= flushAt {
			if err := pub.write(buf); err != nil {
				return 0, 0, 0, err
			}
			buf = buf[:0]
		}
	}
	if len(buf) > 0 {
		if err := pub.write(buf); err != nil {
			return 0, 0, 0, err
		}
	}

	readBy := time.Now().Add(cfg.Drain)
	var ok, missing, dead atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(cfg.Workers, cfg.Conns) {
		wg.Go(func() {
			rd := newPacketReader(nil, 512, cr.clk)
			var p codec.Publish
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(cr.conns) {
					return
				}
				c := cr.conns[i]
				if c == nil {
					continue
				}
				// Past readBy every connection still gets a moment: a
				// deadline in the past would not even look at the socket.
				_ = c.SetReadDeadline(later(readBy, time.Now().Add(2*time.Millisecond)))
				rd.reset(c)
				switch err := cr.awaitOne(rd, &p, i); {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, os.ErrDeadlineExceeded):
					missing.Add(1)
				default:
					dead.Add(1)
					cr.errs.add(fmt.Errorf("connection %d: %w", i, err))
				}
				_ = c.SetReadDeadline(time.Time{})
			}
		})
	}
	wg.Wait()
	return int(ok.Load()), uint64(missing.Load()), uint64(dead.Load()), ctx.Err()
}

// awaitOne reads from connection i until its verification message comes.
// It answers nothing: the message is QoS 0.
func (cr *connsRun) awaitOne(rd *packetReader, p *codec.Publish, i int) error {
	want := cr.topic(i)
	for {
		h, body, err := rd.next()
		if err != nil {
			return err
		}
		switch h.Type {
		case codec.PINGRESP:
			continue
		case codec.PUBLISH:
		default:
			return fmt.Errorf("got %s while idle", h.Type)
		}
		if err := p.Decode(h, body, cr.cfg.Version); err != nil {
			return err
		}
		hd, err := DecodePayload(p.Payload)
		if err != nil {
			return err
		}
		if string(p.Topic) != want || hd.Seq != uint64(i) {
			return fmt.Errorf("got message %d on %q, want %d on %q", hd.Seq, p.Topic, i, want)
		}
		return nil
	}
}

// closeAll disconnects and closes every connection.
func (cr *connsRun) closeAll() {
	disc := (&codec.Disconnect{}).Append(nil, cr.cfg.Version)
	for i, fd := range cr.fds { // not adopted: the run ended early
		if fd >= 0 {
			_, _ = unix.Write(int(fd), disc)
			_ = unix.Close(int(fd))
			cr.fds[i] = -1
		}
	}
	for i, c := range cr.conns {
		if c == nil {
			continue
		}
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_ = c.write(disc)
		_ = c.Close()
		cr.conns[i] = nil
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
