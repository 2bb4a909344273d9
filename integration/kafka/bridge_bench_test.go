package kafka

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/kafkabridge"
)

// BenchmarkKafkaBridge measures sustained bridged throughput end to end:
// 4 MQTT 3.1.1 clients publish 1 KiB QoS 1 messages to a registered
// parent topic (each keeping up to 64 unacknowledged), over loopback
// through the broker and the bridge into the real Kafka. The clock stops
// once every message is acknowledged and Kafka has acknowledged every
// record (the spool is empty). Run with a fixed count, for example
// -bench KafkaBridge -benchtime 20000x.
func BenchmarkKafkaBridge(b *testing.B) {
	for _, mode := range []kafkabridge.AckMode{kafkabridge.AckLocal, kafkabridge.AckKafka} {
		b.Run("ack="+string(mode), func(b *testing.B) {
			e := setup(b, func(c *kafkabridge.Config) { c.Ack = mode; c.DisableCommands = true })
			name := "bench" + uniq()
			e.registerTopic(b, name, "")
			const clients, window = 4, 64
			devs := make([]*device, clients)
			for i := range devs {
				devs[i] = connect(b, e.mqttURL, fmt.Sprintf("bench%d-%s", i, uniq()), true)
			}
			payload := bytes.Repeat([]byte("x"), 1024)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			errs := make(chan error, clients)
			for c, d := range devs {
				n := b.N / clients
				if c < b.N%clients {
					n++
				}
				go func() {
					var inflight []mqtt.Token
					for i := range n {
						inflight = append(inflight, d.Publish(name+"/m", 1, false, payload))
						if len(inflight) == window || i == n-1 {
							for _, tok := range inflight {
								if !tok.WaitTimeout(wait) || tok.Error() != nil {
									errs <- fmt.Errorf("publish not acknowledged: %v", tok.Error())
									return
								}
							}
							inflight = inflight[:0]
						}
					}
					errs <- nil
				}()
			}
			for range clients {
				require.NoError(b, <-errs)
			}
			acked := time.Since(start)
			require.Eventually(b, func() bool { return e.br.Metrics().Backlog == 0 }, 5*wait, time.Millisecond)
			all := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/acked.Seconds(), "acked-msgs/s")
			b.ReportMetric(float64(b.N)/all.Seconds(), "in-kafka-msgs/s")
		})
	}
}
