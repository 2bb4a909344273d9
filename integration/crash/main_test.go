package crash

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// binary is the mqttd executable TestMain built.
var binary string

// TestMain builds cmd/mqttd once for every test. It also raises the
// default parallelism: the parallel tests spend their time waiting for
// restarts and timers (expiry), not on the CPU. An explicit
// -test.parallel wins.
func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", "6")
	}
	dir, err := os.MkdirTemp("", "mqttd-crash-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash: temp dir:", err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "mqttd")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	build := exec.Command(goTool, "build", "-o", binary, "github.com/mqttd/mqttd/cmd/mqttd")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "crash: building mqttd: %v\n%s", err, out)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

const (
	// startWait bounds how long a broker may take to accept connections
	// (it replays its store first) or to fail at start.
	startWait = 15 * time.Second
	// waitMsg bounds every wait for something the broker should do at once.
	waitMsg = 10 * time.Second
)

// freeAddr returns a loopback address with a port nobody listens on. The
// broker keeps it across restarts (the listener sets SO_REUSEADDR).
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// lockedBuffer collects a child's stderr.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// server is the mqttd binary run as a child process on one data directory
// and one address, across restarts.
type server struct {
	t       testing.TB
	Addr    string
	DataDir string
	extra   []string // more flags

	mu     sync.Mutex // guards the fields below
	cmd    *exec.Cmd
	exited chan struct{}
	stderr *lockedBuffer
	runs   int
}

// newServer prepares a broker on a fresh address and data directory. The
// queue caps are far above anything a test queues, so the offline cap
// never drops a message here: any loss is the store's.
func newServer(t testing.TB, extra ...string) *server {
	t.Helper()
	s := &server{t: t, Addr: freeAddr(t), DataDir: filepath.Join(t.TempDir(), "data"), extra: extra}
	t.Cleanup(func() {
		s.mu.Lock()
		running := s.cmd != nil
		s.mu.Unlock()
		if running {
			s.Kill()
		}
	})
	return s
}

func (s *server) args() []string {
	return append([]string{
		"-allow-anonymous",
		"-mqtt.addr", s.Addr,
		"-ws.addr", "off", "-tls.addr", "off", "-wss.addr", "off", "-admin.addr", "off",
		"-data-dir", s.DataDir,
		"-session.max-queued", "100000",
		"-session.max-pending", "100000",
		"-log.level", "warn",
		"-log.format", "json",
	}, s.extra...)
}

// launch starts the binary without waiting for it to listen.
func (s *server) launch() (*exec.Cmd, chan struct{}, *lockedBuffer) {
	s.t.Helper()
	cmd := exec.Command(binary, s.args()...)
	stderr := &lockedBuffer{}
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	require.NoError(s.t, cmd.Start())
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited, s.stderr = cmd, exited, stderr
	s.runs++
	s.mu.Unlock()
	return cmd, exited, stderr
}

// Start runs the broker and waits until its port accepts connections.
func (s *server) Start() {
	s.t.Helper()
	if started, code := s.TryStart(); !started {
		s.t.Fatalf("mqttd exited at start with code %d: %s", code, s.Stderr())
	}
}

// TryStart runs the broker and waits until its port accepts connections
// (started) or the process exits (its exit code).
func (s *server) TryStart() (started bool, exitCode int) {
	s.t.Helper()
	cmd, exited, stderr := s.launch()
	deadline := time.Now().Add(startWait)
	for {
		select {
		case <-exited:
			s.mu.Lock()
			s.cmd = nil
			s.mu.Unlock()
			return false, cmd.ProcessState.ExitCode()
		default:
		}
		c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return true, 0
		}
		if time.Now().After(deadline) {
			s.Kill()
			s.t.Fatalf("mqttd does not accept on %s after %v: %s", s.Addr, startWait, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (s *server) Kill() {
	s.signal(syscall.SIGKILL)
}

// Stop asks the broker to shut down (SIGTERM) and waits for it.
func (s *server) Stop() {
	s.signal(syscall.SIGTERM)
}

func (s *server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(waitMsg):
		_ = cmd.Process.Kill()
		<-exited
		s.t.Errorf("mqttd did not exit within %v of %v", waitMsg, sig)
	}
}

// Restart kills the broker with SIGKILL and starts it again on the same
// data directory.
func (s *server) Restart() {
	s.t.Helper()
	s.Kill()
	s.Start()
}

// Stderr is what the current (or last) process wrote.
func (s *server) Stderr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stderr == nil {
		return ""
	}
	return s.stderr.String()
}

// runToExit runs the binary with args and returns its exit code and
// output, failing the test when it runs longer than limit.
func runToExit(t *testing.T, limit time.Duration, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), out.String()
		}
		require.NoError(t, err)
		return 0, out.String()
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("mqttd still running after %v; output:\n%s", limit, out.String())
		return -1, ""
	}
}

// panicked reports whether output shows a Go panic or a goroutine dump.
func panicked(output string) bool {
	return strings.Contains(output, "panic") || strings.Contains(output, "goroutine ")
}
