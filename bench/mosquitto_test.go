package bench

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/mqttd/mqttd/codec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mosquittoInflight is both the tool's Inflight and mosquitto's
// max_inflight_messages in these tests, as in scripts/bench-compare.sh.
// Debian's mosquitto 2.0.11 (its CVE-2023-28366 patches; upstream since
// 2.0.16) counts a client's incoming QoS 2 messages not yet released
// against max_inflight_messages and refuses one more with PUBREC 0x97
// (quota exceeded). MQTT 3.1.1 has no reason code there: the publisher
// sees a plain PUBREC, completes the flow, and the message is gone. With
// the default of 20 against the tool's 64, runs whose PUBRELs lagged (a
// loaded machine) lost messages.
const mosquittoInflight = 64

// startMosquitto starts Debian's mosquitto on a free loopback port with
// max_inflight_messages maxInflight, or skips the test when it is not
// installed.
func startMosquitto(t *testing.T, maxInflight int) (addr string, pid int) {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			t.Skip("mosquitto is not installed (apt-get install mosquitto); skipping the test against it")
		}
		bin = "/usr/sbin/mosquitto"
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	require.NoError(t, os.WriteFile(conf, fmt.Appendf(nil,
		"listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n"+
			"max_inflight_messages %d\nlog_dest stderr\nlog_type error\n", port, maxInflight), 0o644))
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 5*time.Second, 20*time.Millisecond, "mosquitto did not start listening")
	return addr, cmd.Process.Pid
}

func TestMosquittoScenarios(t *testing.T) {
	addr, pid := startMosquitto(t, mosquittoInflight)
	tests := []struct {
		scenario string
		qos      codec.QoS
		version  codec.Version
	}{
		{"fanin", codec.QoS1, codec.V311},
		{"fanout", codec.QoS0, codec.V5},
		{"pairs", codec.QoS2, codec.V311},
		{"conns", codec.QoS1, codec.V311},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			cfg := shortConfig(addr, tt.scenario, tt.qos)
			cfg.Version = tt.version
			cfg.PID = 0 // found by its listening port
			cfg.Duration = 500 * time.Millisecond
			cfg.Inflight = mosquittoInflight
			cfg.Conns = 200
			res, err := Run(t.Context(), cfg, nil)
			require.NoError(t, err)
			assert.True(t, res.Clean(), "%+v", res)
			assert.Equal(t, pid, res.BrokerPID, "the broker is found by its port")
			if tt.scenario == "conns" {
				assert.Equal(t, 200, res.Verified)
				assert.Positive(t, res.RSSAfter)
				return
			}
			assert.Positive(t, res.Sent)
			assert.Equal(t, res.Expected, res.Received)
		})
	}
}

// TestMosquittoQoS2QuotaLoss shows the loss that mosquittoInflight avoids,
// and that the tool counts it. With max_inflight_messages 20 and an
// unpaced publisher, the first write carries the whole window of 64 QoS 2
// PUBLISHes; mosquitto reads all of them before any PUBREL (TCP keeps the
// order), so it takes 20 and refuses the other 44. Over 3.1.1 the refusal
// is a plain PUBREC: the flows complete and the messages are lost. Over
// MQTT 5 the CONNACK's Receive Maximum of 20 caps the tool's window and
// nothing is lost.
func TestMosquittoQoS2QuotaLoss(t *testing.T) {
	const brokerMax, window = 20, 64
	addr, _ := startMosquitto(t, brokerMax)
	for _, v := range []codec.Version{codec.V311, codec.V5} {
		t.Run(versionName(v), func(t *testing.T) {
			cfg := shortConfig(addr, "pairs", codec.QoS2)
			cfg.Version = v
			cfg.PID = 0 // found by its listening port
			cfg.Pairs = 1
			cfg.Warmup = 0 // the first write is inside the window
			cfg.Rate = 0
			cfg.Duration = 300 * time.Millisecond
			cfg.Inflight = window
			res, err := Run(t.Context(), cfg, nil)
			require.NoError(t, err)
			assert.Positive(t, res.Sent)
			assert.Equal(t, res.Expected, res.Received+res.Lost)
			assert.Zero(t, res.Unacked, "every flow completed")
			assert.Zero(t, res.ConnErrors)
			assert.Empty(t, res.Errors)
			if v == codec.V311 {
				assert.GreaterOrEqual(t, res.Lost, uint64(window-brokerMax), "%+v", res)
				assert.Zero(t, res.Refused, "3.1.1 cannot tell the refusal")
				return
			}
			assert.True(t, res.Clean(), "%+v", res)
			assert.Equal(t, res.Expected, res.Received)
		})
	}
}
