package main

import (
	"errors"
	"path/filepath"
	"strings"

	"github.com/mqttd/mqttd/kafkabridge"
)

// newBridge builds the Kafka bridge when -kafka.brokers is given (nil
// otherwise). It must exist before the broker: it is one of its Ackers and
// Hooks.
func (s *server) newBridge(o *options) (*kafkabridge.Bridge, error) {
	if o.kafkaBrokers == "" {
		return nil, nil
	}
	var brokers []string
	for _, b := range strings.Split(o.kafkaBrokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	if !o.persistence {
		return nil, errors.New("-kafka.brokers needs -persistence: the bridge spools records in -data-dir")
	}
	return kafkabridge.New(kafkabridge.Config{
		Brokers:       brokers,
		Ack:           kafkabridge.AckMode(o.kafkaAck),
		SpoolDir:      filepath.Join(o.dataDir, "kafka-spool"),
		SpoolMaxBytes: int64(o.kafkaSpoolMax),
		ConsumerGroup: o.kafkaGroup,
		Partitions:    int32(o.kafkaPartitions),
		Retention:     o.kafkaRetention,
		Log:           s.log.With().Str("component", "kafka").Logger(),
	}, nil, s.store.KV())
}
