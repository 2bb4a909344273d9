package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHistogramBuckets(t *testing.T) {
	// Every bucket's range maps back to it, ranges are contiguous, and a
	// bucket is at most 1/128 of its values wide.
	prevHi := int64(-1)
	for i := range histBucket - 1 {
		lo, hi := bucketRange(i)
		require.Equal(t, prevHi+1, lo, "bucket %d", i)
		require.Equal(t, i, bucketOf(lo), "low end of bucket %d", i)
		require.Equal(t, i, bucketOf(hi), "high end of bucket %d", i)
		if lo < subCount {
			require.Equal(t, lo, hi, "small values are exact")
		} else {
			require.LessOrEqual(t, float64(hi-lo+1)/float64(lo), 1.0/subCount, "bucket %d", i)
		}
		prevHi = hi
	}
	assert.Equal(t, histBucket-1, bucketOf(1<<maxExp))
	assert.Equal(t, histBucket-1, bucketOf(1<<62))
}

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	for v := 1; v <= 10000; v++ {
		h.Record(int64(v) * int64(time.Microsecond))
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 5000 * time.Microsecond},
		{0.9, 9000 * time.Microsecond},
		{0.99, 9900 * time.Microsecond},
		{0.999, 9990 * time.Microsecond},
		{1, 10000 * time.Microsecond},
	}
	for _, tt := range tests {
		got := h.Quantile(tt.q)
		assert.InEpsilon(t, float64(tt.want), float64(got), 0.01, "q %g: %s", tt.q, got)
	}
	assert.Equal(t, uint64(10000), h.Count())
	assert.Equal(t, time.Microsecond, h.Min())
	assert.Equal(t, 10*time.Millisecond, h.Max())
	assert.InEpsilon(t, float64(5000500*time.Nanosecond), float64(h.Mean()), 1e-9)
	assert.Equal(t, time.Microsecond, h.Quantile(0), "q 0 is the minimum")
}

func TestHistogramEdgeCases(t *testing.T) {
	var empty Histogram
	assert.Zero(t, empty.Quantile(0.99))
	assert.Zero(t, empty.Max())
	assert.Zero(t, empty.Mean())

	var h Histogram
	h.Record(-5) // a clock step backwards counts as zero
	assert.Zero(t, h.Max())
	h.Record(int64(2 * time.Minute)) // beyond the last bucket: max stays exact
	assert.Equal(t, 2*time.Minute, h.Max())
	assert.Equal(t, 2*time.Minute, h.Quantile(1))
}

func TestHistogramMerge(t *testing.T) {
	var a, b, all Histogram
	for v := range int64(1000) {
		x := v * v * 37
		all.Record(x)
		if v%3 == 0 {
			a.Record(x)
		} else {
			b.Record(x)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&Histogram{}) // an empty one changes nothing
	assert.Equal(t, all.Count(), m.Count())
	assert.Equal(t, all.Min(), m.Min())
	assert.Equal(t, all.Max(), m.Max())
	for _, q := range []float64{0.1, 0.5, 0.99} {
		assert.Equal(t, all.Quantile(q), m.Quantile(q), "q %g", q)
	}
}
