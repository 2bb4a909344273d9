package codec

import (
	"bytes"
	"fmt"
	"testing"
)

var benchSizes = []int{16, 256, 4096}

// benchPublish is a typical device message: QoS 1, and in MQTT 5 a few
// properties a client sends (no user properties).
func benchPublish(size int, v Version) *Publish {
	p := &Publish{Topic: b("meter/device-000123/telemetry"), Payload: bytes.Repeat([]byte{'x'}, size),
		QoS: QoS1, PacketID: 4242}
	if v == V5 {
		p.Props = withProps(Properties{PayloadFormat: 1, MessageExpiry: 3600, ContentType: b("application/json")},
			PropPayloadFormat, PropMessageExpiry, PropContentType)
	}
	return p
}

func BenchmarkPublishDecode(b *testing.B) {
	for _, v := range []Version{V311, V5} {
		for _, size := range benchSizes {
			raw := benchPublish(size, v).Append(nil, v)
			b.Run(fmt.Sprintf("v%d/%dB", v, size), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(raw)))
				var p Publish
				for b.Loop() {
					h, n, err := ParseHeader(raw, 0)
					if err != nil {
						b.Fatal(err)
					}
					if err := p.Decode(h, raw[n:n+h.Remaining], v); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkPublishEncode(b *testing.B) {
	for _, v := range []Version{V311, V5} {
		for _, size := range benchSizes {
			p := benchPublish(size, v)
			b.Run(fmt.Sprintf("v%d/%dB", v, size), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(p.Size(v)))
				buf := make([]byte, 0, p.Size(v))
				for b.Loop() {
					buf = p.Append(buf[:0], v)
				}
			})
		}
	}
}

// BenchmarkPublishAppendHeader is the vectored path: the header alone, the
// payload written as its own vector.
func BenchmarkPublishAppendHeader(b *testing.B) {
	for _, v := range []Version{V311, V5} {
		p := benchPublish(256, v)
		b.Run(fmt.Sprintf("v%d", v), func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 128)
			for b.Loop() {
				buf = p.AppendHeader(buf[:0], v)
			}
		})
	}
}

func BenchmarkConnectDecode(b *testing.B) {
	for _, name := range []string{"CONNECT 3.1.1 will username password", "CONNECT 5 full"} {
		var raw []byte
		for _, f := range fixtures {
			if f.name == name {
				raw = f.raw
			}
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			var c Connect
			for b.Loop() {
				_, n, err := ParseHeader(raw, 0)
				if err != nil {
					b.Fatal(err)
				}
				if err := c.Decode(raw[n:]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSubscribeDecode(b *testing.B) {
	s := &Subscribe{PacketID: 1}
	for i := 0; i < 8; i++ {
		s.Subs = append(s.Subs, Subscription{Filter: []byte(fmt.Sprintf("meter/+/zone-%d/#", i)), QoS: QoS1})
	}
	for _, v := range []Version{V311, V5} {
		raw := s.Append(nil, v)
		b.Run(fmt.Sprintf("v%d/8filters", v), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			var p Subscribe
			for b.Loop() {
				h, n, err := ParseHeader(raw, 0)
				if err != nil {
					b.Fatal(err)
				}
				if err := p.Decode(h, raw[n:], v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkValidUTF8(b *testing.B) {
	for _, s := range []string{"meter/device-000123/telemetry", "温度/センサー/device-000123/telemetry"} {
		in := []byte(s)
		b.Run(fmt.Sprintf("%dB", len(in)), func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if !ValidUTF8(in) {
					b.Fatal("invalid")
				}
			}
		})
	}
}
