package bench

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mqttd/mqttd/codec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shortConfig is a run of about a second at a modest rate: enough traffic
// to check every message without loading the machine.
func shortConfig(addr, scenario string, qos codec.QoS) Config {
	return Config{
		Scenario:   scenario,
		Addr:       addr,
		QoS:        qos,
		Warmup:     200 * time.Millisecond,
		Duration:   700 * time.Millisecond,
		Drain:      3 * time.Second,
		Rate:       3000,
		Publishers: 4, Subscribers: 5, Pairs: 3, Conns: 50,
		PID:   os.Getpid(), // the fake broker runs in this process
		Label: "fake",
	}
}

func TestRunScenariosClean(t *testing.T) {
	tests := []struct {
		scenario  string
		qos       codec.QoS
		version   codec.Version
		pubs, sub int
	}{
		{"fanin", codec.QoS0, codec.V311, 4, 1},
		{"fanin", codec.QoS1, codec.V5, 4, 1},
		{"fanin", codec.QoS2, codec.V311, 4, 1},
		{"fanout", codec.QoS1, codec.V311, 1, 5},
		{"fanout", codec.QoS0, codec.V5, 1, 5},
		{"pairs", codec.QoS2, codec.V5, 3, 3},
		{"pairs", codec.QoS1, codec.V311, 3, 3},
	}
	for _, tt := range tests {
		t.Run(tt.scenario+"/qos"+string('0'+byte(tt.qos))+"/v"+string('0'+byte(tt.version)), func(t *testing.T) {
			b := newFakeBroker(t)
			cfg := shortConfig(b.addr(), tt.scenario, tt.qos)
			cfg.Version = tt.version
			res, err := Run(t.Context(), cfg, nil)
			require.NoError(t, err)
			assert.True(t, res.Clean(), "%+v", res)
			assert.Equal(t, tt.pubs, res.Publishers)
			assert.Equal(t, tt.sub, res.Subscribers)
			assert.Positive(t, res.Sent)
			// About Rate*Duration messages, each reaching every subscriber
			// that listens to its publisher.
			assert.InDelta(t, 3000*0.7, float64(res.Sent), 3000*0.7*0.25)
			perMsg := uint64(1)
			if tt.scenario == "fanout" {
				perMsg = uint64(tt.sub)
			}
			assert.Equal(t, res.Sent*perMsg, res.Expected)
			assert.Equal(t, res.Expected, res.Received)
			assert.Equal(t, res.Received, res.LatencyCount)
			assert.Positive(t, res.DeliveredPerSec)
			assert.Positive(t, res.P99us)
			assert.GreaterOrEqual(t, res.MaxUs, res.P99us)
			assert.Less(t, res.DrainS, 2.0, "a clean run does not wait out the drain")
			assert.Equal(t, os.Getpid(), res.BrokerPID)
			assert.Positive(t, res.BrokerRSS)
			assert.Equal(t, "fake", res.Label)
		})
	}
}

func TestRunCountsFaults(t *testing.T) {
	tests := []struct {
		name  string
		qos   codec.QoS
		fault func(*fakeBroker)
		check func(t *testing.T, b *fakeBroker, r *Result)
	}{
		{"drops", codec.QoS1, func(b *fakeBroker) { b.dropEvery = 50 }, func(t *testing.T, b *fakeBroker, r *Result) {
			assert.Equal(t, uint64(b.dropped.Load()), r.Lost)
			assert.Positive(t, r.Lost)
			assert.Equal(t, r.Expected, r.Received+r.Lost)
			assert.Zero(t, r.Duplicated)
			assert.Zero(t, r.Reordered)
			assert.Equal(t, 3.0, r.DrainS, "losses make the drain wait its full time")
		}},
		{"duplicates", codec.QoS2, func(b *fakeBroker) { b.dupEvery = 40 }, func(t *testing.T, b *fakeBroker, r *Result) {
			assert.Equal(t, uint64(b.duplicated.Load()), r.Duplicated)
			assert.Positive(t, r.Duplicated)
			assert.Zero(t, r.Lost)
			assert.Zero(t, r.Reordered)
		}},
		{"reorders", codec.QoS0, func(b *fakeBroker) { b.swapEvery = 30 }, func(t *testing.T, b *fakeBroker, r *Result) {
			assert.Equal(t, uint64(b.swapped.Load()), r.Reordered)
			assert.Positive(t, r.Reordered)
			assert.Zero(t, r.Lost)
			assert.Zero(t, r.Duplicated)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newFakeBroker(t)
			tt.fault(b)
			cfg := shortConfig(b.addr(), "fanin", tt.qos)
			cfg.Warmup = 0 // every delivery is in the window: counts match the broker's exactly
			// One publisher: a swap between two publishers' messages is
			// not a reorder, so with several the counts would not match.
			cfg.Publishers = 1
			res, err := Run(t.Context(), cfg, nil)
			require.NoError(t, err)
			assert.False(t, res.Clean())
			if tt.name == "drops" {
				res.DrainS = float64(int(res.DrainS)) // whole seconds for the comparison
			}
			tt.check(t, b, res)
		})
	}
}

func TestRunProgress(t *testing.T) {
	b := newFakeBroker(t)
	cfg := shortConfig(b.addr(), "pairs", codec.QoS1)
	cfg.Warmup, cfg.Duration = time.Second, 1100*time.Millisecond
	var progress strings.Builder
	res, err := Run(t.Context(), cfg, &progress)
	require.NoError(t, err)
	assert.True(t, res.Clean())
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	require.GreaterOrEqual(t, len(lines), 2, "a line a second: %q", progress.String())
	assert.Contains(t, lines[0], "mqttbench pairs")
	assert.Contains(t, lines[0], "warmup")
	assert.Contains(t, lines[1], "measure")
	assert.Contains(t, lines[1], "recv")
}

func TestRunConns(t *testing.T) {
	for _, noPipeline := range []bool{false, true} {
		t.Run(map[bool]string{false: "pipelined", true: "lockstep"}[noPipeline], func(t *testing.T) {
			b := newFakeBroker(t)
			cfg := shortConfig(b.addr(), "conns", codec.QoS1)
			cfg.Duration = 600 * time.Millisecond
			cfg.Spread = 3
			cfg.KeepAlive = time.Second // exercises the pinger on idle sockets
			cfg.NoPipeline = noPipeline
			cfg.ConnInflight = 7
			var progress strings.Builder
			res, err := Run(t.Context(), cfg, &progress)
			require.NoError(t, err)
			assert.True(t, res.Clean(), "%+v", res)
			assert.Equal(t, 50, res.Conns)
			assert.Equal(t, 50, res.Connected)
			assert.Equal(t, 50, res.Verified)
			assert.Positive(t, res.ConnectPerSec)
			assert.Positive(t, res.ConnectP99us)
			assert.Positive(t, res.RSSBefore)
			assert.Positive(t, res.RSSAfter)
			assert.NotZero(t, res.RSSPerConn)
			assert.Equal(t, int64(50), b.subscribes.Load())
		})
	}
}

func TestRunConnsDetectsLostSubscriptions(t *testing.T) {
	b := newFakeBroker(t, func(b *fakeBroker) { b.forgetEvery = 10 })
	cfg := shortConfig(b.addr(), "conns", codec.QoS0)
	cfg.Duration = 100 * time.Millisecond
	cfg.Drain = 300 * time.Millisecond
	res, err := Run(t.Context(), cfg, nil)
	require.NoError(t, err)
	assert.Equal(t, 50, res.Connected)
	assert.Equal(t, 45, res.Verified)
	assert.Equal(t, uint64(5), res.Lost)
	assert.False(t, res.Clean())
}

func TestRunRefusedConnect(t *testing.T) {
	b := newFakeBroker(t, func(b *fakeBroker) { b.refuse = codec.ConnRefusedNotAuthorized })
	for _, scenario := range []string{"fanin", "conns"} {
		_, err := Run(t.Context(), shortConfig(b.addr(), scenario, codec.QoS0), nil)
		assert.ErrorIs(t, err, ErrRefused, scenario)
	}
}

func TestRunNoBroker(t *testing.T) {
	b := newFakeBroker(t)
	addr := b.addr()
	b.close()
	cfg := shortConfig(addr, "pairs", codec.QoS0)
	cfg.PID = 0
	_, err := Run(t.Context(), cfg, nil)
	assert.Error(t, err)
}

func TestRunCancelled(t *testing.T) {
	b := newFakeBroker(t)
	cfg := shortConfig(b.addr(), "fanin", codec.QoS1)
	cfg.Duration = time.Minute
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Run(ctx, cfg, nil)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second)
}

func TestRunInvalidConfig(t *testing.T) {
	_, err := Run(t.Context(), Config{Scenario: "nope"}, nil)
	assert.ErrorIs(t, err, ErrConfig)
}

func TestRunQoS0Window(t *testing.T) {
	old := window0Stall
	window0Stall = 100 * time.Millisecond
	t.Cleanup(func() { window0Stall = old })
	tests := []struct {
		name      string
		dropEvery int64
		check     func(t *testing.T, b *fakeBroker, r *Result)
	}{
		{"clean", 0, func(t *testing.T, b *fakeBroker, r *Result) {
			assert.True(t, r.Clean(), "%+v", r)
			assert.Positive(t, r.Sent)
			assert.Equal(t, r.Expected, r.Received)
		}},
		{"losses do not stall the window", 7, func(t *testing.T, b *fakeBroker, r *Result) {
			assert.Equal(t, uint64(b.dropped.Load()), r.Lost)
			assert.Positive(t, r.Lost)
			assert.Zero(t, r.WindowStalls)
		}},
		{"a dead window is written off", 1, func(t *testing.T, b *fakeBroker, r *Result) {
			assert.Zero(t, r.Received)
			assert.Equal(t, r.Expected, r.Lost)
			assert.Positive(t, r.WindowStalls)
			// At most a window per stall period (100 ms here) in a 700 ms
			// window, and one more.
			assert.LessOrEqual(t, r.Sent, uint64(8*50))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newFakeBroker(t)
			b.dropEvery = tt.dropEvery
			cfg := shortConfig(b.addr(), "fanout", codec.QoS0)
			cfg.Warmup, cfg.Rate, cfg.QoS0Window = 0, 0, 50
			if tt.dropEvery != 1 {
				cfg.Rate = 20000 // keep the fake broker's load modest
			}
			res, err := Run(t.Context(), cfg, nil)
			require.NoError(t, err)
			tt.check(t, b, res)
		})
	}
}

func TestRunCutsBlockedPublisher(t *testing.T) {
	b := newFakeBroker(t)
	b.stallAfter = 500
	cfg := shortConfig(b.addr(), "fanin", codec.QoS0)
	cfg.Publishers, cfg.Rate, cfg.Drain, cfg.Warmup = 1, 0, 500*time.Millisecond, 0
	start := time.Now()
	res, err := Run(t.Context(), cfg, nil)
	require.NoError(t, err)
	elapsed := time.Since(start)
	assert.Less(t, elapsed, cfg.Warmup+cfg.Duration+cutAfter+cfg.Drain+2*time.Second, "the run stays bounded")
	assert.Zero(t, res.ConnErrors, "a broker that stops reading is no connection error")
	assert.Equal(t, res.Expected, res.Received+res.Lost)
	assert.Equal(t, uint64(b.stallAfter-1), res.Received, "the broker routed the messages before it stalled")
	assert.Positive(t, res.Lost, "what the broker never read is lost")
	joined := strings.Join(res.Errors, "\n")
	assert.Contains(t, joined, "still not reading")
}
