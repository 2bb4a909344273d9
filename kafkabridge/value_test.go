package kafkabridge

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/broker"
	"github.com/mqttd/mqttd/codec"
)

// jsonReference encodes v the way the bridge did before it encoded values
// by hand: encoding/json without HTML escaping. appendDeviceValue and
// appendPresenceValue must produce exactly these bytes.
func jsonReference(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(v))
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// deviceReference is the reference encoding of m's record value.
func deviceReference(t testing.TB, m *broker.Message) []byte {
	v := deviceValue{ClientID: m.ClientID, Topic: m.Topic, TS: m.Created.UnixMilli()}
	if utf8.Valid(m.Payload) {
		v.Payload = string(m.Payload)
	} else {
		v.Payload = base64.StdEncoding.EncodeToString(m.Payload)
		v.PayloadEncoding = "base64"
	}
	return jsonReference(t, v)
}

// trickyStrings are the inputs where JSON string encoders go wrong.
var trickyStrings = func() []string {
	s := []string{
		"", "plain", "dev-1", "G@@@dev_2", "meter/a/b", "a/+/#", "$SYS/x",
		`"`, `\`, `\"`, `"quoted" and \back\slashed`, `{"v":1}`,
		"<script>&amp;</script>", "\x7f", "a\x7fb",
		"\b\f\n\r\t", "line1\nline2\r\n", "tab\tsep",
		"é", "日本語", "😀", "mixed é 日 😀 ascii",
		"\u2028", "\u2029", "a\u2028b\u2029c", "\u2027\u202a", // neighbours stay literal
		"\ufffd", "x\ufffdy", // a real U+FFFD is valid UTF-8
		"\x80", "\xff", "\xfe\xff", "a\x80b", "\xc3", "ab\xc3", "\xe6\x97", "\xf0\x9f\x98", // invalid, truncated
		"\xc0\x80", "\xc1\xbf", // overlong
		"\xed\xa0\x80", "\xed\xbf\xbf", // surrogates
		"\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80", // beyond U+10FFFF
		"\xe2\x80", "\xe2\x80\xa8\xe2", // U+2028 then a truncated one
		"é\xffé", "\x00", "\x00\x00\x00", string(make([]byte, 48)),
	}
	var ctl strings.Builder
	for c := range 0x20 {
		ctl.WriteByte(byte(c))
		s = append(s, string(rune(c)), "x"+string(rune(c))+"y")
	}
	return append(s, ctl.String())
}()

func TestDeviceValueMatchesEncodingJSON(t *testing.T) {
	ts := []time.Time{time.UnixMilli(1732550400000), time.UnixMilli(0), time.UnixMilli(-1), time.UnixMilli(1<<53 + 1)}
	for i, s := range trickyStrings {
		// Each string as client ID, topic and payload, with neighbours.
		m := &broker.Message{ClientID: s, Topic: trickyStrings[(i+1)%len(trickyStrings)], Payload: []byte(s),
			QoS: codec.QoS1, Created: ts[i%len(ts)]}
		got := appendDeviceValue(nil, m)
		assert.Equal(t, string(deviceReference(t, m)), string(got), "input %q", s)
		assert.True(t, json.Valid(got), "valid JSON for %q", s)
	}
}

func TestDeviceValueRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// Runes that need care, and bytes that make UTF-8 invalid.
	pieces := []string{"a", "Z", "0", " ", "/", `"`, `\`, "\n", "\x00", "\x1f", "\x7f", "<", "é", "€", "😀",
		"\u2028", "\u2029", "\ufffd", "\x80", "\xc3", "\xe2\x80", "\xed\xa0\x80", "\xff"}
	gen := func() string {
		var b strings.Builder
		for range rng.IntN(24) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return b.String()
	}
	var buf []byte
	for i := range 20000 {
		payload := make([]byte, rng.IntN(80))
		switch i % 3 {
		case 0: // random bytes: mostly not UTF-8
			for j := range payload {
				payload[j] = byte(rng.UintN(256))
			}
		case 1:
			payload = []byte(gen())
		}
		m := &broker.Message{ClientID: gen(), Topic: gen(), Payload: payload, QoS: codec.QoS(i % 3),
			Created: time.UnixMilli(rng.Int64N(1 << 45))}
		buf = appendDeviceValue(buf[:0], m)
		if want := deviceReference(t, m); !bytes.Equal(want, buf) {
			t.Fatalf("message %+v:\n got %s\nwant %s", m, buf, want)
		}
	}
}

func TestAppendJSONKeepsPrefix(t *testing.T) {
	got, ok := appendJSONText([]byte("prefix"), []byte("ok\n"))
	assert.True(t, ok)
	assert.Equal(t, `prefix"ok\n"`, string(got))
	got, ok = appendJSONText([]byte("prefix"), []byte("bad\xff"))
	assert.False(t, ok, "invalid UTF-8")
	assert.Equal(t, "prefix", string(got), "nothing appended for invalid UTF-8")
	assert.Equal(t, `prefix"a\ufffdb"`, string(appendJSONString([]byte("prefix"), "a\xffb")))
	assert.Equal(t, `"a\ufffdb"`, string(appendJSONString(nil, []byte("a\xffb"))), "[]byte input")
}

func TestPresenceValueMatchesEncodingJSON(t *testing.T) {
	base := broker.ClientInfo{ClientID: "G@@@dev", Group: "G", Username: "u", Node: "n1", IP: "10.0.0.1",
		Transport: "tcp", Protocol: "mqtt", Version: codec.V5, KeepAlive: 30, CleanStart: true,
		ConnectedAt: time.UnixMilli(1000)}
	infos := []broker.ClientInfo{base, {}}
	noUser := base
	noUser.Username, noUser.Group, noUser.Version, noUser.CleanStart = "", "", codec.V311, false
	odd := base
	odd.ClientID, odd.Username, odd.Node, odd.IP = "c\"\\\n\u2028\xff", "<&>", "\x00", "::1"
	odd.Version, odd.KeepAlive, odd.ConnectedAt = 9, 65535, time.UnixMilli(-5)
	infos = append(infos, noUser, odd)
	for _, info := range infos {
		for _, connect := range []bool{true, false} {
			e := &presenceEvent{info: info, connect: connect, reason: "keepalive \"timeout\"", seq: 1<<63 + 5, ts: 2000}
			event, reason := EventDisconnect, e.reason
			if connect {
				event, reason = EventConnect, EventConnect
			}
			want := jsonReference(t, presenceValue{
				ClientID: info.ClientID, TS: e.ts, Seq: e.seq, Event: event, Reason: reason, IP: info.IP,
				Protocol: info.Protocol, ProtocolVersion: versionString(info.Version), Transport: info.Transport,
				Username: info.Username, Group: info.Group, Node: info.Node, KeepAlive: info.KeepAlive,
				CleanStart: info.CleanStart, ConnectedAt: info.ConnectedAt.UnixMilli(),
			})
			assert.Equal(t, string(want), string(appendPresenceValue(nil, e, event, reason)))
		}
	}
}

// TestRecordEncoderDevice: the writer's direct encoding is the spool
// encoding of deviceRecord.
func TestRecordEncoderDevice(t *testing.T) {
	var enc recordEncoder
	for i, payload := range [][]byte{[]byte(`{"v":1}`), {0xff, 0, 0xfe}, nil, bytes.Repeat([]byte("x"), 2000)} {
		for _, ordered := range []bool{false, true} {
			m := &broker.Message{ClientID: "dev-" + numbered(i), Topic: "meter/a/" + numbered(i), Payload: payload,
				QoS: codec.QoS(i % 3), Created: time.UnixMilli(1732550400000 + int64(i))}
			want := deviceRecord(m, "meter", ordered).appendTo(nil)
			got := enc.device(m, "meter", ordered)
			require.Equal(t, want, got, "payload %d, ordered %v", i, ordered)
			r, err := decodeRecord(got)
			require.NoError(t, err)
			assert.Equal(t, ordered, r.key != nil, "keyed when ordered")
		}
	}
	m := &broker.Message{ClientID: "", Topic: "meter", Payload: []byte("p"), Created: time.UnixMilli(1)}
	r, err := decodeRecord(enc.device(m, "meter", true))
	require.NoError(t, err)
	assert.NotNil(t, r.key, "an empty client ID is still a key")
	assert.Empty(t, r.key)
}

func TestRecordEncoderAllocs(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
	}{
		{"text", []byte(`{"temperature":21.5,"unit":"C","note":"<ok> & \"quoted\"\n"}`)},
		{"binary", bytes.Repeat([]byte{0xff, 0x00, 0x17}, 40)},
		{"zeros", make([]byte, 64)},
		{"unicode", []byte("température 日本 😀 \u2028")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &broker.Message{ClientID: "G@@@dev-1", Topic: "meter/dev-1/t", Payload: tt.payload, QoS: codec.QoS1,
				Created: time.UnixMilli(1732550400000)}
			var enc recordEncoder
			var value []byte
			allocs := testing.AllocsPerRun(200, func() {
				enc.device(m, "meter", true)
				value = appendDeviceValue(value[:0], m)
			})
			assert.Zero(t, allocs, "allocations per record once the buffers have grown")
		})
	}
}
