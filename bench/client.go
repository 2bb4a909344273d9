package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mqttd/mqttd/codec"
	"golang.org/x/sys/unix"
)

// This file is the tool's own minimal MQTT client: dialing with spread
// source addresses, the CONNECT and SUBSCRIBE handshakes, and a packet
// reader. It does only what the scenarios need and keeps no per-message
// allocation on the hot path.

// ErrRefused is wrapped by the errors of a CONNACK or SUBACK refusal.
var ErrRefused = errors.New("bench: broker refused")

// dialer opens loopback connections. With spread > 1 the i-th connection
// is bound to source address 127.0.0.(1 + i%spread), which lifts the limit
// of about 28,000 ephemeral ports per source address.
type dialer struct {
	addr    string
	spread  int
	timeout time.Duration
}

func (d *dialer) dial(ctx context.Context, i int) (*wconn, error) {
	nd := net.Dialer{Timeout: d.timeout, KeepAlive: -1} // TCP keepalive off: idle is the point
	if d.spread > 1 {
		nd.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%d.spread))}
		// Bind the address now but pick the port at connect time, so the
		// kernel may reuse a port towards another destination.
		nd.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	nc, err := nd.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, fmt.Errorf("bench: dial %s (connection %d): %w", d.addr, i, err)
	}
	return &wconn{Conn: nc}, nil
}

// wconn is a connection and the time of its last write (for keepalive).
// Several goroutines may call write: each call writes whole packets in one
// net.Conn.Write, which the net package serialises, so packets never
// interleave.
type wconn struct {
	net.Conn
	lastWrite atomic.Int64 // Unix ns of the last successful write
}

func (c *wconn) write(b []byte) error {
	if _, err := c.Write(b); err != nil {
		return err
	}
	c.lastWrite.Store(time.Now().UnixNano())
	return nil
}

// packetReader frames MQTT packets from a connection. The body returned by
// next aliases its buffer and stays valid until the following call.
type packetReader struct {
	c          net.Conn
	buf        []byte
	start, end int
	// readAt is the time (Unix ns, from clk) the last Read returned: every
	// packet of one read shares it as its receive time.
	readAt int64
	clk    clock
	// onWait, when set, runs before a Read that may block: readers flush
	// the acknowledgements they batched.
	onWait func() error
}

func newPacketReader(c net.Conn, size int, clk clock) *packetReader {
	return &packetReader{c: c, buf: make([]byte, size), clk: clk}
}

// reset points the reader at another connection, dropping buffered bytes.
func (r *packetReader) reset(c net.Conn) {
	r.c, r.start, r.end, r.onWait = c, 0, 0, nil
}

// buffered reports whether bytes are waiting to be framed.
func (r *packetReader) buffered() bool { return r.end > r.start }

func (r *packetReader) next() (codec.Header, []byte, error) {
	for {
		need := 0
		if r.end > r.start {
			h, n, err := codec.ParseHeader(r.buf[r.start:r.end], 0)
			switch {
			case err == nil:
				total := n + h.Remaining
				if r.end-r.start >= total {
					body := r.buf[r.start+n : r.start+total]
					r.start += total
					return h, body, nil
				}
				need = total
			case !errors.Is(err, codec.ErrIncomplete):
				return h, nil, err
			}
		}
		if r.start == r.end {
			r.start, r.end = 0, 0
		}
		if need > len(r.buf) { // a packet larger than the buffer: grow it
			nb := make([]byte, need)
			r.end = copy(nb, r.buf[r.start:r.end])
			r.start, r.buf = 0, nb
		} else if r.end == len(r.buf) || (need > 0 && r.start+need > len(r.buf)) {
			r.end = copy(r.buf, r.buf[r.start:r.end])
			r.start = 0
		}
		if r.onWait != nil {
			if err := r.onWait(); err != nil {
				return codec.Header{}, nil, err
			}
		}
		n, err := r.c.Read(r.buf[r.end:])
		r.readAt = r.clk.now()
		r.end += n
		if err != nil && n == 0 {
			return codec.Header{}, nil, err
		}
	}
}

// connOpts are the handshake settings shared by every connection of a run.
type connOpts struct {
	version   codec.Version
	keepAlive time.Duration
	username  string
	password  string
	timeout   time.Duration // per handshake step
	// keepSession asks for a persistent session (clean start 0, MQTT 5
	// session expiry 1h).
	keepSession bool
}

// persistentOpts are o for a subscriber with a persistent session.
func (o *connOpts) persistent() *connOpts {
	p := *o
	p.keepSession = true
	return &p
}

// connInfo is what a CONNACK told the client.
type connInfo struct {
	receiveMax uint16 // the broker's Receive Maximum: our in-flight cap
}

// connectPacket is the CONNECT of a connection with options o.
func (o *connOpts) connectPacket(clientID string) codec.Connect {
	pkt := codec.Connect{
		Version:    o.version,
		CleanStart: !o.keepSession,
		KeepAlive:  uint16(o.keepAlive / time.Second),
		ClientID:   []byte(clientID),
	}
	if o.username != "" {
		pkt.UsernameFlag, pkt.Username = true, []byte(o.username)
	}
	if o.password != "" {
		pkt.PasswordFlag, pkt.Password = true, []byte(o.password)
	}
	if o.version == codec.V5 && o.keepSession {
		pkt.Props.SessionExpiry = 3600
		pkt.Props.Set(codec.PropSessionExpiry)
	}
	if o.version == codec.V5 {
		// Let the broker have as many deliveries in flight towards us as it
		// likes: the subscriber acknowledges at once.
		pkt.Props.ReceiveMaximum = 65535
		pkt.Props.Set(codec.PropReceiveMaximum)
	}
	return pkt
}

// checkConnack reads the first packet a broker sent after CONNECT: an error
// unless it is a CONNACK that accepts the connection.
func (o *connOpts) checkConnack(h codec.Header, body []byte, clientID string) (connInfo, error) {
	info := connInfo{receiveMax: 65535}
	if h.Type != codec.CONNACK {
		return info, fmt.Errorf("bench: %s got %s instead of CONNACK", clientID, h.Type)
	}
	var ack codec.Connack
	if err := ack.Decode(h, body, o.version); err != nil {
		return info, fmt.Errorf("bench: CONNACK for %s: %w", clientID, err)
	}
	if ack.Reason != codec.Success {
		return info, fmt.Errorf("%w: CONNACK for %s: %s", ErrRefused, clientID, connackReason(ack.Reason, o.version))
	}
	if ack.Props.Has(codec.PropReceiveMaximum) && ack.Props.ReceiveMaximum > 0 {
		info.receiveMax = ack.Props.ReceiveMaximum
	}
	return info, nil
}

// subscribePacket is the only SUBSCRIBE a connection sends: packet id 1,
// one filter.
func subscribePacket(filter string, qos codec.QoS) codec.Subscribe {
	return codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte(filter), QoS: qos}}}
}

// checkSuback reads the answer to subscribePacket: an error unless it is a
// SUBACK for packet id 1 that grants a QoS. PINGRESP is the caller's to
// skip.
func (o *connOpts) checkSuback(h codec.Header, body []byte, filter string) error {
	if h.Type != codec.SUBACK {
		return fmt.Errorf("bench: SUBSCRIBE %s got %s instead of SUBACK", filter, h.Type)
	}
	var ack codec.Suback
	if err := ack.Decode(h, body, o.version); err != nil {
		return fmt.Errorf("bench: SUBACK for %s: %w", filter, err)
	}
	if ack.PacketID != 1 || len(ack.Reasons) != 1 {
		return fmt.Errorf("bench: SUBACK for %s: packet id %d with %d codes, want 1 and 1", filter,
			ack.PacketID, len(ack.Reasons))
	}
	if rc := ack.Reasons[0]; rc >= 0x80 {
		return fmt.Errorf("%w: SUBSCRIBE %s: reason 0x%02x (%s)", ErrRefused, filter, byte(rc), rc)
	}
	return nil
}

// handshake sends CONNECT and waits for a successful CONNACK. rd must be a
// reader of c. Deadlines are cleared when it returns.
func handshake(c *wconn, rd *packetReader, o *connOpts, clientID string) (connInfo, error) {
	pkt := o.connectPacket(clientID)
	if err := c.SetDeadline(time.Now().Add(o.timeout)); err != nil {
		return connInfo{}, err
	}
	defer c.SetDeadline(time.Time{}) //nolint:errcheck // best effort; the next I/O reports a dead socket
	if err := c.write(pkt.Append(nil)); err != nil {
		return connInfo{}, fmt.Errorf("bench: send CONNECT for %s: %w", clientID, err)
	}
	h, body, err := rd.next()
	if err != nil {
		return connInfo{}, fmt.Errorf("bench: read CONNACK for %s: %w", clientID, eofAsRefusal(err))
	}
	return o.checkConnack(h, body, clientID)
}

// subscribe sends one SUBSCRIBE and waits for its SUBACK, which must grant
// at least one QoS. It is used before the connection carries any traffic,
// so the SUBACK is the next packet.
func subscribe(c *wconn, rd *packetReader, o *connOpts, filter string, qos codec.QoS) error {
	pkt := subscribePacket(filter, qos)
	if err := c.SetDeadline(time.Now().Add(o.timeout)); err != nil {
		return err
	}
	defer c.SetDeadline(time.Time{}) //nolint:errcheck // as in handshake
	if err := c.write(pkt.Append(nil, o.version)); err != nil {
		return fmt.Errorf("bench: send SUBSCRIBE %s: %w", filter, err)
	}
	for {
		h, body, err := rd.next()
		if err != nil {
			return fmt.Errorf("bench: read SUBACK for %s: %w", filter, eofAsRefusal(err))
		}
		if h.Type == codec.PINGRESP {
			continue
		}
		return o.checkSuback(h, body, filter)
	}
}

// connackReason names a CONNACK refusal: 3.1.1 return codes have names of
// their own (§3.2.2.3).
func connackReason(rc codec.ReasonCode, v codec.Version) string {
	names311 := [...]string{1: "unacceptable protocol version", 2: "identifier rejected", 3: "server unavailable",
		4: "bad user name or password", 5: "not authorized"}
	if v != codec.V5 && int(rc) < len(names311) && names311[rc] != "" {
		return fmt.Sprintf("return code %d (%s)", byte(rc), names311[rc])
	}
	return fmt.Sprintf("reason 0x%02x (%s)", byte(rc), rc)
}

// eofAsRefusal explains a connection the broker closed during a handshake.
func eofAsRefusal(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: connection closed by the broker", ErrRefused)
	}
	return err
}

// clientID builds a client ID that passes the broker's strict naming rules
// ([0-9A-Za-z_-]).
func clientID(run, role string, i int) string {
	return "mqttbench-" + run + "-" + role + strconv.Itoa(i)
}

// isLoopback reports whether host:port names a loopback address.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
