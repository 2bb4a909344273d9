package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttd/mqttd/codec"
)

// maxConnFailures stops the connect phase of conns: past it the broker is
// refusing or failing, and waiting out every timeout would not bound the
// run.
const maxConnFailures = 50

// connsRun is one run of the conns scenario.
type connsRun struct {
	*runner
	conns     []*wconn // nil where the connection failed
	connected atomic.Int64
	failures  atomic.Int64
	firstErr  struct {
		sync.Once
		err error // the first connect failure, set once
	}
}

// runConns opens cfg.Conns connections, each subscribed to a topic of its
// own, from a pool of cfg.Workers goroutines doing blocking I/O. Once
// subscribed a connection has no goroutine: it sits idle while the broker's
// memory is sampled for cfg.Duration. Then one message goes to every
// connection's topic and the pool reads it back, which proves the broker
// still holds every subscription.
func runConns(ctx context.Context, r *runner) (*Result, error) {
	cfg := &r.cfg
	cr := &connsRun{runner: r, conns: make([]*wconn, cfg.Conns)}
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
	cpu0 := selfCPU()
	began := time.Now()
	hist, err := cr.connectAll(ctx)
	elapsed := time.Since(began)
	cpu1 := selfCPU()
	stop()
	if err != nil {
		return nil, err
	}
	res.Connected = int(cr.connected.Load())
	res.ConnErrors = uint64(cr.failures.Load())
	res.ConnectS = elapsed.Seconds()
	res.ConnectPerSec = float64(res.Connected) / elapsed.Seconds()
	res.ConnectP99us = durUs(hist.Quantile(0.99))
	res.ToolCPU = (cpu1 - cpu0).Seconds() / elapsed.Seconds()
	if r.pid > 0 {
		if u, err := readProcUsage(r.pid); err == nil {
			res.BrokerCPU = (u.CPU - before.CPU).Seconds() / elapsed.Seconds()
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

// connectAll connects and subscribes every connection with cfg.Workers
// workers, each with its own reader and latency histogram. Failed
// connections are counted and skipped; past maxConnFailures the phase
// stops. It returns the merged connect+subscribe latencies.
func (cr *connsRun) connectAll(ctx context.Context) (*Histogram, error) {
	cfg := &cr.cfg
	var next atomic.Int64
	var mu sync.Mutex // guards total
	var total Histogram
	var wg sync.WaitGroup
	for range min(cfg.Workers, cfg.Conns) {
		wg.Go(func() {
			var h Histogram
			rd := newPacketReader(nil, 512, cr.clk)
			defer func() { mu.Lock(); total.Merge(&h); mu.Unlock() }()
			for ctx.Err() == nil && cr.failures.Load() < maxConnFailures {
				i := int(next.Add(1) - 1)
				if i >= cfg.Conns {
					return
				}
				t0 := time.Now()
				c, err := cr.connectOne(ctx, rd, i)
				if err != nil {
					cr.failures.Add(1)
					cr.errs.add(err)
					cr.firstErr.Do(func() { cr.firstErr.err = err })
					continue
				}
				h.Record(int64(time.Since(t0)))
				cr.conns[i] = c
				cr.connected.Add(1)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cr.connected.Load() == 0 {
		return nil, fmt.Errorf("bench: no connection succeeded: %w", cr.firstErr.err)
	}
	return &total, nil
}

func (cr *connsRun) connectOne(ctx context.Context, rd *packetReader, i int) (*wconn, error) {
	c, err := cr.dial.dial(ctx, i)
	if err != nil {
		return nil, err
	}
	rd.reset(c)
	if _, err := handshake(c, rd, &cr.opts, clientID(cr.id, "c", i)); err != nil {
		c.Close()
		return nil, err
	}
	if err := subscribe(c, rd, &cr.opts, cr.topic(i), cr.cfg.QoS); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
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
