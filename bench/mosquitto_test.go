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

// startMosquitto starts Debian's mosquitto on a free loopback port, or
// skips the test when it is not installed.
func startMosquitto(t *testing.T) (addr string, pid int) {
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
			"log_dest stderr\nlog_type error\n", port), 0o644))
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
	addr, pid := startMosquitto(t)
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
			// A loaded machine (the race detector, a parallel CI) can
			// leave mosquitto's QoS 2 flows a few seconds behind: give
			// them time to arrive before they count as lost.
			cfg.Drain = 10 * time.Second
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
