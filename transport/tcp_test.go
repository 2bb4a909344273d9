//go:build linux

package transport

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestTCPWildcardAddr: ":0" binds every address on a free port; Addr
// reports the port and each connection its real local address.
func TestTCPWildcardAddr(t *testing.T) {
	h := newTestHandler()
	l := listenT(t)(ListenTCP(TCPConfig{Addr: ":0"}, h)) // Loops: one per CPU
	addr := l.Addr().(*net.TCPAddr)
	require.NotZero(t, addr.Port)
	assert.True(t, addr.IP.IsUnspecified(), "bound to %v", addr)

	cl, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(addr.Port)))
	require.NoError(t, err)
	defer cl.Close()
	c := h.waitOpen(t)
	assert.Equal(t, cl.RemoteAddr().String(), c.LocalAddr().String())
	assert.Equal(t, cl.LocalAddr().String(), c.RemoteAddr().String())
	assert.Nil(t, c.PeerCertificates())
}

func TestTCPConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		cfg   TCPConfig
		field string
	}{
		{"missing port", TCPConfig{Addr: "localhost"}, "Addr"},
		{"negative loops", TCPConfig{Addr: ":0", Loops: -1}, "Loops"},
		{"negative max buffered", TCPConfig{Addr: ":0", MaxBuffered: -1}, "MaxBuffered"},
		{"negative read buffer", TCPConfig{Addr: ":0", ReadBufferSize: -1}, "ReadBufferSize"},
		{"negative rcvbuf", TCPConfig{Addr: ":0", SocketRecvBuffer: -1}, "SocketRecvBuffer"},
		{"negative sndbuf", TCPConfig{Addr: ":0", SocketSendBuffer: -1}, "SocketSendBuffer"},
		{"ok", TCPConfig{Addr: "127.0.0.1:0"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.field == "" {
				assert.NoError(t, err)
				return
			}
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tt.field, ce.Field)
		})
	}
	_, err := ListenTCP(TCPConfig{Addr: "127.0.0.1:0"}, nil)
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "Handler", ce.Field)
}

// TestDoneExactlyOnce: writers keep queuing while the peer goes away; every
// accepted write gets exactly one done, and Outbound returns to zero.
func TestDoneExactlyOnce(t *testing.T) {
	for _, k := range kinds() {
		t.Run(k.name, func(t *testing.T) {
			h := newTestHandler()
			l := k.listen(t, h)
			cl := k.dial(t, l.Addr())
			c := h.waitOpen(t)

			var accepted, dones, twice atomic.Int64
			var wg sync.WaitGroup
			msg := make([]byte, 4096)
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						if c.Outbound() > 1<<20 {
							// Bound the memory a peer that reads slowly pins.
							time.Sleep(time.Millisecond)
							continue
						}
						var once atomic.Bool
						err := c.AsyncWritev([][]byte{msg}, func(error) {
							if once.Swap(true) {
								twice.Add(1)
							}
							dones.Add(1)
						})
						if err != nil {
							assert.ErrorIs(t, err, ErrClosed)
							return
						}
						accepted.Add(1)
					}
				}()
			}
			readN(t, cl, 64<<10)
			require.NoError(t, cl.Close())
			h.waitClose(t)
			wg.Wait()
			require.Eventually(t, func() bool { return dones.Load() == accepted.Load() }, waitFor, tick)
			assert.Zero(t, twice.Load())
			assert.Zero(t, c.Outbound())
			h.checkOnce(t)
		})
	}
}

// TestTCPSocketOptionsInherited: keep-alive and TCP_NODELAY, set once on
// the listening socket, reach every accepted socket (Linux copies them).
func TestTCPSocketOptionsInherited(t *testing.T) {
	h := newTestHandler()
	l := listenT(t)(ListenTCP(TCPConfig{Addr: "127.0.0.1:0", KeepAlive: 7 * time.Second}, h))
	cl, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	defer cl.Close()
	fd := int(h.waitOpen(t).(*tcpConn).fd)
	for _, o := range []struct {
		name       string
		level, opt int
		want       int
	}{
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 7},
		{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 7},
		{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 9},
		{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
	} {
		v, err := unix.GetsockoptInt(fd, o.level, o.opt)
		require.NoError(t, err, o.name)
		assert.Equal(t, o.want, v, o.name)
	}
}
