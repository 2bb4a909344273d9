package wiring

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/mqttd/mqttd/admin"
	"github.com/mqttd/mqttd/kafkabridge"
)

// TestAdminError: the bridge's errors become the admin API's, so the API
// answers 400 with the field, 404, 409 or 503.
func TestAdminError(t *testing.T) {
	assert.NoError(t, adminError(nil))
	var fe *admin.FieldError
	if assert.ErrorAs(t, adminError(fmt.Errorf("x: %w", kafkabridge.ErrTopicName)), &fe) {
		assert.Equal(t, "name", fe.Field)
	}
	if assert.ErrorAs(t, adminError(kafkabridge.ErrTopicType), &fe) {
		assert.Equal(t, "type", fe.Field)
	}
	assert.ErrorIs(t, adminError(kafkabridge.ErrTopicExists), admin.ErrConflict)
	assert.ErrorIs(t, adminError(kafkabridge.ErrTopicNotFound), admin.ErrNotFound)
	assert.ErrorIs(t, adminError(kafkabridge.ErrKafkaUnavailable), admin.ErrUnavailable)
	other := errors.New("disk on fire")
	assert.Equal(t, other, adminError(other))
}
