package transport

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
	"testing"
)

// BenchmarkEcho measures a request/response round trip over real loopback
// sockets: the client writes one line, the echo handler copies it and
// queues it back, the client reads it.
func BenchmarkEcho(b *testing.B) {
	for _, k := range kinds() {
		for _, size := range []int{16, 256, 4096} {
			b.Run(fmt.Sprintf("%s/%dB", k.name, size), func(b *testing.B) {
				h := newTestHandler()
				l := k.listen(b, h)
				cl := k.dial(b, l.Addr())
				defer cl.Close()
				h.waitOpen(b)

				line := append(bytes.Repeat([]byte{'m'}, size-1), '\n')
				buf := make([]byte, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if _, err := cl.Write(line); err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(cl, buf); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkAsyncWritev measures server-to-client throughput: many
// AsyncWritev calls into one connection while the client drains it.
func BenchmarkAsyncWritev(b *testing.B) {
	for _, k := range kinds() {
		for _, size := range []int{64, 1024, 16384} {
			b.Run(fmt.Sprintf("%s/%dB", k.name, size), func(b *testing.B) {
				h := newTestHandler()
				l := k.listen(b, h)
				cl := k.dial(b, l.Addr())
				defer cl.Close()
				c := h.waitOpen(b)

				total := int64(size) * int64(b.N)
				drained := make(chan error, 1)
				go func() {
					_, err := io.CopyN(io.Discard, cl, total)
					drained <- err
				}()
				msg := bytes.Repeat([]byte{'p'}, size)
				var dones atomic.Int64
				done := func(error) { dones.Add(1) }
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					// Stay under a few MiB queued, as the broker's
					// slow-consumer policy would.
					for c.Outbound() > 4<<20 {
						select {
						case err := <-drained:
							b.Fatalf("client stopped early: %v", err)
						default:
							runtime.Gosched()
						}
					}
					if err := c.AsyncWritev([][]byte{msg}, done); err != nil {
						b.Fatal(err)
					}
				}
				if err := <-drained; err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}
