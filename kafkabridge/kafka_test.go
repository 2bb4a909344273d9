package kafkabridge

import (
	"testing"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNewMessages: each record becomes a message with its own topic,
// key (none when the record has none), value, headers and tag, though
// they share slabs.
func TestNewMessages(t *testing.T) {
	recs := []*record{
		{topic: "meter", value: []byte(`{"a":1}`), headers: []header{{[]byte("clientId"), []byte("c1")}, {[]byte("qos"), []byte("1")}}},
		{topic: "orderMsg2mq-x", key: []byte("c2"), value: []byte("v2")},
		{topic: "t", key: []byte{}, value: nil, headers: []header{{[]byte("e"), nil}}},
	}
	msgs := newMessages(recs, 7)
	require.Len(t, msgs, len(recs))
	encoded := func(e sarama.Encoder) []byte {
		b, err := e.Encode()
		require.NoError(t, err)
		return b
	}
	for i, r := range recs {
		m := &msgs[i]
		assert.Equal(t, r.topic, m.Topic)
		assert.Equal(t, string(r.value), string(encoded(m.Value)), "value %d", i)
		if r.key == nil {
			assert.Nil(t, m.Key, "record %d has no key", i)
		} else {
			require.NotNil(t, m.Key, "record %d has a key", i)
			assert.Equal(t, string(r.key), string(encoded(m.Key)))
		}
		require.Len(t, m.Headers, len(r.headers))
		for j, h := range r.headers {
			assert.Equal(t, string(h.key), string(m.Headers[j].Key))
			assert.Equal(t, string(h.value), string(m.Headers[j].Value))
		}
		tag, ok := m.Metadata.(*msgTag)
		require.True(t, ok)
		assert.Equal(t, msgTag{7, i}, *tag)
	}
	// The headers of one message do not run into the next one's.
	msgs[0].Headers = append(msgs[0].Headers, sarama.RecordHeader{Key: []byte("x")})
	assert.Equal(t, "e", string(msgs[2].Headers[0].Key))
}
