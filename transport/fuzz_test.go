package transport

import (
	"bytes"
	"testing"
)

// FuzzInbound reads data in chunks whose sizes come from cuts and consumes
// whole lines only, as a protocol handler consumes whole packets: the
// consumed bytes followed by what is left must equal the input, and the
// buffer invariants must hold throughout.
func FuzzInbound(f *testing.F) {
	f.Add([]byte("hello\nworld\n"), []byte{1, 2, 3})
	f.Add([]byte("no newline at all"), []byte{0})
	f.Add(bytes.Repeat([]byte("a\n"), 5000), []byte{255, 7, 128})
	f.Add(append(bytes.Repeat([]byte{'z'}, 70000), '\n'), []byte{200, 200, 1})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		in := inbound{max: DefaultMaxBuffered}
		var out bytes.Buffer
		peak := 0 // the most bytes ever pending
		rest := data
		for i := 0; len(rest) > 0; i++ {
			sp := in.space()
			if len(sp) < minFree {
				t.Fatalf("space %d < %d", len(sp), minFree)
			}
			if len(in.buf) > 4*(peak+minReadSize) {
				t.Fatalf("buffer %d for at most %d pending bytes", len(in.buf), peak)
			}
			n := len(rest)
			if len(cuts) > 0 {
				n = min(n, 1+int(cuts[i%len(cuts)])*int(cuts[(i+1)%len(cuts)]))
			}
			n = copy(sp, rest[:n])
			in.received(n)
			rest = rest[n:]
			peak = max(peak, in.buffered())

			p := in.pending()
			if in.buffered() != len(p) || in.end > len(in.buf) {
				t.Fatalf("buffered %d, pending %d, end %d, cap %d", in.buffered(), len(p), in.end, len(in.buf))
			}
			// Earlier bytes hold no newline (they would have been
			// consumed): only the new ones need searching.
			if k := bytes.LastIndexByte(p[len(p)-n:], '\n'); k >= 0 {
				k += len(p) - n
				out.Write(p[:k+1])
				in.consume(k + 1)
			}
		}
		out.Write(in.pending())
		if !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("reassembled %d bytes differ from the %d sent", out.Len(), len(data))
		}
	})
}
