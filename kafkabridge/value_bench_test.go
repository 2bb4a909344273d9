package kafkabridge

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/mqttd/mqttd/broker"
	"github.com/mqttd/mqttd/codec"
)

// BenchmarkDeviceRecord: a device message's spool record, by payload
// size and kind; "encoder" is the writer's path (recordEncoder),
// "encoding-json" the record built with encoding/json as before, for
// comparison.
func BenchmarkDeviceRecord(b *testing.B) {
	for _, size := range []int{64, 1024} {
		for _, kind := range []string{"text", "binary"} {
			payload := bytes.Repeat([]byte("abcdefgh"), size/8)
			if kind == "binary" {
				for i := range payload {
					payload[i] = byte(i * 7)
				}
			}
			m := &broker.Message{ClientID: "bench-p-3", Topic: "benchkafka/run/3", Payload: payload, QoS: codec.QoS1,
				Created: time.UnixMilli(1732550400000)}
			name := kind + "-" + strconv.Itoa(size)
			b.Run("encoder/"+name, func(b *testing.B) {
				var enc recordEncoder
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					enc.device(m, "benchkafka", false)
				}
			})
			b.Run("encoding-json/"+name, func(b *testing.B) {
				var buf []byte
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					r := &record{topic: "benchkafka", value: deviceReference(b, m), headers: []header{
						{[]byte(HeaderClientID), []byte(m.ClientID)},
						{[]byte(HeaderMQTTTopic), []byte(m.Topic)},
						{[]byte(HeaderQoS), strconv.AppendUint(nil, uint64(m.QoS), 10)},
					}}
					buf = r.appendTo(buf[:0])
				}
			})
		}
	}
}
