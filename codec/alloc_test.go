package codec

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// allocs runs f after one warm-up call and returns its average allocations.
func allocs(t *testing.T, f func()) float64 {
	t.Helper()
	if testing.Short() {
		t.Skip("allocation counts in -short mode")
	}
	f()
	return testing.AllocsPerRun(200, f)
}

func TestPublishDecodeAllocs(t *testing.T) {
	cases := []struct {
		name string
		raw  []byte
		v    Version
	}{
		{"3.1.1", fixtureNamed(t, "PUBLISH 3.1.1 QoS 1 dup retain").raw, V311},
		{"5 no properties", fixtureNamed(t, "PUBLISH 5 QoS 0 no properties").raw, V5},
		{"5 properties without user properties", func() []byte {
			p := &Publish{Topic: b("a/b"), QoS: QoS1, PacketID: 1, Payload: b("x"), Props: withProps(Properties{
				PayloadFormat: 1, MessageExpiry: 60, ContentType: b("json"), ResponseTopic: b("r"),
				CorrelationData: b("c"), TopicAlias: 3},
				PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic, PropCorrelationData,
				PropTopicAlias)}
			return p.Append(nil, V5)
		}(), V5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, n, err := ParseHeader(c.raw, 0)
			require.NoError(t, err)
			body := c.raw[n:]
			var p Publish // a fresh value: nothing to reuse
			n2 := allocs(t, func() {
				p = Publish{}
				if err := p.Decode(h, body, c.v); err != nil {
					t.Fatal(err)
				}
			})
			assert.Zero(t, n2)
		})
	}
}

func TestPublishAppendHeaderAllocs(t *testing.T) {
	p := fixtureNamed(t, "PUBLISH 5 QoS 1 properties").want.(*Publish)
	buf := make([]byte, 0, p.Size(V5))
	assert.Zero(t, allocs(t, func() { buf = p.AppendHeader(buf[:0], V5) }))
	assert.Zero(t, allocs(t, func() { buf = p.Append(buf[:0], V5) }))
	assert.Zero(t, allocs(t, func() { _ = p.Size(V5) }))
}

func TestConnectDecodeAllocs(t *testing.T) {
	for _, name := range []string{"CONNECT 3.1.1 will username password", "CONNECT 5 password without username"} {
		raw := fixtureNamed(t, name).raw
		h, n, err := ParseHeader(raw, 0)
		require.NoError(t, err)
		body := raw[n : n+h.Remaining]
		var c Connect
		assert.Zero(t, allocs(t, func() {
			c = Connect{}
			if err := c.Decode(body); err != nil {
				t.Fatal(err)
			}
		}), name)
	}
}

// TestReusedDecodeAllocs decodes every fixture into a reused value: with
// the slices' capacity kept, no decode allocates, user properties and
// subscription lists included.
func TestReusedDecodeAllocs(t *testing.T) {
	values := map[Type]any{
		CONNECT: &Connect{}, CONNACK: &Connack{}, PUBLISH: &Publish{}, PUBACK: &Ack{}, PUBREC: &Ack{}, PUBREL: &Ack{},
		PUBCOMP: &Ack{}, SUBSCRIBE: &Subscribe{}, SUBACK: &Suback{}, UNSUBSCRIBE: &Unsubscribe{},
		UNSUBACK: &Unsuback{}, DISCONNECT: &Disconnect{}, AUTH: &Auth{},
	}
	for _, f := range fixtures {
		h, _, err := ParseHeader(f.raw, 0)
		require.NoError(t, err)
		p, ok := values[h.Type]
		if !ok {
			continue // PINGREQ, PINGRESP: nothing to decode
		}
		t.Run(f.name, func(t *testing.T) {
			assert.Zero(t, allocs(t, func() {
				if _, err := decodeInto(p, f.raw, f.v); err != nil {
					t.Fatal(err)
				}
			}))
		})
	}
}

func TestParseHeaderAllocs(t *testing.T) {
	raw := fixtureNamed(t, "PUBLISH 3.1.1 two-byte remaining length").raw
	assert.Zero(t, allocs(t, func() {
		if _, _, err := ParseHeader(raw, 1<<20); err != nil {
			t.Fatal(err)
		}
	}))
}

// TestEncodeAllocs: every encoder appends into a buffer with room without
// allocating.
func TestEncodeAllocs(t *testing.T) {
	buf := make([]byte, 0, 4096)
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			var enc func()
			switch p := f.want.(type) {
			case *Connect:
				enc = func() { buf = p.Append(buf[:0]) }
			case *Connack:
				enc = func() { buf = p.Append(buf[:0], f.v) }
			case *Publish:
				enc = func() { buf = p.Append(buf[:0], f.v) }
			case *Ack:
				enc = func() { buf = p.Append(buf[:0], f.v) }
			case *Subscribe:
				enc = func() { buf = p.Append(buf[:0], f.v) }
			case *Suback:
				enc = func() { buf = p.Append(buf[:0], f.v) }
			case *Unsubscribe:
				enc = func() { buf = p.Append(buf[:0], f.v) }
			case *Unsuback:
				enc = func() { buf = p.Append(buf[:0], f.v) }
			case *Disconnect:
				enc = func() { buf = p.Append(buf[:0], f.v) }
			case *Auth:
				enc = func() { buf = p.Append(buf[:0], f.v) }
			case ping:
				enc = func() { buf = AppendPingreq(buf[:0]) }
			}
			assert.Zero(t, allocs(t, enc))
		})
	}
}
