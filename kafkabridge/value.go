package kafkabridge

import (
	"encoding/base64"
	"strconv"
	"unicode/utf8"

	"github.com/mqttd/mqttd/broker"
)

// JSON record values, appended by hand into a caller's buffer.
//
// Every record value passes through here, so it must not allocate: the
// functions below append to dst and return it, as strconv's Append
// functions do. Their output is, byte for byte, what encoding/json
// writes for deviceValue and presenceValue with SetEscapeHTML(false) (the
// same field order and omitempty fields, the same string escaping);
// value_test.go holds them to that on a table of tricky strings and
// FuzzDeviceValue on arbitrary ones.
//
// Strings are escaped as RFC 8259 section 7 requires and as encoding/json
// does it:
//
//   - '"' and '\' are escaped with a backslash;
//   - control characters (below U+0020) use the two-character escapes
//     \b \f \n \r \t where JSON has one, \u00XX (lower-case hex) otherwise;
//   - U+2028 and U+2029 become \u2028 and \u2029 (valid JSON either way,
//     but not valid JavaScript string literals);
//   - '<', '>', '&' and DEL (U+007F) stay as they are: no HTML escaping;
//   - a byte that does not start a valid UTF-8 sequence becomes \ufffd
//     (the replacement character), one per byte: client IDs, topics and
//     presence fields are meant to be UTF-8, and JSON cannot carry
//     anything else. Payloads are never replaced: one that is not valid
//     UTF-8 goes out as base64 (payloadEncoding "base64").

// appendDeviceValue appends the JSON value of m's record (deviceValue,
// DESIGN.md "Kafka contract") to dst.
func appendDeviceValue(dst []byte, m *broker.Message) []byte {
	dst = append(dst, `{"clientId":`...)
	dst = appendJSONString(dst, m.ClientID)
	dst = append(dst, `,"topic":`...)
	dst = appendJSONString(dst, m.Topic)
	dst = append(dst, `,"payload":`...)
	if text, ok := appendJSONText(dst, m.Payload); ok {
		dst = text
	} else {
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, m.Payload)
		dst = append(dst, `","payloadEncoding":"base64"`...)
	}
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, m.Created.UnixMilli(), 10)
	return append(dst, '}')
}

// appendPresenceValue appends the JSON value of a presence event
// (presenceValue) to dst.
func appendPresenceValue(dst []byte, e *presenceEvent, event, reason string) []byte {
	in := &e.info
	dst = append(dst, `{"clientid":`...)
	dst = appendJSONString(dst, in.ClientID)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, e.ts, 10)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, e.seq, 10)
	dst = append(dst, `,"event":`...)
	dst = appendJSONString(dst, event)
	dst = append(dst, `,"reason":`...)
	dst = appendJSONString(dst, reason)
	dst = append(dst, `,"ip":`...)
	dst = appendJSONString(dst, in.IP)
	dst = append(dst, `,"protocol":`...)
	dst = appendJSONString(dst, in.Protocol)
	dst = append(dst, `,"protocolVersion":`...)
	dst = appendJSONString(dst, versionString(in.Version))
	dst = append(dst, `,"transport":`...)
	dst = appendJSONString(dst, in.Transport)
	if in.Username != "" { // omitempty
		dst = append(dst, `,"username":`...)
		dst = appendJSONString(dst, in.Username)
	}
	if in.Group != "" { // omitempty
		dst = append(dst, `,"group":`...)
		dst = appendJSONString(dst, in.Group)
	}
	dst = append(dst, `,"node":`...)
	dst = appendJSONString(dst, in.Node)
	dst = append(dst, `,"keepalive":`...)
	dst = strconv.AppendUint(dst, uint64(in.KeepAlive), 10)
	dst = append(dst, `,"cleanStart":`...)
	dst = strconv.AppendBool(dst, in.CleanStart)
	dst = append(dst, `,"connectedAt":`...)
	dst = strconv.AppendInt(dst, in.ConnectedAt.UnixMilli(), 10)
	return append(dst, '}')
}

// appendJSONString appends s as a quoted JSON string, invalid UTF-8
// replaced by U+FFFD.
func appendJSONString[T string | []byte](dst []byte, s T) []byte {
	dst, _ = appendQuoted(dst, s, false)
	return dst
}

// appendJSONText appends p as a quoted JSON string if p is valid UTF-8.
// Otherwise it returns dst unchanged and false.
func appendJSONText(dst, p []byte) ([]byte, bool) {
	return appendQuoted(dst, p, true)
}

// Byte classes for appendQuoted.
const (
	plain   = iota // printable ASCII: copied as is
	escaped        // '"', '\' and control characters
	multi          // the first byte of a multi-byte sequence (or not UTF-8)
)

// byteClass classifies every byte value for appendQuoted's inner loop.
var byteClass = func() (t [256]uint8) {
	for b := range t {
		switch {
		case b >= utf8.RuneSelf:
			t[b] = multi
		case b < 0x20 || b == '"' || b == '\\':
			t[b] = escaped
		}
	}
	return t
}()

// shortEscape holds the two-character escape of the control characters
// that have one (0: use \u00XX).
var shortEscape = [0x20]byte{'\b': 'b', '\f': 'f', '\n': 'n', '\r': 'r', '\t': 't'}

const lowerHex = "0123456789abcdef"

// appendQuoted appends s as a quoted, escaped JSON string. With strict,
// invalid UTF-8 makes it stop and return dst as it was and false;
// without, each invalid byte becomes \ufffd.
func appendQuoted[T string | []byte](dst []byte, s T, strict bool) ([]byte, bool) {
	orig := len(dst)
	dst = append(dst, '"')
	done := 0 // s[:done] is in dst
	for i := 0; i < len(s); {
		b := s[i]
		switch byteClass[b] {
		case plain:
			i++
			continue
		case escaped:
			dst = append(dst, s[done:i]...)
			switch {
			case b == '"' || b == '\\':
				dst = append(dst, '\\', b)
			case shortEscape[b] != 0:
				dst = append(dst, '\\', shortEscape[b])
			default:
				dst = append(dst, '\\', 'u', '0', '0', lowerHex[b>>4], lowerHex[b&0xf])
			}
			i++
			done = i
			continue
		}
		// Multi-byte: decode at most utf8.UTFMax bytes. Converting so
		// short a []byte to a string for the decoder does not allocate.
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		switch {
		case r == utf8.RuneError && size == 1:
			if strict {
				return dst[:orig], false
			}
			dst = append(dst, s[done:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[done:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', lowerHex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		done = i
	}
	dst = append(dst, s[done:]...)
	return append(dst, '"'), true
}
