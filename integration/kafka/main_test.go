package kafka

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// kafkaEnv is the Kafka the tests use.
var kafkaEnv struct {
	addr    string // host:port; "" when skipped
	skip    string // why the tests are skipped
	port    int
	runDir  string // KAFKA_RUN_DIR for the script; "" for its default
	started bool   // TestMain started it (and stops it)
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// kafkaScript runs scripts/kafka.sh cmd for the tests' Kafka.
func kafkaScript(cmd string) error {
	c := exec.Command("bash", filepath.Join(repoRoot(), "scripts", "kafka.sh"), cmd)
	c.Env = append(os.Environ(), "KAFKA_PORT="+strconv.Itoa(kafkaEnv.port))
	if kafkaEnv.runDir != "" {
		c.Env = append(c.Env, "KAFKA_RUN_DIR="+kafkaEnv.runDir)
	}
	out, err := c.CombinedOutput()
	if err != nil {
		return fmt.Errorf("scripts/kafka.sh %s: %w\n%s", cmd, err, out)
	}
	return nil
}

// freePortPair finds a loopback port p with p+1 free too (the script's
// controller listener).
func freePortPair() (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1))
		l.Close()
		if err == nil {
			l2.Close()
			return p, nil
		}
	}
	return 0, fmt.Errorf("no free pair of loopback ports")
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if addr := os.Getenv("MQTTD_KAFKA"); addr != "" {
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "MQTTD_KAFKA=%q: %v\n", addr, err)
			return 2
		}
		kafkaEnv.addr = addr
		kafkaEnv.port, _ = strconv.Atoi(p)
		kafkaEnv.runDir = os.Getenv("KAFKA_RUN_DIR")
		return m.Run()
	}
	for _, tool := range []string{"java", "mvn"} {
		if _, err := exec.LookPath(tool); err != nil {
			kafkaEnv.skip = "Kafka tests need Java 17 and Maven (" + tool + " not found) or MQTTD_KAFKA=host:port of a running Kafka"
			return m.Run()
		}
	}
	port, err := freePortPair()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	dir, err := os.MkdirTemp("", "mqttd-kafka-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	kafkaEnv.port, kafkaEnv.runDir = port, filepath.Join(dir, "run")
	start := time.Now()
	if err := kafkaScript("up"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		return 1
	}
	fmt.Fprintf(os.Stderr, "kafka: started on 127.0.0.1:%d in %s\n", port, time.Since(start).Round(time.Millisecond))
	kafkaEnv.addr = "127.0.0.1:" + strconv.Itoa(port)
	kafkaEnv.started = true
	code := m.Run()
	if err := kafkaScript("down"); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.RemoveAll(dir)
	return code
}

// needKafka skips the test when there is no Kafka (no Java or Maven).
func needKafka(t testing.TB) string {
	t.Helper()
	if kafkaEnv.addr == "" {
		t.Skip(kafkaEnv.skip)
	}
	return kafkaEnv.addr
}
