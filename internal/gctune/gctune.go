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
	t := &Tuner{cfg: cfg, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
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
// live*Percent/100) bytes of growth.
func (t *Tuner) tune() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped.Load() {
		return
	}
	metrics.Read(t.sample)
	var live uint64
	if v := t.sample[0].Value; v.Kind() == metrics.KindUint64 {
		live = v.Uint64()
	}
	p := percentFor(live, t.cfg)
	if p != t.last {
		debug.SetGCPercent(p)
		t.last = p
	}
}

// maxPercent bounds GOGC on a nearly empty heap.
const maxPercent = 10000

// percentFor is the GOGC that lets a heap of live bytes grow by at least
// cfg.Min, rounded to a multiple of 10 so that small changes of the live
// heap do not reset it every cycle.
func percentFor(live uint64, cfg Config) int {
	if live == 0 {
		return maxPercent
	}
	need := cfg.Min * 100 / live
	if need <= uint64(cfg.Percent) {
		return cfg.Percent
	}
	if need >= maxPercent {
		return maxPercent
	}
	return int((need + 9) / 10 * 10)
}
