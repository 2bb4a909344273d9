package kafkabridge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/mqttd/mqttd/broker"
	"github.com/mqttd/mqttd/codec"
)

// record is one Kafka record as it sits in the spool: what the producer
// sends, nothing more. seq is its spool sequence number (not stored).
type record struct {
	topic   string
	key     []byte // nil: no key (the partitioner spreads the records)
	value   []byte
	headers []header
	seq     uint64
}

type header struct{ key, value []byte }

// orderKey names the records whose relative order the producer keeps:
// those of one key in one topic. "" for records without a key.
func (r *record) orderKey() string {
	if r.key == nil {
		return ""
	}
	return r.topic + "\x00" + string(r.key)
}

// Spool encoding of a record, version 1. Integers are unsigned varints.
//
//	version  1 byte  (1)
//	flags    1 byte  bit 0: has a key
//	topic    length, bytes
//	key      length, bytes (only with flag bit 0)
//	value    length, bytes
//	headers  count, then per header: key length, key, value length, value
const (
	recordVersion = 1
	flagKey       = 1 << 0
)

// errBadRecord is wrapped by every decodeRecord error.
var errBadRecord = errors.New("kafkabridge: malformed spool record")

// appendTo appends r's spool encoding to dst.
func (r *record) appendTo(dst []byte) []byte {
	var flags byte
	if r.key != nil {
		flags |= flagKey
	}
	dst = append(dst, recordVersion, flags)
	dst = appendBytes(dst, r.topic)
	if r.key != nil {
		dst = appendBytes(dst, r.key)
	}
	dst = appendBytes(dst, r.value)
	dst = binary.AppendUvarint(dst, uint64(len(r.headers)))
	for _, h := range r.headers {
		dst = appendBytes(dst, h.key)
		dst = appendBytes(dst, h.value)
	}
	return dst
}

func appendBytes[T string | []byte](dst []byte, b T) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// recordEncoder turns the intake's items into spool records in buffers it
// reuses: a device message goes into the spool without an allocation.
// The bytes it returns are valid until its next call. Writer goroutine
// only.
type recordEncoder struct {
	rec   []byte // the spool record
	value []byte // a device message's JSON value (its length prefixes it)
}

// maxKeptBuffer bounds what a recordEncoder keeps between records: a
// rare huge record does not pin its buffers for good.
const maxKeptBuffer = 1 << 20

// item returns the spool record of an intake item.
func (e *recordEncoder) item(it *item, cfg *Config) []byte {
	switch {
	case it.msg != nil:
		return e.device(it.msg, it.parent, it.ordered)
	case it.ev != nil:
		return e.record(presenceRecord(it.ev, cfg.ConnectTopic, cfg.DisconnectTopic))
	default:
		return e.record(it.rec)
	}
}

// record returns r's spool encoding.
func (e *recordEncoder) record(r *record) []byte {
	e.trim()
	e.rec = r.appendTo(e.rec[:0])
	return e.rec
}

// device returns the spool encoding of deviceRecord(m, parent, ordered),
// without building the record.
func (e *recordEncoder) device(m *broker.Message, parent string, ordered bool) []byte {
	e.trim()
	e.value = appendDeviceValue(e.value[:0], m)
	var flags byte
	if ordered {
		flags |= flagKey
	}
	b := append(e.rec[:0], recordVersion, flags)
	b = appendBytes(b, parent)
	if ordered {
		b = appendBytes(b, m.ClientID)
	}
	b = appendBytes(b, e.value)
	b = binary.AppendUvarint(b, 3) // the headers, as in deviceRecord
	b = appendBytes(b, HeaderClientID)
	b = appendBytes(b, m.ClientID)
	b = appendBytes(b, HeaderMQTTTopic)
	b = appendBytes(b, m.Topic)
	b = appendBytes(b, HeaderQoS)
	var qos [20]byte
	b = appendBytes(b, strconv.AppendUint(qos[:0], uint64(m.QoS), 10))
	e.rec = b
	return b
}

func (e *recordEncoder) trim() {
	if cap(e.rec) > maxKeptBuffer {
		e.rec = nil
	}
	if cap(e.value) > maxKeptBuffer {
		e.value = nil
	}
}

// decodeRecord decodes a spool record. The record's byte fields alias b.
func decodeRecord(b []byte) (*record, error) {
	r := &record{}
	if err := new(recordDecoder).decode(r, b); err != nil {
		return nil, err
	}
	return r, nil
}

// recordDecoder decodes the spool records of a round with few
// allocations: their headers come from a shared slab and consecutive
// records of one topic share the topic string. One goroutine at a time.
type recordDecoder struct {
	headers []header // unused part of the current slab
	topic   string   // the last topic decoded
}

// reserve makes room in the header slab for the headers of n device
// records (3 each; presence events have 2).
func (rd *recordDecoder) reserve(n int) {
	if len(rd.headers) < 3*n {
		rd.headers = make([]header, 3*n)
	}
}

// decode decodes spool record b into r. r's byte fields alias b.
func (rd *recordDecoder) decode(r *record, b []byte) error {
	d := decoder{b: b}
	if v := d.byte("version"); d.err == nil && v != recordVersion {
		return fmt.Errorf("%w: version %d", errBadRecord, v)
	}
	flags := d.byte("flags")
	*r = record{}
	if t := d.bytes("topic"); string(t) == rd.topic { // compared without allocating
		r.topic = rd.topic
	} else {
		r.topic = string(t)
		rd.topic = r.topic
	}
	if flags&flagKey != 0 {
		r.key = d.bytes("key")
		if r.key == nil && d.err == nil {
			r.key = []byte{}
		}
	}
	r.value = d.bytes("value")
	n := d.uvarint("header count")
	if d.err == nil && n > uint64(len(d.b)/2) {
		d.fail("header count")
	}
	if d.err == nil && n > 0 {
		if uint64(len(rd.headers)) < n {
			rd.headers = make([]header, max(int(n), 64))
		}
		r.headers = rd.headers[:n:n]
		rd.headers = rd.headers[n:]
		for i := range r.headers {
			r.headers[i].key = d.bytes("header key")
			r.headers[i].value = d.bytes("header value")
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		*r = record{}
		return d.err
	}
	return nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(field string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errBadRecord, field)
	}
}

func (d *decoder) byte(field string) byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail(field)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(field)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(field string) []byte {
	n := d.uvarint(field)
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(field)
		return nil
	}
	if n == 0 {
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// deviceValue is the JSON value of a device message's record
// (DESIGN.md, Kafka contract). appendDeviceValue writes it; the struct is
// the schema, for reading values back.
type deviceValue struct {
	ClientID        string `json:"clientId"`
	Topic           string `json:"topic"`
	Payload         string `json:"payload"`
	PayloadEncoding string `json:"payloadEncoding,omitempty"` // "base64" when the payload is not UTF-8
	TS              int64  `json:"ts"`                        // ms since the epoch, when the broker received it
}

// Header names of device message records.
const (
	HeaderClientID  = "clientId"
	HeaderMQTTTopic = "mqttTopic"
	HeaderQoS       = "qos"
)

// presenceValue is the JSON value of a connect or disconnect event.
// appendPresenceValue writes it; the struct is the schema, for reading
// values back.
type presenceValue struct {
	ClientID        string `json:"clientid"`
	TS              int64  `json:"ts"`  // ms since the epoch, when the event happened
	Seq             uint64 `json:"seq"` // increases with every event of this client
	Event           string `json:"event"`
	Reason          string `json:"reason"`
	IP              string `json:"ip"`
	Protocol        string `json:"protocol"`
	ProtocolVersion string `json:"protocolVersion"`
	Transport       string `json:"transport"`
	Username        string `json:"username,omitempty"`
	Group           string `json:"group,omitempty"`
	Node            string `json:"node"`
	KeepAlive       uint16 `json:"keepalive"`
	CleanStart      bool   `json:"cleanStart"`
	ConnectedAt     int64  `json:"connectedAt"` // ms since the epoch
}

// presenceEvent is a connect or disconnect waiting for the spool.
type presenceEvent struct {
	info    broker.ClientInfo
	connect bool
	reason  string
	seq     uint64
	ts      int64
}

// Presence event kinds (the "event" field and header).
const (
	EventConnect    = "connect"
	EventDisconnect = "disconnect"
)

func presenceRecord(e *presenceEvent, connectTopic, disconnectTopic string) *record {
	topic, event, reason := disconnectTopic, EventDisconnect, e.reason
	if e.connect {
		topic, event, reason = connectTopic, EventConnect, EventConnect
	}
	return &record{
		topic: topic,
		key:   []byte(e.info.ClientID),
		value: appendPresenceValue(nil, e, event, reason),
		headers: []header{
			{[]byte(HeaderClientID), []byte(e.info.ClientID)},
			{[]byte("event"), []byte(event)},
		},
	}
}

func versionString(v codec.Version) string {
	switch v {
	case codec.V31:
		return "3.1"
	case codec.V311:
		return "3.1.1"
	case codec.V5:
		return "5.0"
	case 0:
		return ""
	default:
		return strconv.Itoa(int(v))
	}
}
