package codec

import "strconv"

// MaxVarInt is the largest value a Variable Byte Integer can carry
// (§1.5.5): 268,435,455, four bytes of seven bits. It bounds a packet's
// remaining length and a Subscription Identifier.
const MaxVarInt = 1<<28 - 1

// maxVarIntBytes is the longest Variable Byte Integer encoding (§1.5.5).
const maxVarIntBytes = 4

// fixedFlags holds the only fixed-header flags allowed for each packet type
// but PUBLISH, whose flags carry DUP, QoS and RETAIN [MQTT-2.1.3-1].
var fixedFlags = [16]byte{PUBREL: 0x2, SUBSCRIBE: 0x2, UNSUBSCRIBE: 0x2}

// ParseHeader decodes the fixed header at the start of buf: the packet type
// and flags byte followed by the remaining length (§2.1.1). n is the
// fixed header's length, so the whole packet is buf[:n+h.Remaining] and its
// body, which the Decode methods take, is buf[n:n+h.Remaining].
//
// ParseHeader returns ErrIncomplete while buf does not hold the whole fixed
// header. It does not check whether the body is buffered: the caller
// compares len(buf) with n+h.Remaining. It rejects a bad first byte at once,
// before the remaining length is complete, and an oversize packet as soon as
// its length prefix is known, so the caller never buffers it:
//
//   - packet type 0 (reserved) (§2.1.2);
//   - fixed-header flags other than the specification's for every type but
//     PUBLISH: 0b0010 for PUBREL, SUBSCRIBE and UNSUBSCRIBE, 0 for the
//     others [MQTT-2.1.3-1];
//   - a PUBLISH with QoS 3 [MQTT-3.3.1-4];
//   - a remaining length longer than four bytes (§1.5.5);
//   - n+h.Remaining > maxPacket when maxPacket > 0 (Reason PacketTooLarge);
//   - a PINGREQ or PINGRESP with a non-zero remaining length (§3.12.1),
//     (§3.13.1).
//
// Every rejection is a *MalformedError; h then holds what was decoded so far,
// for logging. ParseHeader does not allocate unless it fails.
func ParseHeader(buf []byte, maxPacket int) (h Header, n int, err error) {
	if len(buf) == 0 {
		return h, 0, ErrIncomplete
	}
	h.Type = Type(buf[0] >> 4)
	h.Flags = buf[0] & 0x0f
	if err := checkFixedHeader(h); err != nil {
		return h, 0, err
	}
	rem, shift := 0, 0
	for i := 1; ; i++ {
		if i > maxVarIntBytes {
			return h, 0, &MalformedError{Packet: h.Type, Field: "remaining length", Reason: MalformedPacket,
				Msg: "longer than 4 bytes"}
		}
		if i >= len(buf) {
			return h, 0, ErrIncomplete
		}
		c := buf[i]
		rem |= int(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			n = i + 1
			break
		}
	}
	h.Remaining = rem
	if maxPacket > 0 && n+rem > maxPacket {
		return h, 0, &MalformedError{Packet: h.Type, Field: "remaining length", Reason: PacketTooLarge,
			Msg: strconv.Itoa(n+rem) + " bytes exceeds the maximum of " + strconv.Itoa(maxPacket)}
	}
	if (h.Type == PINGREQ || h.Type == PINGRESP) && rem != 0 {
		return h, 0, &MalformedError{Packet: h.Type, Field: "remaining length", Reason: MalformedPacket,
			Msg: "must be 0"}
	}
	return h, n, nil
}

// checkFixedHeader validates the type and flags of a fixed header.
func checkFixedHeader(h Header) error {
	switch {
	case h.Type == 0:
		return &MalformedError{Packet: h.Type, Field: "packet type", Reason: MalformedPacket, Msg: "reserved type 0"}
	case h.Type == PUBLISH:
		if (h.Flags>>1)&3 == 3 { // [MQTT-3.3.1-4]
			return &MalformedError{Packet: h.Type, Field: "qos", Reason: MalformedPacket, Msg: "QoS 3"}
		}
	case h.Type > AUTH:
		// A Type is a nibble, but a hand-built Header may hold more.
		return &MalformedError{Packet: h.Type, Field: "packet type", Reason: MalformedPacket}
	case h.Flags != fixedFlags[h.Type]: // [MQTT-2.1.3-1]
		return &MalformedError{Packet: h.Type, Field: "fixed header flags", Reason: MalformedPacket,
			Msg: "0x" + strconv.FormatUint(uint64(h.Flags), 16)}
	}
	return nil
}

// expectHeader checks that a Decode method got the header of its own packet
// type with valid flags: the decoders may be handed a Header built by hand
// rather than by ParseHeader.
func expectHeader(h Header, t Type) error {
	if h.Type != t {
		return &MalformedError{Packet: t, Field: "packet type", Reason: MalformedPacket,
			Msg: "decoding a " + h.Type.String() + " header"}
	}
	return checkFixedHeader(h)
}

// AppendVarInt appends v as a Variable Byte Integer (§1.5.5): seven bits
// a byte, least significant first, the high bit set on all but the last.
// v must be in [0, MaxVarInt]; anything else is a programming error and
// panics, since no valid packet can carry it.
func AppendVarInt(dst []byte, v int) []byte {
	if v < 0 || v > MaxVarInt {
		panic("codec: variable byte integer out of range: " + strconv.Itoa(v))
	}
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}

// VarIntSize returns the number of bytes AppendVarInt writes for v, 1 to 4.
// It returns 4 for values above MaxVarInt (which AppendVarInt refuses), so a
// size computed with it still exceeds any real packet limit.
func VarIntSize(v int) int {
	switch {
	case v < 1<<7:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<21:
		return 3
	default:
		return 4
	}
}

// appendFixedHeader appends the first byte and the remaining length.
func appendFixedHeader(dst []byte, t Type, flags byte, remaining int) []byte {
	dst = append(dst, byte(t)<<4|flags&0x0f)
	return AppendVarInt(dst, remaining)
}

// packetSize is the total length of a packet whose body is remaining bytes.
func packetSize(remaining int) int { return 1 + VarIntSize(remaining) + remaining }
