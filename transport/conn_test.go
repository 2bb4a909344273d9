package transport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// clientLocalAddr is the client side's local address, for comparing with
// the server's RemoteAddr.
func clientLocalAddr(c io.ReadWriteCloser) net.Addr {
	switch c := c.(type) {
	case net.Conn:
		return c.LocalAddr()
	case *wsStream:
		return c.ws.LocalAddr()
	}
	return nil
}

func TestEcho(t *testing.T) {
	for _, k := range kinds() {
		t.Run(k.name, func(t *testing.T) {
			h := newTestHandler()
			h.open = func(c Conn) { c.SetContext(k.name) }
			l := k.listen(t, h)
			addr := l.Addr().(*net.TCPAddr)
			require.NotZero(t, addr.Port, "Addr resolves port 0")

			cl := k.dial(t, l.Addr())
			c := h.waitOpen(t)

			assert.Equal(t, k.transport, c.Transport())
			assert.Equal(t, k.name, c.Context())
			assert.Equal(t, clientLocalAddr(cl).String(), c.RemoteAddr().String())
			assert.Equal(t, addr.String(), c.LocalAddr().String())
			if k.cn != "" {
				require.NotEmpty(t, c.PeerCertificates())
				assert.Equal(t, k.cn, c.PeerCertificates()[0].Subject.CommonName)
			} else {
				assert.Empty(t, c.PeerCertificates())
			}

			// A line split across writes, then several in one write.
			for _, chunk := range []string{"hel", "lo\nwor", "ld\n", "a\nb\nc\n"} {
				_, err := cl.Write([]byte(chunk))
				require.NoError(t, err)
			}
			want := "hello\nworld\na\nb\nc\n"
			assert.Equal(t, want, string(readN(t, cl, len(want))))
			assert.Eventually(t, func() bool { return c.Outbound() == 0 }, waitFor, tick)

			// The peer ends the connection: OnClose(nil).
			require.NoError(t, cl.Close())
			ev := h.waitClose(t)
			assert.Same(t, c, ev.c)
			assert.NoError(t, ev.err)
			assert.ErrorIs(t, c.AsyncWritev([][]byte{[]byte("late")}, nil), ErrClosed)
			h.checkOnce(t)
		})
	}
}

// lineState is the per-connection context of the reassembly test: the
// sequence number the next line must carry.
type lineState struct{ next int }

// checkLines consumes complete lines "seq:payload", checks the sequence
// and echoes them.
func checkLines(c Conn, b []byte) (int, error) {
	st := c.Context().(*lineState)
	consumed := 0
	for {
		i := bytes.IndexByte(b[consumed:], '\n')
		if i < 0 {
			break
		}
		line := b[consumed : consumed+i]
		seq, _, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			return 0, fmt.Errorf("line %q has no sequence", line)
		}
		n, err := strconv.Atoi(string(seq))
		if err != nil || n != st.next {
			return 0, fmt.Errorf("line %q: want sequence %d", line, st.next)
		}
		st.next++
		consumed += i + 1
	}
	if consumed == 0 {
		return 0, nil
	}
	return consumed, c.AsyncWritev([][]byte{bytes.Clone(b[:consumed])}, nil)
}

// TestReassembly: many connections at once, each sending lines cut into
// random chunks; the handler consumes whole lines only and must see them
// intact and in order; the echo must equal what was sent.
func TestReassembly(t *testing.T) {
	const lines = 20
	for _, k := range kinds() {
		t.Run(k.name, func(t *testing.T) {
			conns := 200
			if k.transport != "tcp" && k.transport != "ws" {
				conns = 100 // TLS handshakes are slow under -race
			}
			h := newTestHandler()
			h.open = func(c Conn) { c.SetContext(&lineState{}) }
			h.data = checkLines
			l := k.listen(t, h)

			var wg sync.WaitGroup
			errs := make(chan error, conns)
			for i := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- reassemblyClient(t, k, l.Addr(), uint64(i), lines)
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			for range conns {
				ev := h.waitClose(t)
				require.NoError(t, ev.err)
			}
			h.checkOnce(t)
		})
	}
}

func reassemblyClient(t *testing.T, k kind, addr net.Addr, seed uint64, lines int) error {
	rng := rand.New(rand.NewPCG(seed, 42))
	var sent bytes.Buffer
	for i := range lines {
		fmt.Fprintf(&sent, "%d:", i)
		for range rng.IntN(300) {
			sent.WriteByte('a' + byte(rng.IntN(26)))
		}
		sent.WriteByte('\n')
	}
	cl := k.dial(t, addr)
	defer cl.Close()

	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, sent.Len())
		_, err := io.ReadFull(cl, buf)
		if err != nil {
			buf = nil
		}
		got <- buf
	}()
	data := sent.Bytes()
	for len(data) > 0 {
		n := min(1+rng.IntN(200), len(data))
		if _, err := cl.Write(data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	select {
	case echo := <-got:
		if !bytes.Equal(echo, sent.Bytes()) {
			return fmt.Errorf("conn %d: echo differs from what was sent", seed)
		}
	case <-time.After(waitFor):
		return fmt.Errorf("conn %d: no echo", seed)
	}
	return nil
}

// TestConcurrentWriters: AsyncWritev from many goroutines to one
// connection keeps each goroutine's order, and done is called once each.
func TestConcurrentWriters(t *testing.T) {
	const writers, perWriter = 8, 200
	for _, k := range kinds() {
		t.Run(k.name, func(t *testing.T) {
			h := newTestHandler()
			l := k.listen(t, h)
			cl := k.dial(t, l.Addr())
			defer cl.Close()
			c := h.waitOpen(t)

			var dones, doneErrs atomic.Int32
			var wg sync.WaitGroup
			total := 0
			msgs := make([][][]byte, writers)
			for g := range writers {
				for i := range perWriter {
					m := []byte(strconv.Itoa(g) + ":" + strconv.Itoa(i) + "\n")
					msgs[g] = append(msgs[g], m)
					total += len(m)
				}
			}
			for g := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for _, m := range msgs[g] {
						// Several vectors per call.
						colon := bytes.IndexByte(m, ':')
						err := c.AsyncWritev([][]byte{m[:colon], m[colon : colon+1], m[colon+1:]}, func(err error) {
							dones.Add(1)
							if err != nil {
								doneErrs.Add(1)
							}
						})
						if !assert.NoError(t, err) {
							return
						}
					}
				}()
			}
			got := readN(t, cl, total)
			wg.Wait()

			next := make([]int, writers)
			for _, line := range bytes.Split(bytes.TrimSuffix(got, []byte("\n")), []byte("\n")) {
				gs, is, ok := bytes.Cut(line, []byte(":"))
				require.True(t, ok, "line %q", line)
				g, err := strconv.Atoi(string(gs))
				require.NoError(t, err)
				i, err := strconv.Atoi(string(is))
				require.NoError(t, err)
				require.Equal(t, next[g], i, "writer %d out of order", g)
				next[g]++
			}
			for g := range writers {
				assert.Equal(t, perWriter, next[g])
			}
			require.Eventually(t, func() bool { return dones.Load() == writers*perWriter }, waitFor, tick)
			assert.Zero(t, doneErrs.Load())
			assert.Eventually(t, func() bool { return c.Outbound() == 0 }, waitFor, tick)
		})
	}
}

// TestCloseFromOtherGoroutines: Close from many goroutines at once closes
// the connection, OnClose is called once with nil, and later writes fail.
func TestCloseFromOtherGoroutines(t *testing.T) {
	for _, k := range kinds() {
		t.Run(k.name, func(t *testing.T) {
			h := newTestHandler()
			l := k.listen(t, h)
			cl := k.dial(t, l.Addr())
			defer cl.Close()
			c := h.waitOpen(t)

			var wg sync.WaitGroup
			for range 10 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					assert.NoError(t, c.Close())
				}()
			}
			wg.Wait()
			ev := h.waitClose(t)
			assert.Same(t, c, ev.c)
			assert.NoError(t, ev.err)
			assert.Empty(t, readEOF(t, cl))
			assert.ErrorIs(t, c.AsyncWritev([][]byte{[]byte("x")}, func(error) { t.Error("done called after refused write") }), ErrClosed)
			assert.NoError(t, c.Close(), "idempotent")
			h.checkOnce(t)
		})
	}
}

// TestCloseFlushesQueuedWrites: writes queued before Close reach the peer.
func TestCloseFlushesQueuedWrites(t *testing.T) {
	for _, k := range kinds() {
		t.Run(k.name, func(t *testing.T) {
			h := newTestHandler()
			l := k.listen(t, h)
			cl := k.dial(t, l.Addr())
			defer cl.Close()
			c := h.waitOpen(t)

			payload := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
			doneErr := make(chan error, 1)
			require.NoError(t, c.AsyncWritev([][]byte{payload[:1000], payload[1000:]}, func(err error) { doneErr <- err }))
			require.NoError(t, c.Close())
			assert.Equal(t, payload, readEOF(t, cl))
			assert.NoError(t, <-doneErr)
			assert.NoError(t, h.waitClose(t).err)
		})
	}
}

var errBye = errors.New("test: bye")

// TestOnDataError: a reply queued in OnData goes out, then the connection
// closes and OnClose gets the handler's error.
func TestOnDataError(t *testing.T) {
	for _, k := range kinds() {
		t.Run(k.name, func(t *testing.T) {
			h := newTestHandler()
			h.data = func(c Conn, b []byte) (int, error) {
				consumed := 0
				for {
					i := bytes.IndexByte(b[consumed:], '\n')
					if i < 0 {
						return consumed, nil
					}
					line := b[consumed : consumed+i+1]
					consumed += i + 1
					if string(line) == "bye\n" {
						require.NoError(t, c.AsyncWritev([][]byte{[]byte("goodbye\n")}, nil))
						return consumed, errBye
					}
					require.NoError(t, c.AsyncWritev([][]byte{bytes.Clone(line)}, nil))
				}
			}
			l := k.listen(t, h)
			cl := k.dial(t, l.Addr())
			defer cl.Close()
			h.waitOpen(t)

			_, err := cl.Write([]byte("hi\nbye\n"))
			require.NoError(t, err)
			assert.Equal(t, "hi\ngoodbye\n", string(readEOF(t, cl)))
			assert.ErrorIs(t, h.waitClose(t).err, errBye)
			h.checkOnce(t)
		})
	}
}

// TestHandlerPanic: a panic in OnData closes that connection only.
func TestHandlerPanic(t *testing.T) {
	for _, k := range kinds() {
		t.Run(k.name, func(t *testing.T) {
			h := newTestHandler()
			l := k.listen(t, h)
			bad := k.dial(t, l.Addr())
			defer bad.Close()
			badConn := h.waitOpen(t)
			good := k.dial(t, l.Addr())
			defer good.Close()
			h.waitOpen(t)

			_, err := bad.Write([]byte("panic\n"))
			require.NoError(t, err)
			ev := h.waitClose(t)
			assert.Same(t, badConn, ev.c)
			assert.ErrorIs(t, ev.err, ErrHandlerPanic)
			assert.Contains(t, ev.err.Error(), "OnData")
			readEOF(t, bad)

			_, err = good.Write([]byte("still here\n"))
			require.NoError(t, err)
			assert.Equal(t, "still here\n", string(readN(t, good, len("still here\n"))))

			// The listener still accepts.
			third := k.dial(t, l.Addr())
			defer third.Close()
			h.waitOpen(t)
		})
	}
}

// TestOpenPanic: a panic in OnOpen closes the connection; OnClose follows.
func TestOpenPanic(t *testing.T) {
	for _, k := range kinds() {
		t.Run(k.name, func(t *testing.T) {
			h := newTestHandler()
			h.open = func(Conn) { panic("open failed") }
			l := k.listen(t, h)
			cl := k.dial(t, l.Addr())
			defer cl.Close()
			ev := h.waitClose(t)
			assert.ErrorIs(t, ev.err, ErrHandlerPanic)
			assert.Contains(t, ev.err.Error(), "OnOpen")
			readEOF(t, cl)
			h.checkOnce(t)
		})
	}
}

// TestConsumedOutOfRange: claiming more bytes than offered closes the
// connection with ErrConsumed.
func TestConsumedOutOfRange(t *testing.T) {
	for _, k := range kinds() {
		t.Run(k.name, func(t *testing.T) {
			h := newTestHandler()
			h.data = func(_ Conn, b []byte) (int, error) { return len(b) + 1, nil }
			l := k.listen(t, h)
			cl := k.dial(t, l.Addr())
			defer cl.Close()
			_, err := cl.Write([]byte("x"))
			require.NoError(t, err)
			assert.ErrorIs(t, h.waitClose(t).err, ErrConsumed)
			readEOF(t, cl)
		})
	}
}

// TestMaxBuffered: a handler that never consumes gets its connection closed
// once MaxBuffered bytes are pending, with ErrInboundOverflow.
func TestMaxBuffered(t *testing.T) {
	for _, k := range kinds() {
		t.Run(k.name, func(t *testing.T) {
			h := newTestHandler()
			var seen atomic.Int64
			h.data = func(_ Conn, b []byte) (int, error) {
				seen.Store(int64(len(b)))
				return 0, nil
			}
			l := k.listenWith(t, h, listenOpts{maxBuffered: 10000})
			cl := k.dial(t, l.Addr())
			defer cl.Close()

			chunk := bytes.Repeat([]byte("x"), 1000)
			for range 9 {
				_, err := cl.Write(chunk)
				require.NoError(t, err)
			}
			// 9000 bytes pending, all offered again each time: still open.
			require.Eventually(t, func() bool { return seen.Load() == 9000 }, waitFor, tick)
			assert.Empty(t, h.closed)
			for range 2 {
				_, _ = cl.Write(chunk) // the second may find the conn closed
			}
			ev := h.waitClose(t)
			assert.ErrorIs(t, ev.err, ErrInboundOverflow)
		})
	}
}

// TestListenerClose: Close closes every connection (OnClose before Close
// returns, with ErrListenerClosed), is idempotent and leaks no goroutine.
func TestListenerClose(t *testing.T) {
	for _, k := range kinds() {
		t.Run(k.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			const n = 10
			h := newTestHandler()
			if k.setup != nil {
				k.setup(t)
			}
			l, err := k.start(h, listenOpts{})
			require.NoError(t, err)
			clients := make([]io.ReadWriteCloser, n)
			conns := make([]Conn, n)
			for i := range clients {
				clients[i] = k.dial(t, l.Addr())
				conns[i] = h.waitOpen(t)
			}
			// One connection has a write queued at close time: it is
			// flushed before the socket closes.
			require.NoError(t, conns[0].AsyncWritev([][]byte{[]byte("last words\n")}, nil))

			require.NoError(t, l.Close())
			require.Len(t, h.closed, n, "every OnClose has returned when Close returns")
			for range n {
				assert.ErrorIs(t, h.waitClose(t).err, ErrListenerClosed)
			}
			assert.Equal(t, "last words\n", string(readEOF(t, clients[0])))
			for _, cl := range clients[1:] {
				assert.Empty(t, readEOF(t, cl))
			}
			for _, cl := range clients {
				_ = cl.Close()
			}
			for _, c := range conns {
				assert.ErrorIs(t, c.AsyncWritev([][]byte{[]byte("x")}, nil), ErrClosed)
			}
			require.NoError(t, l.Close(), "idempotent")
			h.checkOnce(t)

			_, err = net.DialTimeout("tcp", l.Addr().String(), time.Second)
			assert.Error(t, err, "nothing listens any more")
		})
	}
}

// TestBindError: an address in use is reported by Listen itself.
func TestBindError(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	for _, k := range kinds() {
		t.Run(k.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			if k.setup != nil {
				k.setup(t)
			}
			l, err := k.start(newTestHandler(), listenOpts{addr: busy.Addr().String()})
			require.Error(t, err)
			assert.Nil(t, l)
			assert.ErrorIs(t, err, syscall.EADDRINUSE)
		})
	}
}

// TestOutbound: bytes a peer does not read show in Outbound and drain to
// zero once it reads; every done is called with nil.
func TestOutbound(t *testing.T) {
	for _, k := range kinds() {
		t.Run(k.name, func(t *testing.T) {
			h := newTestHandler()
			l := k.listen(t, h)
			cl := k.dial(t, l.Addr())
			defer cl.Close()
			c := h.waitOpen(t)

			const chunks, total = 64, 16 << 20 // more than loopback socket buffers hold
			chunk := bytes.Repeat([]byte("z"), total/chunks)
			var dones atomic.Int32
			for range chunks {
				require.NoError(t, c.AsyncWritev([][]byte{chunk}, func(err error) {
					assert.NoError(t, err)
					dones.Add(1)
				}))
			}
			// The socket is full part-way through: what it took is no
			// longer counted, the rest is, and the writes behind it are
			// not done yet.
			require.Eventually(t, func() bool { o := c.Outbound(); return o > 0 && o < total }, waitFor, tick)
			assert.Less(t, dones.Load(), int32(chunks))

			got := readN(t, cl, total)
			assert.Len(t, got, total)
			assert.Eventually(t, func() bool { return c.Outbound() == 0 }, waitFor, tick)
			assert.Eventually(t, func() bool { return dones.Load() == chunks }, waitFor, tick)
		})
	}
}

// TestWSMessageBoundaries: WebSocket message boundaries mean nothing to
// the byte stream, in both directions.
func TestWSMessageBoundaries(t *testing.T) {
	for _, k := range kinds() {
		if k.transport != "ws" && k.transport != "wss" {
			continue
		}
		t.Run(k.name, func(t *testing.T) {
			h := newTestHandler()
			l := k.listen(t, h)
			cl := k.dial(t, l.Addr()).(*wsStream)
			defer cl.Close()
			h.waitOpen(t)
			for _, m := range []string{"a\nb", "", "\nc\nd", "\n"} {
				require.NoError(t, cl.ws.WriteMessage(websocket.BinaryMessage, []byte(m)))
			}
			assert.Equal(t, "a\nb\nc\nd\n", string(readN(t, cl, len("a\nb\nc\nd\n"))))
		})
	}
}
