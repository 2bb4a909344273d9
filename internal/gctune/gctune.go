// Package gctune keeps the Go collector from running on a small heap.
//
// With GOGC=100 the heap may grow by as much as is live before the next
// collection. A broker's live heap is small while it carries messages to
// few clients (a few MiB), so at 100k messages/s it would collect many
// times a second, and every collection takes the only core of a pinned
// broker away from its event loop: throughput drops and the latency tail
// grows. Tuning sets GOGC after every collection so that the next one
// comes after at least Min bytes of growth, and never less than Percent
// of the live heap (GOGC's own rule): a small heap gets a fixed headroom,
// a large heap the usual proportional one. The cost is at most Min bytes
// of memory beyond what GOGC would allow.
//
// Start does nothing when GOGC is set in the environment: an operator's
// explicit choice wins. GOMEMLIMIT keeps working either way.
package gctune

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// Config sets the headroom.
type Config struct {
	Min     uint64 // bytes of heap growth allowed at least between collections
	Percent int    // GOGC to use once the live heap is large; 0: 100
}

// Tuner adjusts GOGC after every collection until stopped.
type Tuner struct {
	cfg     Config
	stopped atomic.Bool
	mu      sync.Mutex // guards last and the sample
	last    int        // GOGC last set
	sample  []metrics.Sample
	cycles  atomic.Uint64
}

// Start begins tuning and returns the tuner, or nil when it does not run
// (GOGC in the environment, or Min 0).
func Start(cfg Config) *Tuner {
	if cfg.Min == 0 || os.Getenv("GOGC") != "" {
		return nil
	}
	if cfg.Percent <= 0 {
		cfg.Percent = 100
	}
	t := &Tuner{cfg: cfg, sample: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
	}}
	t.tune()
	t.arm()
	return t
}

// Stop ends the tuning and restores GOGC to Percent.
func (t *Tuner) Stop() {
	if t == nil || t.stopped.Swap(true) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	debug.SetGCPercent(t.cfg.Percent)
	t.last = t.cfg.Percent
}

// Percent is the GOGC last set.
func (t *Tuner) Percent() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// Cycles is how many collections the tuner has seen.
func (t *Tuner) Cycles() uint64 { return t.cycles.Load() }

// sentinel is garbage whose finalizer runs once per collection cycle: it
// tunes and arms a new one.
type sentinel struct{ t *Tuner }

func (t *Tuner) arm() {
	runtime.SetFinalizer(&sentinel{t: t}, func(s *sentinel) {
		if s.t.stopped.Load() {
			return
		}
		s.t.cycles.Add(1)
		s.t.tune()
		s.t.arm()
	})
}

// tune sets GOGC so that the next collection comes after max(Min,
// base*Percent/100) bytes of growth. The runtime applies GOGC to the live
// heap plus the stacks and globals it scans, so base counts all three: a
// high GOGC on a small heap with large roots would otherwise allow far
// more than Min.
func (t *Tuner) tune() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped.Load() {
		return
	}
	metrics.Read(t.sample)
	var base uint64
	for _, s := range t.sample {
		if s.Value.Kind() == metrics.KindUint64 {
			base += s.Value.Uint64()
		}
	}
	p := percentFor(base, t.cfg)
	if p != t.last {
		debug.SetGCPercent(p)
		t.last = p
	}
}

// heapMinimum is the runtime's smallest heap goal at GOGC=100; it scales
// with GOGC, so a GOGC of p never collects below heapMinimum*p/100.
const heapMinimum = 4 << 20

// percentFor is the GOGC that lets the heap grow by about cfg.Min when
// GOGC applies to base bytes (live heap, stacks, globals; 0 before the
// first collection), and by no less than cfg.Percent of base. It is
// bounded so that the runtime's minimum heap goal (which GOGC scales) stays
// within base+Min, and rounded to a multiple of 10 so that small changes
// do not reset it every cycle.
func percentFor(base uint64, cfg Config) int {
	limit := (base + cfg.Min) * 100 / heapMinimum
	need := limit
	if base > 0 {
		need = min(cfg.Min*100/base, limit)
	}
	if need <= uint64(cfg.Percent) {
		return cfg.Percent
	}
	return int(need / 10 * 10)
}
