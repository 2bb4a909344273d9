package codec

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"unicode/utf8"
)

// maxString is the longest UTF-8 string or binary data field: a two-byte
// length prefix (§1.5.4), (§1.5.6).
const maxString = 1<<16 - 1

// ValidUTF8 reports whether b is a UTF-8 Encoded String the specification
// accepts: well-formed UTF-8 [MQTT-1.5.4-1] (which excludes the surrogates
// U+D800..U+DFFF) without the null character U+0000 [MQTT-1.5.4-2]. Other
// control characters and non-characters are allowed: the specification
// only says a sender should not use them (§1.5.4). (3.1.1 numbers the
// same rules [MQTT-1.5.3-1], [MQTT-1.5.3-2].)
func ValidUTF8(b []byte) bool {
	// Topics and client ids are short and mostly ASCII: check eight bytes
	// at a time for a non-ASCII or zero byte before the general path.
	for len(b) >= 8 {
		x := binary.LittleEndian.Uint64(b)
		if x&swarHigh != 0 || hasZeroByte(x) {
			break
		}
		b = b[8:]
	}
	for i, c := range b {
		if c == 0 {
			return false
		}
		if c >= utf8.RuneSelf {
			b = b[i:]
			return utf8.Valid(b) && bytes.IndexByte(b, 0) < 0
		}
	}
	return true
}

// SWAR ("SIMD within a register") constants: one bit per byte.
const (
	swarLow  = 0x0101010101010101
	swarHigh = 0x8080808080808080
)

// hasZeroByte reports whether any byte of x is 0. A byte's high bit
// survives (b-1)&^b only when b is 0, or when a borrow from a lower zero
// byte reaches it, so the test is exact (it cannot say which byte).
func hasZeroByte(x uint64) bool { return (x-swarLow)&^x&swarHigh != 0 }

// hasWildcard reports whether a topic name holds '+' or '#', which only
// topic filters may [MQTT-3.3.2-2], [MQTT-4.7.1-1].
func hasWildcard(b []byte) bool {
	for len(b) >= 8 {
		x := binary.LittleEndian.Uint64(b)
		// XOR turns the bytes equal to '+' (or '#') into zero bytes.
		if hasZeroByte(x^('+'*swarLow)) || hasZeroByte(x^('#'*swarLow)) {
			return true
		}
		b = b[8:]
	}
	for _, c := range b {
		if c == '+' || c == '#' {
			return true
		}
	}
	return false
}

// reader walks a packet body. Each method consumes one field or returns a
// *MalformedError naming it; the reader never reads past b and never
// allocates unless it fails. []byte results alias b, and a zero-length
// field reads as nil.
type reader struct {
	b      []byte
	pkt    Type
	prefix string // prepended to field names in errors ("will properties: ")
}

func (r *reader) fail(field string, reason ReasonCode, msg string) error {
	return &MalformedError{Packet: r.pkt, Field: r.prefix + field, Reason: reason, Msg: msg}
}

func (r *reader) short(field string) error {
	return r.fail(field, MalformedPacket, "truncated")
}

func (r *reader) u8(field string) (byte, error) {
	if len(r.b) < 1 {
		return 0, r.short(field)
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c, nil
}

func (r *reader) u16(field string) (uint16, error) {
	if len(r.b) < 2 {
		return 0, r.short(field)
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v, nil
}

func (r *reader) u32(field string) (uint32, error) {
	if len(r.b) < 4 {
		return 0, r.short(field)
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v, nil
}

// varint reads a Variable Byte Integer of at most four bytes (§1.5.5).
// Non-minimal encodings are accepted.
func (r *reader) varint(field string) (int, error) {
	v, shift := 0, 0
	for i := 0; i < maxVarIntBytes; i++ {
		if i >= len(r.b) {
			return 0, r.short(field)
		}
		c := r.b[i]
		v |= int(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			r.b = r.b[i+1:]
			return v, nil
		}
	}
	return 0, r.fail(field, MalformedPacket, "variable byte integer longer than 4 bytes")
}

// binary reads Binary Data: a two-byte length and that many bytes
// (§1.5.6).
func (r *reader) binary(field string) ([]byte, error) {
	if len(r.b) < 2 {
		return nil, r.short(field)
	}
	n := int(binary.BigEndian.Uint16(r.b))
	if len(r.b)-2 < n {
		return nil, r.fail(field, MalformedPacket, "length "+strconv.Itoa(n)+" exceeds the packet")
	}
	if n == 0 {
		r.b = r.b[2:]
		return nil, nil
	}
	v := r.b[2 : 2+n : 2+n]
	r.b = r.b[2+n:]
	return v, nil
}

// str reads a UTF-8 Encoded String (§1.5.4): Binary Data that must pass
// ValidUTF8 [MQTT-1.5.4-1], [MQTT-1.5.4-2].
func (r *reader) str(field string) ([]byte, error) {
	v, err := r.binary(field)
	if err != nil {
		return nil, err
	}
	if !ValidUTF8(v) {
		return nil, r.fail(field, MalformedPacket, "invalid UTF-8")
	}
	return v, nil
}

// packetID reads a Packet Identifier, which must not be 0 [MQTT-2.2.1-3].
func (r *reader) packetID() (uint16, error) {
	id, err := r.u16("packet id")
	if err != nil {
		return 0, err
	}
	if id == 0 {
		return 0, r.fail("packet id", MalformedPacket, "0")
	}
	return id, nil
}

// end fails when bytes are left after the packet's last field: the
// remaining length claimed more than the fields hold.
func (r *reader) end() error {
	if len(r.b) != 0 {
		return r.fail("remaining length", MalformedPacket, strconv.Itoa(len(r.b))+" trailing bytes")
	}
	return nil
}

// rest returns the unread bytes (nil when none) and consumes them.
func (r *reader) rest() []byte {
	if len(r.b) == 0 {
		return nil
	}
	v := r.b
	r.b = nil
	return v
}

func appendU16(dst []byte, v uint16) []byte { return append(dst, byte(v>>8), byte(v)) }

func appendU32(dst []byte, v uint32) []byte {
	return append(dst, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// appendBinary appends a two-byte length and b; strings use it too. A field
// longer than 65,535 bytes cannot be encoded: a programming error that
// panics, as no decoded packet can hold one.
func appendBinary(dst, b []byte) []byte {
	if len(b) > maxString {
		panic("codec: string or binary field longer than 65535 bytes: " + strconv.Itoa(len(b)))
	}
	dst = appendU16(dst, uint16(len(b)))
	return append(dst, b...)
}

// reasonBits is a set of reason codes: the codes a packet type may carry.
type reasonBits [4]uint64

func reasonSet(codes ...ReasonCode) reasonBits {
	var s reasonBits
	for _, c := range codes {
		s[c>>6] |= 1 << (c & 63)
	}
	return s
}

func (s *reasonBits) has(r ReasonCode) bool { return s[r>>6]&(1<<(r&63)) != 0 }
