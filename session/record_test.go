package session

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/codec"
)

// Fixtures use time.Unix so that a decoded time (also from time.Unix)
// compares equal: no monotonic reading, same location.
var (
	tCreated = time.Unix(1_700_000_000, 123_456_789)
	tExpires = time.Unix(1_700_000_600, 0)
	tGone    = time.Unix(1_700_000_100, 42)
	tWillAt  = time.Unix(1_700_000_130, 7)
)

// fullMessage has every field set, every MQTT 5 property included.
func fullMessage() *Message {
	return &Message{
		Topic:           "dev/42/telemetry",
		Payload:         []byte("21.5\x00\xff binary"),
		QoS:             codec.QoS2,
		Retain:          true,
		ClientID:        "grp@@@dev-42",
		PayloadFormat:   1,
		HasFormat:       true,
		ContentType:     []byte("application/json"),
		ResponseTopic:   []byte("dev/42/reply"),
		CorrelationData: []byte{0, 1, 2, 3},
		User: []codec.UserProperty{
			{Key: []byte("unit"), Value: []byte("celsius")},
			{Key: []byte("unit"), Value: []byte("again")}, // keys may repeat
		},
		Created:   tCreated,
		ExpiresAt: tExpires,
	}
}

// bareMessage has only what every message has: no properties, no expiry.
func bareMessage() *Message {
	return &Message{Topic: "a", Payload: []byte("x"), QoS: codec.QoS1, Created: tCreated}
}

// fullSession has every field of a session's meta record set.
func fullSession() *Session {
	s := sessionWithoutWill()
	s.SetPendingWill(&Will{Msg: fullMessage(), Delay: 30 * time.Second}, tWillAt)
	return s
}

func sessionWithoutWill() *Session {
	s := New("grp@@@dev-42", "grp")
	s.Expiry = 90 * time.Minute
	s.DisconnectedAt = tGone
	s.SetSub(Subscription{Filter: "dev/+/cmd", QoS: codec.QoS2, NoLocal: true,
		RetainAsPublished: true, RetainHandling: 2, ID: 268_435_455})
	s.SetSub(Subscription{Filter: "$share/g/dev/#", QoS: codec.QoS1, RetainHandling: 1})
	s.SetSub(Subscription{Filter: "plain"})
	return s
}

func TestRecordRoundTrip(t *testing.T) {
	t.Run("outbound", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			f    *Inflight
		}{
			{"qos1 bare", &Inflight{Delivery: Delivery{Msg: bareMessage(), QoS: codec.QoS1},
				PacketID: 1, Seq: 1}},
			{"qos2 published with sub ids", &Inflight{
				Delivery: Delivery{Msg: fullMessage(), QoS: codec.QoS2, Retain: true, SubIDs: []uint32{1, 300, 268_435_455}},
				PacketID: 65535, Seq: 1 << 40, Phase: PhasePublished}},
			{"qos2 released", &Inflight{Delivery: Delivery{Msg: fullMessage(), QoS: codec.QoS2},
				PacketID: 777, Seq: 9, Phase: PhaseReleased}},
			{"qos1 downgraded from qos2", &Inflight{Delivery: Delivery{Msg: fullMessage(), QoS: codec.QoS1, SubIDs: []uint32{5}},
				PacketID: 2, Seq: 3}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := decodeOut(encodeOut(tc.f))
				require.NoError(t, err)
				// Sent and Durable are run-time state, not stored.
				assert.Equal(t, tc.f, got)
			})
		}
	})
	t.Run("session", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			s    *Session
		}{
			{"full", fullSession()},
			{"bare", New("c", "")},
			{"no will", sessionWithoutWill()},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := decodeSession(encodeSession(tc.s))
				require.NoError(t, err)
				assert.Equal(t, tc.s, got)
			})
		}
	})
	t.Run("will", func(t *testing.T) {
		for _, w := range []*Will{
			{Msg: fullMessage(), Delay: 0},
			{Msg: bareMessage(), Delay: 4 * time.Hour},
		} {
			got, err := decodeWill(encodeWill(w))
			require.NoError(t, err)
			assert.Equal(t, w, got)
		}
	})
	t.Run("retained", func(t *testing.T) {
		for _, m := range []*Message{fullMessage(), bareMessage()} {
			got, err := decodeRetained(encodeRetained(m))
			require.NoError(t, err)
			assert.Equal(t, m, got)
		}
	})
	t.Run("empty payload decodes as empty, not nil", func(t *testing.T) {
		// Message.Payload is never nil (NewMessage): the broker may take
		// len() or write it without a nil check.
		m := bareMessage()
		m.Payload = []byte{}
		got, err := decodeRetained(encodeRetained(m))
		require.NoError(t, err)
		assert.NotNil(t, got.Payload)
		assert.Empty(t, got.Payload)
	})
	t.Run("decoded bytes do not alias the record", func(t *testing.T) {
		b := encodeRetained(fullMessage())
		got, err := decodeRetained(b)
		require.NoError(t, err)
		for i := range b {
			b[i] = 0xAA
		}
		assert.Equal(t, fullMessage(), got)
	})
}

// Record kinds, for the fuzz target.
const (
	recOut byte = iota
	recSession
	recWill
	recRetained
)

type validRecord struct {
	name   string
	kind   byte
	b      []byte
	decode func([]byte) error
}

// validRecords returns one valid encoding of every record type with its
// decoder, for the corruption tests and the fuzz seeds.
func validRecords() []validRecord {
	out := func(b []byte) error { _, err := decodeOut(b); return err }
	sess := func(b []byte) error { _, err := decodeSession(b); return err }
	will := func(b []byte) error { _, err := decodeWill(b); return err }
	ret := func(b []byte) error { _, err := decodeRetained(b); return err }
	return []validRecord{
		{"outbound", recOut, encodeOut(&Inflight{Delivery: Delivery{Msg: fullMessage(), QoS: codec.QoS2, SubIDs: []uint32{7, 9}},
			PacketID: 12, Seq: 99, Phase: PhaseReleased}), out},
		{"outbound bare", recOut, encodeOut(&Inflight{Delivery: Delivery{Msg: bareMessage(), QoS: codec.QoS1}, PacketID: 1, Seq: 1}), out},
		{"session", recSession, encodeSession(fullSession()), sess},
		{"session bare", recSession, encodeSession(New("c", "")), sess},
		{"will", recWill, encodeWill(&Will{Msg: fullMessage(), Delay: time.Minute}), will},
		{"retained", recRetained, encodeRetained(fullMessage()), ret},
	}
}

func TestRecordTruncated(t *testing.T) {
	for _, r := range validRecords() {
		t.Run(r.name, func(t *testing.T) {
			require.NoError(t, r.decode(r.b))
			for n := 0; n < len(r.b); n++ {
				err := r.decode(r.b[:n:n])
				require.Errorf(t, err, "prefix of %d of %d bytes decoded", n, len(r.b))
				require.ErrorIsf(t, err, ErrCorrupt, "prefix of %d bytes", n)
			}
		})
	}
}

func TestRecordTrailingBytes(t *testing.T) {
	for _, r := range validRecords() {
		t.Run(r.name, func(t *testing.T) {
			b := append(append([]byte(nil), r.b...), 0)
			assert.ErrorIs(t, r.decode(b), ErrCorrupt)
		})
	}
}

func TestRecordBadVersion(t *testing.T) {
	for _, r := range validRecords() {
		t.Run(r.name, func(t *testing.T) {
			for _, v := range []byte{0, 2, 0xff} {
				b := append([]byte(nil), r.b...)
				b[0] = v
				assert.ErrorIs(t, r.decode(b), ErrCorrupt, "version %d", v)
			}
		})
	}
}

// TestRecordInvalidFields checks records that are well formed byte-wise
// but carry values no writer produces.
func TestRecordInvalidFields(t *testing.T) {
	out := func(mut func(f *Inflight)) []byte {
		f := &Inflight{Delivery: Delivery{Msg: bareMessage(), QoS: codec.QoS1}, PacketID: 1, Seq: 1}
		mut(f)
		return encodeOut(f)
	}
	sess := func(mut func(s *Session)) []byte {
		s := New("c", "")
		mut(s)
		return encodeSession(s)
	}
	for _, tc := range []struct {
		name   string
		b      []byte
		decode func([]byte) error
	}{
		{"outbound packet id 0", out(func(f *Inflight) { f.PacketID = 0 }), decodeOutErr},
		{"outbound qos 0", out(func(f *Inflight) { f.QoS = codec.QoS0 }), decodeOutErr},
		{"outbound qos 3", out(func(f *Inflight) { f.QoS = 3 }), decodeOutErr},
		{"outbound phase 2", out(func(f *Inflight) { f.Phase = 2 }), decodeOutErr},
		{"outbound message qos 3", out(func(f *Inflight) { f.Msg.QoS = 3 }), decodeOutErr},
		{"subscription qos 3", sess(func(s *Session) { s.SetSub(Subscription{Filter: "a", QoS: 3}) }), decodeSessionErr},
		{"subscription retain handling 3", sess(func(s *Session) {
			s.SetSub(Subscription{Filter: "a", RetainHandling: 3})
		}), decodeSessionErr},
		{"retained qos 3", encodeRetained(&Message{Topic: "t", Payload: []byte("p"), QoS: 3}), decodeRetainedErr},
		{"will qos 3", encodeWill(&Will{Msg: &Message{Topic: "t", QoS: 3}}), decodeWillErr},
		// A length prefix far past the record's end.
		{"huge byte string", []byte{recordV1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, decodeRetainedErr},
		// A varint that never ends.
		{"endless varint", []byte{recordV1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, decodeOutErr},
		// Counts beyond any sane value must not allocate their way
		// through memory.
		{"huge subscription id count", []byte{recordV1, 1, 1, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, decodeOutErr},
		{"huge subscription count", append(sess(func(*Session) {})[:1+2+1+8+8], 0xff, 0xff, 0xff, 0xff, 0x0f), decodeSessionErr},
		// A group is the client id's prefix (the session keeps its length).
		{"group not a prefix", append([]byte{recordV1, 1, 'c', 1, 'g'}, sess(func(*Session) {})[1+2+1:]...), decodeSessionErr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.decode(tc.b)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrCorrupt)
		})
	}
}

func decodeOutErr(b []byte) error      { _, err := decodeOut(b); return err }
func decodeSessionErr(b []byte) error  { _, err := decodeSession(b); return err }
func decodeWillErr(b []byte) error     { _, err := decodeWill(b); return err }
func decodeRetainedErr(b []byte) error { _, err := decodeRetained(b); return err }

// TestRecordGarbage feeds random bytes and random single-byte flips of
// valid records: each decode either succeeds or reports ErrCorrupt, and
// never panics.
func TestRecordGarbage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	decoders := []func([]byte) error{decodeOutErr, decodeSessionErr, decodeWillErr, decodeRetainedErr}
	check := func(b []byte) {
		for _, d := range decoders {
			if err := d(b); err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decoding %x: %v is not ErrCorrupt", b, err)
			}
		}
	}
	for range 2000 {
		b := make([]byte, rng.IntN(64))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if len(b) > 0 && rng.IntN(2) == 0 {
			b[0] = recordV1 // get past the version check
		}
		check(b)
	}
	for _, r := range validRecords() {
		for range 500 {
			b := append([]byte(nil), r.b...)
			b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
			check(b)
		}
	}
}
