package kafkabridge

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mqttd/mqttd/broker"
	"github.com/mqttd/mqttd/codec"
)

// FuzzDecodeRecord: decoding arbitrary spool bytes never panics, and what
// decodes re-encodes to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range []record{
		{topic: "meter", value: []byte(`{"clientId":"a"}`)},
		{topic: "orderMsg2mq-x", key: []byte("c"), value: []byte("v"), headers: []header{{[]byte("qos"), []byte("1")}}},
	} {
		f.Add(r.appendTo(nil))
	}
	f.Add([]byte{1, 0, 0, 0, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		if again := r.appendTo(nil); !bytes.Equal(again, b) {
			// Only non-minimal varints may differ; they must decode alike.
			r2, err := decodeRecord(again)
			if err != nil || r2.topic != r.topic || !bytes.Equal(r2.value, r.value) || len(r2.headers) != len(r.headers) {
				t.Fatalf("re-encoding changed the record")
			}
		}
	})
}

// FuzzDeviceValue: for any client ID, topic and payload, the hand-written
// record value is byte for byte what encoding/json writes, and it
// unmarshals to the same values: the strings as given (invalid UTF-8
// replaced by U+FFFD), the payload as given (base64 when it is not
// UTF-8).
func FuzzDeviceValue(f *testing.F) {
	for i, s := range trickyStrings {
		f.Add(s, trickyStrings[(i+7)%len(trickyStrings)], []byte(s), int64(1732550400000))
	}
	f.Add("dev", "meter/x", []byte{0xff, 0, 0xfe}, int64(-1))
	f.Fuzz(func(t *testing.T, clientID, topic string, payload []byte, ts int64) {
		m := &broker.Message{ClientID: clientID, Topic: topic, Payload: payload, QoS: codec.QoS1,
			Created: time.UnixMilli(ts)}
		got := appendDeviceValue([]byte("prefix"), m)
		if !bytes.HasPrefix(got, []byte("prefix")) {
			t.Fatalf("the prefix was overwritten: %q", got)
		}
		got = got[len("prefix"):]
		if want := deviceReference(t, m); !bytes.Equal(got, want) {
			t.Fatalf("differs from encoding/json:\n got %s\nwant %s", got, want)
		}
		var v deviceValue
		if err := json.Unmarshal(got, &v); err != nil {
			t.Fatalf("not JSON: %v: %s", err, got)
		}
		if !replacedPerByte(v.ClientID, clientID) {
			t.Fatalf("clientId %q, want %q", v.ClientID, clientID)
		}
		if !replacedPerByte(v.Topic, topic) {
			t.Fatalf("topic %q, want %q", v.Topic, topic)
		}
		p := []byte(v.Payload)
		if v.PayloadEncoding == "base64" {
			var err error
			if p, err = base64.StdEncoding.DecodeString(v.Payload); err != nil {
				t.Fatalf("payload: %v", err)
			}
		} else if v.PayloadEncoding != "" {
			t.Fatalf("payloadEncoding %q", v.PayloadEncoding)
		}
		if !bytes.Equal(p, payload) || v.TS != m.Created.UnixMilli() {
			t.Fatalf("payload %q ts %d, want %q %d", p, v.TS, payload, m.Created.UnixMilli())
		}
	})
}

// replacedPerByte reports whether got is s with every byte that does not
// start a valid UTF-8 sequence replaced by U+FFFD.
func replacedPerByte(got, s string) bool {
	var want strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			want.WriteRune(utf8.RuneError)
		} else {
			want.WriteString(s[i : i+n])
		}
		i += n
	}
	return got == want.String()
}
