package kafka

import (
	"bufio"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/bench"
	"github.com/mqttd/mqttd/codec"
	"github.com/mqttd/mqttd/kafkabridge"
)

// syncBuffer is a strings.Builder safe for the progress printer's
// goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestKafkaMqttbenchScenario runs `mqttbench -scenario kafka` (bench.Run)
// against a broker with the bridge and the real Kafka, reading the
// records live and after the window, on a normal and an ordered topic:
// every message acknowledged is found in Kafka, once and in order, and in
// after mode nothing is read before the window ends.
func TestKafkaMqttbenchScenario(t *testing.T) {
	e := setup(t, func(c *kafkabridge.Config) { c.DisableCommands = true })
	for _, tc := range []struct {
		verify  string
		ordered bool
	}{
		{bench.KafkaVerifyLive, false},
		{bench.KafkaVerifyAfter, false},
		{bench.KafkaVerifyAfter, true},
	} {
		name := tc.verify
		if tc.ordered {
			name += "-ordered"
		}
		t.Run(name, func(t *testing.T) {
			cfg := bench.Config{
				Scenario:     "kafka",
				Addr:         e.srv.TCP,
				QoS:          codec.QoS1,
				Size:         64,
				Publishers:   4,
				Rate:         2000,
				Warmup:       1500 * time.Millisecond,
				Duration:     2 * time.Second,
				Drain:        10 * time.Second,
				TopicPrefix:  "mqttbench" + uniq(),
				PID:          os.Getpid(), // the broker runs in this process
				KafkaBrokers: kafkaEnv.addr,
				AdminAddr:    strings.TrimPrefix(e.adminURL, "http://"),
				AdminToken:   "test-token",
				KafkaOrdered: tc.ordered,
				KafkaVerify:  tc.verify,
			}
			var progress syncBuffer
			res, err := bench.Run(t.Context(), cfg, &progress)
			require.NoError(t, err)
			var summary strings.Builder
			require.NoError(t, res.WriteSummary(&summary))
			t.Log("\n" + summary.String())

			assert.True(t, res.Clean(), "errors: %q", res.Errors)
			assert.Equal(t, tc.verify, res.KafkaVerify)
			assert.Equal(t, tc.ordered, res.KafkaOrdered)
			require.NotZero(t, res.Sent)
			assert.Equal(t, res.Sent, res.Expected)
			assert.Equal(t, res.Expected, res.Received, "every message of the window is in Kafka")
			assert.NotZero(t, res.Acked)
			assert.NotZero(t, res.Delivered, "records reached Kafka during the window")
			assert.NotZero(t, res.KafkaInWindow)
			assert.LessOrEqual(t, res.KafkaInWindow, res.Received)
			assert.Equal(t, res.Received, res.LatencyCount, "a latency for every record of the window")
			assert.Positive(t, res.P50us)

			// Progress lines of the warm-up and the window each cover a
			// second that ended before the window did.
			var before, read int
			sc := bufio.NewScanner(strings.NewReader(progress.String()))
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) < 8 || (f[3] != "warmup" && f[3] != "measure") {
					continue
				}
				before++
				if f[7] != "0/s" { // "recv N/s"
					read++
				}
			}
			require.NotZero(t, before, "progress:\n%s", progress.String())
			if tc.verify == bench.KafkaVerifyAfter {
				assert.Zero(t, read, "records read before the window ended:\n%s", progress.String())
			} else {
				assert.NotZero(t, read, "live mode reads while publishing:\n%s", progress.String())
			}
		})
	}
}
