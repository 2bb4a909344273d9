package kafkabridge

import (
	"errors"
	"testing"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/session"
)

var errTooLargeForKafka = sarama.ErrMessageSizeTooLarge

func TestCheckParentTopic(t *testing.T) {
	tests := []struct {
		name, topic string
		typ         TopicType
		want        TopicType
		err         error
	}{
		{"normal by name", "meter", "", Normal, nil},
		{"ordered by prefix", "orderMsg2mq-meter", "", Ordered, nil},
		{"explicit normal", "meter_2-x", Normal, Normal, nil},
		{"explicit ordered", "orderMsg2mq-x", Ordered, Ordered, nil},
		{"ordered type on a normal name", "meter", Ordered, "", ErrTopicType},
		{"normal type on an ordered name", "orderMsg2mq-x", Normal, "", ErrTopicType},
		{"unknown type", "meter", "fifo", "", ErrTopicType},
		{"empty", "", "", "", ErrTopicName},
		{"two levels", "a/b", "", "", ErrTopicName},
		{"wildcard", "a+", "", "", ErrTopicName},
		{"dot", "a.b", "", "", ErrTopicName},
		{"system", "$SYS", "", "", ErrTopicName},
		{"unicode", "zähler", "", "", ErrTopicName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CheckParentTopic(tt.topic, tt.typ)
			if tt.err != nil {
				assert.ErrorIs(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestRegistry(t *testing.T) {
	kv := session.NewMemKV()
	k := newFakeKafka()
	br := testBridge(t, k, kv, nil)

	created, err := br.Register("meter", "")
	require.NoError(t, err)
	assert.True(t, created)
	assert.True(t, k.hasTopic("meter"), "Kafka topic created")
	created, err = br.Register("meter", Normal)
	require.NoError(t, err, "registering again is a no-op")
	assert.False(t, created)
	_, err = br.Register("orderMsg2mq-a", "")
	require.NoError(t, err)

	list := br.List()
	require.Len(t, list, 2)
	assert.Equal(t, "meter", list[0].Name)
	assert.Equal(t, Normal, list[0].Type)
	assert.Equal(t, Ordered, list[1].Type)
	assert.False(t, list[0].Created.IsZero())

	// Persisted: a new bridge on the same KV has them.
	require.NoError(t, br.Close())
	br2 := testBridge(t, k, kv, nil)
	assert.Equal(t, list, br2.List())

	require.NoError(t, br2.Delete("meter"))
	assert.ErrorIs(t, br2.Delete("meter"), ErrTopicNotFound)
	assert.Len(t, br2.List(), 1)
	_, err = kv.Get([]byte("pt/meter"))
	assert.ErrorIs(t, err, session.ErrNotFound, "deleted from the KV")
	assert.True(t, k.hasTopic("meter"), "the Kafka topic stays")
}

func TestRegisterKafkaDown(t *testing.T) {
	k := newFakeKafka()
	br := testBridge(t, k, nil, nil)
	k.setDown(errors.New("no brokers"))
	_, err := br.Register("meter", "")
	assert.ErrorIs(t, err, ErrKafkaUnavailable)
	assert.Empty(t, br.List(), "not registered without its Kafka topic")
}
