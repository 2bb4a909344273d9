package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// options are the command line's settings. Every flag can also be a key of
// the YAML file given by -config (same name, without the dash); flags
// given on the command line override the file.
type options struct {
	config string

	mqttAddr      string
	tlsAddr       string
	tlsCert       string
	tlsKey        string
	tlsClientCA   string
	tlsClientAuth string
	wsAddr        string
	wssAddr       string
	loops         int

	allowAnonymous bool
	names          string
	maxPacket      byteSize
	maxClientID    int
	sessMaxExpiry  time.Duration
	sessMaxQueued  int
	maxPending     int
	maxKeepAlive   uint
	receiveMax     uint
	maxInflight    uint
	topicAliasMax  uint
	noTopicAlias   bool
	outboundLimit  byteSize
	connectTimeout time.Duration
	denySubscribe  listFlag
	maxConns       int
	maxConnsPerIP  int
	connectRate    int
	maxMsgRate     int
	nodeID         string

	dataDir     string
	persistence bool

	kafkaBrokers    string
	kafkaAck        string
	kafkaSpoolMax   byteSize
	kafkaGroup      string
	kafkaPartitions int
	kafkaRetention  time.Duration
	adminAddr       string
	adminToken      string

	usersFile    string
	superusers   listFlag
	cnAsUsername bool
	bcryptCost   int
	anonAccess   string

	logLevel  string
	logFormat string
	pprofAddr string
	gcMinHeap byteSize
}

// byteSize is a flag value in bytes that accepts KiB/MiB suffixes.
type byteSize int

func (b *byteSize) String() string { return strconv.Itoa(int(*b)) }

func (b *byteSize) Set(s string) error {
	s = strings.TrimSpace(s)
	mult := 1
	for _, u := range []struct {
		suffix string
		m      int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.m
			break
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("want a size such as 131072, 128KiB or 1MiB")
	}
	*b = byteSize(n * mult)
	return nil
}

// listFlag is a comma-separated (or repeated) list of strings.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("mqttd", flag.ContinueOnError)
	fs.StringVar(&o.config, "config", "", "YAML file with settings (keys are these flag names); flags override it")
	fs.StringVar(&o.mqttAddr, "mqtt.addr", ":1883", "MQTT over TCP listen address, or off")
	fs.StringVar(&o.tlsAddr, "tls.addr", ":8883", "MQTT over TLS listen address (only with -tls.cert), or off")
	fs.StringVar(&o.tlsCert, "tls.cert", "", "PEM server certificate for the TLS and WSS listeners")
	fs.StringVar(&o.tlsKey, "tls.key", "", "PEM private key of -tls.cert")
	fs.StringVar(&o.tlsClientCA, "tls.client-ca", "", "PEM CA bundle that verifies client certificates")
	fs.StringVar(&o.tlsClientAuth, "tls.client-auth", "", "client certificates: none, request or require (default: require when -tls.client-ca is set, else none)")
	fs.StringVar(&o.wsAddr, "ws.addr", ":8083", "MQTT over WebSocket listen address (path /mqtt), or off")
	fs.StringVar(&o.wssAddr, "wss.addr", ":8084", "MQTT over secure WebSocket listen address (only with -tls.cert), or off")
	fs.IntVar(&o.loops, "loops", 0, "event loops for the TCP listener (0: one per CPU)")

	fs.BoolVar(&o.allowAnonymous, "allow-anonymous", false, "accept clients without a username")
	fs.StringVar(&o.names, "names", "strict", "naming rules: strict ([0-9A-Za-z_-] client IDs and topic levels) or mqtt (plain MQTT rules)")
	o.maxPacket = 128 << 10
	fs.Var(&o.maxPacket, "max-packet", "largest MQTT packet accepted or sent (bytes; KiB/MiB suffixes)")
	fs.IntVar(&o.maxClientID, "max-client-id", 128, "longest client ID under strict names")
	fs.DurationVar(&o.sessMaxExpiry, "session.max-expiry", 2*time.Hour, "how long a persistent session outlives its connection at most")
	fs.IntVar(&o.sessMaxQueued, "session.max-queued", 10, "QoS>0 messages queued per offline session (oldest dropped past it)")
	fs.IntVar(&o.maxPending, "session.max-pending", 1000, "QoS>0 messages held per online session beyond its in-flight window")
	fs.UintVar(&o.maxKeepAlive, "max-keepalive", 0, "largest keepalive a client may use, seconds (MQTT 5 Server Keep Alive); 0: no cap")
	fs.UintVar(&o.receiveMax, "receive-maximum", 65535, "inbound QoS 1/2 publishes a client may have unacknowledged (MQTT 5 Receive Maximum)")
	fs.UintVar(&o.maxInflight, "max-inflight", 1000, "outbound QoS 1/2 messages in flight per client")
	fs.UintVar(&o.topicAliasMax, "topic-alias-maximum", 65535, "topic aliases per client, each way (MQTT 5)")
	fs.BoolVar(&o.noTopicAlias, "no-topic-alias", false, "disable MQTT 5 topic aliases")
	o.outboundLimit = 1 << 20
	fs.Var(&o.outboundLimit, "outbound-limit", "bytes waiting to be written per connection before QoS 0 is dropped")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 10*time.Second, "close connections that send no CONNECT in this time")
	fs.IntVar(&o.maxConns, "max-connections", 0, "cap on open connections (0: none; the process may hold at most its open-file limit)")
	fs.IntVar(&o.maxConnsPerIP, "max-connections-per-ip", 0, "cap on open connections from one IP address (0: none)")
	fs.IntVar(&o.connectRate, "connect-rate", 0, "cap on CONNECTs accepted per second (0: none); past it CONNACK 0x9F / 0x03")
	fs.IntVar(&o.maxMsgRate, "max-msg-rate", 0, "cap on PUBLISH packets per second per client (0: none); past it DISCONNECT 0x96 / close")
	fs.Var(&o.denySubscribe, "deny-subscribe", "topic filters nobody may subscribe to (comma-separated or repeated)")
	fs.StringVar(&o.nodeID, "node", "mqttd", "this node's name")

	fs.StringVar(&o.dataDir, "data-dir", "./data", "directory of the embedded store (sessions, queues, in-flight messages, retained messages)")
	fs.BoolVar(&o.persistence, "persistence", true, "keep state in -data-dir across restarts (false: memory only)")

	fs.StringVar(&o.kafkaBrokers, "kafka.brokers", "", "Kafka bootstrap servers host:port,...; empty: the Kafka bridge is off")
	fs.StringVar(&o.kafkaAck, "kafka.ack", "local", "when a bridged QoS 1/2 publish is acknowledged: local (record synced to the on-disk spool) or kafka (Kafka has it)")
	o.kafkaSpoolMax = 1 << 30
	fs.Var(&o.kafkaSpoolMax, "kafka.spool-max", "bound of the on-disk spool of records waiting for Kafka (in -data-dir/kafka-spool)")
	fs.StringVar(&o.kafkaGroup, "kafka.group", "mqttd", "consumer group of the mq2mqtt command consumer")
	fs.IntVar(&o.kafkaPartitions, "kafka.partitions", 3, "partitions of the Kafka topics the bridge creates")
	fs.DurationVar(&o.kafkaRetention, "kafka.retention", 72*time.Hour, "retention.ms of the Kafka topics the bridge creates")
	fs.StringVar(&o.adminAddr, "admin.addr", "127.0.0.1:8080", "admin HTTP API listen address, or off")
	fs.StringVar(&o.adminToken, "admin.token", "", "bearer token of the admin API (empty: every API request is refused with 401)")
	fs.StringVar(&o.usersFile, "users", "", "YAML users file loaded at start (users: [{name, password | password_hash, grants: [{filter, access: pub|sub|pubsub}]}]); users already in the store are kept unless the file says replace: true")
	fs.Var(&o.superusers, "superuser", "users who may publish and subscribe to anything (comma-separated or repeated)")
	fs.BoolVar(&o.cnAsUsername, "tls.cn-as-username", false, "a verified client certificate's CN logs the client in as that user, without a password")
	fs.IntVar(&o.bcryptCost, "auth.bcrypt-cost", 10, "bcrypt cost of password hashes (4..31)")
	fs.StringVar(&o.anonAccess, "anonymous.access", "pubsub", "what anonymous clients may do on every topic when -allow-anonymous is on: pubsub, pub, sub or none")

	fs.StringVar(&o.logLevel, "log.level", "info", "log level: trace, debug, info, warn, error")
	fs.StringVar(&o.pprofAddr, "debug.pprof-addr", "off", "serve Go's pprof profiles on this address (loopback only), or off")
	fs.Var(&o.gcMinHeap, "gc.min-heap", "heap growth allowed at least between two garbage collections, e.g. 64MiB (0: Go's default, GOGC=100; an explicit GOGC in the environment wins)")
	fs.StringVar(&o.logFormat, "log.format", "auto", "log format: auto (console on a terminal, else JSON), console or json")
	return fs
}

// parseOptions reads the command line and the -config file.
func parseOptions(args []string) (*options, error) {
	o := &options{}
	fs := newFlagSet(o)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.config == "" {
		return o, nil
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	data, err := os.ReadFile(o.config)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var file map[string]any
	if err := yaml.Unmarshal(data, &file); err != nil {
		return nil, fmt.Errorf("config %s: %w", o.config, err)
	}
	for k, v := range file {
		f := fs.Lookup(k)
		if f == nil || k == "config" {
			return nil, fmt.Errorf("config %s: unknown key %q", o.config, k)
		}
		if set[k] {
			continue // the command line wins
		}
		var s string
		switch x := v.(type) {
		case []any:
			parts := make([]string, len(x))
			for i, e := range x {
				parts[i] = fmt.Sprint(e)
			}
			s = strings.Join(parts, ",")
		case nil:
			return nil, fmt.Errorf("config %s: key %q has no value", o.config, k)
		default:
			s = fmt.Sprint(x)
		}
		if err := f.Value.Set(s); err != nil {
			return nil, fmt.Errorf("config %s: %s: %w", o.config, k, err)
		}
	}
	return o, nil
}

func (o *options) validate() error {
	switch {
	case o.names != "strict" && o.names != "mqtt":
		return fmt.Errorf("-names %q: want strict or mqtt", o.names)
	case o.maxConns < 0 || o.maxConnsPerIP < 0 || o.connectRate < 0 || o.maxMsgRate < 0:
		return errors.New("-max-connections, -max-connections-per-ip, -connect-rate, -max-msg-rate: must not be negative")
	case o.kafkaAck != "local" && o.kafkaAck != "kafka":
		return fmt.Errorf("-kafka.ack %q: want local or kafka", o.kafkaAck)
	case o.kafkaPartitions < 1:
		return errors.New("-kafka.partitions: at least 1")
	case o.anonAccess != "pubsub" && o.anonAccess != "pub" && o.anonAccess != "sub" && o.anonAccess != "none":
		return fmt.Errorf("-anonymous.access %q: want pubsub, pub, sub or none", o.anonAccess)
	case o.maxKeepAlive > 65535:
		return errors.New("-max-keepalive: at most 65535")
	case o.receiveMax == 0 || o.receiveMax > 65535:
		return errors.New("-receive-maximum: 1 to 65535")
	case o.maxInflight == 0 || o.maxInflight > 65535:
		return errors.New("-max-inflight: 1 to 65535")
	case o.topicAliasMax > 65535:
		return errors.New("-topic-alias-maximum: at most 65535")
	case (o.tlsCert == "") != (o.tlsKey == ""):
		return errors.New("-tls.cert and -tls.key go together")
	case o.tlsClientAuth != "" && o.tlsClientAuth != "none" && o.tlsClientAuth != "request" && o.tlsClientAuth != "require":
		return fmt.Errorf("-tls.client-auth %q: want none, request or require", o.tlsClientAuth)
	}
	return nil
}
