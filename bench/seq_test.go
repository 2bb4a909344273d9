package bench

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStreamVerdicts(t *testing.T) {
	tests := []struct {
		name        string
		seqs        []uint64
		want        []Verdict
		first, last uint64 // window for Missing
		missing     uint64
	}{
		{"in order", []uint64{0, 1, 2, 3}, []Verdict{InOrder, InOrder, InOrder, InOrder}, 0, 3, 0},
		{"loss in the middle", []uint64{0, 1, 4, 5}, []Verdict{InOrder, InOrder, InOrder, InOrder}, 0, 5, 2},
		{"loss at the start", []uint64{3, 4}, []Verdict{InOrder, InOrder}, 0, 4, 3},
		{"loss at the end", []uint64{0, 1}, []Verdict{InOrder, InOrder}, 0, 4, 3},
		{"nothing received", nil, nil, 2, 6, 5},
		{"duplicate of the last", []uint64{0, 1, 1, 2}, []Verdict{InOrder, InOrder, Dup, InOrder}, 0, 2, 0},
		{"duplicate of an old one", []uint64{0, 1, 2, 0}, []Verdict{InOrder, InOrder, InOrder, Dup}, 0, 2, 0},
		{"swap", []uint64{0, 2, 1, 3}, []Verdict{InOrder, InOrder, Late, InOrder}, 0, 3, 0},
		{"late then its duplicate", []uint64{0, 2, 1, 1}, []Verdict{InOrder, InOrder, Late, Dup}, 0, 2, 0},
		{"late in the middle of a gap", []uint64{0, 10, 5}, []Verdict{InOrder, InOrder, Late}, 0, 10, 8},
		{"late at both ends of a gap", []uint64{0, 5, 1, 4}, []Verdict{InOrder, InOrder, Late, Late}, 0, 5, 2},
		{"reverse order", []uint64{4, 3, 2, 1, 0}, []Verdict{InOrder, Late, Late, Late, Late}, 0, 4, 0},
		{"window skips warm-up losses", []uint64{0, 5, 6, 9}, []Verdict{InOrder, InOrder, InOrder, InOrder}, 5, 9, 2},
		{"empty window", []uint64{0}, []Verdict{InOrder}, 1, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Stream
			var got []Verdict
			for _, q := range tt.seqs {
				got = append(got, s.Observe(q))
			}
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.missing, s.Missing(tt.first, tt.last))
			assert.False(t, s.Truncated)
		})
	}
}

// model is the obvious checker: a set of everything seen.
type model struct {
	seen map[uint64]bool
	max  uint64
	any  bool
}

func (m *model) observe(q uint64) Verdict {
	switch {
	case m.seen[q]:
		return Dup
	case m.any && q < m.max:
		m.seen[q] = true
		return Late
	}
	m.seen[q] = true
	m.max, m.any = max(m.max, q), true
	return InOrder
}

func (m *model) missing(first, last uint64) uint64 {
	var n uint64
	for q := first; q <= last && last >= first; q++ {
		if !m.seen[q] {
			n++
		}
	}
	return n
}

// TestStreamMatchesModel drives Stream and the model with random streams
// of losses, duplicates and reorders.
func TestStreamMatchesModel(t *testing.T) {
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 1))
		var s Stream
		m := model{seen: map[uint64]bool{}}
		n := 1 + rng.IntN(2000)
		for i := range n {
			q := uint64(i)
			switch rng.IntN(10) {
			case 0:
				continue // lost
			case 1:
				q = uint64(rng.IntN(i + 1)) // duplicate or late
			case 2:
				q += uint64(rng.IntN(20)) // ahead
			}
			require.Equal(t, m.observe(q), s.Observe(q), "seed %d step %d seq %d", seed, i, q)
		}
		first := uint64(rng.IntN(n))
		last := first + uint64(rng.IntN(n))
		assert.Equal(t, m.missing(first, last), s.Missing(first, last), "seed %d window [%d, %d]", seed, first, last)
	}
}

func TestStreamTruncates(t *testing.T) {
	var s Stream
	// Every other number lost: one gap each.
	for i := range uint64(maxGaps + 10) {
		s.Observe(2 * i)
	}
	require.True(t, s.Truncated)
	assert.LessOrEqual(t, s.Gaps(), maxGaps)
	// The count stays exact when the window covers the whole stream.
	last := 2 * uint64(maxGaps+9)
	assert.Equal(t, uint64(maxGaps+9), s.Missing(0, last))
}
