// Package codec is the MQTT 3.1.1 and MQTT 5.0 wire codec: packet types,
// properties, reason codes, framing, decoding without allocation and
// encoding into a caller's buffer. It depends on the standard library only
// and knows nothing of connections, sessions or topics beyond the rules of
// the wire format.
//
// # Framing and decoding
//
// Framing is apart from parsing. ParseHeader reads the fixed header at the
// start of a buffer and reports ErrIncomplete until it is whole; it rejects
// a bad first byte at once and an oversize packet as soon as the length
// prefix is known, before the body is buffered. Once len(buf) reaches
// n+h.Remaining, the packet's Decode method takes the body
// buf[n:n+h.Remaining]:
//
//	h, n, err := codec.ParseHeader(buf, maxPacket)
//	if err == codec.ErrIncomplete || (err == nil && len(buf) < n+h.Remaining) {
//		return // read more
//	}
//	if err != nil { ... } // *codec.MalformedError
//	body := buf[n : n+h.Remaining]
//	switch h.Type {
//	case codec.PUBLISH:
//		err = pub.Decode(h, body, version)
//	...
//	}
//
// CONNECT learns the protocol version from its own bytes; every other
// packet is decoded in the version the CONNECT established.
//
// # Aliasing and lifetime
//
// Decode never copies: every []byte of a decoded packet (topic, payload,
// client id, string and binary properties, user properties) aliases the
// body it was decoded from and is valid only as long as that buffer is not
// reused. Whatever outlives the buffer must be copied once by the caller. A
// zero-length field decodes as nil; presence is told by flags (Connect's
// UsernameFlag, PasswordFlag, WillFlag) and by Properties.Present.
//
// # Allocation
//
// Decode methods do not allocate on success. The exceptions are slices a
// packet holds several of: Subscribe.Subs, Suback.Reasons,
// Unsubscribe.Filters, Unsuback.Reasons, Properties.User and
// Properties.SubscriptionIDs. Decode resets these to length 0 and appends,
// so decoding into a reused value allocates only until their capacity
// suffices. A failed decode allocates its *MalformedError.
//
// Encoders append a whole packet, fixed header included, to a caller's
// slice and do not allocate when it has room. Publish.AppendHeader writes
// everything but the payload, so the payload can be written as its own
// vector and never copied; Publish.Size gives the encoded length to check
// against a peer's Maximum Packet Size. MQTT 5 acknowledgements, DISCONNECT
// and AUTH use their shortest valid forms. Encoders trust their input: a
// value no packet can carry (a string over 65,535 bytes, a variable byte
// integer over MaxVarInt) is a programming error and panics.
//
// # Errors
//
// Every malformed input yields a *MalformedError naming the packet and the
// field, with the MQTT 5 reason code the broker answers with
// (MalformedPacket, ProtocolError, UnsupportedProtocolVersion,
// PacketTooLarge, TopicNameInvalid, TopicAliasInvalid). No input makes a
// decoder panic or read outside its buffer.
//
// # Concurrency
//
// The package has no mutable global state. A packet value must not be used
// by two goroutines at once while one decodes into it; distinct values are
// independent.
//
// # Specification references
//
// Comments cite the normative statements of the MQTT 5.0 OASIS standard as
// [MQTT-x.y.z-n], marking 3.1.1 numbering where it differs, and sections
// as §x.y.z.
package codec
