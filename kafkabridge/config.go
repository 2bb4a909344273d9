package kafkabridge

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/rs/zerolog"

	"github.com/mqttd/mqttd/kafkabridge/spool"
)

// AckMode says when a device's QoS 1/2 message counts as safe, releasing
// the publisher's PUBACK/PUBREC.
type AckMode string

// Acknowledgement modes.
const (
	// AckLocal: once the record is synced to the on-disk spool (group
	// commit) — or in Kafka, when that comes first. The default: Kafka
	// latency and outages do not slow publishers while the spool has room.
	AckLocal AckMode = "local"
	// AckKafka: once Kafka acknowledged the record (all in-sync replicas).
	AckKafka AckMode = "kafka"
)

// Default system topic names (DESIGN.md, Kafka contract).
const (
	DefaultCommandTopic    = "mq2mqtt"
	DefaultDLQTopic        = "mq2mqtt-dlq"
	DefaultConnectTopic    = "mqtt-device-connect"
	DefaultDisconnectTopic = "mqtt-device-disconnect"
	DefaultConsumerGroup   = "mqttd"
)

// Config configures a Bridge. Only Brokers and SpoolDir are required;
// every other zero field takes the default documented beside it.
type Config struct {
	// Brokers are the Kafka bootstrap servers, "host:port". Required.
	Brokers []string

	// Ack is when a QoS 1/2 publisher is acknowledged. Default AckLocal.
	Ack AckMode

	// SpoolDir is the on-disk spool's directory (cmd: <data-dir>/kafka-spool).
	// Required.
	SpoolDir string
	// SpoolMaxBytes bounds the spool on disk, in bytes. Default 1 GiB.
	SpoolMaxBytes int64
	// SpoolSegmentBytes is the size of one spool segment file, in bytes;
	// at most SpoolMaxBytes/2. Default 16 MiB (a quarter of
	// SpoolMaxBytes when that is smaller).
	SpoolSegmentBytes int64
	// QueueBytes bounds the records waiting in memory to enter the spool
	// (payload bytes): they pile up only while the spool is full or the
	// disk stalls. Past it QoS 1/2 publishers are disconnected
	// unacknowledged (they resend later) and QoS 0 messages and presence
	// events are dropped and counted. Default 64 MiB.
	QueueBytes int64
	// SyncInterval is how often, in AckKafka mode, the spool is synced to
	// disk (AckLocal syncs every batch). Default 200ms.
	SyncInterval time.Duration

	// Partitions is the partition count of topics the bridge creates
	// (parent topics and system topics). Default 3.
	Partitions int32
	// ReplicationFactor of the topics the bridge creates. Default -1: the
	// Kafka cluster's default.replication.factor.
	ReplicationFactor int16
	// Retention is retention.ms of the topics the bridge creates.
	// Default 72h.
	Retention time.Duration

	// CommandTopic is consumed for commands to devices. Default "mq2mqtt".
	CommandTopic string
	// DLQTopic receives commands that cannot be delivered. Default
	// "mq2mqtt-dlq".
	DLQTopic string
	// ConnectTopic receives connect events. Default "mqtt-device-connect".
	ConnectTopic string
	// DisconnectTopic receives disconnect events. Default
	// "mqtt-device-disconnect".
	DisconnectTopic string
	// ConsumerGroup is the consumer group of the command consumer.
	// Default "mqttd".
	ConsumerGroup string
	// DisableCommands turns the command consumer off.
	DisableCommands bool

	// ClientID is the Kafka client.id. Default "mqttd".
	ClientID string
	// Version is the Kafka protocol version to speak. Default 4.0.0
	// (Kafka 4.x removed the protocol versions older clients use).
	Version sarama.KafkaVersion

	// MaxBatch is how many records the producer sends in one round.
	// Default 2048.
	MaxBatch int
	// Pipeline is how many rounds the producer has in flight at once: the
	// next rounds are queued while Kafka answers the first, so the
	// producer does not idle for a round trip between rounds. 1 sends one
	// round at a time. Default 8.
	Pipeline int
	// Compression of the record batches sent to Kafka: "none", "snappy",
	// "lz4", "gzip" or "zstd". Default "snappy" (cheap on CPU; the JSON
	// values compress well).
	Compression string
	// DialTimeout bounds connecting to a Kafka broker. Default 5s.
	DialTimeout time.Duration
	// RequestTimeout bounds one Kafka request (produce, metadata, admin).
	// Default 10s.
	RequestTimeout time.Duration
	// RetryBackoff is the first wait after Kafka failed a round; it doubles
	// up to MaxRetryBackoff. Defaults 100ms and 5s.
	RetryBackoff, MaxRetryBackoff time.Duration
	// CloseTimeout is how long Close lets the producer drain the spool
	// into a reachable Kafka before it stops (what remains is sent after
	// the next start). Default 5s.
	CloseTimeout time.Duration

	// Log is the bridge's logger. Zero value: discard.
	Log zerolog.Logger
}

func (c *Config) setDefaults() {
	if c.Ack == "" {
		c.Ack = AckLocal
	}
	if c.SpoolMaxBytes == 0 {
		c.SpoolMaxBytes = 1 << 30
	}
	if c.QueueBytes == 0 {
		c.QueueBytes = 64 << 20
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = 200 * time.Millisecond
	}
	if c.Partitions == 0 {
		c.Partitions = 3
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = -1
	}
	if c.Retention == 0 {
		c.Retention = 72 * time.Hour
	}
	if c.CommandTopic == "" {
		c.CommandTopic = DefaultCommandTopic
	}
	if c.DLQTopic == "" {
		c.DLQTopic = DefaultDLQTopic
	}
	if c.ConnectTopic == "" {
		c.ConnectTopic = DefaultConnectTopic
	}
	if c.DisconnectTopic == "" {
		c.DisconnectTopic = DefaultDisconnectTopic
	}
	if c.ConsumerGroup == "" {
		c.ConsumerGroup = DefaultConsumerGroup
	}
	if c.ClientID == "" {
		c.ClientID = "mqttd"
	}
	if c.Version == (sarama.KafkaVersion{}) {
		c.Version = sarama.V4_0_0_0
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 2048
	}
	if c.Pipeline == 0 {
		c.Pipeline = 8
	}
	if c.Compression == "" {
		c.Compression = "snappy"
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = 100 * time.Millisecond
	}
	if c.MaxRetryBackoff == 0 {
		c.MaxRetryBackoff = 5 * time.Second
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = 5 * time.Second
	}
}

// Validate reports the first invalid setting, naming it.
func (c *Config) Validate() error {
	d := *c
	d.setDefaults()
	if len(d.Brokers) == 0 {
		return errors.New("kafkabridge: brokers: at least one host:port is required")
	}
	for _, b := range d.Brokers {
		if b == "" || !strings.Contains(b, ":") {
			return fmt.Errorf("kafkabridge: brokers: %q is not host:port", b)
		}
	}
	switch {
	case d.Ack != AckLocal && d.Ack != AckKafka:
		return fmt.Errorf("kafkabridge: ack %q: want local or kafka", d.Ack)
	case d.SpoolDir == "":
		return errors.New("kafkabridge: spool dir is required")
	case d.QueueBytes < 0:
		return fmt.Errorf("kafkabridge: queue bytes %d must not be negative", d.QueueBytes)
	case d.SyncInterval < 0:
		return fmt.Errorf("kafkabridge: sync interval %s must not be negative", d.SyncInterval)
	case d.Partitions < 1:
		return fmt.Errorf("kafkabridge: partitions %d: want at least 1", d.Partitions)
	case d.ReplicationFactor < -1:
		return fmt.Errorf("kafkabridge: replication factor %d: want -1 (cluster default) or more", d.ReplicationFactor)
	case d.Retention < time.Millisecond:
		return fmt.Errorf("kafkabridge: retention %s: want at least 1ms", d.Retention)
	case d.MaxBatch < 1:
		return fmt.Errorf("kafkabridge: max batch %d: want at least 1", d.MaxBatch)
	case d.Pipeline < 1 || d.Pipeline > 64:
		return fmt.Errorf("kafkabridge: pipeline %d: want 1 to 64 rounds", d.Pipeline)
	case d.compression() < 0:
		return fmt.Errorf("kafkabridge: compression %q: want none, snappy, lz4, gzip or zstd", d.Compression)
	case d.DialTimeout < 0 || d.RequestTimeout < 0 || d.RetryBackoff < 0 || d.MaxRetryBackoff < 0 || d.CloseTimeout < 0:
		return errors.New("kafkabridge: timeouts and backoffs must not be negative")
	}
	for _, t := range []struct{ field, name string }{
		{"command topic", d.CommandTopic}, {"dlq topic", d.DLQTopic},
		{"connect topic", d.ConnectTopic}, {"disconnect topic", d.DisconnectTopic},
	} {
		if err := validKafkaTopic(t.name); err != nil {
			return fmt.Errorf("kafkabridge: %s: %w", t.field, err)
		}
	}
	so := spool.Options{Dir: d.SpoolDir, MaxBytes: d.SpoolMaxBytes, SegmentBytes: d.SpoolSegmentBytes}
	if err := so.Validate(); err != nil {
		return fmt.Errorf("kafkabridge: %w", err)
	}
	return nil
}

// validKafkaTopic checks Kafka's own topic naming rule: 1..249 characters
// of [a-zA-Z0-9._-], not "." or "..".
func validKafkaTopic(s string) error {
	if s == "" || len(s) > 249 || s == "." || s == ".." {
		return fmt.Errorf("%q is not a valid Kafka topic name", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%q is not a valid Kafka topic name (character %q)", s, c)
		}
	}
	return nil
}

// compression maps Config.Compression to sarama's codec; -1 when unknown.
func (c *Config) compression() sarama.CompressionCodec {
	switch c.Compression {
	case "none":
		return sarama.CompressionNone
	case "", "snappy":
		return sarama.CompressionSnappy
	case "lz4":
		return sarama.CompressionLZ4
	case "gzip":
		return sarama.CompressionGZIP
	case "zstd":
		return sarama.CompressionZSTD
	}
	return -1
}
