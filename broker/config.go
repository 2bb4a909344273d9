package broker

import (
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/mqttd/mqttd/session"
)

// Names selects the client-ID and topic naming rules.
type Names string

// Naming policies.
const (
	// NamesStrict: client IDs of at most 128 characters from [0-9A-Za-z_-]
	// (optionally "Group@@@Device"); topic levels from [0-9A-Za-z_-], a
	// first level may start with '$'. The default.
	NamesStrict Names = "strict"
	// NamesMQTT: the plain MQTT rules (any UTF-8 within the spec).
	NamesMQTT Names = "mqtt"
)

// Config configures a Broker. The zero value works: every zero field takes
// the default documented beside it.
type Config struct {
	// MaxPacketSize is the largest MQTT packet accepted or sent, in bytes.
	// Larger inbound packets: MQTT 5 DISCONNECT 0x95, 3.1.1 close.
	// Default 128 KiB.
	MaxPacketSize int

	// Names is the naming policy for client IDs and topics. Default strict.
	Names Names

	// MaxClientIDLen is the longest client ID accepted (strict names).
	// Default 128.
	MaxClientIDLen int

	// EnhancedAuth handles MQTT 5 enhanced authentication by
	// Authentication Method name. A CONNECT naming another method gets
	// CONNACK 0x8C. nil: none.
	EnhancedAuth map[string]EnhancedAuth

	// AllowAnonymous lets clients connect without a username. Default false.
	AllowAnonymous bool

	// Users authenticates username/password pairs. nil: only anonymous
	// access (when AllowAnonymous) is possible.
	Users Authenticator

	// SessionMaxExpiry caps a persistent session's expiry after its
	// client disconnects (3.1.1 persistent sessions get exactly this).
	// Default 2h.
	SessionMaxExpiry time.Duration

	// SessionMaxQueued is how many QoS>0 messages an offline persistent
	// session queues; the oldest is dropped (and counted) past it.
	// Default 10.
	SessionMaxQueued int

	// MaxPending is how many QoS>0 messages an online session holds beyond
	// its in-flight window before it pushes back: past it the message is
	// still queued, and the publisher's PUBACK/PUBREC waits until the queue
	// has room again (backpressure, never loss). Default 1000.
	MaxPending int

	// MaxKeepAlive caps the keepalive a client may ask for, in seconds; a
	// larger or zero request gets this value as MQTT 5 Server Keep Alive
	// (3.1.1 clients are held to 1.5x their own value). 0: no cap.
	MaxKeepAlive uint16

	// ReceiveMaximum is how many inbound QoS 1/2 publishes a client may
	// have unacknowledged (QoS 2 not yet released, QoS 1 whose PUBACK the
	// broker still holds); one more is DISCONNECT 0x93 (MQTT 5). Default
	// 65535 (not sent in CONNACK).
	ReceiveMaximum uint16

	// MaxInflight caps the outbound in-flight window per client (the
	// client's Receive Maximum, when smaller, wins). Default 1000.
	MaxInflight uint16

	// TopicAliasMaximum is how many topic aliases a client may use towards
	// the broker, and at most how many the broker assigns towards a client
	// that allows them. Default 65535 inbound; 0 disables both.
	TopicAliasMaximum uint16

	// DisableTopicAlias turns topic aliases off both ways.
	DisableTopicAlias bool

	// OutboundLimit is how many bytes may wait to be written to one
	// connection; past it QoS 0 messages to that client are dropped and
	// counted, QoS 1/2 stay in the session. Default 1 MiB.
	OutboundLimit int

	// ConnectTimeout closes a connection that sends no CONNECT in time.
	// Default 10s.
	ConnectTimeout time.Duration

	// MaxConnections caps open connections (0: no cap); one more is
	// closed at once.
	MaxConnections int

	// MaxConnectionsPerIP caps open connections from one IP address (0:
	// no cap).
	MaxConnectionsPerIP int

	// ConnectRate caps accepted CONNECTs per second across the broker
	// (burst: one second's worth); past it CONNACK 0x9F (MQTT 5) / 0x03
	// (3.1.1). 0: no cap.
	ConnectRate int

	// MaxMsgRate caps PUBLISH packets per second per client (burst: two
	// seconds' worth); past it MQTT 5 DISCONNECT 0x96, 3.1.1 close. 0: no cap.
	MaxMsgRate int

	// DenySubscribe lists topic filters nobody may subscribe to (exact
	// filter match; SUBACK 0x80 / 0x87). Grants per user come with Users.
	DenySubscribe []string

	// Store keeps session state; with a durable backend, the broker
	// restores what it holds at New. nil: an in-memory store.
	Store *session.Store

	// Hooks receive broker events (bridges, gateways, stats). May be nil.
	Hooks []Hook

	// Ackers may hold publishers' acknowledgements until their messages
	// are safe elsewhere (the Kafka bridge). May be nil.
	Ackers []Acker

	// NodeID names this broker in client info. Default "mqttd".
	NodeID string

	// Log is the broker's logger. Zero value: discard.
	Log zerolog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxPacketSize == 0 {
		c.MaxPacketSize = 128 << 10
	}
	if c.Names == "" {
		c.Names = NamesStrict
	}
	if c.MaxClientIDLen == 0 {
		c.MaxClientIDLen = 128
	}
	if c.SessionMaxExpiry == 0 {
		c.SessionMaxExpiry = 2 * time.Hour
	}
	if c.SessionMaxQueued == 0 {
		c.SessionMaxQueued = 10
	}
	if c.MaxPending == 0 {
		c.MaxPending = 1000
	}
	if c.ReceiveMaximum == 0 {
		c.ReceiveMaximum = 65535
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = 1000
	}
	if c.TopicAliasMaximum == 0 && !c.DisableTopicAlias {
		c.TopicAliasMaximum = 65535
	}
	if c.DisableTopicAlias {
		c.TopicAliasMaximum = 0
	}
	if c.OutboundLimit == 0 {
		c.OutboundLimit = 1 << 20
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.NodeID == "" {
		c.NodeID = "mqttd"
	}
}

// Validate reports the first invalid setting, naming it.
func (c *Config) Validate() error {
	switch {
	case c.MaxPacketSize < 0 || c.MaxPacketSize > 268435455+5:
		return fmt.Errorf("broker: max packet size %d out of range (0..268435460)", c.MaxPacketSize)
	case c.Names != "" && c.Names != NamesStrict && c.Names != NamesMQTT:
		return fmt.Errorf("broker: names %q: want strict or mqtt", c.Names)
	case c.MaxClientIDLen < 0:
		return errors.New("broker: max client id length must not be negative")
	case c.SessionMaxExpiry < 0:
		return errors.New("broker: session max expiry must not be negative")
	case c.SessionMaxQueued < 0:
		return errors.New("broker: session max queued must not be negative")
	case c.MaxPending < 0:
		return errors.New("broker: max pending must not be negative")
	case c.OutboundLimit < 0:
		return errors.New("broker: outbound limit must not be negative")
	case c.MaxConnections < 0 || c.MaxConnectionsPerIP < 0 || c.ConnectRate < 0 || c.MaxMsgRate < 0:
		return errors.New("broker: connection and rate limits must not be negative")
	case c.ConnectTimeout < 0:
		return errors.New("broker: connect timeout must not be negative")
	}
	return nil
}
