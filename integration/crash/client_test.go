package crash

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/codec"
)

// maxPacket bounds what the client reads (the broker's default maximum).
const maxPacket = 128 << 10

// conn is one MQTT connection driven by hand: the caller sends each
// packet itself and reads packets one at a time. Writes are safe from
// several goroutines; reads belong to one.
type conn struct {
	nc net.Conn
	br *bufio.Reader
	v  codec.Version

	wmu  sync.Mutex // guards wbuf and the writes
	wbuf []byte
}

// packet is one packet read from the broker. Body is the packet's own
// copy: it stays valid after the next read.
type packet struct {
	h    codec.Header
	body []byte
}

// connOpts are the CONNECT settings the tests vary.
type connOpts struct {
	ClientID      string
	Version       codec.Version // default 3.1.1
	Clean         bool
	SessionExpiry uint32 // MQTT 5; 0: absent
	ReceiveMax    uint16 // MQTT 5; 0: absent
}

// dial connects and completes CONNECT/CONNACK. A refused CONNACK is an
// error.
func dial(addr string, o connOpts) (*conn, *codec.Connack, error) {
	if o.Version == 0 {
		o.Version = codec.V311
	}
	nc, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, nil, err
	}
	c := &conn{nc: nc, br: bufio.NewReaderSize(nc, 64<<10), v: o.Version}
	p := codec.Connect{Version: o.Version, CleanStart: o.Clean, ClientID: []byte(o.ClientID)}
	if o.Version == codec.V5 {
		if o.SessionExpiry > 0 {
			p.Props.Set(codec.PropSessionExpiry)
			p.Props.SessionExpiry = o.SessionExpiry
		}
		if o.ReceiveMax > 0 {
			p.Props.Set(codec.PropReceiveMaximum)
			p.Props.ReceiveMaximum = o.ReceiveMax
		}
	}
	if err := c.send(p.Append); err != nil {
		_ = nc.Close()
		return nil, nil, err
	}
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	pk, err := c.read()
	_ = nc.SetReadDeadline(time.Time{})
	if err != nil {
		_ = nc.Close()
		return nil, nil, fmt.Errorf("waiting for CONNACK: %w", err)
	}
	if pk.h.Type != codec.CONNACK {
		_ = nc.Close()
		return nil, nil, fmt.Errorf("got %v, want CONNACK", pk.h.Type)
	}
	var ack codec.Connack
	if err := ack.Decode(pk.h, pk.body, c.v); err != nil {
		_ = nc.Close()
		return nil, nil, fmt.Errorf("CONNACK: %w", err)
	}
	if ack.Reason != codec.Success {
		_ = nc.Close()
		return nil, nil, fmt.Errorf("CONNACK refused: %v", ack.Reason)
	}
	return c, &ack, nil
}

// mustDial is dial that fails the test on error.
func mustDial(t testing.TB, addr string, o connOpts) (*conn, bool) {
	t.Helper()
	c, ack, err := dial(addr, o)
	require.NoError(t, err, "connect %s", o.ClientID)
	t.Cleanup(c.Close)
	return c, ack.SessionPresent
}

// send encodes one packet with enc and writes it.
func (c *conn) send(enc func([]byte) []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = enc(c.wbuf[:0])
	_, err := c.nc.Write(c.wbuf)
	return err
}

// read reads one whole packet.
func (c *conn) read() (packet, error) {
	var hdr [5]byte
	n := 0
	for {
		b, err := c.br.ReadByte()
		if err != nil {
			return packet{}, err
		}
		hdr[n] = b
		n++
		h, hn, err := codec.ParseHeader(hdr[:n], maxPacket)
		if errors.Is(err, codec.ErrIncomplete) {
			if n == len(hdr) {
				return packet{}, errors.New("fixed header too long")
			}
			continue
		}
		if err != nil {
			return packet{}, err
		}
		if hn != n {
			return packet{}, fmt.Errorf("fixed header of %d bytes, read %d", hn, n)
		}
		body := make([]byte, h.Remaining)
		if _, err := io.ReadFull(c.br, body); err != nil {
			return packet{}, err
		}
		return packet{h: h, body: body}, nil
	}
}

// readTimeout reads one packet, waiting at most d.
func (c *conn) readTimeout(d time.Duration) (packet, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(d))
	defer func() { _ = c.nc.SetReadDeadline(time.Time{}) }()
	return c.read()
}

// Close closes the socket without DISCONNECT (as a crashed client would).
func (c *conn) Close() { _ = c.nc.Close() }

// disconnect sends DISCONNECT and waits (up to 5 s) until the broker has
// closed the connection, so the session is offline when it returns: a
// PUBLISH from another connection right after is queued, not sent to a
// connection on its way out. Not for a connection a readLoop reads: see
// disconnectReading.
func (c *conn) disconnect() {
	d := codec.Disconnect{}
	_ = c.send(func(b []byte) []byte { return d.Append(b, c.v) })
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.Copy(io.Discard, c.br)
	_ = c.nc.Close()
}

// disconnectReading is disconnect for a connection whose packets a
// readLoop forwards to pkts: the wait is for pkts to close.
func (c *conn) disconnectReading(pkts <-chan packet) {
	d := codec.Disconnect{}
	_ = c.send(func(b []byte) []byte { return d.Append(b, c.v) })
	timeout := time.After(5 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-pkts:
		case <-timeout:
			open = false
		}
	}
	_ = c.nc.Close()
}

func (c *conn) publish(p *codec.Publish) error {
	return c.send(func(b []byte) []byte { return p.Append(b, c.v) })
}

func (c *conn) ack(kind codec.Type, id uint16) error {
	a := codec.Ack{Kind: kind, PacketID: id}
	return c.send(func(b []byte) []byte { return a.Append(b, c.v) })
}

func (c *conn) subscribe(id uint16, qos codec.QoS, filters ...string) error {
	p := codec.Subscribe{PacketID: id}
	for _, f := range filters {
		p.Subs = append(p.Subs, codec.Subscription{Filter: []byte(f), QoS: qos})
	}
	return c.send(func(b []byte) []byte { return p.Append(b, c.v) })
}

// mustSubscribe subscribes and waits for a SUBACK granting every filter.
func (c *conn) mustSubscribe(t testing.TB, qos codec.QoS, filters ...string) {
	t.Helper()
	require.NoError(t, c.subscribe(1, qos, filters...))
	pk := c.expect(t, codec.SUBACK)
	var sa codec.Suback
	require.NoError(t, sa.Decode(pk.h, pk.body, c.v))
	require.Len(t, sa.Reasons, len(filters))
	for i, r := range sa.Reasons {
		require.Falsef(t, r.IsError(), "SUBACK refused %s: %v", filters[i], r)
	}
}

// expect reads the next packet and fails unless it is of type typ.
func (c *conn) expect(t testing.TB, typ codec.Type) packet {
	t.Helper()
	pk, err := c.readTimeout(waitMsg)
	require.NoError(t, err, "waiting for %v", typ)
	require.Equal(t, typ, pk.h.Type, "want %v", typ)
	return pk
}

// expectAck reads the next packet and fails unless it is the
// acknowledgement kind for packet id.
func (c *conn) expectAck(t testing.TB, kind codec.Type, id uint16) {
	t.Helper()
	pk := c.expect(t, kind)
	var a codec.Ack
	require.NoError(t, a.Decode(pk.h, pk.body, c.v))
	require.Equal(t, id, a.PacketID, "%v packet id", kind)
}

// expectPublish reads the next packet and fails unless it is a PUBLISH.
// The result owns its bytes.
func (c *conn) expectPublish(t testing.TB) *codec.Publish {
	t.Helper()
	pk := c.expect(t, codec.PUBLISH)
	var p codec.Publish
	require.NoError(t, p.Decode(pk.h, pk.body, c.v))
	return &p
}

// mustPublish publishes at QoS 1 or 2 and completes the exchange:
// PUBACK, or PUBREC then PUBREL then PUBCOMP. Retained when retain.
func (c *conn) mustPublish(t testing.TB, id uint16, qos codec.QoS, topic, payload string, retain bool) {
	t.Helper()
	p := &codec.Publish{Topic: []byte(topic), Payload: []byte(payload), QoS: qos, PacketID: id, Retain: retain}
	require.NoError(t, c.publish(p))
	switch qos {
	case codec.QoS1:
		c.expectAck(t, codec.PUBACK, id)
	case codec.QoS2:
		c.expectAck(t, codec.PUBREC, id)
		require.NoError(t, c.ack(codec.PUBREL, id))
		c.expectAck(t, codec.PUBCOMP, id)
	}
}
