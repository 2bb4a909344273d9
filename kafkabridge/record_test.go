package kafkabridge

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/broker"
	"github.com/mqttd/mqttd/codec"
)

func TestDeviceRecord(t *testing.T) {
	tests := []struct {
		name     string
		payload  []byte
		ordered  bool
		want     string // the whole JSON value
		wantKey  []byte
		encoding string
	}{
		{
			name:    "text payload, normal topic",
			payload: []byte(`{"v":1} <&>`),
			want:    `{"clientId":"dev-1","topic":"meter/a/b","payload":"{\"v\":1} <&>","ts":1732550400000}`,
		},
		{
			name:    "ordered topic keyed by client",
			payload: []byte("42"),
			ordered: true,
			want:    `{"clientId":"dev-1","topic":"meter/a/b","payload":"42","ts":1732550400000}`,
			wantKey: []byte("dev-1"),
		},
		{
			name:     "binary payload is base64",
			payload:  []byte{0xff, 0x00, 0xfe},
			want:     `{"clientId":"dev-1","topic":"meter/a/b","payload":"/wD+","payloadEncoding":"base64","ts":1732550400000}`,
			encoding: "base64",
		},
		{
			name:    "empty payload",
			payload: []byte{},
			want:    `{"clientId":"dev-1","topic":"meter/a/b","payload":"","ts":1732550400000}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &broker.Message{Topic: "meter/a/b", Payload: tt.payload, QoS: codec.QoS1, ClientID: "dev-1",
				Created: time.UnixMilli(1732550400000)}
			r := deviceRecord(m, "meter", tt.ordered)
			assert.Equal(t, "meter", r.topic)
			assert.JSONEq(t, tt.want, string(r.value))
			assert.Equal(t, tt.want, string(r.value), "field order and no HTML escaping")
			assert.Equal(t, tt.wantKey, r.key)
			var v deviceValue
			require.NoError(t, json.Unmarshal(r.value, &v))
			if tt.encoding == "base64" {
				got, err := base64.StdEncoding.DecodeString(v.Payload)
				require.NoError(t, err)
				assert.Equal(t, tt.payload, got, "base64 decodes to the payload")
			}
			for k, want := range map[string]string{"clientId": "dev-1", "mqttTopic": "meter/a/b", "qos": "1"} {
				got, ok := headerOf(r, k)
				assert.True(t, ok, "header %s", k)
				assert.Equal(t, want, got, "header %s", k)
			}
		})
	}
}

func TestPresenceRecord(t *testing.T) {
	info := broker.ClientInfo{ClientID: "G@@@dev", Group: "G", Username: "u", Node: "n1", IP: "10.0.0.1",
		Transport: "tcp", Protocol: "mqtt", Version: codec.V5, KeepAlive: 30, CleanStart: true,
		ConnectedAt: time.UnixMilli(1000)}
	r := presenceRecord(&presenceEvent{info: info, connect: true, seq: 7, ts: 2000}, "c", "d")
	assert.Equal(t, "c", r.topic)
	assert.Equal(t, "G@@@dev", string(r.key))
	assert.JSONEq(t, `{"clientid":"G@@@dev","ts":2000,"seq":7,"event":"connect","reason":"connect","ip":"10.0.0.1",
		"protocol":"mqtt","protocolVersion":"5.0","transport":"tcp","username":"u","group":"G","node":"n1",
		"keepalive":30,"cleanStart":true,"connectedAt":1000}`, string(r.value))

	r = presenceRecord(&presenceEvent{info: info, reason: "takeover", seq: 8, ts: 3000}, "c", "d")
	assert.Equal(t, "d", r.topic)
	var v presenceValue
	require.NoError(t, json.Unmarshal(r.value, &v))
	assert.Equal(t, "takeover", v.Reason)
	assert.Equal(t, "disconnect", v.Event)
	assert.Equal(t, uint64(8), v.Seq)
	ev, _ := headerOf(r, "event")
	assert.Equal(t, "disconnect", ev)
}

func TestRecordRoundTrip(t *testing.T) {
	tests := []record{
		{topic: "t", value: []byte("v")},
		{topic: "orderMsg2mq-x", key: []byte("c1"), value: []byte(`{"a":1}`),
			headers: []header{{[]byte("clientId"), []byte("c1")}, {[]byte("qos"), []byte("2")}}},
		{topic: "t", key: []byte{}, value: nil, headers: []header{{[]byte("e"), nil}}},
	}
	for _, r := range tests {
		b := r.appendTo(nil)
		got, err := decodeRecord(b)
		require.NoError(t, err)
		assert.Equal(t, r.topic, got.topic)
		assert.Equal(t, r.key != nil, got.key != nil, "key presence")
		assert.Equal(t, string(r.key), string(got.key))
		assert.Equal(t, string(r.value), string(got.value))
		require.Len(t, got.headers, len(r.headers))
		for i := range r.headers {
			assert.Equal(t, string(r.headers[i].key), string(got.headers[i].key))
			assert.Equal(t, string(r.headers[i].value), string(got.headers[i].value))
		}
		// Every strict prefix is malformed, never a panic.
		for i := range len(b) {
			_, err := decodeRecord(b[:i])
			assert.ErrorIs(t, err, errBadRecord, "prefix %d of %d", i, len(b))
		}
	}
}

func TestDecodeRecordErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"unknown version", []byte{2, 0, 1, 't', 0, 0}},
		{"topic longer than input", []byte{1, 0, 9, 't'}},
		{"huge header count", []byte{1, 0, 1, 't', 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"trailing bytes", []byte{1, 0, 1, 't', 0, 0, 'x'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeRecord(tt.in)
			assert.ErrorIs(t, err, errBadRecord)
		})
	}
}

// TestRecordDecoderRound: records decoded by one recordDecoder (one
// round) share a header slab and topic strings but not their contents.
func TestRecordDecoderRound(t *testing.T) {
	var want []record
	for i := range 300 { // more headers than one slab holds
		r := record{topic: "meter", value: []byte(numbered(i)),
			headers: []header{{[]byte("clientId"), []byte("c" + numbered(i))}, {[]byte("n"), []byte(numbered(i))}}}
		switch i % 3 {
		case 1:
			r.topic, r.key = "orderMsg2mq-"+numbered(i%2), []byte(numbered(i))
		case 2:
			r.headers = nil
		}
		want = append(want, r)
	}
	var rd recordDecoder
	got := make([]record, len(want))
	for i := range want {
		require.NoError(t, rd.decode(&got[i], want[i].appendTo(nil)))
	}
	require.Error(t, rd.decode(&got[0], []byte{1, 0, 9}), "malformed")
	require.NoError(t, rd.decode(&got[0], want[0].appendTo(nil)))
	for i := range want {
		assert.Equal(t, want[i].topic, got[i].topic, "record %d", i)
		assert.Equal(t, want[i].key, got[i].key, "record %d", i)
		assert.Equal(t, string(want[i].value), string(got[i].value), "record %d", i)
		require.Len(t, got[i].headers, len(want[i].headers), "record %d", i)
		for j := range want[i].headers {
			assert.Equal(t, string(want[i].headers[j].value), string(got[i].headers[j].value), "record %d header %d", i, j)
		}
	}
}

// deviceRecord builds the record of a device message for Kafka topic
// parent; ordered records are keyed by the client ID. It is the model the
// writer's recordEncoder.device is checked against: the writer appends
// the same bytes straight into the spool without building a record.
func deviceRecord(m *broker.Message, parent string, ordered bool) *record {
	r := &record{
		topic: parent,
		value: appendDeviceValue(nil, m),
		headers: []header{
			{[]byte(HeaderClientID), []byte(m.ClientID)},
			{[]byte(HeaderMQTTTopic), []byte(m.Topic)},
			{[]byte(HeaderQoS), strconv.AppendUint(nil, uint64(m.QoS), 10)},
		},
	}
	if ordered {
		r.key = []byte(m.ClientID)
	}
	return r
}
