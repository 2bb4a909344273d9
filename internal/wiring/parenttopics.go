package wiring

import (
	"errors"
	"fmt"

	"github.com/mqttd/mqttd/admin"
	"github.com/mqttd/mqttd/kafkabridge"
)

// ParentTopics returns br's parent-topic registry as admin.ParentTopics.
func ParentTopics(br *kafkabridge.Bridge) admin.ParentTopics { return parentTopicsAPI{br} }

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
