package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Payload layout, big-endian:
//
//	offset 0  8 bytes  publisher index (high 24 bits) | sequence number (low 40 bits)
//	offset 8  8 bytes  send time, Unix nanoseconds
//	offset 16 ...      padding (zeros) up to the configured payload size
const (
	// MinPayload is the smallest payload the tool sends: the 16-byte header.
	MinPayload = 16
	// MaxPublishers bounds the publisher index (24 bits).
	MaxPublishers = 1 << 24
	// MaxSeq bounds the sequence number (40 bits): about 35 hours at ten
	// million messages a second.
	MaxSeq = 1<<40 - 1

	seqBits = 40
)

// ErrShortPayload is returned by DecodePayload for a payload shorter than
// MinPayload: the message did not come from this tool.
var ErrShortPayload = errors.New("bench: payload shorter than 16 bytes")

// Header is what a payload carries besides its padding.
type Header struct {
	Pub  uint32 // publisher index, below MaxPublishers
	Seq  uint64 // per-publisher sequence number from 0, at most MaxSeq
	Sent int64  // send time, Unix nanoseconds
}

// AppendPayload appends a payload of size bytes (at least MinPayload)
// carrying h to dst. It panics when size, h.Pub or h.Seq is out of range:
// Config.Validate rules those out before a run starts.
func AppendPayload(dst []byte, h Header, size int) []byte {
	if size < MinPayload || h.Pub >= MaxPublishers || h.Seq > MaxSeq {
		panic(fmt.Sprintf("bench: payload out of range: size %d, publisher %d, seq %d", size, h.Pub, h.Seq))
	}
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.Pub)<<seqBits|h.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.Sent))
	for range size - MinPayload {
		dst = append(dst, 0)
	}
	return dst
}

// PutPayload overwrites the header of a payload already laid out by
// AppendPayload (the publisher reuses one encoded packet and patches only
// the 16 header bytes). p must be at least MinPayload long.
func PutPayload(p []byte, h Header) {
	binary.BigEndian.PutUint64(p, uint64(h.Pub)<<seqBits|h.Seq)
	binary.BigEndian.PutUint64(p[8:], uint64(h.Sent))
}

// DecodePayload reads the header of a payload. It does not look at the
// padding, so a broker may not be blamed for a size the tool did not check;
// the caller compares len(p) with the configured size if it cares.
func DecodePayload(p []byte) (Header, error) {
	if len(p) < MinPayload {
		return Header{}, fmt.Errorf("%w: %d bytes", ErrShortPayload, len(p))
	}
	v := binary.BigEndian.Uint64(p)
	return Header{
		Pub:  uint32(v >> seqBits),
		Seq:  v & MaxSeq,
		Sent: int64(binary.BigEndian.Uint64(p[8:])),
	}, nil
}

// clock gives Unix nanoseconds that never go backwards: a wall-clock base
// read once, advanced by the monotonic clock. Payload timestamps and receive
// times come from the same process, so a wall-clock step during a run does
// not show up as latency.
type clock struct{ base time.Time }

func newClock() clock { return clock{base: time.Now()} }

// now returns the current time in Unix nanoseconds.
func (c clock) now() int64 { return c.base.UnixNano() + int64(time.Since(c.base)) }
