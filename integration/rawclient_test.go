package integration

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// This file is a deliberately small MQTT client that works at the byte level:
// it builds packets by hand and decodes what the broker sends without using
// package codec, so byte-level cases (malformed packets, oversize packets,
// exact reason codes and properties, flow control) are checked against an
// implementation independent of the broker's own.

// Control packet types, as the high nibble of the first byte [MQTT-2.1.2].
const (
	pCONNECT     byte = 1
	pCONNACK     byte = 2
	pPUBLISH     byte = 3
	pPUBACK      byte = 4
	pPUBREC      byte = 5
	pPUBREL      byte = 6
	pPUBCOMP     byte = 7
	pSUBSCRIBE   byte = 8
	pSUBACK      byte = 9
	pUNSUBSCRIBE byte = 10
	pUNSUBACK    byte = 11
	pPINGREQ     byte = 12
	pPINGRESP    byte = 13
	pDISCONNECT  byte = 14
	pAUTH        byte = 15
)

var packetNames = [...]string{"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
	"PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"}

// MQTT 5 property identifiers used by the tests [MQTT-2.2.2.2].
const (
	propPayloadFormat     byte = 0x01
	propMessageExpiry     byte = 0x02
	propContentType       byte = 0x03
	propResponseTopic     byte = 0x08
	propCorrelationData   byte = 0x09
	propSubscriptionID    byte = 0x0B
	propSessionExpiry     byte = 0x11
	propAssignedClientID  byte = 0x12
	propServerKeepAlive   byte = 0x13
	propReasonString      byte = 0x1F
	propReceiveMaximum    byte = 0x21
	propTopicAliasMaximum byte = 0x22
	propTopicAlias        byte = 0x23
	propUser              byte = 0x26
	propMaximumPacketSize byte = 0x27
	propWillDelay         byte = 0x18
)

// Property value kinds [MQTT-2.2.2.2]; every identifier the spec defines is
// listed so that the decoder can skip properties a test does not look at.
const (
	kindByte = iota + 1
	kindU16
	kindU32
	kindVBI
	kindString
	kindBinary
	kindPair
)

var propKinds = map[byte]int{
	0x01: kindByte, 0x02: kindU32, 0x03: kindString, 0x08: kindString, 0x09: kindBinary,
	0x0B: kindVBI, 0x11: kindU32, 0x12: kindString, 0x13: kindU16, 0x15: kindString,
	0x16: kindBinary, 0x17: kindByte, 0x18: kindU32, 0x19: kindByte, 0x1A: kindString,
	0x1C: kindString, 0x1F: kindString, 0x21: kindU16, 0x22: kindU16, 0x23: kindU16,
	0x24: kindByte, 0x25: kindByte, 0x26: kindPair, 0x27: kindU32, 0x28: kindByte,
	0x29: kindByte, 0x2A: kindByte,
}

// ---- encoding ----

func appendVBI(b []byte, v uint32) []byte {
	for {
		d := byte(v & 0x7F)
		v >>= 7
		if v > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if v == 0 {
			return b
		}
	}
}

func appendU16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }

// appendStr appends a two-byte length and s (UTF-8 string or binary data).
func appendStr(b []byte, s string) []byte {
	return append(appendU16(b, uint16(len(s))), s...)
}

// frame prefixes body with the fixed header: first byte and remaining length.
func frame(first byte, body []byte) []byte {
	return append(appendVBI([]byte{first}, uint32(len(body))), body...)
}

// props builds an MQTT 5 property list (without its length prefix).
type props []byte

func (p props) byte1(id, v byte) props          { return append(p, id, v) }
func (p props) u16(id byte, v uint16) props     { return appendU16(append(p, id), v) }
func (p props) u32(id byte, v uint32) props     { return binary.BigEndian.AppendUint32(append(p, id), v) }
func (p props) vbi(id byte, v uint32) props     { return appendVBI(append(p, id), v) }
func (p props) str(id byte, s string) props     { return appendStr(append(p, id), s) }
func (p props) pair(id byte, k, v string) props { return appendStr(appendStr(append(p, id), k), v) }

// appendProps appends the property length and the properties.
func appendProps(b []byte, p props) []byte {
	return append(appendVBI(b, uint32(len(p))), p...)
}

// will is the will message of a raw CONNECT.
type will struct {
	Topic   string
	Payload string
	QoS     byte
	Retain  bool
	Props   props // MQTT 5
}

// connectOpts describes a raw CONNECT.
type connectOpts struct {
	Version      byte   // protocol level: 4 (3.1.1) or 5; 3 sends "MQIsdp"
	ProtocolName string // default "MQTT" ("MQIsdp" for level 3)
	ClientID     string
	Clean        bool
	KeepAlive    uint16
	Props        props // MQTT 5 CONNECT properties
	Will         *will
	Username     *string
	Password     *string
	FlagsXOR     byte // flipped in the connect flags byte (to break them on purpose)
}

func (o connectOpts) encode() []byte {
	name := o.ProtocolName
	if name == "" {
		name = "MQTT"
		if o.Version == 3 {
			name = "MQIsdp"
		}
	}
	var flags byte
	if o.Clean {
		flags |= 0x02
	}
	if o.Will != nil {
		flags |= 0x04 | o.Will.QoS<<3
		if o.Will.Retain {
			flags |= 0x20
		}
	}
	if o.Password != nil {
		flags |= 0x40
	}
	if o.Username != nil {
		flags |= 0x80
	}
	flags ^= o.FlagsXOR
	b := appendStr(nil, name)
	b = append(b, o.Version, flags)
	b = appendU16(b, o.KeepAlive)
	if o.Version == 5 {
		b = appendProps(b, o.Props)
	}
	b = appendStr(b, o.ClientID)
	if o.Will != nil {
		if o.Version == 5 {
			b = appendProps(b, o.Will.Props)
		}
		b = appendStr(b, o.Will.Topic)
		b = appendStr(b, o.Will.Payload)
	}
	if o.Username != nil {
		b = appendStr(b, *o.Username)
	}
	if o.Password != nil {
		b = appendStr(b, *o.Password)
	}
	return frame(pCONNECT<<4, b)
}

// pub describes a raw PUBLISH.
type pub struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Retain   bool
	Dup      bool
	PacketID uint16
	Props    props
}

func (p pub) encode(version byte) []byte {
	first := pPUBLISH<<4 | p.QoS<<1
	if p.Retain {
		first |= 0x01
	}
	if p.Dup {
		first |= 0x08
	}
	b := appendStr(nil, p.Topic)
	if p.QoS > 0 {
		b = appendU16(b, p.PacketID)
	}
	if version == 5 {
		b = appendProps(b, p.Props)
	}
	return frame(first, append(b, p.Payload...))
}

// sub is one topic filter of a raw SUBSCRIBE.
type sub struct {
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
}

func subscribePacket(version byte, id uint16, p props, subs ...sub) []byte {
	b := appendU16(nil, id)
	if version == 5 {
		b = appendProps(b, p)
	}
	for _, s := range subs {
		b = appendStr(b, s.Filter)
		opts := s.QoS
		if version == 5 {
			if s.NoLocal {
				opts |= 0x04
			}
			if s.RetainAsPublished {
				opts |= 0x08
			}
			opts |= s.RetainHandling << 4
		}
		b = append(b, opts)
	}
	return frame(pSUBSCRIBE<<4|0x02, b) // reserved flags 0010 [MQTT-3.8.1-1]
}

func unsubscribePacket(version byte, id uint16, filters ...string) []byte {
	b := appendU16(nil, id)
	if version == 5 {
		b = appendProps(b, nil)
	}
	for _, f := range filters {
		b = appendStr(b, f)
	}
	return frame(pUNSUBSCRIBE<<4|0x02, b)
}

// ackPacket builds a PUBACK, PUBREC, PUBREL or PUBCOMP with reason Success
// (the short form, valid in both versions).
func ackPacket(typ byte, id uint16) []byte {
	first := typ << 4
	if typ == pPUBREL {
		first |= 0x02 // [MQTT-3.6.1-1]
	}
	return frame(first, appendU16(nil, id))
}

func disconnectPacket(version byte, reason byte, p props) []byte {
	if version != 5 {
		return []byte{pDISCONNECT << 4, 0}
	}
	return frame(pDISCONNECT<<4, appendProps([]byte{reason}, p))
}

var pingreqPacket = []byte{pPINGREQ << 4, 0}

// ---- decoding ----

// prop is one decoded property. Int holds byte, two-, four-byte and
// variable integers; Bytes holds strings, binary data and a pair's value;
// Key holds a pair's name.
type prop struct {
	ID    byte
	Int   uint32
	Bytes []byte
	Key   string
}

type propList []prop

func (l propList) get(id byte) (prop, bool) {
	for _, p := range l {
		if p.ID == id {
			return p, true
		}
	}
	return prop{}, false
}

func (l propList) has(id byte) bool { _, ok := l.get(id); return ok }

// ints returns every integer value of id, in order (subscription IDs).
func (l propList) ints(id byte) []uint32 {
	var out []uint32
	for _, p := range l {
		if p.ID == id {
			out = append(out, p.Int)
		}
	}
	return out
}

// users returns the user properties as "key=value", in order.
func (l propList) users() []string {
	var out []string
	for _, p := range l {
		if p.ID == propUser {
			out = append(out, p.Key+"="+string(p.Bytes))
		}
	}
	return out
}

// packet is a decoded packet; which fields are set depends on Type.
type packet struct {
	Type  byte
	Flags byte
	Body  []byte

	SessionPresent bool   // CONNACK
	Reason         byte   // CONNACK, PUBACK..PUBCOMP, DISCONNECT (0 when absent)
	Reasons        []byte // SUBACK, UNSUBACK
	PacketID       uint16 // PUBLISH (QoS>0), acks, SUBACK, UNSUBACK

	Topic   string // PUBLISH
	Payload []byte // PUBLISH
	QoS     byte   // PUBLISH
	Retain  bool   // PUBLISH
	Dup     bool   // PUBLISH

	Props propList // MQTT 5
}

func (p packet) String() string {
	var b strings.Builder
	if int(p.Type) < len(packetNames) {
		b.WriteString(packetNames[p.Type])
	}
	switch p.Type {
	case pCONNACK:
		fmt.Fprintf(&b, " sp=%v reason=0x%02x", p.SessionPresent, p.Reason)
	case pPUBLISH:
		pl := string(p.Payload)
		if len(pl) > 40 {
			pl = fmt.Sprintf("%s...(%d bytes)", pl[:40], len(p.Payload))
		}
		fmt.Fprintf(&b, " topic=%q qos=%d id=%d retain=%v dup=%v payload=%q", p.Topic, p.QoS, p.PacketID, p.Retain, p.Dup, pl)
	case pPUBACK, pPUBREC, pPUBREL, pPUBCOMP:
		fmt.Fprintf(&b, " id=%d reason=0x%02x", p.PacketID, p.Reason)
	case pSUBACK, pUNSUBACK:
		fmt.Fprintf(&b, " id=%d reasons=%x", p.PacketID, p.Reasons)
	case pDISCONNECT:
		fmt.Fprintf(&b, " reason=0x%02x", p.Reason)
	}
	if len(p.Props) > 0 {
		b.WriteString(" props={")
		for i, pr := range p.Props {
			if i > 0 {
				b.WriteString(" ")
			}
			switch propKinds[pr.ID] {
			case kindString, kindBinary:
				fmt.Fprintf(&b, "0x%02x:%q", pr.ID, pr.Bytes)
			case kindPair:
				fmt.Fprintf(&b, "0x%02x:%q=%q", pr.ID, pr.Key, pr.Bytes)
			default:
				fmt.Fprintf(&b, "0x%02x:%d", pr.ID, pr.Int)
			}
		}
		b.WriteString("}")
	}
	return b.String()
}

// reader walks a packet body; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(field string) {
	if r.err == nil {
		r.err = fmt.Errorf("truncated or malformed %s", field)
	}
}

func (r *reader) u8(field string) byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail(field)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u16(field string) uint16 {
	if r.err != nil || len(r.b) < 2 {
		r.fail(field)
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) u32(field string) uint32 {
	if r.err != nil || len(r.b) < 4 {
		r.fail(field)
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) vbi(field string) uint32 {
	var v uint32
	for i := 0; i < 4; i++ {
		d := r.u8(field)
		if r.err != nil {
			return 0
		}
		v |= uint32(d&0x7F) << (7 * i)
		if d&0x80 == 0 {
			return v
		}
	}
	r.fail(field)
	return 0
}

func (r *reader) bytes(field string) []byte {
	n := int(r.u16(field))
	if r.err != nil || len(r.b) < n {
		r.fail(field)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) props() propList {
	n := int(r.vbi("property length"))
	if r.err != nil || len(r.b) < n {
		r.fail("property length")
		return nil
	}
	pr := &reader{b: r.b[:n]}
	r.b = r.b[n:]
	var out propList
	for len(pr.b) > 0 && pr.err == nil {
		id := pr.u8("property id")
		p := prop{ID: id}
		switch propKinds[id] {
		case kindByte:
			p.Int = uint32(pr.u8("property"))
		case kindU16:
			p.Int = uint32(pr.u16("property"))
		case kindU32:
			p.Int = pr.u32("property")
		case kindVBI:
			p.Int = pr.vbi("property")
		case kindString, kindBinary:
			p.Bytes = pr.bytes("property")
		case kindPair:
			p.Key = string(pr.bytes("user property key"))
			p.Bytes = pr.bytes("user property value")
		default:
			pr.err = fmt.Errorf("unknown property id 0x%02x", id)
		}
		out = append(out, p)
	}
	if pr.err != nil && r.err == nil {
		r.err = pr.err
	}
	return out
}

// decodePacket decodes one packet the broker sent to a client of the given
// protocol version.
func decodePacket(version, first byte, body []byte) (packet, error) {
	p := packet{Type: first >> 4, Flags: first & 0x0F, Body: body}
	r := &reader{b: body}
	v5 := version == 5
	switch p.Type {
	case pCONNACK:
		p.SessionPresent = r.u8("connack flags")&1 == 1
		p.Reason = r.u8("connack reason")
		if v5 && len(r.b) > 0 {
			p.Props = r.props()
		}
	case pPUBLISH:
		p.QoS = p.Flags >> 1 & 3
		p.Retain = p.Flags&1 == 1
		p.Dup = p.Flags&8 == 8
		p.Topic = string(r.bytes("topic"))
		if p.QoS > 0 {
			p.PacketID = r.u16("packet id")
		}
		if v5 {
			p.Props = r.props()
		}
		if r.err == nil {
			p.Payload = r.b
			r.b = nil
		}
	case pPUBACK, pPUBREC, pPUBREL, pPUBCOMP:
		p.PacketID = r.u16("packet id")
		if v5 && len(r.b) > 0 {
			p.Reason = r.u8("reason")
			if len(r.b) > 0 {
				p.Props = r.props()
			}
		}
	case pSUBACK, pUNSUBACK:
		p.PacketID = r.u16("packet id")
		if v5 {
			p.Props = r.props()
		}
		p.Reasons = r.b
		r.b = nil
	case pDISCONNECT, pAUTH:
		if v5 && len(r.b) > 0 {
			p.Reason = r.u8("reason")
			if len(r.b) > 0 {
				p.Props = r.props()
			}
		}
	case pPINGRESP:
	default:
		return p, fmt.Errorf("broker sent packet type %d, which a server never sends", p.Type)
	}
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return p, fmt.Errorf("decoding %s from broker: %w", packetNames[p.Type], r.err)
	}
	return p, nil
}

// ---- the connection ----

// errClosed is what read reports once the broker has closed the connection.
var errClosed = errors.New("connection closed by broker")

// rawConn is a raw MQTT connection to the broker.
//
// Methods take the calling test's t, so one connection can serve a test and
// its subtests. A PUBLISH that arrives while the test waits for another
// packet type (a PUBACK racing the client's own subscribed message, say) is
// kept and handed out by the next expect(pPUBLISH) or recv, in order.
type rawConn struct {
	conn    net.Conn
	br      *bufio.Reader
	version byte
	nextID  uint16
	pending []packet // PUBLISH packets read while waiting for something else
}

// dialRaw opens a TCP connection speaking protocol version (4 or 5) for
// decoding; nothing is sent yet. The connection is closed at cleanup.
func dialRaw(t testing.TB, addr string, version byte) *rawConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err, "dialing %s", addr)
	t.Cleanup(func() { _ = conn.Close() })
	return &rawConn{conn: conn, br: bufio.NewReaderSize(conn, 64<<10), version: version}
}

// connectRaw dials addr, sends the CONNECT and returns the connection with
// the CONNACK, which must be a success.
func connectRaw(t testing.TB, addr string, o connectOpts) (*rawConn, packet) {
	t.Helper()
	if o.Version == 0 {
		o.Version = 5
	}
	c := dialRaw(t, addr, o.Version)
	ack := c.connect(t, o)
	require.Equal(t, byte(0), ack.Reason, "CONNACK for client %q refused: %s", o.ClientID, ack)
	return c, ack
}

// connect sends o and returns the CONNACK (of any reason).
func (c *rawConn) connect(t testing.TB, o connectOpts) packet {
	t.Helper()
	c.write(t, o.encode())
	return c.expect(t, pCONNACK)
}

// id returns a fresh packet identifier.
func (c *rawConn) id() uint16 {
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	return c.nextID
}

func (c *rawConn) write(t testing.TB, b []byte) {
	t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.conn.Write(b)
	require.NoError(t, err, "writing %d bytes to broker", len(b))
}

// tryWrite writes b and reports the error: for cases where the broker may
// already have closed the connection.
func (c *rawConn) tryWrite(b []byte) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.conn.Write(b)
	return err
}

// read returns the next packet, errClosed once the broker closed the
// connection, or a timeout error (os.ErrDeadlineExceeded).
func (c *rawConn) read(timeout time.Duration) (packet, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	first, err := c.br.ReadByte()
	if err != nil {
		return packet{}, closedErr(err)
	}
	var n uint32
	for i := 0; ; i++ {
		d, err := c.br.ReadByte()
		if err != nil {
			return packet{}, closedErr(err)
		}
		n |= uint32(d&0x7F) << (7 * i)
		if d&0x80 == 0 {
			break
		}
		if i == 3 {
			return packet{}, errors.New("broker sent a remaining length longer than 4 bytes")
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.br, body); err != nil {
		return packet{}, closedErr(err)
	}
	return decodePacket(c.version, first, body)
}

func closedErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, net.ErrClosed) {
		return errClosed
	}
	return err
}

// next returns the next packet, failing the test on timeout or close.
func (c *rawConn) next(t testing.TB, timeout time.Duration) packet {
	t.Helper()
	p, err := c.read(timeout)
	require.NoError(t, err, "waiting %v for a packet from the broker", timeout)
	return p
}

// expect returns the next packet of type typ. PUBLISH packets that arrive
// first are kept for later when typ is not PUBLISH; any other type is a
// failure.
func (c *rawConn) expect(t testing.TB, typ byte) packet {
	t.Helper()
	if typ == pPUBLISH && len(c.pending) > 0 {
		p := c.pending[0]
		c.pending = c.pending[1:]
		return p
	}
	for {
		p := c.next(t, 5*time.Second)
		if p.Type == pPUBLISH && typ != pPUBLISH {
			c.pending = append(c.pending, p)
			continue
		}
		require.Equal(t, packetNames[typ], packetNames[p.Type], "expected %s, broker sent %s", packetNames[typ], p)
		return p
	}
}

// expectClosed waits up to timeout for the broker to close the connection
// and returns the packets that arrived before that.
func (c *rawConn) expectClosed(t testing.TB, timeout time.Duration) []packet {
	t.Helper()
	deadline := time.Now().Add(timeout)
	got := c.pending
	c.pending = nil
	for {
		left := time.Until(deadline)
		if left <= 0 {
			require.FailNow(t, "broker did not close the connection", "within %v; packets received: %v", timeout, got)
		}
		p, err := c.read(left)
		if errors.Is(err, errClosed) {
			return got
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		require.NoError(t, err)
		got = append(got, p)
	}
}

// expectDisconnect waits for the broker to close the connection and checks
// that the last packet before the close was an MQTT 5 DISCONNECT with
// reason (any packets before it are returned).
func (c *rawConn) expectDisconnect(t testing.TB, reason byte, timeout time.Duration) []packet {
	t.Helper()
	got := c.expectClosed(t, timeout)
	require.NotEmpty(t, got, "broker closed the connection without a DISCONNECT (want reason 0x%02x)", reason)
	last := got[len(got)-1]
	require.Equal(t, packetNames[pDISCONNECT], packetNames[last.Type], "last packet before close: %s", last)
	require.Equalf(t, reason, last.Reason, "DISCONNECT reason 0x%02x, want 0x%02x (%s)", last.Reason, reason, last)
	return got[:len(got)-1]
}

// expectSilence asserts that nothing arrives for d (used only where the
// absence of a packet is the behaviour under test and no later message can
// serve as a marker).
func (c *rawConn) expectSilence(t testing.TB, d time.Duration) {
	t.Helper()
	require.Empty(t, c.pending, "unexpected PUBLISH from the broker")
	p, err := c.read(d)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return
	}
	require.NoError(t, err)
	require.FailNow(t, "unexpected packet from the broker", "%s", p)
}

// subscribe sends one SUBSCRIBE and returns its SUBACK's reason codes.
func (c *rawConn) subscribe(t testing.TB, p props, subs ...sub) []byte {
	t.Helper()
	id := c.id()
	c.write(t, subscribePacket(c.version, id, p, subs...))
	ack := c.expect(t, pSUBACK)
	require.Equal(t, id, ack.PacketID, "SUBACK packet id")
	require.Len(t, ack.Reasons, len(subs), "SUBACK reason count (%s)", ack)
	return ack.Reasons
}

// unsubscribe sends one UNSUBSCRIBE and returns its UNSUBACK's reason codes
// (MQTT 5; none in 3.1.1).
func (c *rawConn) unsubscribe(t testing.TB, filters ...string) []byte {
	t.Helper()
	id := c.id()
	c.write(t, unsubscribePacket(c.version, id, filters...))
	ack := c.expect(t, pUNSUBACK)
	require.Equal(t, id, ack.PacketID, "UNSUBACK packet id")
	return ack.Reasons
}

// publish sends p and completes its QoS flow; it returns the PUBACK or
// PUBREC reason (0 for QoS 0).
func (c *rawConn) publish(t testing.TB, p pub) byte {
	t.Helper()
	if p.QoS > 0 && p.PacketID == 0 {
		p.PacketID = c.id()
	}
	c.write(t, p.encode(c.version))
	switch p.QoS {
	case 1:
		ack := c.expect(t, pPUBACK)
		require.Equal(t, p.PacketID, ack.PacketID)
		return ack.Reason
	case 2:
		rec := c.expect(t, pPUBREC)
		require.Equal(t, p.PacketID, rec.PacketID)
		if rec.Reason >= 0x80 {
			return rec.Reason
		}
		c.write(t, ackPacket(pPUBREL, p.PacketID))
		comp := c.expect(t, pPUBCOMP)
		require.Equal(t, p.PacketID, comp.PacketID)
		return rec.Reason
	}
	return 0
}

// recv returns the next PUBLISH and acknowledges it (QoS 1: PUBACK; QoS 2:
// PUBREC, PUBREL, PUBCOMP).
func (c *rawConn) recv(t testing.TB) packet {
	t.Helper()
	p := c.expect(t, pPUBLISH)
	c.ack(t, p)
	return p
}

// ack completes the receiver's side of p's QoS flow.
func (c *rawConn) ack(t testing.TB, p packet) {
	t.Helper()
	switch p.QoS {
	case 1:
		c.write(t, ackPacket(pPUBACK, p.PacketID))
	case 2:
		c.write(t, ackPacket(pPUBREC, p.PacketID))
		rel := c.expect(t, pPUBREL)
		require.Equal(t, p.PacketID, rel.PacketID)
		c.write(t, ackPacket(pPUBCOMP, p.PacketID))
	}
}

// recvUntil acknowledges and collects PUBLISH packets until one arrives on
// topic marker, which it returns separately.
func (c *rawConn) recvUntil(t testing.TB, marker string) (before []packet, m packet) {
	t.Helper()
	for {
		p := c.recv(t)
		if p.Topic == marker {
			return before, p
		}
		before = append(before, p)
	}
}

// ping sends PINGREQ and waits for PINGRESP: proof that everything the
// broker sent before it has been read.
func (c *rawConn) ping(t testing.TB) {
	t.Helper()
	c.write(t, pingreqPacket)
	c.expect(t, pPINGRESP)
}

// disconnect sends a normal DISCONNECT and closes the socket.
func (c *rawConn) disconnect() {
	_ = c.tryWrite(disconnectPacket(c.version, 0, nil))
	_ = c.conn.Close()
}

func strp(s string) *string { return &s }
