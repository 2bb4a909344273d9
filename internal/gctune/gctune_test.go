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
		live uint64
		want int
	}{
		{0, maxPercent},
		{1 << 10, maxPercent},             // 64 MiB on 1 KiB: capped
		{8 << 20, 800},                    // 64 MiB on 8 MiB
		{10 << 20, 640},                   // 640 exactly
		{11 << 20, 590},                   // 581.8 rounded up to a multiple of 10
		{64 << 20, 100},                   // the proportional rule takes over
		{1 << 30, 100},                    // large heap: GOGC's own rule
		{uint64(64<<20) * 100 / 150, 150}, // just above the base
	} {
		assert.Equal(t, tc.want, percentFor(tc.live, cfg), "live %d", tc.live)
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
