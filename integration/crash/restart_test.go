package crash

import (
	"errors"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/codec"
)

// quiet is how long "nothing more arrives" is watched for.
const quiet = 500 * time.Millisecond

// received is one PUBLISH as the subscriber saw it.
type received struct {
	Topic   string
	Payload string
	QoS     codec.QoS
	Retain  bool
	Dup     bool
	ID      uint16
}

// receive reads until want PUBLISH packets arrived (failing after
// waitMsg) and then until nothing comes for quiet, acknowledging as a
// correct client: PUBACK, or PUBREC and PUBCOMP on PUBREL. It returns
// every PUBLISH in arrival order, duplicates included.
func receive(t *testing.T, c *conn, want int) []received {
	t.Helper()
	var got []received
	deadline := time.Now().Add(waitMsg)
	for {
		wait := quiet
		if len(got) < want {
			wait = time.Until(deadline)
		}
		pk, err := c.readTimeout(wait)
		if isTimeout(err) {
			if len(got) < want {
				t.Fatalf("got %d PUBLISH packets, want %d: %+v", len(got), want, got)
			}
			return got
		}
		require.NoError(t, err)
		switch pk.h.Type {
		case codec.PUBLISH:
			var p codec.Publish
			require.NoError(t, p.Decode(pk.h, pk.body, c.v))
			got = append(got, received{Topic: string(p.Topic), Payload: string(p.Payload), QoS: p.QoS,
				Retain: p.Retain, Dup: p.Dup, ID: p.PacketID})
			switch p.QoS {
			case codec.QoS1:
				require.NoError(t, c.ack(codec.PUBACK, p.PacketID))
			case codec.QoS2:
				require.NoError(t, c.ack(codec.PUBREC, p.PacketID))
			}
		case codec.PUBREL:
			var a codec.Ack
			require.NoError(t, a.Decode(pk.h, pk.body, c.v))
			require.NoError(t, c.ack(codec.PUBCOMP, a.PacketID))
		default:
			t.Fatalf("unexpected %v", pk.h.Type)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// expectSilence fails when c receives anything within quiet.
func expectSilence(t *testing.T, c *conn) {
	t.Helper()
	pk, err := c.readTimeout(quiet)
	if err == nil {
		t.Fatalf("unexpected %v (%d bytes)", pk.h.Type, len(pk.body))
	}
	require.True(t, isTimeout(err), "reading: %v", err)
}

func payloadsOf(rs []received) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Payload
	}
	return out
}

func TestRetainedSurvivesKill9(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	srv.Start()
	pub, _ := mustDial(t, srv.Addr, connOpts{ClientID: "ret-pub", Clean: true})
	pub.mustPublish(t, 1, codec.QoS1, "ret/a", "a-first", true)
	pub.mustPublish(t, 2, codec.QoS2, "ret/b", "b", true)
	pub.mustPublish(t, 3, codec.QoS1, "ret/c", "c", true)
	pub.mustPublish(t, 4, codec.QoS1, "ret/c", "", true)         // clears ret/c
	pub.mustPublish(t, 5, codec.QoS1, "ret/a", "a-second", true) // replaces ret/a
	pub.Close()

	srv.Restart()

	sub, _ := mustDial(t, srv.Addr, connOpts{ClientID: "ret-sub", Clean: true})
	sub.mustSubscribe(t, codec.QoS2, "ret/#")
	got := receive(t, sub, 2)
	byTopic := map[string]received{}
	for _, r := range got {
		byTopic[r.Topic] = r
	}
	require.Len(t, got, 2, "retained messages after the restart: %+v", got)
	assert.Equal(t, received{Topic: "ret/a", Payload: "a-second", QoS: codec.QoS1, Retain: true, ID: byTopic["ret/a"].ID}, byTopic["ret/a"])
	assert.Equal(t, received{Topic: "ret/b", Payload: "b", QoS: codec.QoS2, Retain: true, ID: byTopic["ret/b"].ID}, byTopic["ret/b"])
}

// TestSessionExpiryAcrossRestart checks that a session's expiry counts
// from its disconnect, through a kill -9, and not from the restart.
func TestSessionExpiryAcrossRestart(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	srv.Start()
	v5 := func(id string, expiry uint32) connOpts {
		return connOpts{ClientID: id, Version: codec.V5, SessionExpiry: expiry}
	}
	for _, o := range []connOpts{v5("exp-short", 4), v5("exp-probe", 4), v5("exp-long", 3600)} {
		o.Clean = true
		c, present := mustDial(t, srv.Addr, o)
		require.False(t, present)
		c.mustSubscribe(t, codec.QoS1, "exp/"+o.ClientID)
		c.disconnect()
	}
	disconnected := time.Now()

	// Kill half-way through the short expiry.
	time.Sleep(time.Until(disconnected.Add(2 * time.Second)))
	srv.Restart()

	// Right after the restart the short sessions are still there...
	_, present := mustDial(t, srv.Addr, v5("exp-probe", 4))
	assert.True(t, present, "a session with 4s expiry, 2s after its disconnect, survives the restart")

	// ... and 4s after the disconnect (plus the broker's 0.5s sweep and a
	// margin) the untouched one is gone: counting from the restart it
	// would live until about 6s.
	time.Sleep(time.Until(disconnected.Add(5500 * time.Millisecond)))
	_, present = mustDial(t, srv.Addr, v5("exp-short", 4))
	assert.False(t, present, "session expired 4s after its disconnect, across the restart")
	_, present = mustDial(t, srv.Addr, v5("exp-long", 3600))
	assert.True(t, present, "a session with an hour left survives")
}

// TestSessionExpiredWhileDownIsNotResumed: a session whose expiry passed
// while the broker was down must not be resumed by a client that
// connects as soon as the broker is back.
func TestSessionExpiredWhileDownIsNotResumed(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	srv.Start()
	o := connOpts{ClientID: "exp-down", Version: codec.V5, SessionExpiry: 2, Clean: true}
	c, _ := mustDial(t, srv.Addr, o)
	c.mustSubscribe(t, codec.QoS1, "exp/down")
	c.disconnect()
	disconnected := time.Now()
	time.Sleep(300 * time.Millisecond) // let the disconnect be recorded
	srv.Kill()
	time.Sleep(time.Until(disconnected.Add(3 * time.Second))) // the broker is down past the expiry
	srv.Start()

	o.Clean = false
	_, present := mustDial(t, srv.Addr, o)
	assert.False(t, present, "the session expired 2s after its disconnect, 1s before the broker came back; "+
		"resuming it right after the restart is a resurrection")
}

// TestOfflineQueueSurvivesKill9 checks that messages queued for an
// offline persistent session are delivered after a restart, all of them,
// in order.
func TestOfflineQueueSurvivesKill9(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	srv.Start()
	sub, present := mustDial(t, srv.Addr, connOpts{ClientID: "oq-sub"})
	require.False(t, present)
	sub.mustSubscribe(t, codec.QoS2, "oq/#")
	sub.disconnect()

	pub, _ := mustDial(t, srv.Addr, connOpts{ClientID: "oq-pub", Clean: true})
	var want []string
	for i := range 60 {
		qos, topic := codec.QoS1, "oq/one"
		if i%3 == 0 {
			qos, topic = codec.QoS2, "oq/two"
		}
		p := strconv.Itoa(i)
		pub.mustPublish(t, uint16(i+1), qos, topic, p, false)
		want = append(want, p)
	}
	pub.Close()

	srv.Restart()

	sub, present = mustDial(t, srv.Addr, connOpts{ClientID: "oq-sub"})
	require.True(t, present, "the persistent session survives kill -9")
	got := receive(t, sub, len(want))
	assert.Equal(t, want, payloadsOf(got), "the queue, complete and in order, once each")
	for _, r := range got {
		wantQoS := codec.QoS1
		if r.Topic == "oq/two" {
			wantQoS = codec.QoS2
		}
		assert.Equal(t, wantQoS, r.QoS, "message %s", r.Payload)
	}
	dups := 0
	for _, r := range got {
		if r.Dup {
			dups++
		}
	}
	t.Logf("%d of %d queued messages (never sent before) arrived with DUP=1", dups, len(got))
}

// TestPersistenceOffKeepsNothing: with -persistence=false a restart
// forgets sessions, queues and retained messages, and the data directory
// is not touched.
func TestPersistenceOffKeepsNothing(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "-persistence=false")
	srv.Start()
	sub, _ := mustDial(t, srv.Addr, connOpts{ClientID: "po-sub"})
	sub.mustSubscribe(t, codec.QoS1, "po/#")
	sub.disconnect()
	pub, _ := mustDial(t, srv.Addr, connOpts{ClientID: "po-pub"})
	pub.mustPublish(t, 1, codec.QoS1, "po/retained", "r", true)
	pub.mustPublish(t, 2, codec.QoS1, "po/queued", "q", false)
	pub.Close()

	srv.Restart()

	sub, present := mustDial(t, srv.Addr, connOpts{ClientID: "po-sub"})
	assert.False(t, present, "no session after a restart without persistence")
	expectSilence(t, sub)
	fresh, _ := mustDial(t, srv.Addr, connOpts{ClientID: "po-fresh", Clean: true})
	fresh.mustSubscribe(t, codec.QoS1, "po/#")
	expectSilence(t, fresh) // no retained message
	_, err := os.Stat(srv.DataDir)
	assert.True(t, os.IsNotExist(err), "the data directory is not created: %v", err)
}

// TestReceiveMaximumAfterRestart: the messages a session gets back from
// the store after a restart still respect the client's Receive Maximum
// [MQTT-3.3.4-9]: the broker sends at most that many unacknowledged
// QoS 1/2 PUBLISH packets.
func TestReceiveMaximumAfterRestart(t *testing.T) {
	t.Parallel()
	const rm, n = 4, 20
	srv := newServer(t)
	srv.Start()
	o := connOpts{ClientID: "rm-sub", Version: codec.V5, SessionExpiry: 3600, ReceiveMax: rm, Clean: true}
	sub, _ := mustDial(t, srv.Addr, o)
	sub.mustSubscribe(t, codec.QoS1, "rm/#")
	sub.disconnect()
	pub, _ := mustDial(t, srv.Addr, connOpts{ClientID: "rm-pub", Clean: true})
	for i := range n {
		pub.mustPublish(t, uint16(i+1), codec.QoS1, "rm/x", strconv.Itoa(i), false)
	}
	pub.Close()

	// unacked counts the PUBLISH packets that arrive while nothing is
	// acknowledged.
	unacked := func(c *conn) int {
		count := 0
		for {
			pk, err := c.readTimeout(quiet)
			if isTimeout(err) {
				return count
			}
			require.NoError(t, err)
			require.Equal(t, codec.PUBLISH, pk.h.Type)
			count++
		}
	}
	o.Clean = false
	sub, _ = mustDial(t, srv.Addr, o)
	require.Equal(t, rm, unacked(sub), "before any restart: Receive Maximum in flight")
	sub.Close()

	srv.Restart()

	sub, present := mustDial(t, srv.Addr, o)
	require.True(t, present)
	sent := unacked(sub)
	assert.LessOrEqual(t, sent, rm, "after the restart the broker sent %d unacknowledged PUBLISH packets "+
		"to a client with Receive Maximum %d", sent, rm)
	sub.Close()

	// Whatever the window, every message still arrives.
	sub, _ = mustDial(t, srv.Addr, o)
	got := receive(t, sub, n)
	seen := map[string]bool{}
	for _, r := range got {
		seen[r.Payload] = true
	}
	assert.Len(t, seen, n)
}

// TestOfflineQueueCapAcrossRestart: with a small offline cap the oldest
// queued messages are dropped, and after a restart the session holds
// exactly the newest ones, in order.
func TestOfflineQueueCapAcrossRestart(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "-session.max-queued", "3") // the last flag wins
	srv.Start()
	sub, _ := mustDial(t, srv.Addr, connOpts{ClientID: "cap-sub"})
	sub.mustSubscribe(t, codec.QoS1, "cap/#")
	sub.disconnect()
	pub, _ := mustDial(t, srv.Addr, connOpts{ClientID: "cap-pub", Clean: true})
	for i := range 8 {
		pub.mustPublish(t, uint16(i+1), codec.QoS1, "cap/x", strconv.Itoa(i), false)
	}
	pub.Close()

	srv.Restart()

	sub, present := mustDial(t, srv.Addr, connOpts{ClientID: "cap-sub"})
	require.True(t, present)
	got := receive(t, sub, 3)
	assert.Equal(t, []string{"5", "6", "7"}, payloadsOf(got), "the newest three, in order")
}

// TestExpiredQueuedMessageNotDeliveredAfterRestart: a queued message
// whose Message Expiry Interval ran out while the broker was down is not
// delivered after the restart [MQTT-3.3.2-5]; one with time left is. The
// same without a restart is the control.
func TestExpiredQueuedMessageNotDeliveredAfterRestart(t *testing.T) {
	t.Parallel()
	for _, restart := range []bool{false, true} {
		name := "no restart"
		if restart {
			name = "kill -9 while it expires"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t)
			srv.Start()
			o := connOpts{ClientID: "mexp-sub", Version: codec.V5, SessionExpiry: 3600, Clean: true}
			sub, _ := mustDial(t, srv.Addr, o)
			sub.mustSubscribe(t, codec.QoS1, "mexp/#")
			sub.disconnect()

			pub, _ := mustDial(t, srv.Addr, connOpts{ClientID: "mexp-pub", Version: codec.V5, Clean: true})
			for i, m := range []struct {
				payload string
				expiry  uint32
			}{{"short", 1}, {"long", 3600}} {
				p := &codec.Publish{Topic: []byte("mexp/x"), Payload: []byte(m.payload), QoS: codec.QoS1, PacketID: uint16(i + 1)}
				p.Props.Set(codec.PropMessageExpiry)
				p.Props.MessageExpiry = m.expiry
				require.NoError(t, pub.publish(p))
				pub.expectAck(t, codec.PUBACK, uint16(i+1))
			}
			pub.Close()
			published := time.Now()

			if restart {
				srv.Kill()
			}
			time.Sleep(time.Until(published.Add(2 * time.Second))) // "short" expires meanwhile
			if restart {
				srv.Start()
			}

			o.Clean = false
			sub, present := mustDial(t, srv.Addr, o)
			require.True(t, present)
			got := receive(t, sub, 1)
			assert.Equal(t, []string{"long"}, payloadsOf(got), "the expired message is not delivered")
		})
	}
}
