package bench

import "sort"

// Verdict classifies one delivery of a stream.
type Verdict uint8

// Verdicts returned by Stream.Observe.
const (
	InOrder Verdict = iota // the next sequence number, or one past a gap
	Late                   // fills a gap: it arrived after a higher number (out of order)
	Dup                    // seen before: a duplicate delivery
)

func (v Verdict) String() string {
	switch v {
	case InOrder:
		return "in-order"
	case Late:
		return "late"
	case Dup:
		return "duplicate"
	}
	return "invalid"
}

// maxGaps bounds the gap list of a Stream. Past it the oldest half of the
// gaps is forgotten: those sequence numbers count as lost whatever the
// window (Missing may then over-count by losses in the warm-up, and a very
// late delivery into a forgotten gap counts as a duplicate). Truncated says
// it happened; it takes over 65,000 separate holes in one stream.
const maxGaps = 1 << 16

// span is a half-open range [lo, hi) of sequence numbers not yet received.
type span struct{ lo, hi uint64 }

// Stream checks the sequence numbers of one publisher as one subscriber
// receives them. Sequence numbers start at 0 and rise by one per message;
// Observe classifies each delivery and Missing counts what never came.
//
// It keeps the highest number seen and the list of holes below it, so the
// common cases (in order, or losses only) cost O(1) and a late delivery
// costs a binary search. The zero value is an empty stream. A Stream is not
// safe for concurrent use: each belongs to one subscriber's reader.
type Stream struct {
	next      uint64 // one past the highest sequence number seen
	gaps      []span // holes below next, ascending and disjoint
	forgotten uint64 // sequence numbers of gaps dropped past maxGaps
	Truncated bool   // the gap list overflowed: Missing is approximate
}

// Observe records the delivery of seq and says what it was.
func (s *Stream) Observe(seq uint64) Verdict {
	if seq >= s.next {
		if seq > s.next {
			s.addGap(s.next, seq)
		}
		s.next = seq + 1
		return InOrder
	}
	// Below the highest seen: either it fills a hole or it is a repeat.
	i := sort.Search(len(s.gaps), func(i int) bool { return s.gaps[i].hi > seq })
	if i == len(s.gaps) || s.gaps[i].lo > seq {
		return Dup
	}
	g := &s.gaps[i]
	switch {
	case g.lo == seq && g.hi == seq+1:
		s.gaps = append(s.gaps[:i], s.gaps[i+1:]...)
	case g.lo == seq:
		g.lo++
	case g.hi == seq+1:
		g.hi--
	default: // split [lo, hi) into [lo, seq) and [seq+1, hi)
		hi := g.hi
		g.hi = seq
		s.gaps = append(s.gaps, span{})
		copy(s.gaps[i+2:], s.gaps[i+1:])
		s.gaps[i+1] = span{seq + 1, hi}
	}
	return Late
}

func (s *Stream) addGap(lo, hi uint64) {
	if len(s.gaps) == maxGaps {
		half := maxGaps / 2
		for _, g := range s.gaps[:half] {
			s.forgotten += g.hi - g.lo
		}
		s.gaps = append(s.gaps[:0], s.gaps[half:]...)
		s.Truncated = true
	}
	s.gaps = append(s.gaps, span{lo, hi})
}

// Missing returns how many sequence numbers in [first, last] were never
// observed. Call it once the publisher is done: first and last are the
// publisher's first and last number inside the measurement window. With
// last < first the window is empty and Missing returns 0 (plus forgotten
// gaps, if the stream was truncated).
func (s *Stream) Missing(first, last uint64) uint64 {
	n := s.forgotten
	if last < first {
		return n
	}
	for _, g := range s.gaps {
		lo, hi := max(g.lo, first), min(g.hi, last+1)
		if lo < hi {
			n += hi - lo
		}
	}
	if s.next <= last { // the tail after the highest number seen
		n += last + 1 - max(s.next, first)
	}
	return n
}

// Next returns one past the highest sequence number seen (0 when none).
func (s *Stream) Next() uint64 { return s.next }

// Gaps returns the number of holes currently tracked.
func (s *Stream) Gaps() int { return len(s.gaps) }
