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

// topology is who publishes where and who must receive what.
type topology struct {
	pubTopics []string  // one per publisher
	subs      []subSpec // one per subscriber
	// kafka, when set, hears every publisher from the records of a Kafka
	// topic (the kafka scenario); it counts as one more subscriber.
	kafka *kafkaReceiver
}

// subSpec is one subscriber: its filter and the publishers it must hear,
// a contiguous range [pubLo, pubHi) in every scenario so far.
type subSpec struct {
	filter       string
	pubLo, pubHi uint32
}

func faninTopology(r *runner, pubs int) topology {
	t := topology{pubTopics: make([]string, pubs)}
	for i := range pubs {
		t.pubTopics[i] = r.topic(i)
	}
	t.subs = []subSpec{{filter: r.cfg.TopicPrefix + "/" + r.id + "/+", pubLo: 0, pubHi: uint32(pubs)}}
	return t
}

func fanoutTopology(r *runner, subs int) topology {
	t := topology{pubTopics: []string{r.topic(0)}, subs: make([]subSpec, subs)}
	for i := range t.subs {
		t.subs[i] = subSpec{filter: r.topic(0), pubLo: 0, pubHi: 1}
	}
	return t
}

func pairsTopology(r *runner, pairs int) topology {
	t := topology{pubTopics: make([]string, pairs), subs: make([]subSpec, pairs)}
	for i := range pairs {
		t.pubTopics[i] = r.topic(i)
		t.subs[i] = subSpec{filter: r.topic(i), pubLo: uint32(i), pubHi: uint32(i + 1)}
	}
	return t
}

// pubsubRun is one run of a pub/sub topology.
type pubsubRun struct {
	*runner
	topo topology
	pubs []*publisher
	subs []*subscriber

	// Times in Unix ns from runner.clk, fixed before publishing starts.
	pubStart, tStart, tEnd int64

	closing   atomic.Bool  // connections are being closed on purpose
	setupDone atomic.Int64 // connections set up, for the progress line
	// started is set once setup is over and the times above are fixed: the
	// progress printer reads pubs, subs and the times only after it.
	started atomic.Bool
}

// Buffer sizes. A subscriber's read buffer shares a budget so that 1,000
// fan-out subscribers do not cost the tool 64 MiB.
const (
	subReadBudget = 32 << 20
	minReadBuf    = 8 << 10
	maxReadBuf    = 256 << 10
	pubReadBuf    = 4 << 10
	flushAt       = 32 << 10 // a publisher writes once its batch reaches this
	// cutAfter is how long past the window a publisher's blocked write may
	// go on before it is abandoned.
	cutAfter = time.Second
)

func runPubSub(ctx context.Context, r *runner, topo topology) (*Result, error) {
	ps := &pubsubRun{runner: r, topo: topo}
	ps.pubs = make([]*publisher, len(topo.pubTopics))
	ps.subs = make([]*subscriber, len(topo.subs))
	defer ps.closeAll()

	stopProgress := ps.startProgress()
	defer stopProgress()

	readBuf := min(max(subReadBudget/max(len(topo.subs), 1), minReadBuf), maxReadBuf)
	err := forEach(ctx, len(topo.subs), r.cfg.Workers, func(ctx context.Context, i int) error {
		s, err := ps.newSubscriber(ctx, i, readBuf)
		if err != nil {
			return err
		}
		ps.subs[i] = s
		ps.setupDone.Add(1)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = forEach(ctx, len(topo.pubTopics), r.cfg.Workers, func(ctx context.Context, i int) error {
		p, err := ps.newPublisher(ctx, i)
		if err != nil {
			return err
		}
		ps.pubs[i] = p
		ps.setupDone.Add(1)
		return nil
	})
	if err != nil {
		return nil, err
	}

	// Each publisher watches the progress of its subscribers (QoS 0
	// window).
	for _, s := range ps.subs {
		for j := range s.seen {
			p := ps.pubs[s.pubLo+uint32(j)]
			p.watch = append(p.watch, &s.seen[j])
		}
	}
	if kr := topo.kafka; kr != nil && kr.seen != nil {
		for i, p := range ps.pubs {
			p.watch = append(p.watch, &kr.seen[i])
		}
	}

	// The times are fixed before any reader or publisher starts: the
	// goroutines read them without synchronisation.
	cfg := &r.cfg
	now := r.clk.now()
	ps.pubStart = now
	ps.tStart = now + int64(cfg.Warmup)
	ps.tEnd = ps.tStart + int64(cfg.Duration)
	ps.started.Store(true)
	for _, s := range ps.subs {
		go s.read()
	}
	if topo.kafka != nil {
		topo.kafka.start(ps)
	}
	for _, p := range ps.pubs {
		go p.read()
	}
	stopPing := make(chan struct{})
	var pingWG sync.WaitGroup
	pingWG.Go(func() { r.pinger(stopPing, ps.conns) })
	defer func() { close(stopPing); pingWG.Wait() }()
	// No write may block long past the window: a publisher whose broker
	// stopped reading is cut off cutAfter the window, so the drain starts
	// on time; acknowledgements may be written until the drain ends. That
	// includes a publisher's PUBRELs: once its writer is done, its
	// deadline moves to the end of the drain (a broker that releases QoS 2
	// messages to subscribers on PUBREL, as mosquitto does, would
	// otherwise keep the last ones when it runs more than cutAfter behind).
	start := time.Now()
	drainEnd := start.Add(cfg.Warmup + cfg.Duration + cutAfter + cfg.Drain)
	for _, p := range ps.pubs {
		_ = p.c.SetWriteDeadline(start.Add(cfg.Warmup + cfg.Duration + cutAfter))
	}
	for _, s := range ps.subs {
		_ = s.c.SetWriteDeadline(drainEnd)
	}
	pubCtx, cancelPubs := context.WithCancel(ctx)
	defer cancelPubs()
	var pubWG sync.WaitGroup
	for _, p := range ps.pubs {
		pubWG.Go(func() {
			p.write(pubCtx)
			if p.werr == nil { // a cut write leaves the connection broken
				_ = p.c.SetWriteDeadline(drainEnd)
			}
		})
	}

	var u0, u1 procUsage
	var cpu0, cpu1 time.Duration
	if !sleepCtx(ctx, time.Duration(ps.tStart-r.clk.now())) {
		cancelPubs()
		pubWG.Wait()
		return nil, ctx.Err()
	}
	u0, errU0 := ps.usage()
	cpu0 = selfCPU()
	steal0, errS0 := hostSteal()
	if !sleepCtx(ctx, time.Duration(ps.tEnd-r.clk.now())) {
		cancelPubs()
		pubWG.Wait()
		return nil, ctx.Err()
	}
	u1, errU1 := ps.usage()
	cpu1 = selfCPU()
	steal1, errS1 := hostSteal()
	pubWG.Wait()

	drainStart := time.Now()
	expected := ps.expected()
	ps.drain(ctx, expected)
	drained := time.Since(drainStart)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	ps.closeAll()
	res := ps.collect(expected)
	res.DrainS = drained.Seconds()
	res.ToolCPU = (cpu1 - cpu0).Seconds() / cfg.Duration.Seconds()
	if errS0 == nil && errS1 == nil {
		res.HostSteal = (steal1 - steal0).Seconds() / cfg.Duration.Seconds()
	}
	if errU0 == nil && errU1 == nil && ps.pid > 0 {
		res.BrokerPID = ps.pid
		res.BrokerRSS = u1.RSS
		res.BrokerCPU = (u1.CPU - u0.CPU).Seconds() / cfg.Duration.Seconds()
	}
	return res, nil
}

func (ps *pubsubRun) usage() (procUsage, error) {
	if ps.pid == 0 {
		return procUsage{}, ErrNoBroker
	}
	u, err := readProcUsage(ps.pid)
	if err != nil {
		ps.errs.add(err)
	}
	return u, err
}

// conns returns every connection set up so far (nil entries skipped by the
// callers).
func (ps *pubsubRun) conns() []*wconn {
	out := make([]*wconn, 0, len(ps.pubs)+len(ps.subs))
	for _, s := range ps.subs {
		if s != nil {
			out = append(out, s.c)
		}
	}
	for _, p := range ps.pubs {
		if p != nil {
			out = append(out, p.c)
		}
	}
	return out
}

// expected returns how many distinct deliveries the window's publishes
// must cause. Call it once every publisher has returned.
func (ps *pubsubRun) expected() uint64 {
	var n uint64
	for _, spec := range ps.topo.subs {
		for pi := spec.pubLo; pi < spec.pubHi; pi++ {
			n += ps.pubs[pi].win
		}
	}
	if ps.topo.kafka != nil {
		for _, p := range ps.pubs {
			n += p.win
		}
	}
	return n
}

// drain waits until every expected delivery arrived and every QoS 1/2
// exchange completed, or until the drain time is up.
func (ps *pubsubRun) drain(ctx context.Context, expected uint64) {
	deadline := time.Now().Add(ps.cfg.Drain)
	for {
		if ps.settled(expected) || time.Now().After(deadline) {
			return
		}
		if !sleepCtx(ctx, 10*time.Millisecond) {
			return
		}
	}
}

func (ps *pubsubRun) settled(expected uint64) bool {
	var got uint64
	if ps.topo.kafka != nil {
		got += ps.topo.kafka.uniqueWinA.Load()
	}
	for _, s := range ps.subs {
		got += s.uniqueWinA.Load()
		if s.pendingRel.Load() > 0 {
			return false
		}
	}
	if got < expected {
		return false
	}
	for _, p := range ps.pubs {
		if p.inflight() > 0 {
			return false
		}
	}
	return true
}

// closeAll disconnects every connection and waits for the readers. It may
// be called more than once.
func (ps *pubsubRun) closeAll() {
	if ps.closing.Swap(true) {
		return
	}
	disc := (&codec.Disconnect{}).Append(nil, ps.cfg.Version)
	cut := map[*wconn]bool{} // a DISCONNECT after half a packet would be garbage
	for _, p := range ps.pubs {
		if p != nil && p.cut() {
			cut[p.c] = true
		}
	}
	for _, c := range ps.conns() {
		if !cut[c] {
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_ = c.write(disc)
		}
		_ = c.Close()
	}
	if !ps.started.Load() {
		return // setup failed before any reader started
	}
	for _, s := range ps.subs {
		<-s.done
	}
	for _, p := range ps.pubs {
		<-p.rdone
	}
	if ps.topo.kafka != nil {
		ps.topo.kafka.stop()
	}
}

// collect sums the per-connection counters into a Result. The readers
// have returned.
func (ps *pubsubRun) collect(expected uint64) *Result {
	cfg := &ps.cfg
	res := &Result{
		Publishers:  len(ps.pubs),
		Subscribers: len(ps.subs),
		Rate:        cfg.Rate,
		Expected:    expected,
	}
	if cfg.QoS > codec.QoS0 {
		res.Inflight = cfg.Inflight
	} else {
		res.QoS0Window = cfg.QoS0Window
	}
	for _, p := range ps.pubs {
		res.Sent += p.win
		res.Refused += p.refused
		res.ProtocolErrors += p.protoErrs
		res.Unacked += uint64(p.inflight())
		res.Acked += p.ackedWin
		switch {
		case errors.Is(p.werr, os.ErrDeadlineExceeded):
			// Not a connection error: the broker stopped reading. What it
			// had read by then is counted; the rest of the write is not.
			ps.errs.add(fmt.Errorf("publisher %d: the broker was still not reading %s after the window; "+
				"its backlog is counted as lost", p.idx, cutAfter))
		case p.werr != nil:
			res.ConnErrors++
			ps.errs.add(fmt.Errorf("publisher %d: %w", p.idx, p.werr))
		case p.rerr != nil && !p.cut():
			res.ConnErrors++
			ps.errs.add(fmt.Errorf("publisher %d: %w", p.idx, p.rerr))
		}
		res.WindowStalls += p.stalls
	}
	var hist Histogram
	if ps.topo.kafka != nil {
		ps.topo.kafka.collect(ps, res, &hist)
	}
	for _, s := range ps.subs {
		res.Received += s.uniqueWin
		res.Duplicated += s.dups
		res.Reordered += s.late
		res.Unexpected += s.unexpected
		res.Malformed += s.malformed
		res.ProtocolErrors += s.protoErrs
		res.Unacked += uint64(max(s.pendingRel.Load(), 0))
		res.Delivered += s.deliveredWin
		if s.err != nil {
			res.ConnErrors++
			ps.errs.add(fmt.Errorf("subscriber %d: %w", s.idx, s.err))
		}
		hist.Merge(&s.hist)
		for j := range s.streams {
			p := ps.pubs[s.pubLo+uint32(j)]
			first, last := uint64(1), uint64(0) // empty window
			if p.hasWin {
				first, last = p.first, p.last
			}
			res.Lost += s.streams[j].Missing(first, last)
			res.Truncated = res.Truncated || s.streams[j].Truncated
		}
	}
	secs := cfg.Duration.Seconds()
	res.SentPerSec = float64(res.Sent) / secs
	res.DeliveredPerSec = float64(res.Delivered) / secs
	res.AckedPerSec = float64(res.Acked) / secs
	res.LatencyCount = hist.Count()
	res.P50us = durUs(hist.Quantile(0.50))
	res.P90us = durUs(hist.Quantile(0.90))
	res.P99us = durUs(hist.Quantile(0.99))
	res.P999us = durUs(hist.Quantile(0.999))
	res.MaxUs = durUs(hist.Max())
	return res
}

// startProgress prints a line a second until the returned function is
// called (which waits for the printer to stop).
func (ps *pubsubRun) startProgress() func() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		began := time.Now()
		var lastSent, lastDeliv uint64
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if !ps.started.Load() {
				fmt.Fprintf(ps.progress, "mqttbench %s %4.0fs setup    %d of %d connections ready\n", ps.cfg.Scenario,
					time.Since(began).Seconds(), ps.setupDone.Load(), len(ps.pubs)+len(ps.subs))
				continue
			}
			var sent, deliv uint64
			inflight := 0
			for _, p := range ps.pubs {
				sent += p.sent.Load()
				inflight += p.inflight()
			}
			for _, s := range ps.subs {
				deliv += s.delivered.Load()
			}
			if ps.topo.kafka != nil {
				deliv += ps.topo.kafka.delivered.Load()
			}
			now := ps.clk.now()
			phase := "warmup "
			switch {
			case now >= ps.tEnd:
				phase = "drain  "
			case now >= ps.tStart:
				phase = "measure"
			}
			fmt.Fprintf(ps.progress, "mqttbench %s %4.0fs %s  pub %8s/s  recv %8s/s  in-flight %d\n",
				ps.cfg.Scenario, time.Since(began).Seconds(), phase, si(float64(sent-lastSent)),
				si(float64(deliv-lastDeliv)), inflight)
			lastSent, lastDeliv = sent, deliv
		}
	})
	return func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
}

// forEach calls f for 0..n-1 from at most workers goroutines and returns
// the first error, after which no new call starts.
func forEach(parent context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return parent.Err()
}
