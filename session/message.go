package session

import (
	"time"
	"unsafe"

	"github.com/mqttd/mqttd/codec"
)

// Message is one accepted application message. It is immutable once
// created: many sessions and queues share one Message.
type Message struct {
	Topic    string
	Payload  []byte
	QoS      codec.QoS // the QoS it was published with
	Retain   bool      // the RETAIN flag it was published with
	ClientID string    // publisher ("" for the broker itself)

	// MQTT 5 properties forwarded to subscribers [MQTT-3.3.2-x].
	PayloadFormat   byte
	HasFormat       bool
	ContentType     []byte
	ResponseTopic   []byte
	CorrelationData []byte
	User            []codec.UserProperty

	Created   time.Time // when the broker accepted it
	ExpiresAt time.Time // zero: never (Message Expiry Interval absent)
}

// NewMessage copies a decoded PUBLISH into a Message: the one copy of its
// topic, payload and properties, in a single allocation for the bytes.
func NewMessage(p *codec.Publish, topic []byte, clientID string, now time.Time) *Message {
	props := &p.Props
	n := len(topic) + len(p.Payload) + len(props.ContentType) + len(props.ResponseTopic) + len(props.CorrelationData)
	for _, u := range props.User {
		n += len(u.Key) + len(u.Value)
	}
	buf := make([]byte, 0, n)
	take := func(b []byte) []byte {
		if len(b) == 0 {
			return nil
		}
		s := len(buf)
		buf = append(buf, b...)
		return buf[s:len(buf):len(buf)]
	}
	m := &Message{
		QoS:      p.QoS,
		Retain:   p.Retain,
		ClientID: clientID,
		Created:  now,
	}
	if t := take(topic); t != nil {
		// The topic shares the message's one immutable buffer.
		m.Topic = unsafe.String(unsafe.SliceData(t), len(t))
	}
	m.Payload = take(p.Payload)
	if m.Payload == nil {
		m.Payload = []byte{}
	}
	if props.Has(codec.PropPayloadFormat) {
		m.PayloadFormat, m.HasFormat = props.PayloadFormat, true
	}
	m.ContentType = take(props.ContentType)
	m.ResponseTopic = take(props.ResponseTopic)
	m.CorrelationData = take(props.CorrelationData)
	if len(props.User) > 0 {
		m.User = make([]codec.UserProperty, len(props.User))
		for i, u := range props.User {
			m.User[i] = codec.UserProperty{Key: take(u.Key), Value: take(u.Value)}
		}
	}
	if props.Has(codec.PropMessageExpiry) {
		m.ExpiresAt = now.Add(time.Duration(props.MessageExpiry) * time.Second)
	}
	return m
}

// Expired reports whether the message's expiry has passed at now.
func (m *Message) Expired(now time.Time) bool {
	return !m.ExpiresAt.IsZero() && !now.Before(m.ExpiresAt)
}

// RemainingExpiry is the Message Expiry Interval to send at now, in whole
// seconds rounded up (at least 1 while not expired), and whether the
// message has an expiry at all.
func (m *Message) RemainingExpiry(now time.Time) (uint32, bool) {
	if m.ExpiresAt.IsZero() {
		return 0, false
	}
	d := m.ExpiresAt.Sub(now)
	if d <= 0 {
		return 0, true
	}
	s := (d + time.Second - 1) / time.Second
	return uint32(s), true
}
