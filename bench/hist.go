package bench

import (
	"math"
	"math/bits"
	"time"
)

// Histogram layout: values below 2^subBits nanoseconds have a bucket each;
// above, every power of two is split into 2^subBits buckets, so a bucket is
// at most 1/128 (0.8%) of its value wide. Values at or above 2^maxExp ns
// (about 69 s, longer than any bounded run) land in the last bucket; Max
// stays exact.
const (
	subBits    = 7
	subCount   = 1 << subBits
	maxExp     = 36
	histBucket = (maxExp - subBits + 1) * subCount
)

// Histogram counts latencies in nanoseconds in log-linear buckets with a
// relative error under 1%. The zero value is empty and ready; it allocates
// its buckets (15 KiB) on the first Record. Not safe for concurrent use:
// each reader goroutine records into its own and the run merges them.
type Histogram struct {
	counts   []uint32
	n        uint64
	sum      float64
	min, max int64
}

// bucketOf returns the bucket index of v >= 0.
func bucketOf(v int64) int {
	u := uint64(v)
	if u < subCount {
		return int(u)
	}
	e := bits.Len64(u) - subBits - 1 // u>>e is in [subCount, 2*subCount)
	if e > maxExp-subBits-1 {
		return histBucket - 1
	}
	return (e+1)*subCount + int(u>>e) - subCount
}

// bucketRange returns the smallest and largest value of bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < subCount {
		return int64(i), int64(i)
	}
	e := i/subCount - 1
	m := int64(i%subCount + subCount)
	return m << e, (m+1)<<e - 1
}

// Record adds one value in nanoseconds; a negative value (a clock that went
// backwards) counts as 0.
func (h *Histogram) Record(ns int64) {
	if ns < 0 {
		ns = 0
	}
	if h.counts == nil {
		h.counts = make([]uint32, histBucket)
	}
	if h.n == 0 || ns < h.min {
		h.min = ns
	}
	if ns > h.max {
		h.max = ns
	}
	h.counts[bucketOf(ns)]++
	h.n++
	h.sum += float64(ns)
}

// Merge adds every value of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]uint32, histBucket)
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
}

// Count returns the number of values recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Max returns the largest value recorded, exactly (0 when empty).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Min returns the smallest value recorded, exactly (0 when empty).
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Mean returns the average of the values recorded (0 when empty).
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the value below which a fraction q (0 to 1) of the
// values lie: the middle of the bucket holding the value of rank
// ceil(q*n), clamped to the exact minimum and maximum. q <= 0 is the exact
// minimum, q >= 1 the exact maximum; an empty histogram returns 0.
func (h *Histogram) Quantile(q float64) time.Duration {
	switch {
	case h.n == 0:
		return 0
	case q <= 0:
		return time.Duration(h.min)
	case q >= 1:
		return time.Duration(h.max)
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			lo, hi := bucketRange(i)
			v := lo + (hi-lo)/2
			return time.Duration(min(max(v, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}
