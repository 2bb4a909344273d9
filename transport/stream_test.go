package transport

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// feed copies p into the inbound buffer the way the reader does: at most
// the free space per read. It returns the reads it took.
func feed(in *inbound, p []byte) int {
	reads := 0
	for len(p) > 0 {
		n := copy(in.space(), p)
		in.received(n)
		p = p[n:]
		reads++
	}
	return reads
}

func TestInbound(t *testing.T) {
	t.Run("keeps the unconsumed tail", func(t *testing.T) {
		in := inbound{max: DefaultMaxBuffered}
		feed(&in, []byte("abc\nde"))
		assert.Equal(t, "abc\nde", string(in.pending()))
		in.consume(4)
		assert.Equal(t, "de", string(in.pending()))
		feed(&in, []byte("f\n"))
		assert.Equal(t, "def\n", string(in.pending()))
		in.consume(4)
		assert.Zero(t, in.buffered())
		assert.Equal(t, 0, in.start, "a drained buffer restarts at the front")
	})

	t.Run("compacts instead of growing", func(t *testing.T) {
		in := inbound{max: DefaultMaxBuffered}
		feed(&in, bytes.Repeat([]byte{'x'}, minReadSize-10))
		in.consume(minReadSize - 20) // 10 bytes left near the end
		sp := in.space()
		assert.Equal(t, minReadSize, len(in.buf), "no growth")
		assert.Equal(t, 0, in.start)
		assert.Equal(t, 10, in.end)
		assert.Equal(t, minReadSize-10, len(sp))
		assert.Equal(t, "xxxxxxxxxx", string(in.pending()))
	})

	t.Run("grows when mostly full", func(t *testing.T) {
		in := inbound{max: DefaultMaxBuffered}
		feed(&in, bytes.Repeat([]byte{'x'}, minReadSize-10))
		in.consume(100)
		sp := in.space()
		assert.Equal(t, 2*minReadSize, len(in.buf))
		assert.Equal(t, minReadSize+100+10, len(sp))
		assert.Equal(t, minReadSize-110, in.buffered())
	})

	t.Run("grows for a large packet, then shrinks when drained", func(t *testing.T) {
		in := inbound{max: DefaultMaxBuffered}
		big := bytes.Repeat([]byte("0123456789"), 20000) // 200 KB
		feed(&in, big)
		require.True(t, bytes.Equal(big, in.pending()))
		assert.GreaterOrEqual(t, len(in.buf), len(big))
		assert.LessOrEqual(t, len(in.buf), 2*(len(big)+minReadSize))
		in.consume(len(big) - 1)
		assert.NotNil(t, in.buf, "not drained yet")
		in.consume(1)
		assert.Nil(t, in.buf, "a drained big buffer is released")
		feed(&in, []byte("x"))
		assert.Equal(t, minReadSize, len(in.buf))
	})

	t.Run("always offers a minimum read", func(t *testing.T) {
		in := inbound{max: DefaultMaxBuffered}
		peak := 0
		for i := range 100 {
			feed(&in, bytes.Repeat([]byte{'y'}, i*37))
			peak = max(peak, in.buffered())
			assert.GreaterOrEqual(t, len(in.space()), minFree)
			assert.LessOrEqual(t, len(in.buf), 4*(peak+minReadSize))
			in.consume(in.buffered() / 2)
		}
	})
}
