package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/mqttd/mqttd/admin"
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

// parentTopicsAPI adapts the bridge's registry to admin.ParentTopics
// (admin does not import the bridge).
type parentTopicsAPI struct{ br *kafkabridge.Bridge }

func (a parentTopicsAPI) Register(name, typ string) error {
	_, err := a.br.Register(name, kafkabridge.TopicType(typ))
	return adminError(err)
}

func (a parentTopicsAPI) Delete(name string) error { return adminError(a.br.Delete(name)) }

func (a parentTopicsAPI) List() []admin.ParentTopic {
	var out []admin.ParentTopic
	for _, pt := range a.br.List() {
		out = append(out, admin.ParentTopic{Name: pt.Name, Type: string(pt.Type), Created: pt.Created})
	}
	return out
}

func adminError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kafkabridge.ErrTopicName):
		return &admin.FieldError{Field: "name", Msg: err.Error()}
	case errors.Is(err, kafkabridge.ErrTopicType):
		return &admin.FieldError{Field: "type", Msg: err.Error()}
	case errors.Is(err, kafkabridge.ErrTopicExists):
		return fmt.Errorf("%w: %w", admin.ErrConflict, err)
	case errors.Is(err, kafkabridge.ErrTopicNotFound):
		return fmt.Errorf("%w: %w", admin.ErrNotFound, err)
	case errors.Is(err, kafkabridge.ErrKafkaUnavailable):
		return fmt.Errorf("%w: %w", admin.ErrUnavailable, err)
	}
	return err
}
