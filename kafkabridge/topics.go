package kafkabridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// TopicType is a parent topic's type.
type TopicType string

// Parent topic types.
const (
	// Normal: records spread over the Kafka topic's partitions.
	Normal TopicType = "normal"
	// Ordered: records keyed by client ID through the idempotent
	// producer, so each client's messages stay in one partition in the
	// order the client sent them.
	Ordered TopicType = "ordered"
)

// OrderedPrefix starts the names of ordered parent topics.
const OrderedPrefix = "orderMsg2mq-"

// Registry errors.
var (
	// ErrTopicName: the name is not a single topic level of
	// [0-9A-Za-z_-] (at most 249 characters, Kafka's limit).
	ErrTopicName = errors.New("kafkabridge: parent topic name not valid")
	// ErrTopicType: the type is neither normal nor ordered, or disagrees
	// with the name (orderMsg2mq- names are ordered, others normal).
	ErrTopicType = errors.New("kafkabridge: parent topic type not valid")
	// ErrTopicExists: the parent topic is registered with another type.
	ErrTopicExists = errors.New("kafkabridge: parent topic registered with another type")
	// ErrTopicNotFound: no such parent topic is registered.
	ErrTopicNotFound = errors.New("kafkabridge: parent topic not registered")
	// ErrKafkaUnavailable: the Kafka topic could not be created.
	ErrKafkaUnavailable = errors.New("kafkabridge: kafka unavailable")
)

// ParentTopic is a registered parent topic.
type ParentTopic struct {
	Name    string    `json:"name"`
	Type    TopicType `json:"type"`
	Created time.Time `json:"created"`
}

// kvTopicPrefix prefixes the parent topics' keys in the KV.
const kvTopicPrefix = "pt/"

// TypeFor returns the type a parent topic of this name has: ordered for
// names starting with OrderedPrefix, normal otherwise.
func TypeFor(name string) TopicType {
	if strings.HasPrefix(name, OrderedPrefix) {
		return Ordered
	}
	return Normal
}

// CheckParentTopic validates a registration: name is one topic level of
// [0-9A-Za-z_-], typ is "" (derived from the name) or agrees with the
// name. It returns the effective type.
func CheckParentTopic(name string, typ TopicType) (TopicType, error) {
	if name == "" || len(name) > 249 {
		return "", fmt.Errorf("%w: %q: want 1 to 249 characters", ErrTopicName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return "", fmt.Errorf("%w: %q: character %q (want a single topic level of [0-9A-Za-z_-])", ErrTopicName, name, c)
		}
	}
	want := TypeFor(name)
	switch typ {
	case "":
		return want, nil
	case Normal, Ordered:
		if typ != want {
			return "", fmt.Errorf("%w: %q is %s by its name, not %s", ErrTopicType, name, want, typ)
		}
		return typ, nil
	default:
		return "", fmt.Errorf("%w: %q: want normal or ordered", ErrTopicType, typ)
	}
}

// loadTopics reads the registered parent topics from the KV.
func (br *Bridge) loadTopics() error {
	m := make(map[string]ParentTopic)
	err := br.kv.Scan([]byte(kvTopicPrefix), func(k, v []byte) error {
		var pt ParentTopic
		if err := json.Unmarshal(v, &pt); err != nil {
			br.log.Error().Err(err).Str("key", string(k)).Msg("kafkabridge: skipping an unreadable parent topic")
			return nil
		}
		m[pt.Name] = pt
		return nil
	})
	if err != nil {
		return fmt.Errorf("kafkabridge: loading parent topics: %w", err)
	}
	br.topics.Store(&m)
	return nil
}

// Register registers a parent topic: it creates the Kafka topic of the
// same name when missing (Config.Partitions, Config.Retention), then
// stores the registration. typ "" takes the type from the name.
// Registering a registered topic again with its type is a no-op that
// reports created false. Safe for concurrent use; it talks to Kafka, so
// never call it from an event loop.
func (br *Bridge) Register(name string, typ TopicType) (created bool, err error) {
	typ, err = CheckParentTopic(name, typ)
	if err != nil {
		return false, err
	}
	br.topicsMu.Lock()
	defer br.topicsMu.Unlock()
	if pt, ok := (*br.topics.Load())[name]; ok {
		if pt.Type != typ {
			return false, fmt.Errorf("%w: %q is %s", ErrTopicExists, name, pt.Type)
		}
		return false, nil
	}
	if err := br.admin.CreateTopic(name); err != nil {
		return false, fmt.Errorf("%w: creating topic %q: %w", ErrKafkaUnavailable, name, err)
	}
	pt := ParentTopic{Name: name, Type: typ, Created: time.Now().UTC().Truncate(time.Millisecond)}
	v, _ := json.Marshal(pt)
	if err := br.kv.Set([]byte(kvTopicPrefix+name), v); err != nil {
		return false, fmt.Errorf("kafkabridge: storing parent topic %q: %w", name, err)
	}
	br.setTopic(name, &pt)
	br.log.Info().Str("topic", name).Str("type", string(typ)).Msg("parent topic registered")
	return true, nil
}

// Delete unregisters a parent topic: its messages are no longer stored
// in Kafka. The Kafka topic and its records stay; records already in the
// spool are still sent. Safe for concurrent use.
func (br *Bridge) Delete(name string) error {
	br.topicsMu.Lock()
	defer br.topicsMu.Unlock()
	if _, ok := (*br.topics.Load())[name]; !ok {
		return fmt.Errorf("%w: %q", ErrTopicNotFound, name)
	}
	if err := br.kv.Delete([]byte(kvTopicPrefix + name)); err != nil {
		return fmt.Errorf("kafkabridge: deleting parent topic %q: %w", name, err)
	}
	br.setTopic(name, nil)
	br.log.Info().Str("topic", name).Msg("parent topic deleted")
	return nil
}

// List returns the registered parent topics by name. Safe for
// concurrent use.
func (br *Bridge) List() []ParentTopic {
	m := *br.topics.Load()
	out := make([]ParentTopic, 0, len(m))
	for _, pt := range m {
		out = append(out, pt)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// setTopic replaces the copy-on-write topic map (nil pt: remove). Called
// with topicsMu held.
func (br *Bridge) setTopic(name string, pt *ParentTopic) {
	old := *br.topics.Load()
	m := make(map[string]ParentTopic, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	if pt == nil {
		delete(m, name)
	} else {
		m[name] = *pt
	}
	br.topics.Store(&m)
}
