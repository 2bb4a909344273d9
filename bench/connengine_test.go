package bench

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mqttd/mqttd/codec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// engineRun is the outcome of one connEngine.run in a test.
type engineRun struct {
	opened map[int]int // connection index -> socket
	failed map[int]error
	hist   *Histogram
	err    error
}

// runEngine runs a connect engine with the given tweaks against addr and
// closes the sockets it opened when the test ends.
func runEngine(t *testing.T, ctx context.Context, addr string, n int, tweak func(*connEngine)) *engineRun {
	t.Helper()
	out := &engineRun{opened: map[int]int{}, failed: map[int]error{}}
	e := connEngine{
		addr:     addr,
		inflight: 8,
		pipeline: true,
		timeout:  2 * time.Second,
		opts:     &connOpts{version: codec.V311},
		qos:      codec.QoS1,
		clientID: func(i int) string { return clientID("eng", "c", i) },
		topic:    func(i int) string { return "bench/eng/" + strconv.Itoa(i) },
		onOpen:   func(i, fd int, _ int64) { out.opened[i] = fd },
		onFail:   func(i int, err error) bool { out.failed[i] = err; return true },
	}
	if tweak != nil {
		tweak(&e)
	}
	out.hist, out.err = e.run(ctx, n)
	t.Cleanup(func() {
		for _, fd := range out.opened {
			_ = unix.Close(fd)
		}
	})
	return out
}

func TestConnEngineOpens(t *testing.T) {
	for _, tt := range []struct {
		name     string
		pipeline bool
		version  codec.Version
	}{
		{"pipelined/3.1.1", true, codec.V311},
		{"pipelined/5", true, codec.V5},
		{"lockstep/3.1.1", false, codec.V311},
		{"lockstep/5", false, codec.V5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newFakeBroker(t)
			const n = 120
			r := runEngine(t, t.Context(), b.addr(), n, func(e *connEngine) {
				e.pipeline, e.opts.version, e.spread = tt.pipeline, tt.version, 3
			})
			require.NoError(t, r.err)
			assert.Empty(t, r.failed)
			require.Len(t, r.opened, n)
			assert.Equal(t, uint64(n), r.hist.Count())
			assert.Positive(t, r.hist.Quantile(0.99))
			assert.Equal(t, int64(n), b.subscribes.Load())
			for i, fd := range r.opened {
				// The -spread source addresses: 127.0.0.1 to 127.0.0.3.
				sa, err := unix.Getsockname(fd)
				require.NoError(t, err)
				assert.Equal(t, [4]byte{127, 0, 0, byte(1 + i%3)}, sa.(*unix.SockaddrInet4).Addr, "connection %d", i)
			}
		})
	}
}

// TestConnEngineWire checks what a broker sees, byte by byte: pipelined,
// CONNECT and SUBSCRIBE arrive before any answer; in lockstep, nothing
// follows CONNECT until the CONNACK. The answers go out a byte at a time,
// so the engine has to frame packets split across reads.
func TestConnEngineWire(t *testing.T) {
	for _, pipeline := range []bool{true, false} {
		t.Run(map[bool]string{true: "pipelined", false: "lockstep"}[pipeline], func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer ln.Close()
			const n = 3
			var wg sync.WaitGroup
			defer wg.Wait()
			wg.Go(func() {
				for range n {
					nc, err := ln.Accept()
					if err != nil {
						return
					}
					wg.Go(func() { scriptedBroker(t, nc, pipeline) })
				}
			})
			r := runEngine(t, t.Context(), ln.Addr().String(), n, func(e *connEngine) { e.pipeline = pipeline })
			require.NoError(t, r.err)
			assert.Empty(t, r.failed)
			assert.Len(t, r.opened, n)
		})
	}
}

// scriptedBroker answers one connection of TestConnEngineWire.
func scriptedBroker(t *testing.T, nc net.Conn, pipelined bool) {
	defer nc.Close()
	rd := newPacketReader(nc, 64, newClock())
	expect := func(want codec.Type) bool {
		_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		h, _, err := rd.next()
		if !assert.NoError(t, err) || !assert.Equal(t, want, h.Type) {
			return false
		}
		return true
	}
	trickle := func(b []byte) {
		for i := range b {
			if _, err := nc.Write(b[i : i+1]); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	connack := (&codec.Connack{}).Append(nil, codec.V311)
	suback := (&codec.Suback{PacketID: 1, Reasons: []codec.ReasonCode{1}}).Append(nil, codec.V311)
	if !expect(codec.CONNECT) {
		return
	}
	if pipelined {
		if !expect(codec.SUBSCRIBE) {
			return
		}
		trickle(append(connack, suback...))
		return
	}
	// Lockstep: the SUBSCRIBE must wait for the CONNACK.
	_ = nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, _, err := rd.next()
	if !assert.ErrorIs(t, err, os.ErrDeadlineExceeded, "a packet came before the CONNACK") {
		return
	}
	trickle(connack)
	if expect(codec.SUBSCRIBE) {
		trickle(suback)
	}
}

func TestConnEngineRefused(t *testing.T) {
	for _, pipeline := range []bool{true, false} {
		b := newFakeBroker(t, func(b *fakeBroker) { b.refuse = codec.ConnRefusedNotAuthorized })
		r := runEngine(t, t.Context(), b.addr(), 20, func(e *connEngine) { e.pipeline = pipeline })
		require.NoError(t, r.err)
		assert.Empty(t, r.opened)
		require.Len(t, r.failed, 20)
		for _, err := range r.failed {
			assert.ErrorIs(t, err, ErrRefused)
			assert.ErrorContains(t, err, "not authorized")
		}
	}
}

func TestConnEngineSubackFailure(t *testing.T) {
	for _, tt := range []struct {
		pipeline bool
		version  codec.Version
		code     codec.ReasonCode
	}{
		{true, codec.V311, codec.UnspecifiedError}, // 3.1.1 has one failure code, 0x80
		{false, codec.V311, codec.UnspecifiedError},
		{true, codec.V5, codec.NotAuthorized},
		{false, codec.V5, codec.NotAuthorized},
	} {
		b := newFakeBroker(t, func(b *fakeBroker) { b.subackFail = tt.code })
		r := runEngine(t, t.Context(), b.addr(), 20, func(e *connEngine) {
			e.pipeline, e.opts.version = tt.pipeline, tt.version
		})
		require.NoError(t, r.err)
		assert.Empty(t, r.opened)
		require.Len(t, r.failed, 20)
		for _, err := range r.failed {
			assert.ErrorIs(t, err, ErrRefused)
			assert.ErrorContains(t, err, "SUBSCRIBE")
		}
	}
}

func TestConnEngineConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	r := runEngine(t, t.Context(), addr, 10, func(e *connEngine) { e.spread = 2 })
	require.NoError(t, r.err)
	assert.Empty(t, r.opened)
	require.Len(t, r.failed, 10)
	for _, err := range r.failed {
		assert.ErrorIs(t, err, syscall.ECONNREFUSED)
	}
}

// silentBroker accepts connections and reads them without ever answering.
// It returns its address and the time of each accept, in order.
func silentBroker(t *testing.T) (string, func() []time.Time) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var accepted []time.Time
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, time.Now())
			mu.Unlock()
			wg.Go(func() {
				defer nc.Close()
				_, _ = io.Copy(io.Discard, nc) // until the client closes
			})
		}
	})
	return ln.Addr().String(), func() []time.Time {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(accepted)
	}
}

func TestConnEngineTimeout(t *testing.T) {
	addr, accepts := silentBroker(t)
	const timeout = 300 * time.Millisecond
	start := time.Now()
	r := runEngine(t, t.Context(), addr, 12, func(e *connEngine) { e.inflight, e.timeout = 4, timeout })
	elapsed := time.Since(start)
	require.NoError(t, r.err)
	assert.Empty(t, r.opened)
	require.Len(t, r.failed, 12)
	for _, err := range r.failed {
		assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
		assert.ErrorContains(t, err, "no CONNACK")
	}
	// Three waves of four: each connection waits out the timeout once.
	assert.GreaterOrEqual(t, elapsed, 3*timeout)
	assert.Less(t, elapsed, 3*timeout+2*time.Second)
	// At most four in flight: the fifth connection comes only once the
	// first has timed out.
	var at []time.Time
	require.Eventually(t, func() bool { at = accepts(); return len(at) == 12 }, 2*time.Second, 10*time.Millisecond)
	assert.GreaterOrEqual(t, at[4].Sub(at[0]), timeout-50*time.Millisecond)
	assert.Less(t, at[3].Sub(at[0]), timeout/2, "the first four start together")
}

func TestConnEngineStopsOnRequest(t *testing.T) {
	b := newFakeBroker(t, func(b *fakeBroker) { b.refuse = codec.ConnRefusedServerUnavailable })
	calls := 0
	r := runEngine(t, t.Context(), b.addr(), 1000, func(e *connEngine) {
		e.inflight = 5
		e.onFail = func(int, error) bool { calls++; return calls < 3 }
	})
	require.NoError(t, r.err)
	// Three failures stop new connections; the ones in flight finish.
	assert.GreaterOrEqual(t, calls, 3)
	assert.LessOrEqual(t, calls, 3+5)
}

func TestConnEngineCancel(t *testing.T) {
	addr, accepts := silentBroker(t)
	ctx, cancel := context.WithCancel(t.Context())
	var r *engineRun
	done := make(chan struct{})
	go func() {
		defer close(done)
		r = runEngine(t, ctx, addr, 50, func(e *connEngine) { e.inflight, e.timeout = 10, time.Minute })
	}()
	require.Eventually(t, func() bool { return len(accepts()) == 10 }, 5*time.Second, 10*time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	assert.ErrorIs(t, r.err, context.Canceled)
	assert.Empty(t, r.opened)
	assert.Empty(t, r.failed, "cancelled connections are not failures")
}

func TestConnEngineJunkAfterSuback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		rd := newPacketReader(nc, 256, newClock())
		for range 2 { // CONNECT, SUBSCRIBE
			if _, _, err := rd.next(); err != nil {
				return
			}
		}
		out := (&codec.Connack{}).Append(nil, codec.V311)
		out = (&codec.Suback{PacketID: 1, Reasons: []codec.ReasonCode{1}}).Append(out, codec.V311)
		out = codec.AppendPingresp(out) // unasked for, right behind the SUBACK
		_, _ = nc.Write(out)
		_, _ = io.Copy(io.Discard, nc)
	})
	r := runEngine(t, t.Context(), ln.Addr().String(), 1, nil)
	require.NoError(t, r.err)
	require.Len(t, r.failed, 1)
	assert.ErrorContains(t, r.failed[0], "PINGRESP right after SUBACK")
	assert.False(t, errors.Is(r.failed[0], ErrRefused))
}

func TestRunConnsSilentBroker(t *testing.T) {
	addr, _ := silentBroker(t)
	cfg := shortConfig(addr, "conns", codec.QoS0)
	cfg.Conns, cfg.ConnectTimeout = 20, 200*time.Millisecond
	start := time.Now()
	_, err := Run(t.Context(), cfg, nil)
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	assert.Less(t, time.Since(start), 2*time.Second, "one timeout for all: they are in flight together")
}
