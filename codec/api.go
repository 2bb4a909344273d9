package codec

import "errors"

// ErrIncomplete is returned by ParseHeader when buf does not yet hold a
// whole fixed header. It is not a protocol error: read more bytes.
var ErrIncomplete = errors.New("codec: incomplete packet")

// MalformedError is a decode failure. Field names what was wrong; Reason is
// the MQTT 5 reason code the broker sends (MalformedPacket, ProtocolError,
// UnsupportedProtocolVersion, PacketTooLarge, TopicNameInvalid, ...).
type MalformedError struct {
	Packet Type
	Field  string
	Reason ReasonCode
	Msg    string // optional detail
}

func (e *MalformedError) Error() string {
	s := "codec: malformed " + e.Packet.String() + ": " + e.Field
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	return s
}

// Unwrap lets errors.Is(err, codec.MalformedPacket) style checks work on the
// reason code.
func (e *MalformedError) Unwrap() error { return e.Reason }
