package gctune

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPercentFor(t *testing.T) {
	cfg := Config{Min: 64 << 20, Percent: 100}
	for _, tc := range []struct {
		base uint64
		want int
	}{
		{0, 1600},       // before the first collection: heap minimum 4 MiB*16 = 64 MiB
		{1 << 10, 1600}, // tiny heap: bounded by the scaled heap minimum
		{8 << 20, 800},  // 64 MiB on 8 MiB
		{10 << 20, 640}, // 640 exactly
		{11 << 20, 580}, // 581.8 rounded down to a multiple of 10
		{64 << 20, 100}, // the proportional rule takes over
		{1 << 30, 100},  // large heap: GOGC's own rule
		{uint64(64<<20) * 100 / 150, 150},
	} {
		got := percentFor(tc.base, cfg)
		assert.Equal(t, tc.want, got, "base %d", tc.base)
		// What the runtime then allows: never far beyond base+Min.
		goal := max(tc.base+tc.base*uint64(got)/100, heapMinimum*uint64(got)/100)
		assert.LessOrEqual(t, goal, max(tc.base+cfg.Min, tc.base*2)+heapMinimum, "base %d", tc.base)
	}
	assert.Equal(t, 200, percentFor(1<<30, Config{Min: 64 << 20, Percent: 200}))
}

// TestTunerFollowsCollections: the tuner sets a headroom-sized GOGC,
// re-tunes after each collection, and Stop restores the base percent.
func TestTunerFollowsCollections(t *testing.T) {
	t.Setenv("GOGC", "") // Start must not see an operator's GOGC
	defer debug.SetGCPercent(debug.SetGCPercent(100))

	tu := Start(Config{Min: 256 << 20, Percent: 100})
	require.NotNil(t, tu)
	// A small test heap with 256 MiB of headroom: far above 100.
	assert.Greater(t, tu.Percent(), 100)
	assert.Equal(t, tu.Percent(), debug.SetGCPercent(tu.Percent()), "GOGC is what the tuner set")

	// Grow the live heap past the headroom: the proportional rule wins.
	big := make([][]byte, 0, 400)
	for range 400 {
		big = append(big, make([]byte, 1<<20))
	}
	before := tu.Cycles()
	deadline := time.Now().Add(10 * time.Second)
	for tu.Cycles() < before+2 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // the finalizer goroutine runs
	}
	require.GreaterOrEqual(t, tu.Cycles(), before+2, "the tuner ran after collections")
	assert.Equal(t, 100, tu.Percent(), "live heap of %d MiB", len(big))
	runtime.KeepAlive(big)

	tu.Stop()
	assert.Equal(t, 100, debug.SetGCPercent(100))
	n := tu.Cycles()
	runtime.GC()
	time.Sleep(20 * time.Millisecond)
	runtime.GC()
	assert.LessOrEqual(t, tu.Cycles(), n+1, "stopped: at most the finalizer already queued runs")
}

func TestStartOff(t *testing.T) {
	assert.Nil(t, Start(Config{Min: 0}))
	t.Setenv("GOGC", "150")
	assert.Nil(t, Start(Config{Min: 64 << 20}), "an operator's GOGC wins")
	var tu *Tuner
	tu.Stop() // nil-safe
}
