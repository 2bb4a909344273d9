package bench

import (
	"strconv"
	"testing"
	"time"

	"github.com/mqttd/mqttd/codec"
)

// The per-message work of a subscriber must stay far below a broker's, or
// the tool would measure itself: these cover the checker, the histogram
// and the whole receive path minus the socket.

func BenchmarkStreamObserveInOrder(b *testing.B) {
	b.ReportAllocs()
	var s Stream
	for i := 0; b.Loop(); i++ {
		s.Observe(uint64(i))
	}
}

func BenchmarkStreamObserveLate(b *testing.B) {
	b.ReportAllocs()
	var s Stream
	// Pairs swapped: 1 0 3 2 5 4 ... every other delivery fills a gap.
	for i := 0; b.Loop(); i++ {
		s.Observe(uint64(i ^ 1))
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	b.ReportAllocs()
	var h Histogram
	for i := 0; b.Loop(); i++ {
		h.Record(int64(i%100000) * int64(time.Microsecond))
	}
}

func BenchmarkPayload(b *testing.B) {
	for _, size := range []int{16, 64, 1024} {
		b.Run(byteSize(size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			p := AppendPayload(nil, Header{}, size)
			for i := 0; b.Loop(); i++ {
				PutPayload(p, Header{Pub: 1, Seq: uint64(i), Sent: int64(i)})
				if _, err := DecodePayload(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSubscriberReceive decodes, acknowledges and checks QoS 1
// deliveries from a buffer, as a subscriber's reader does after a read.
func BenchmarkSubscriberReceive(b *testing.B) {
	for _, size := range []int{64, 1024} {
		b.Run(byteSize(size), func(b *testing.B) {
			ps := &pubsubRun{runner: &runner{cfg: Config{Size: size, QoS: codec.QoS1, Version: codec.V311}}}
			ps.tStart, ps.tEnd = 0, 1<<62
			s := &subscriber{ps: ps, streams: make([]Stream, 1), rd: &packetReader{}}
			pkt := codec.Publish{Topic: []byte("bench/run/0"), QoS: codec.QoS1, PacketID: 1,
				Payload: AppendPayload(nil, Header{}, size)}
			frame := pkt.Append(nil, codec.V311)
			var pub codec.Publish
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for i := 0; b.Loop(); i++ {
				PutPayload(frame[len(frame)-size:], Header{Seq: uint64(i), Sent: 1})
				h, n, err := codec.ParseHeader(frame, 0)
				if err != nil {
					b.Fatal(err)
				}
				if err := pub.Decode(h, frame[n:], codec.V311); err != nil {
					b.Fatal(err)
				}
				s.rd.readAt = int64(i) + 2
				s.onPublish(&pub)
				if len(s.ackBuf) > 4096 {
					s.ackBuf = s.ackBuf[:0]
				}
			}
			if s.uniqueWin != uint64(b.N) {
				b.Fatalf("checked %d of %d deliveries", s.uniqueWin, b.N)
			}
		})
	}
}

func byteSize(n int) string { return strconv.Itoa(n) + "B" }
