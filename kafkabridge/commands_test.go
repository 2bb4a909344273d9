package kafkabridge

import (
	"errors"
	"sync"
	"testing"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/codec"
)

func hdrs(kv ...string) []*sarama.RecordHeader {
	var out []*sarama.RecordHeader
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, &sarama.RecordHeader{Key: []byte(kv[i]), Value: []byte(kv[i+1])})
	}
	return out
}

func TestParseCommand(t *testing.T) {
	tests := []struct {
		name    string
		headers []*sarama.RecordHeader
		want    command
		errHdr  string // "" : valid
	}{
		{"topic only: defaults", hdrs("mqttTopic", "dev/1/cmd"), command{"dev/1/cmd", codec.QoS0, true}, ""},
		{"all headers", hdrs("mqttTopic", "a/b", "qoslevel", "2", "cleanSession", "false"), command{"a/b", codec.QoS2, false}, ""},
		{"qos 1, clean true", hdrs("qoslevel", "1", "cleanSession", "true", "mqttTopic", "x"), command{"x", codec.QoS1, true}, ""},
		{"names match case-insensitively", hdrs("MQTTTOPIC", "x", "QosLevel", "1"), command{"x", codec.QoS1, true}, ""},
		{"first repeated header wins", hdrs("mqttTopic", "x", "mqttTopic", "y"), command{"x", codec.QoS0, true}, ""},
		{"other headers ignored", hdrs("trace", "1", "mqttTopic", "x"), command{"x", codec.QoS0, true}, ""},
		{"no headers", nil, command{}, "mqttTopic"},
		{"empty topic", hdrs("mqttTopic", ""), command{}, "mqttTopic"},
		{"qos 3", hdrs("mqttTopic", "x", "qoslevel", "3"), command{}, "qoslevel"},
		{"qos word", hdrs("mqttTopic", "x", "qoslevel", "one"), command{}, "qoslevel"},
		{"empty qos", hdrs("mqttTopic", "x", "qoslevel", ""), command{}, "qoslevel"},
		{"clean session word", hdrs("mqttTopic", "x", "cleanSession", "yes"), command{}, "cleanSession"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCommand(tt.headers)
			if tt.errHdr == "" {
				require.NoError(t, err)
				assert.Equal(t, tt.want, got)
				return
			}
			var ce *CommandError
			require.True(t, errors.As(err, &ce), "want a *CommandError, got %v", err)
			assert.Equal(t, tt.errHdr, ce.Header)
		})
	}
}

// markSession records MarkOffset calls; the other methods are unused.
type markSession struct {
	sarama.ConsumerGroupSession
	mu    sync.Mutex
	marks []int64
}

func (s *markSession) MarkOffset(topic string, partition int32, offset int64, metadata string) {
	s.mu.Lock()
	s.marks = append(s.marks, offset)
	s.mu.Unlock()
}

func TestOffsetsMarkContiguous(t *testing.T) {
	s := &markSession{}
	o := newOffsets(s, "mq2mqtt", 0)
	for _, off := range []int64{10, 11, 12, 13} {
		o.add(off)
	}
	o.done(12) // 10 and 11 still in flight: nothing to mark
	assert.Empty(t, s.marks)
	o.done(10)
	assert.Equal(t, []int64{11}, s.marks, "next offset after 10")
	o.done(11)
	assert.Equal(t, []int64{11, 13}, s.marks, "11 and 12 done: next is 13")
	assert.Equal(t, 1, o.outstanding())
	o.close(0)
	o.done(13)
	assert.Equal(t, []int64{11, 13}, s.marks, "nothing marked after close")
}
