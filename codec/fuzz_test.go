package codec

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// Each decoder's fuzz target is seeded from the fixture and malformed
// tables. On every input the decoder must not panic and must fail only
// with a *MalformedError; whatever it accepts must encode to a packet that
// decodes to an equal value (checkRoundTrip).

// seedBodies adds the body of every table packet of type t to f through
// add, with its fixed-header flags and whether it is MQTT 5.
func seedBodies(f *testing.F, t Type, add func(flags byte, body []byte, v5 bool)) {
	seed := func(raw []byte, v Version) {
		h, n, err := ParseHeader(raw, 0)
		if err != nil || h.Type != t || len(raw) < n+h.Remaining {
			return
		}
		add(h.Flags, raw[n:n+h.Remaining], v == V5)
	}
	for _, fx := range fixtures {
		seed(fx.raw, fx.v)
	}
	for _, c := range malformedCases {
		seed(c.raw, c.v)
	}
}

func version(v5 bool) Version {
	if v5 {
		return V5
	}
	return V311
}

func FuzzParseHeader(f *testing.F) {
	for _, fx := range fixtures {
		f.Add(fx.raw, 0)
		f.Add(fx.raw, len(fx.raw))
		f.Add(fx.raw, len(fx.raw)-1)
	}
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, 0)
	f.Add([]byte{0x30, 0x80, 0x00}, 0)
	f.Fuzz(func(t *testing.T, buf []byte, maxPacket int) {
		h, n, err := ParseHeader(buf, maxPacket)
		if err != nil {
			if errors.Is(err, ErrIncomplete) {
				// Incomplete means the length prefix runs to the end of buf.
				for i := 1; i < len(buf); i++ {
					require.NotZero(t, buf[i]&0x80, "incomplete, yet byte %d ends the length", i)
				}
				return
			}
			var me *MalformedError
			require.ErrorAs(t, err, &me)
			return
		}
		require.GreaterOrEqual(t, n, 2)
		require.LessOrEqual(t, n, 5)
		require.LessOrEqual(t, n, len(buf))
		require.GreaterOrEqual(t, h.Remaining, 0)
		require.LessOrEqual(t, h.Remaining, MaxVarInt)
		if maxPacket > 0 {
			require.LessOrEqual(t, n+h.Remaining, maxPacket)
		}
		// Re-encoding the header gives a header that parses the same.
		re := appendFixedHeader(nil, h.Type, h.Flags, h.Remaining)
		h2, n2, err := ParseHeader(re, 0)
		require.NoError(t, err)
		require.Equal(t, h, h2)
		require.Equal(t, len(re), n2)
		require.LessOrEqual(t, n2, n) // minimal encoding is never longer
	})
}

func FuzzConnect(f *testing.F) {
	seedBodies(f, CONNECT, func(_ byte, body []byte, _ bool) { f.Add(body) })
	f.Fuzz(func(t *testing.T, body []byte) {
		checkRoundTrip(t, Header{Type: CONNECT, Remaining: len(body)}, body, V311)
	})
}

func FuzzConnack(f *testing.F) {
	seedBodies(f, CONNACK, func(_ byte, body []byte, v5 bool) { f.Add(body, v5) })
	f.Fuzz(func(t *testing.T, body []byte, v5 bool) {
		checkRoundTrip(t, Header{Type: CONNACK, Remaining: len(body)}, body, version(v5))
	})
}

func FuzzPublish(f *testing.F) {
	seedBodies(f, PUBLISH, func(flags byte, body []byte, v5 bool) { f.Add(flags, body, v5) })
	f.Fuzz(func(t *testing.T, flags byte, body []byte, v5 bool) {
		checkRoundTrip(t, Header{Type: PUBLISH, Flags: flags & 0x0f, Remaining: len(body)}, body, version(v5))
	})
}

func FuzzAck(f *testing.F) {
	for _, typ := range []Type{PUBACK, PUBREC, PUBREL, PUBCOMP} {
		seedBodies(f, typ, func(_ byte, body []byte, v5 bool) { f.Add(byte(typ), body, v5) })
	}
	f.Fuzz(func(t *testing.T, kind byte, body []byte, v5 bool) {
		typ := PUBACK + Type(kind%4)
		checkRoundTrip(t, Header{Type: typ, Flags: fixedFlags[typ], Remaining: len(body)}, body, version(v5))
	})
}

func FuzzSubscribe(f *testing.F) {
	seedBodies(f, SUBSCRIBE, func(_ byte, body []byte, v5 bool) { f.Add(body, v5) })
	f.Fuzz(func(t *testing.T, body []byte, v5 bool) {
		checkRoundTrip(t, Header{Type: SUBSCRIBE, Flags: 2, Remaining: len(body)}, body, version(v5))
	})
}

func FuzzSuback(f *testing.F) {
	seedBodies(f, SUBACK, func(_ byte, body []byte, v5 bool) { f.Add(body, v5) })
	f.Fuzz(func(t *testing.T, body []byte, v5 bool) {
		checkRoundTrip(t, Header{Type: SUBACK, Remaining: len(body)}, body, version(v5))
	})
}

func FuzzUnsubscribe(f *testing.F) {
	seedBodies(f, UNSUBSCRIBE, func(_ byte, body []byte, v5 bool) { f.Add(body, v5) })
	f.Fuzz(func(t *testing.T, body []byte, v5 bool) {
		checkRoundTrip(t, Header{Type: UNSUBSCRIBE, Flags: 2, Remaining: len(body)}, body, version(v5))
	})
}

func FuzzUnsuback(f *testing.F) {
	seedBodies(f, UNSUBACK, func(_ byte, body []byte, v5 bool) { f.Add(body, v5) })
	f.Fuzz(func(t *testing.T, body []byte, v5 bool) {
		checkRoundTrip(t, Header{Type: UNSUBACK, Remaining: len(body)}, body, version(v5))
	})
}

func FuzzDisconnect(f *testing.F) {
	seedBodies(f, DISCONNECT, func(_ byte, body []byte, v5 bool) { f.Add(body, v5) })
	f.Fuzz(func(t *testing.T, body []byte, v5 bool) {
		checkRoundTrip(t, Header{Type: DISCONNECT, Remaining: len(body)}, body, version(v5))
	})
}

func FuzzAuth(f *testing.F) {
	seedBodies(f, AUTH, func(_ byte, body []byte, v5 bool) { f.Add(body, v5) })
	f.Fuzz(func(t *testing.T, body []byte, v5 bool) {
		checkRoundTrip(t, Header{Type: AUTH, Remaining: len(body)}, body, version(v5))
	})
}

// FuzzStream frames and decodes a byte stream packet after packet, as a
// connection would, with the stream cut into two reads at split.
func FuzzStream(f *testing.F) {
	for _, fx := range fixtures {
		f.Add(append(append([]byte{}, fx.raw...), fx.raw...), uint16(len(fx.raw)/2), fx.v == V5)
	}
	f.Fuzz(func(t *testing.T, stream []byte, split uint16, v5 bool) {
		v := version(v5)
		cut := int(split) % (len(stream) + 1)
		var buf []byte
		for _, chunk := range [][]byte{stream[:cut], stream[cut:]} {
			buf = append(buf, chunk...)
			for {
				h, n, err := ParseHeader(buf, 1<<16)
				if errors.Is(err, ErrIncomplete) || (err == nil && len(buf) < n+h.Remaining) {
					break // wait for the next read
				}
				if err != nil {
					var me *MalformedError
					require.ErrorAs(t, err, &me)
					return // a broker closes the connection
				}
				body := buf[n : n+h.Remaining : n+h.Remaining]
				if _, err := decodePacket(h, body, v); err != nil {
					var me *MalformedError
					require.ErrorAs(t, err, &me)
					return
				}
				buf = buf[n+h.Remaining:]
			}
		}
	})
}
