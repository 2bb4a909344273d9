//go:build linux

package transport

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTCPIPv6Addresses: an IPv6 client's addresses are reported as IPv6,
// and an IPv4 client of a dual-stack listener as plain IPv4 (not
// ::ffff:a.b.c.d).
func TestTCPIPv6Addresses(t *testing.T) {
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		_ = ln.Close()
	}
	for _, tc := range []struct{ listen, dial string }{
		{"[::1]:0", "::1"},
		{":0", "127.0.0.1"},
		{":0", "::1"},
	} {
		t.Run(tc.listen+" from "+tc.dial, func(t *testing.T) {
			h := newTestHandler()
			l := listenT(t)(ListenTCP(TCPConfig{Addr: tc.listen, Loops: 1}, h))
			port := l.Addr().(*net.TCPAddr).Port
			cl, err := net.Dial("tcp", net.JoinHostPort(tc.dial, fmt.Sprint(port)))
			require.NoError(t, err)
			defer cl.Close()
			c := h.waitOpen(t)
			assert.Equal(t, cl.LocalAddr().String(), c.RemoteAddr().String())
			assert.Equal(t, cl.RemoteAddr().String(), c.LocalAddr().String())
			_, err = cl.Write([]byte("ping\n"))
			require.NoError(t, err)
			assert.Equal(t, "ping\n", string(readN(t, cl, 5)))
		})
	}
}

// TestTCPCloseWhileSocketFull: Close does not wait for a peer that stopped
// reading: the connection closes at once and the writes the socket did
// not take fail with ErrClosed.
func TestTCPCloseWhileSocketFull(t *testing.T) {
	h := newTestHandler()
	l := listenT(t)(ListenTCP(TCPConfig{Addr: "127.0.0.1:0", Loops: 1}, h))
	cl, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	defer cl.Close()
	c := h.waitOpen(t)

	const chunks = 64
	chunk := bytes.Repeat([]byte("z"), 256<<10) // 16 MiB: more than the sockets hold
	var ok, failed atomic.Int32
	for range chunks {
		require.NoError(t, c.AsyncWritev([][]byte{chunk}, func(err error) {
			if err == nil {
				ok.Add(1)
			} else {
				assert.ErrorIs(t, err, ErrClosed)
				failed.Add(1)
			}
		}))
	}
	// Wait until the socket is full: Outbound stops falling.
	last := -1
	require.Eventually(t, func() bool {
		o := c.Outbound()
		stable := o == last && o > 0
		last = o
		return stable
	}, waitFor, 50*time.Millisecond)

	start := time.Now()
	require.NoError(t, c.Close())
	ev := h.waitClose(t)
	assert.NoError(t, ev.err)
	assert.Less(t, time.Since(start), time.Second)
	require.Eventually(t, func() bool { return ok.Load()+failed.Load() == chunks }, waitFor, tick)
	assert.Positive(t, failed.Load())
	assert.Zero(t, c.Outbound())
	assert.ErrorIs(t, c.AsyncWritev([][]byte{chunk}, nil), ErrClosed)
}

// TestTCPWriteFromOtherConnection: a connection's OnData writing to
// another connection (a message routed on the same loop) is delivered,
// many such writes within one read batch in order.
func TestTCPWriteFromOtherConnection(t *testing.T) {
	h := newTestHandler()
	var mu sync.Mutex
	var sink Conn
	h.open = func(c Conn) {
		mu.Lock()
		defer mu.Unlock()
		if sink == nil {
			sink = c
		}
	}
	h.data = func(c Conn, b []byte) (int, error) {
		mu.Lock()
		s := sink
		mu.Unlock()
		n := 0
		for {
			i := bytes.IndexByte(b[n:], '\n')
			if i < 0 {
				return n, nil
			}
			line := append([]byte(nil), b[n:n+i+1]...)
			if err := s.AsyncWritev([][]byte{line}, nil); err != nil {
				return n, err
			}
			n += i + 1
		}
	}
	l := listenT(t)(ListenTCP(TCPConfig{Addr: "127.0.0.1:0", Loops: 1}, h))
	sinkCl, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	defer sinkCl.Close()
	h.waitOpen(t)
	src, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	defer src.Close()
	h.waitOpen(t)

	var want strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	_, err = src.Write([]byte(want.String()))
	require.NoError(t, err)
	assert.Equal(t, want.String(), string(readN(t, sinkCl, want.Len())))
}

// dialerEnv makes the test binary a dialing process for
// TestTCPAcceptOutOfDescriptors: it waits for a line on stdin, dials the
// address this many times, checks an echo on each and says "ok".
const dialerEnv = "TRANSPORT_TEST_DIALER"

func TestTCPDialerProcess(t *testing.T) {
	spec := os.Getenv(dialerEnv)
	if spec == "" {
		t.Skip("helper process of TestTCPAcceptOutOfDescriptors")
	}
	var addr string
	var n int
	_, err := fmt.Sscanf(spec, "%s %d", &addr, &n)
	require.NoError(t, err)
	in := bufio.NewReader(os.Stdin)
	_, err = in.ReadString('\n')
	require.NoError(t, err)
	var conns []net.Conn
	for range n {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		conns = append(conns, c)
	}
	for _, c := range conns {
		_, err := c.Write([]byte("hello\n"))
		require.NoError(t, err)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(waitFor)))
		assert.Equal(t, "hello\n", string(readN(t, c, 6)))
	}
	fmt.Println("ok")
	_, _ = in.ReadString('\n')
}

// lockedBuffer is a goroutine-safe log sink.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (b *lockedBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.b.String(), s)
}

// TestTCPAcceptOutOfDescriptors: with no file descriptor left, the loop
// does not spin on the readable listener: it logs, pauses accepting,
// keeps serving its connections, and accepts the waiting connections
// once descriptors are free again.
func TestTCPAcceptOutOfDescriptors(t *testing.T) {
	var logs lockedBuffer
	h := newTestHandler()
	l := listenT(t)(ListenTCP(TCPConfig{Addr: "127.0.0.1:0", Loops: 1, Log: zerolog.New(&logs)}, h))
	cl, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	defer cl.Close()
	h.waitOpen(t)

	const dials = 3
	cmd := exec.Command(os.Args[0], "-test.run=^TestTCPDialerProcess$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", dialerEnv, l.Addr(), dials))
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	var out lockedBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	require.NoError(t, cmd.Start())
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()

	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	restore := lim
	defer func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &restore) }()
	open, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	// ReadDir's own descriptor is closed again: no descriptor is free.
	lim.Cur = uint64(len(open) - 1)
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim))

	_, err = stdin.Write([]byte("dial\n"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return logs.count("accept failed") > 0 }, waitFor, tick)

	// The loop still serves the connection it has, and does not spin.
	_, err = cl.Write([]byte("still here\n"))
	require.NoError(t, err)
	assert.Equal(t, "still here\n", string(readN(t, cl, len("still here\n"))))
	time.Sleep(300 * time.Millisecond)
	assert.LessOrEqual(t, logs.count("accept failed"), 6, "one attempt per pause")

	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &restore))
	for range dials {
		h.waitOpen(t)
	}
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "ok") }, waitFor, tick, "dialer: %s", &out)
}

// TestTCPConnSize: an idle connection's transport state stays within one
// 112-byte size class; what few connections need is allocated apart.
func TestTCPConnSize(t *testing.T) {
	assert.LessOrEqual(t, unsafe.Sizeof(tcpConn{}), uintptr(112))
}

// TestTCPLoopsShareConnections: with several loops, connections are dealt
// to all of them round-robin, whichever loop accepted them (EPOLLEXCLUSIVE
// wakes mostly the same loop), so the loops share the work.
func TestTCPLoopsShareConnections(t *testing.T) {
	h := newTestHandler()
	ln := listenT(t)(ListenTCP(TCPConfig{Addr: "127.0.0.1:0", Loops: 2}, h))
	const n = 200
	perLoop := map[*tcpLoop]int{}
	for range n {
		cl, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		defer cl.Close()
		perLoop[h.waitOpen(t).(*tcpConn).lp]++ // lp is set before OnOpen, never changed
	}
	for i, lp := range ln.(*tcpListener).loops {
		t.Logf("loop %d: %d connections", i, perLoop[lp])
		assert.Equal(t, n/2, perLoop[lp], "loop %d", i)
	}
}
