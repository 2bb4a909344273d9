package bench

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/mqttd/mqttd/codec"
)

// ErrConfig is wrapped by every error Config.Validate returns.
var ErrConfig = errors.New("bench: invalid config")

// Config is one benchmark run. The zero value plus a Scenario is a valid
// run against 127.0.0.1:1883; zero fields take the defaults documented on
// each (DefaultConfig returns the command line's defaults, which add a
// two-second warm-up).
type Config struct {
	// Scenario is one of Scenarios(): fanin, fanout, pairs, conns or kafka.
	Scenario string
	// Addr is the broker's TCP address; it must be a loopback address.
	// Default 127.0.0.1:1883.
	Addr string
	// Version is the MQTT protocol level: codec.V311 (default) or codec.V5.
	Version codec.Version
	// QoS of every PUBLISH and SUBSCRIBE. Default 0.
	QoS codec.QoS
	// Size is the payload size in bytes, at least MinPayload. Default 64.
	Size int

	// Warmup runs traffic before the measurement window; messages sent in
	// it are not counted. Default 0 (none); mqttbench defaults to 2s.
	Warmup time.Duration
	// Duration is the measurement window. For conns it is how long the
	// idle connections are held while the broker's memory settles.
	// Default 10s.
	Duration time.Duration
	// Drain is how long to wait after the window for deliveries still on
	// their way before counting losses. Default 5s.
	Drain time.Duration

	// Inflight is the window of unacknowledged QoS 1/2 messages per
	// publisher (capped by the broker's MQTT 5 Receive Maximum). Default 64.
	// MQTT 3.1.1 has no Receive Maximum, so the tool cannot learn a smaller
	// limit of the broker. A broker may refuse what exceeds its limit with
	// a reason code that 3.1.1 cannot carry: mosquitto 2.0
	// (max_inflight_messages, default 20) then sends a plain PUBREC for a
	// QoS 2 message it dropped. Those messages count as lost, so set the
	// broker's limit to at least this window.
	Inflight int
	// QoS0Window is end-to-end flow control at QoS 0, where the protocol
	// has none: a publisher stays at most this many messages ahead of the
	// slowest of its subscribers, so a flood measures the broker rather
	// than the socket buffers in front of it. A window in which no
	// subscriber moves for a second is written off (the broker dropped it).
	// Default 0: no window, publish as fast as the broker reads.
	QoS0Window int
	// Rate is the total publish rate across publishers in messages per
	// second, paced evenly; 0 (default) publishes as fast as the broker
	// takes them.
	Rate float64

	// Publishers is the number of publishers of fanin. Default 8.
	Publishers int
	// Subscribers is the number of subscribers of fanout. Default 1000.
	Subscribers int
	// Pairs is the number of publisher/subscriber pairs of pairs. Default 50.
	Pairs int
	// Conns is the number of idle subscribed connections of conns.
	// Default 10000.
	Conns int
	// Workers is how many connections the pub/sub scenarios set up
	// concurrently, and how many goroutines read back conns' verification
	// messages. Default 64.
	Workers int
	// ConnInflight is how many connect+subscribe handshakes conns keeps in
	// flight at once on its epoll engine, 1 to 65535. Default 64: enough
	// to keep a broker busy (a handshake takes well under a millisecond
	// when it is not queued), and below mosquitto's listen backlog of 100,
	// past which the kernel drops SYNs and each drop costs a one-second
	// retransmission.
	ConnInflight int
	// NoPipeline makes conns wait for the CONNACK before it sends the
	// SUBSCRIBE: one round trip at a time. By default (false) CONNECT and
	// SUBSCRIBE leave in one write as soon as the TCP connection is up,
	// which MQTT allows, and the handshake ends when both CONNACK and SUBACK
	// are in. Either way every broker sees the same client behaviour.
	NoPipeline bool
	// Spread binds connections to source addresses 127.0.0.1 to
	// 127.0.0.Spread in turn (at most 254); 0 or 1 (default) leaves the
	// source to the kernel.
	Spread int

	// Persistent makes subscribers connect with a persistent session
	// (3.1.1 clean session 0; MQTT 5 clean start 0 and a session expiry
	// of one hour), so that a broker with a durable store must commit each
	// delivery before acknowledging the publisher. Default false.
	Persistent bool

	// KeepAlive is the MQTT keepalive sent in CONNECT, in whole seconds;
	// the tool pings idle connections at half of it. Default 0 (off).
	KeepAlive time.Duration
	// ConnectTimeout bounds each handshake step (dial, CONNACK, SUBACK).
	// Default 10s.
	ConnectTimeout time.Duration
	// Username and Password go in CONNECT when set. Default none.
	Username, Password string
	// TopicPrefix is the first topic level(s) of every topic. Default
	// "bench". Topics are PREFIX/RUN/INDEX with RUN unique to the run.
	TopicPrefix string

	// PID is the broker's process id, for its memory and CPU use; 0
	// (default) looks up the process listening on Addr's port, and leaves
	// the broker figures out when none is found (conns then fails).
	PID int
	// Label names the broker in the result (e.g. "mqttd"). Default none.
	Label string
	// Case names the benchmark case in the result (bench-compare sets it).
	// Default none.
	Case string

	// KafkaBrokers are the Kafka bootstrap servers the kafka scenario reads
	// the bridged records from, comma-separated loopback host:port.
	// Required by kafka.
	KafkaBrokers string
	// AdminAddr is the broker's admin API, where the kafka scenario
	// registers its parent topic (TopicPrefix). Default 127.0.0.1:8080.
	AdminAddr string
	// AdminToken is the admin API's bearer token. Default none.
	AdminToken string
	// KafkaOrdered makes the kafka scenario's parent topic ordered: the
	// TopicPrefix gets the orderMsg2mq- prefix. Default false.
	KafkaOrdered bool
	// KafkaVerify is when the kafka scenario reads the records back:
	// KafkaVerifyLive (default) during the whole run, in the tool's
	// process and on its CPU, so the reading competes with the publishers;
	// KafkaVerifyAfter only once the window is over, from the same start
	// offsets and with the same checks, taking the arrival time of a record
	// from its Kafka timestamp instead of the moment the tool read it.
	// After cannot drive a QoS 0 window (QoS0Window), which needs the
	// records while the publishers run.
	KafkaVerify string
}

// The values of Config.KafkaVerify.
const (
	KafkaVerifyLive  = "live"
	KafkaVerifyAfter = "after"
)

// DefaultConfig returns the defaults of cmd/mqttbench's flags.
func DefaultConfig() Config {
	c := Config{Warmup: 2 * time.Second}
	c.applyDefaults()
	return c
}

func (c *Config) applyDefaults() {
	setDefault(&c.Addr, "127.0.0.1:1883")
	setDefault(&c.Version, codec.V311)
	setDefault(&c.Size, 64)
	setDefault(&c.Duration, 10*time.Second)
	setDefault(&c.Drain, 5*time.Second)
	setDefault(&c.Inflight, 64)
	setDefault(&c.Publishers, 8)
	setDefault(&c.Subscribers, 1000)
	setDefault(&c.Pairs, 50)
	setDefault(&c.Conns, 10000)
	setDefault(&c.Workers, 64)
	setDefault(&c.ConnInflight, 64)
	setDefault(&c.Spread, 1)
	setDefault(&c.ConnectTimeout, 10*time.Second)
	setDefault(&c.TopicPrefix, "bench")
	setDefault(&c.AdminAddr, "127.0.0.1:8080")
	setDefault(&c.KafkaVerify, KafkaVerifyLive)
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// maxPayload keeps a PUBLISH well inside the largest MQTT packet.
const maxPayload = 64 << 20

// Validate checks c after applying the defaults to its zero fields. The
// error names the offending field.
func (c *Config) Validate() error {
	c.applyDefaults()
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
	}
	if lookupScenario(c.Scenario) == nil {
		return bad("scenario", "%q is not one of %s", c.Scenario, strings.Join(Scenarios(), ", "))
	}
	if !isLoopback(c.Addr) {
		return bad("addr", "%q is not a loopback host:port (the tool only measures over loopback)", c.Addr)
	}
	if c.Version != codec.V311 && c.Version != codec.V5 {
		return bad("version", "protocol level %d, want 4 (3.1.1) or 5", c.Version)
	}
	if c.QoS > codec.QoS2 {
		return bad("qos", "%d, want 0, 1 or 2", c.QoS)
	}
	if c.Size < MinPayload || c.Size > maxPayload {
		return bad("size", "%d bytes, want %d to %d", c.Size, MinPayload, maxPayload)
	}
	if c.Warmup < 0 || c.Duration < 0 || c.Drain < 0 {
		return bad("warmup/duration/drain", "negative duration")
	}
	if c.Inflight < 1 || c.Inflight > 65535 {
		return bad("inflight", "%d, want 1 to 65535", c.Inflight)
	}
	if c.QoS0Window < 0 || c.QoS0Window > 1<<30 {
		return bad("qos0-window", "%d, want 0 to %d", c.QoS0Window, 1<<30)
	}
	if c.Rate < 0 {
		return bad("rate", "%g msgs/s is negative", c.Rate)
	}
	for _, n := range []struct {
		field string
		v     int
	}{{"publishers", c.Publishers}, {"subscribers", c.Subscribers}, {"pairs", c.Pairs}, {"conns", c.Conns},
		{"workers", c.Workers}} {
		if n.v < 1 || n.v > MaxPublishers-1 {
			return bad(n.field, "%d, want 1 to %d", n.v, MaxPublishers-1)
		}
	}
	if c.ConnInflight < 1 || c.ConnInflight > 65535 {
		return bad("conn-inflight", "%d, want 1 to 65535", c.ConnInflight)
	}
	if c.Spread < 1 || c.Spread > 254 {
		return bad("spread", "%d source addresses, want 1 to 254", c.Spread)
	}
	if host, _, _ := net.SplitHostPort(c.Addr); c.Spread > 1 && net.ParseIP(host).To4() == nil {
		return bad("spread", "source addresses 127.0.0.x need an IPv4 -addr, not %q", c.Addr)
	}
	if c.KeepAlive < 0 || c.KeepAlive > 65535*time.Second || c.KeepAlive%time.Second != 0 {
		return bad("keepalive", "%s, want whole seconds from 0 to 65535", c.KeepAlive)
	}
	if c.ConnectTimeout < 0 {
		return bad("connect-timeout", "negative duration")
	}
	if c.TopicPrefix == "" || strings.ContainsAny(c.TopicPrefix, "+#\x00") || strings.HasPrefix(c.TopicPrefix, "$") {
		return bad("topic-prefix", "%q must be a non-empty topic without wildcards, not starting with $",
			c.TopicPrefix)
	}
	if c.Scenario == "kafka" {
		if err := c.validateKafka(); err != nil {
			return err
		}
	}
	if c.PID < 0 {
		return bad("pid", "%d is negative", c.PID)
	}
	return nil
}

// ParseVersion reads a protocol version as given on the command line:
// "3.1.1" (or "4") and "5" (or "5.0").
func ParseVersion(s string) (codec.Version, error) {
	switch s {
	case "3.1.1", "4", "311":
		return codec.V311, nil
	case "5", "5.0":
		return codec.V5, nil
	}
	return 0, fmt.Errorf("%w: version: %q, want 3.1.1 or 5", ErrConfig, s)
}

// versionName is the inverse of ParseVersion.
func versionName(v codec.Version) string {
	if v == codec.V5 {
		return "5"
	}
	return "3.1.1"
}

// validateKafka checks the settings of the kafka scenario.
func (c *Config) validateKafka() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
	}
	if c.KafkaBrokers == "" {
		return bad("kafka-brokers", "required by the kafka scenario")
	}
	for _, b := range strings.Split(c.KafkaBrokers, ",") {
		if !isLoopback(b) {
			return bad("kafka-brokers", "%q is not a loopback host:port", b)
		}
	}
	if !isLoopback(c.AdminAddr) {
		return bad("admin-addr", "%q is not a loopback host:port", c.AdminAddr)
	}
	switch c.KafkaVerify {
	case KafkaVerifyLive:
	case KafkaVerifyAfter:
		if c.QoS == codec.QoS0 && c.QoS0Window > 0 {
			return bad("kafka-verify", "%q reads no record during the window, so it cannot drive "+
				"-qos0-window: use %q or no window", c.KafkaVerify, KafkaVerifyLive)
		}
	default:
		return bad("kafka-verify", "%q, want %q or %q", c.KafkaVerify, KafkaVerifyLive, KafkaVerifyAfter)
	}
	// The prefix is the parent topic: one topic level, and a Kafka topic
	// name (249 characters at most, with the ordered prefix).
	if len(c.TopicPrefix)+len(OrderedPrefix) > 249 {
		return bad("topic-prefix", "%d characters: a parent topic has at most %d", len(c.TopicPrefix),
			249-len(OrderedPrefix))
	}
	for i := 0; i < len(c.TopicPrefix); i++ {
		if ch := c.TopicPrefix[i]; !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' ||
			ch == '_' || ch == '-') {
			return bad("topic-prefix", "character %q: the kafka scenario's prefix is its parent topic, "+
				"one level of [0-9A-Za-z_-]", ch)
		}
	}
	return nil
}
