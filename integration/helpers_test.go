package integration

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/broker"
	"github.com/mqttd/mqttd/internal/brokertest"
)

// TestMain raises the default parallelism: the parallel tests spend their
// time waiting for broker timers (keepalive, expiry, will delay), so
// running more of them than there are CPUs shortens the suite without
// loading the machine. An explicit -test.parallel wins.
func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "test.parallel" {
			explicit = true
		}
	})
	if !explicit {
		_ = flag.Set("test.parallel", "8")
	}
	os.Exit(m.Run())
}

// Protocol levels.
const (
	v311 byte = 4
	v5   byte = 5
)

func versionName(v byte) string {
	if v == v5 {
		return "v5"
	}
	return "v311"
}

const (
	// waitMsg bounds every wait for something the broker should do at once.
	waitMsg = 5 * time.Second
	// poll is the require.Eventually tick.
	poll = 5 * time.Millisecond
)

// anon is the configuration most tests start from: defaults plus anonymous
// access.
func anon() broker.Config { return broker.Config{AllowAnonymous: true} }

// start runs a broker with cfg on a TCP listener.
func start(t testing.TB, cfg broker.Config) *brokertest.Server {
	t.Helper()
	return brokertest.Start(t, brokertest.Options{Config: cfg})
}

// msg is a delivered message as the application sees it, whichever client
// library received it.
type msg struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	Props   *paho.PublishProperties // MQTT 5 only
}

// client is what the version-independent tests need from a client. Methods
// take the calling test's t, so a client made by a test can serve its
// subtests (failing the right one).
type client interface {
	// Sub subscribes to filter and returns the SUBACK reason code; it fails
	// the test only on transport errors.
	Sub(t testing.TB, filter string, qos byte) byte
	// Pub publishes and, for QoS 1 and 2, waits for the flow to complete.
	Pub(t testing.TB, topic string, payload []byte, qos byte, retain bool)
	// Recv returns the next delivered message, failing after waitMsg.
	Recv(t testing.TB) msg
	// Close disconnects normally.
	Close()
}

// barrier makes sure the broker has processed everything c sent before:
// a QoS 1 publish on the same connection is acknowledged only after the
// packets ahead of it (QoS 0 publishes have no acknowledgement of their own).
func barrier(t testing.TB, c client) {
	t.Helper()
	c.Pub(t, "sync/barrier", nil, 1, false)
}

// recvUntil collects messages until one arrives on topic marker.
func recvUntil(t testing.TB, c client, marker string) []msg {
	t.Helper()
	var out []msg
	for {
		m := c.Recv(t)
		if m.Topic == marker {
			return out
		}
		out = append(out, m)
	}
}

// newClient connects a client of the given version to the TCP listener.
func newClient(t testing.TB, s *brokertest.Server, version byte, id string) client {
	t.Helper()
	if version == v5 {
		return connectV5(t, s.TCP, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
	}
	return connectV3(t, "tcp://"+s.TCP, id, true, nil)
}

// ---- MQTT 5: paho.golang ----

// v5Client is a paho.golang client on a connection the test owns, so the
// test can drop it without a DISCONNECT.
type v5Client struct {
	*paho.Client
	Conn net.Conn
	Ack  *paho.Connack

	msgs chan msg
	disc chan *paho.Disconnect

	// aliases resolves broker-to-client topic aliases the way an
	// application must (paho.golang hands them over unresolved); only the
	// client's receive goroutine touches it.
	aliases map[uint16]string
	// rawPubs records each PUBLISH as received (topic as on the wire, the
	// alias property), for alias tests.
	mu      sync.Mutex
	rawPubs []msg
}

// dialV5 connects a paho.golang client over conn and returns the client
// and the CONNACK; err is the Connect error (a refused CONNACK comes with
// a non-nil Connack and an error).
func dialV5(t testing.TB, conn net.Conn, cp *paho.Connect) (*v5Client, *paho.Connack, error) {
	t.Helper()
	c := &v5Client{
		Conn:    conn,
		msgs:    make(chan msg, 20000),
		disc:    make(chan *paho.Disconnect, 4),
		aliases: map[uint16]string{},
	}
	cfg := paho.ClientConfig{
		ClientID: cp.ClientID,
		Conn:     conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			p := pr.Packet
			m := msg{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, Props: p.Properties}
			c.mu.Lock()
			c.rawPubs = append(c.rawPubs, m)
			c.mu.Unlock()
			if p.Properties != nil && p.Properties.TopicAlias != nil {
				a := *p.Properties.TopicAlias
				if p.Topic != "" {
					c.aliases[a] = p.Topic
				} else {
					m.Topic = c.aliases[a] // "" when the broker never set it: the test sees that
				}
			}
			c.msgs <- m
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) { c.disc <- d },
		PacketTimeout:      waitMsg,
	}
	c.Client = paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), waitMsg)
	defer cancel()
	ack, err := c.Client.Connect(ctx, cp)
	c.Ack = ack
	if err == nil {
		t.Cleanup(func() {
			select {
			case <-c.Client.Done():
			default:
				_ = c.Client.Disconnect(&paho.Disconnect{ReasonCode: 0})
			}
		})
	}
	return c, ack, err
}

// connectV5 dials addr over TCP and connects; the CONNACK must succeed.
func connectV5(t testing.TB, addr string, cp *paho.Connect) *v5Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitMsg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	c, ack, err := dialV5(t, conn, cp)
	require.NoError(t, err, "MQTT 5 connect as %q: CONNACK %+v", cp.ClientID, ack)
	return c
}

func (c *v5Client) Sub(t testing.TB, filter string, qos byte) byte {
	t.Helper()
	return c.SubOpts(t, nil, paho.SubscribeOptions{Topic: filter, QoS: qos})[0]
}

// SubOpts sends one SUBSCRIBE and returns the reason codes; a refused
// subscription is not an error here (the caller checks the codes).
func (c *v5Client) SubOpts(t testing.TB, props *paho.SubscribeProperties, opts ...paho.SubscribeOptions) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitMsg)
	defer cancel()
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Properties: props, Subscriptions: opts})
	require.NotNil(t, sa, "SUBSCRIBE %+v: no SUBACK: %v", opts, err)
	require.Len(t, sa.Reasons, len(opts), "SUBACK reasons for %+v", opts)
	return sa.Reasons
}

func (c *v5Client) Pub(t testing.TB, topic string, payload []byte, qos byte, retain bool) {
	t.Helper()
	c.PubProps(t, &paho.Publish{Topic: topic, Payload: payload, QoS: qos, Retain: retain})
}

// PubProps publishes p and returns the PUBACK/PUBREC/PUBCOMP reason,
// failing on errors other than a reason code.
func (c *v5Client) PubProps(t testing.TB, p *paho.Publish) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitMsg)
	defer cancel()
	resp, err := c.Publish(ctx, p)
	if resp == nil {
		require.NoError(t, err, "publishing to %q", p.Topic)
		return 0
	}
	return resp.ReasonCode
}

func (c *v5Client) Recv(t testing.TB) msg {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitMsg):
		require.FailNow(t, "no message", "MQTT 5 client %q received nothing within %v", c.ClientID(), waitMsg)
		return msg{}
	}
}

// Disc waits for the broker's DISCONNECT.
func (c *v5Client) Disc(t testing.TB) *paho.Disconnect {
	t.Helper()
	select {
	case d := <-c.disc:
		return d
	case <-time.After(waitMsg):
		require.FailNow(t, "no DISCONNECT", "MQTT 5 client %q got no DISCONNECT within %v", c.ClientID(), waitMsg)
		return nil
	}
}

// Dropped waits until the client's connection is gone.
func (c *v5Client) Dropped(t testing.TB) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(waitMsg):
		require.FailNow(t, "connection still up", "client %q", c.ClientID())
	}
}

func (c *v5Client) Close() {
	_ = c.Client.Disconnect(&paho.Disconnect{ReasonCode: 0})
	<-c.Done()
}

// Drop closes the network connection without a DISCONNECT.
func (c *v5Client) Drop(t testing.TB) {
	_ = c.Conn.Close()
	<-c.Done()
}

// RawPubs returns the PUBLISH packets received so far, as on the wire.
func (c *v5Client) RawPubs() []msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]msg(nil), c.rawPubs...)
}

// ---- MQTT 3.1.1: paho.mqtt.golang ----

// v3Client is a paho.mqtt.golang client speaking 3.1.1.
type v3Client struct {
	mqtt.Client
	id   string
	msgs chan msg

	// SessionPresent is the CONNACK's session present flag.
	SessionPresent bool

	connMu sync.Mutex
	conn   net.Conn // the network connection (for Drop)
}

// dialV3 connects to brokerURL ("tcp://", "ssl://", "ws://", "wss://");
// mod may change the options. It returns the connect error, if any.
func dialV3(t testing.TB, brokerURL, id string, clean bool, mod func(*mqtt.ClientOptions)) (*v3Client, error) {
	t.Helper()
	c := &v3Client{id: id, msgs: make(chan msg, 20000)}
	o := mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID(id).SetCleanSession(clean).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).
		SetKeepAlive(30 * time.Second).SetConnectTimeout(waitMsg).SetWriteTimeout(waitMsg).
		SetOrderMatters(true).SetMessageChannelDepth(20000).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			c.msgs <- msg{Topic: m.Topic(), Payload: m.Payload(), QoS: m.Qos(), Retain: m.Retained()}
		})
	u, err := url.Parse(brokerURL)
	require.NoError(t, err)
	if u.Scheme == "tcp" {
		// Own the socket, so Drop can cut it without a DISCONNECT.
		o.SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
			conn, err := net.DialTimeout("tcp", u.Host, waitMsg)
			if err == nil {
				c.connMu.Lock()
				c.conn = conn
				c.connMu.Unlock()
			}
			return conn, err
		})
	}
	if mod != nil {
		mod(o)
	}
	c.Client = mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(waitMsg) {
		return c, fmt.Errorf("3.1.1 connect as %q: no CONNACK within %v", id, waitMsg)
	}
	if err := tok.Error(); err != nil {
		return c, err
	}
	c.SessionPresent = tok.(*mqtt.ConnectToken).SessionPresent()
	t.Cleanup(func() {
		if c.IsConnectionOpen() {
			c.Disconnect(100)
		}
	})
	return c, nil
}

// connectV3 is dialV3 that must succeed.
func connectV3(t testing.TB, brokerURL, id string, clean bool, mod func(*mqtt.ClientOptions)) *v3Client {
	t.Helper()
	c, err := dialV3(t, brokerURL, id, clean, mod)
	require.NoError(t, err, "3.1.1 connect as %q to %s", id, brokerURL)
	return c
}

func (c *v3Client) Sub(t testing.TB, filter string, qos byte) byte {
	t.Helper()
	tok := c.Subscribe(filter, qos, nil)
	require.True(t, tok.WaitTimeout(waitMsg), "no SUBACK for %q", filter)
	res := tok.(*mqtt.SubscribeToken).Result()
	code, ok := res[filter]
	if !ok && len(res) == 1 {
		// paho.mqtt.golang keys shared subscriptions without their
		// $share/<group>/ or $queue/ prefix.
		for _, code = range res {
			ok = true
		}
	}
	require.True(t, ok, "SUBACK result for %q missing: %v (err %v)", filter, res, tok.Error())
	return code
}

func (c *v3Client) Pub(t testing.TB, topic string, payload []byte, qos byte, retain bool) {
	t.Helper()
	tok := c.Publish(topic, qos, retain, payload)
	require.True(t, tok.WaitTimeout(waitMsg), "publish to %q not completed within %v", topic, waitMsg)
	require.NoError(t, tok.Error(), "publish to %q", topic)
}

func (c *v3Client) Recv(t testing.TB) msg {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitMsg):
		require.FailNow(t, "no message", "3.1.1 client %q received nothing within %v", c.id, waitMsg)
		return msg{}
	}
}

func (c *v3Client) Close() { c.Disconnect(250) }

// Drop closes the network connection without a DISCONNECT. (paho.mqtt.golang
// treats a read error on a connection closed under it as its own doing and
// never reports it lost, so Drop does not wait for that.)
func (c *v3Client) Drop(t testing.TB) {
	t.Helper()
	c.connMu.Lock()
	conn := c.conn
	c.connMu.Unlock()
	require.NotNil(t, conn, "Drop needs a tcp:// client")
	_ = conn.Close()
}

// ---- misc ----

// numbered returns the payload "<prefix>-<i>".
func numbered(prefix string, i int) []byte { return []byte(fmt.Sprintf("%s-%04d", prefix, i)) }

func u16p(v uint16) *uint16 { return &v }
func u32p(v uint32) *uint32 { return &v }
func bytep(v byte) *byte    { return &v }

// tlsDial opens a TLS connection for paho.golang (tls.Conn is not safe for
// concurrent writes, hence the wrapper paho recommends).
func tlsDial(t testing.TB, addr string, cfg *tls.Config) net.Conn {
	t.Helper()
	d := &net.Dialer{Timeout: waitMsg}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	require.NoError(t, err, "TLS dial %s", addr)
	t.Cleanup(func() { _ = conn.Close() })
	return &lockedConn{Conn: conn}
}

// lockedConn serializes writes to a net.Conn that is not safe for them.
type lockedConn struct {
	net.Conn
	mu sync.Mutex
}

func (c *lockedConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.Write(b)
}

// publishAsync publishes from a goroutine other than the test's: it
// reports failures as an error instead of failing the test.
func publishAsync(c client, topic string, payload []byte, qos byte) error {
	switch c := c.(type) {
	case *v5Client:
		ctx, cancel := context.WithTimeout(context.Background(), waitMsg)
		defer cancel()
		resp, err := c.Publish(ctx, &paho.Publish{Topic: topic, Payload: payload, QoS: qos})
		if err != nil {
			return err
		}
		if resp != nil && resp.ReasonCode >= 0x80 {
			return fmt.Errorf("reason code 0x%02x", resp.ReasonCode)
		}
		return nil
	case *v3Client:
		tok := c.Publish(topic, qos, false, payload)
		if !tok.WaitTimeout(waitMsg) {
			return fmt.Errorf("not completed within %v", waitMsg)
		}
		return tok.Error()
	}
	return fmt.Errorf("unknown client type %T", c)
}

// n64 converts a Stats counter (int64 or uint64) for comparisons.
func n64(v any) int64 {
	rv := reflect.ValueOf(v)
	switch {
	case rv.CanInt():
		return rv.Int()
	case rv.CanUint():
		return int64(rv.Uint())
	}
	panic(fmt.Sprintf("n64: %T is not an integer", v))
}
