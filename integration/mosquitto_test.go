package integration

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/internal/brokertest"
)

// requireMosquitto skips when MQTTD_SKIP_EXTERNAL=1 and otherwise fails
// unless mosquitto_pub and mosquitto_sub are on PATH.
func requireMosquitto(t *testing.T) {
	t.Helper()
	if os.Getenv("MQTTD_SKIP_EXTERNAL") == "1" {
		t.Skip("MQTTD_SKIP_EXTERNAL=1: skipping the mosquitto-clients interop test")
	}
	for _, tool := range []string{"mosquitto_sub", "mosquitto_pub"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found on PATH: run `make deps` (installs Debian's mosquitto-clients), "+
				"or set MQTTD_SKIP_EXTERNAL=1 to skip this test", tool)
		}
	}
}

// mosquittoArgs returns the connection arguments for transport kind
// ("tcp" or "tls") and version.
func mosquittoArgs(s *brokertest.Server, kind string, v byte, id string) []string {
	addr := s.TCP
	if kind == "tls" {
		addr = s.TLS
	}
	host, port, _ := net.SplitHostPort(addr)
	args := []string{"-h", host, "-p", port, "-i", id, "-V", map[byte]string{v311: "mqttv311", v5: "mqttv5"}[v]}
	if kind == "tls" {
		// The server certificate is valid for 127.0.0.1, so the host
		// name check passes as well as the chain check.
		args = append(args, "--cafile", s.Cert.CAFile)
	}
	return args
}

// runTool runs a mosquitto tool to completion (bounded by 15 s).
func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	require.NoError(t, err, "%s %s\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), out.String(), errb.String())
	return out.String()
}

// TestMosquittoClients checks interoperability with mosquitto_pub and
// mosquitto_sub over TCP and TLS (--cafile), MQTT 3.1.1 and 5: messages
// flow between them and the Go clients, with retained messages and MQTT 5
// user properties. Debian's mosquitto-clients 2.0 cannot speak WebSocket,
// so WebSocket interop is covered by the Go clients (TestTransports).
func TestMosquittoClients(t *testing.T) {
	requireMosquitto(t)
	t.Parallel()
	s := brokertest.Start(t, brokertest.Options{Config: anon(), TLS: true})
	goClient := newClient(t, s, v5, "go").(*v5Client)

	for _, kind := range []string{"tcp", "tls"} {
		for _, v := range []byte{v311, v5} {
			name := kind + "_" + versionName(v)
			t.Run(name, func(t *testing.T) {
				topic := "mq/" + name
				require.Equal(t, byte(1), goClient.Sub(t, topic+"/from-mosquitto", 1))

				// mosquitto_sub waits for four messages: a retained one
				// that shows its subscription is in place, the empty
				// retained publish that deletes it (delivered live), one
				// from mosquitto_pub and one from the Go client.
				to := topic + "/to-mosquitto"
				goClient.Pub(t, to, []byte("ready"), 1, true)
				subArgs := append(mosquittoArgs(s, kind, v, "sub-"+name),
					"-t", to, "-q", "1", "-C", "4", "-W", "15", "-F", "%t|%q|%r|%p")
				var out, errb syncBuffer
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()
				subCmd := exec.CommandContext(ctx, "mosquitto_sub", subArgs...)
				subCmd.Stdout, subCmd.Stderr = &out, &errb
				require.NoError(t, subCmd.Start())
				require.Eventually(t, func() bool { return strings.Contains(out.String(), "ready") }, waitMsg, poll,
					"mosquitto_sub never got the retained message; stdout: %q stderr: %q", out.String(), errb.String())
				goClient.Pub(t, to, nil, 1, true) // clear it

				runTool(t, "mosquitto_pub", append(mosquittoArgs(s, kind, v, "pub-"+name),
					"-t", to, "-q", "1", "-m", "from mosquitto_pub")...)
				goClient.Pub(t, to, []byte("from go"), 1, false)
				err := subCmd.Wait()
				require.NoError(t, err, "mosquitto_sub: stdout %q stderr %q", out.String(), errb.String())
				assert.Equal(t, []string{to + "|1|1|ready", to + "|1|0|", to + "|1|0|from mosquitto_pub", to + "|1|0|from go"},
					strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"))

				pubArgs := append(mosquittoArgs(s, kind, v, "pub2-"+name),
					"-t", topic+"/from-mosquitto", "-q", "2", "-m", "to go")
				if v == v5 {
					pubArgs = append(pubArgs, "-D", "publish", "user-property", "origin", "mosquitto")
				}
				runTool(t, "mosquitto_pub", pubArgs...)
				m := goClient.Recv(t)
				assert.Equal(t, topic+"/from-mosquitto", m.Topic)
				assert.Equal(t, "to go", string(m.Payload))
				assert.Equal(t, byte(1), m.QoS)
				if v == v5 {
					assert.Equal(t, paho.UserProperties{{Key: "origin", Value: "mosquitto"}}, m.Props.User)
				}

				// Retained: stored from mosquitto_pub, read by mosquitto_sub.
				runTool(t, "mosquitto_pub", append(mosquittoArgs(s, kind, v, "pub3-"+name),
					"-t", topic+"/retained", "-q", "1", "-r", "-m", "kept")...)
				got := runTool(t, "mosquitto_sub", append(mosquittoArgs(s, kind, v, "sub3-"+name),
					"-t", topic+"/retained", "-q", "1", "-C", "1", "-W", "10", "-F", "%r|%p")...)
				assert.Equal(t, "1|kept\n", got)
			})
		}
	}
}

// syncBuffer is a bytes.Buffer a running command writes to while the test
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
