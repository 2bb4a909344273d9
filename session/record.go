package session

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mqttd/mqttd/codec"
)

// Record encodings of the durable store. Every value starts with a
// format version byte; integers are big-endian or uvarint, byte strings
// are uvarint-length-prefixed. A record that does not decode is reported
// as corrupt, never skipped silently.

const recordV1 = 1

// ErrCorrupt is returned when a stored record does not decode.
var ErrCorrupt = errors.New("session: corrupt record")

type enc struct{ b []byte }

func (e *enc) u8(v byte)      { e.b = append(e.b, v) }
func (e *enc) uv(v uint64)    { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) i64(v int64)    { e.b = binary.BigEndian.AppendUint64(e.b, uint64(v)) }
func (e *enc) bytes(v []byte) { e.uv(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) str(v string)   { e.uv(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) flag(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}
func (e *enc) time(t time.Time) {
	if t.IsZero() {
		e.i64(0)
		return
	}
	e.i64(t.UnixNano())
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, what)
	}
}

func (d *dec) u8() byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail("truncated byte")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) uv() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) i64() int64 {
	if d.err != nil || len(d.b) < 8 {
		d.fail("truncated int64")
		return 0
	}
	v := int64(binary.BigEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *dec) bytes() []byte {
	n := d.uv()
	if d.err != nil || uint64(len(d.b)) < n {
		d.fail("truncated bytes")
		return nil
	}
	v := make([]byte, n)
	copy(v, d.b[:n])
	d.b = d.b[n:]
	return v
}

func (d *dec) optBytes() []byte {
	v := d.bytes()
	if len(v) == 0 {
		return nil
	}
	return v
}

func (d *dec) str() string { return string(d.bytes()) }
func (d *dec) flag() bool  { return d.u8() != 0 }
func (d *dec) time() time.Time {
	n := d.i64()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func (d *dec) end(what string) error {
	if d.err == nil && len(d.b) != 0 {
		d.fail(what + ": trailing bytes")
	}
	if d.err != nil {
		return fmt.Errorf("%s: %w", what, d.err)
	}
	return nil
}

func (e *enc) message(m *Message) {
	e.str(m.Topic)
	e.bytes(m.Payload)
	e.u8(byte(m.QoS))
	e.flag(m.Retain)
	e.str(m.ClientID)
	e.flag(m.HasFormat)
	e.u8(m.PayloadFormat)
	e.bytes(m.ContentType)
	e.bytes(m.ResponseTopic)
	e.bytes(m.CorrelationData)
	e.uv(uint64(len(m.User)))
	for _, u := range m.User {
		e.bytes(u.Key)
		e.bytes(u.Value)
	}
	e.time(m.Created)
	e.time(m.ExpiresAt)
}

func (d *dec) message() *Message {
	m := &Message{}
	m.Topic = d.str()
	m.Payload = d.bytes()
	m.QoS = codec.QoS(d.u8())
	m.Retain = d.flag()
	m.ClientID = d.str()
	m.HasFormat = d.flag()
	m.PayloadFormat = d.u8()
	m.ContentType = d.optBytes()
	m.ResponseTopic = d.optBytes()
	m.CorrelationData = d.optBytes()
	n := d.uv()
	if n > 1<<16 {
		d.fail("user property count")
		return m
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		m.User = append(m.User, codec.UserProperty{Key: d.bytes(), Value: d.bytes()})
	}
	m.Created = d.time()
	m.ExpiresAt = d.time()
	if m.QoS > codec.QoS2 {
		d.fail("qos")
	}
	return m
}

// encodeOut encodes an outbound message record.
func encodeOut(f *Inflight) []byte {
	e := enc{b: make([]byte, 0, 64+len(f.Msg.Payload)+len(f.Msg.Topic))}
	e.u8(recordV1)
	e.uv(f.Seq)
	e.uv(uint64(f.PacketID))
	e.u8(byte(f.QoS))
	e.flag(f.Retain)
	e.u8(byte(f.Phase))
	e.uv(uint64(len(f.SubIDs)))
	for _, id := range f.SubIDs {
		e.uv(uint64(id))
	}
	e.message(f.Msg)
	return e.b
}

func decodeOut(b []byte) (*Inflight, error) {
	d := dec{b: b}
	if v := d.u8(); v != recordV1 {
		d.fail(fmt.Sprintf("record version %d", v))
	}
	f := &Inflight{}
	f.Seq = d.uv()
	f.PacketID = uint16(d.uv())
	f.QoS = codec.QoS(d.u8())
	f.Retain = d.flag()
	f.Phase = Phase(d.u8())
	n := d.uv()
	if n > 1<<16 {
		d.fail("subscription id count")
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		f.SubIDs = append(f.SubIDs, uint32(d.uv()))
	}
	f.Msg = d.message()
	if f.PacketID == 0 || f.QoS == codec.QoS0 || f.QoS > codec.QoS2 || f.Phase > PhaseReleased {
		d.fail("outbound message fields")
	}
	return f, d.end("outbound message")
}

// encodeSession encodes a session's meta record.
func encodeSession(s *Session) []byte {
	e := enc{b: make([]byte, 0, 64+32*len(s.subs))}
	e.u8(recordV1)
	e.str(s.ClientID)
	e.str(s.Group())
	e.i64(int64(s.Expiry))
	e.time(s.DisconnectedAt)
	e.uv(uint64(len(s.subs)))
	for _, sub := range s.subs {
		e.str(sub.Filter)
		e.u8(byte(sub.QoS))
		e.flag(sub.NoLocal)
		e.flag(sub.RetainAsPublished)
		e.u8(sub.RetainHandling)
		e.uv(uint64(sub.ID))
	}
	w, at := s.PendingWill()
	e.flag(w != nil)
	if w != nil {
		e.i64(int64(w.Delay))
		e.time(at)
		e.message(w.Msg)
	}
	return e.b
}

func decodeSession(b []byte) (*Session, error) {
	d := dec{b: b}
	if v := d.u8(); v != recordV1 {
		d.fail(fmt.Sprintf("record version %d", v))
	}
	id, group := d.str(), d.str()
	if !strings.HasPrefix(id, group) || len(group) > 0xFFFF {
		d.fail("group not a prefix of the client id")
		group = ""
	}
	s := New(id, group)
	s.Expiry = time.Duration(d.i64())
	s.DisconnectedAt = d.time()
	n := d.uv()
	if n > 1<<24 {
		d.fail("subscription count")
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		sub := Subscription{Filter: d.str(), QoS: codec.QoS(d.u8()), NoLocal: d.flag(),
			RetainAsPublished: d.flag(), RetainHandling: d.u8(), ID: uint32(d.uv())}
		if sub.QoS > codec.QoS2 || sub.RetainHandling > 2 {
			d.fail("subscription options")
		}
		s.SetSub(sub)
	}
	if d.flag() {
		w := &Will{Delay: time.Duration(d.i64())}
		at := d.time()
		w.Msg = d.message()
		s.SetPendingWill(w, at)
	}
	return s, d.end("session " + id)
}

// encodeWill encodes a connected client's will record.
func encodeWill(w *Will) []byte {
	e := enc{}
	e.u8(recordV1)
	e.i64(int64(w.Delay))
	e.message(w.Msg)
	return e.b
}

func decodeWill(b []byte) (*Will, error) {
	d := dec{b: b}
	if v := d.u8(); v != recordV1 {
		d.fail(fmt.Sprintf("record version %d", v))
	}
	w := &Will{Delay: time.Duration(d.i64())}
	w.Msg = d.message()
	return w, d.end("will")
}

// encodeRetained encodes a retained message record.
func encodeRetained(m *Message) []byte {
	e := enc{b: make([]byte, 0, 48+len(m.Payload)+len(m.Topic))}
	e.u8(recordV1)
	e.message(m)
	return e.b
}

func decodeRetained(b []byte) (*Message, error) {
	d := dec{b: b}
	if v := d.u8(); v != recordV1 {
		d.fail(fmt.Sprintf("record version %d", v))
	}
	m := d.message()
	return m, d.end("retained message")
}
