package session

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/codec"
)

// msgN is a QoS 1 message whose payload names it.
func msgN(name string) Delivery {
	return Delivery{Msg: &Message{Topic: "t", Payload: []byte(name), QoS: codec.QoS1}, QoS: codec.QoS1}
}

// payloads lists the session's outbound messages by payload, in order.
func payloads(s *Session) []string {
	var out []string
	for _, f := range s.Out() {
		out = append(out, string(f.Msg.Payload))
	}
	return out
}

// checkIDs fails when two outbound messages share a packet id or one has
// id 0.
func checkIDs(t *testing.T, s *Session) {
	t.Helper()
	seen := map[uint16]string{}
	for _, f := range s.Out() {
		require.NotZero(t, f.PacketID, "packet id 0 on %q", f.Msg.Payload)
		if other, ok := seen[f.PacketID]; ok {
			t.Fatalf("packet id %d used by %q and %q", f.PacketID, other, f.Msg.Payload)
		}
		seen[f.PacketID] = string(f.Msg.Payload)
	}
}

// received returns the inbound QoS 2 packet ids the session holds.
func received(s *Session) map[uint16]struct{} {
	if s.cold == nil {
		return nil
	}
	return s.cold.received
}

func addAll(t *testing.T, s *Session, names ...string) []*Inflight {
	t.Helper()
	var fs []*Inflight
	for _, n := range names {
		f, ok := s.Add(msgN(n), true)
		require.True(t, ok, "add %s", n)
		fs = append(fs, f)
	}
	return fs
}

func TestSessionAddAndSend(t *testing.T) {
	s := New("c", "")
	fs := addAll(t, s, "a", "b", "c")
	assert.Equal(t, []string{"a", "b", "c"}, payloads(s))
	assert.Equal(t, 3, s.QueueLen())
	assert.Equal(t, 0, s.InflightLen())
	for i, f := range fs {
		assert.Equal(t, uint16(i+1), f.PacketID)
		assert.Equal(t, uint64(i+1), f.Seq)
		assert.False(t, f.Sent)
		assert.True(t, f.Durable)
	}

	require.Same(t, fs[0], s.NextUnsent())
	s.MarkSent()
	assert.True(t, fs[0].Sent)
	assert.Equal(t, 1, s.InflightLen())
	assert.Equal(t, 2, s.QueueLen())
	require.Same(t, fs[1], s.NextUnsent())

	s.MarkSent()
	s.MarkSent()
	assert.Nil(t, s.NextUnsent())
	s.MarkSent() // nothing waits: no change
	assert.Equal(t, 3, s.InflightLen())
	assert.Equal(t, 0, s.QueueLen())

	// Not durable yet: recorded as such for the broker to hold back.
	f, ok := s.Add(msgN("d"), false)
	require.True(t, ok)
	assert.False(t, f.Durable)
	assert.Equal(t, uint64(4), f.Seq)
}

func TestSessionFindRemove(t *testing.T) {
	tests := []struct {
		name         string
		sent         int    // messages marked sent before the removal
		remove       uint16 // packet id
		wantOK       bool
		wantOut      []string
		wantInflight int
	}{
		{"in flight, oldest", 2, 1, true, []string{"b", "c", "d"}, 1},
		{"in flight, last", 2, 2, true, []string{"a", "c", "d"}, 1},
		{"queued, first", 2, 3, true, []string{"a", "b", "d"}, 2},
		{"queued, last", 2, 4, true, []string{"a", "b", "c"}, 2},
		{"nothing sent", 0, 2, true, []string{"a", "c", "d"}, 0},
		{"unknown id", 2, 9, false, []string{"a", "b", "c", "d"}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New("c", "")
			addAll(t, s, "a", "b", "c", "d")
			for range tc.sent {
				s.MarkSent()
			}
			f, ok := s.Remove(tc.remove)
			assert.Equal(t, tc.wantOK, ok)
			if ok {
				assert.Equal(t, tc.remove, f.PacketID)
				assert.Nil(t, s.Find(tc.remove))
			}
			assert.Equal(t, tc.wantOut, payloads(s))
			assert.Equal(t, tc.wantInflight, s.InflightLen())
			assert.Equal(t, len(tc.wantOut)-tc.wantInflight, s.QueueLen())
			// The boundary still splits sent from unsent.
			for i, f := range s.Out() {
				assert.Equal(t, i < s.InflightLen(), f.Sent, "message %d", i)
			}
		})
	}
}

func TestSessionTrimQueue(t *testing.T) {
	s := New("c", "")
	addAll(t, s, "a", "b", "c", "d", "e", "f")
	s.MarkSent()
	s.MarkSent() // a, b in flight

	dropped := s.TrimQueue(2)
	var names []string
	for _, f := range dropped {
		names = append(names, string(f.Msg.Payload))
	}
	// The oldest waiting go first; in-flight messages are never dropped.
	assert.Equal(t, []string{"c", "d"}, names)
	assert.Equal(t, []string{"a", "b", "e", "f"}, payloads(s))
	assert.Equal(t, 2, s.InflightLen())
	assert.Equal(t, 2, s.QueueLen())

	assert.Empty(t, s.TrimQueue(2), "nothing over the cap")
	assert.Len(t, s.TrimQueue(0), 2)
	assert.Equal(t, []string{"a", "b"}, payloads(s))
	assert.Equal(t, 2, s.InflightLen())
}

func TestSessionDropExpiredQueued(t *testing.T) {
	now := time.Unix(1_000, 0)
	s := New("c", "")
	add := func(name string, expires time.Time) {
		d := msgN(name)
		d.Msg.ExpiresAt = expires
		_, ok := s.Add(d, true)
		require.True(t, ok)
	}
	add("sent-expired", now.Add(-time.Second))
	s.MarkSent()
	add("live", now.Add(time.Second))
	add("expired", now.Add(-time.Second))
	add("forever", time.Time{})
	add("expires-now", now) // expiry reached counts as expired
	add("live2", now.Add(time.Hour))

	dropped := s.DropExpiredQueued(now)
	var names []string
	for _, f := range dropped {
		names = append(names, string(f.Msg.Payload))
	}
	assert.Equal(t, []string{"expired", "expires-now"}, names)
	// A message in flight stays: the client may already hold it.
	assert.Equal(t, []string{"sent-expired", "live", "forever", "live2"}, payloads(s))
	assert.Equal(t, 1, s.InflightLen())
	assert.Equal(t, 3, s.QueueLen())
}

func TestSessionRestore(t *testing.T) {
	s := New("c", "")
	for _, r := range []struct {
		name string
		id   uint16
		seq  uint64
	}{{"a", 40, 5}, {"b", 7, 6}, {"c", 41, 9}} {
		d := msgN(r.name)
		s.Restore(&Inflight{Delivery: d, PacketID: r.id, Seq: r.seq})
	}
	assert.Equal(t, []string{"a", "b", "c"}, payloads(s))
	// Restored messages wait to be sent again (with DUP: the client may
	// have them), within its window, and are durable.
	assert.Equal(t, 0, s.InflightLen())
	assert.Equal(t, 3, s.QueueLen())
	for _, f := range s.Out() {
		assert.False(t, f.Sent)
		assert.True(t, f.MaybeSent)
		assert.True(t, f.Durable)
	}
	// New messages follow the restored ones in order and take ids
	// nobody holds.
	fs := addAll(t, s, "d", "e")
	assert.Equal(t, uint64(10), fs[0].Seq)
	assert.Equal(t, uint64(11), fs[1].Seq)
	assert.Equal(t, []string{"a", "b", "c", "d", "e"}, payloads(s))
	checkIDs(t, s)
	assert.Equal(t, 0, s.InflightLen())
	require.Equal(t, "a", string(s.NextUnsent().Msg.Payload))
}

func TestSessionPacketIDWrapSkipsIDsInUse(t *testing.T) {
	s := New("c", "")
	// Restored ids at the top of the range and at its bottom: the next
	// ids wrap past 65535 to 1 and must skip 1 and 2.
	for i, id := range []uint16{65534, 65535, 1, 2} {
		s.Restore(&Inflight{Delivery: msgN("r"), PacketID: id, Seq: uint64(i + 1)})
	}
	fs := addAll(t, s, "x", "y")
	assert.Equal(t, uint16(3), fs[0].PacketID)
	assert.Equal(t, uint16(4), fs[1].PacketID)
	checkIDs(t, s)

	// An id freed by an acknowledgement is used again only once the
	// counter comes round to it: the id of a message just acknowledged
	// is not handed out at once.
	_, ok := s.Remove(65535)
	require.True(t, ok)
	f, ok := s.Add(msgN("z"), true)
	require.True(t, ok)
	assert.Equal(t, uint16(5), f.PacketID)
	checkIDs(t, s)
}

func TestSessionPacketIDSpaceFull(t *testing.T) {
	if testing.Short() {
		t.Skip("fills all 65535 packet ids")
	}
	s := New("c", "")
	// Restore sets the state without the per-Add search for a free id.
	for i := 1; i <= 65535; i++ {
		s.Restore(&Inflight{Delivery: msgN("r"), PacketID: uint16(i), Seq: uint64(i)})
	}
	_, ok := s.Add(msgN("over"), true)
	assert.False(t, ok, "no packet id is free")
	assert.Equal(t, 65535, len(s.Out()))

	// Free one in the middle: the next Add must find exactly that one.
	_, ok = s.Remove(30000)
	require.True(t, ok)
	f, ok := s.Add(msgN("fits"), true)
	require.True(t, ok)
	assert.Equal(t, uint16(30000), f.PacketID)
	assert.Equal(t, uint64(65536), f.Seq)
	_, ok = s.Add(msgN("over again"), true)
	assert.False(t, ok)
}

func TestSessionIDsNeverReusedWhileHeld(t *testing.T) {
	// A long run of adds and out-of-order acknowledgements, long enough
	// for the packet ids to wrap round several times: no two messages
	// ever share a packet id, and the order holds.
	s := New("c", "")
	next := 0
	var want []string
	for round := range 50_000 {
		for range 3 {
			n := strconv.Itoa(next)
			next++
			_, ok := s.Add(msgN(n), true)
			require.True(t, ok)
			want = append(want, n)
		}
		for s.InflightLen() < 5 && s.NextUnsent() != nil {
			s.MarkSent()
		}
		// Acknowledge the second in-flight one, then the first (out of
		// order), and a third once the backlog is long.
		var ack []uint16
		if s.InflightLen() >= 3 {
			ack = []uint16{s.Out()[1].PacketID, s.Out()[0].PacketID}
			if len(s.Out()) > 40 {
				ack = append(ack, s.Out()[2].PacketID)
			}
		}
		for _, id := range ack {
			f, ok := s.Remove(id)
			require.True(t, ok)
			for i, w := range want {
				if w == string(f.Msg.Payload) {
					want = append(want[:i], want[i+1:]...)
					break
				}
			}
		}
		if round%1000 == 0 {
			checkIDs(t, s)
		}
	}
	require.Greater(t, next, 2*65535, "the ids wrapped")
	checkIDs(t, s)
	assert.Equal(t, want, payloads(s))
}

// TestSubscriptionsIndexed: adding, replacing and deleting subscriptions
// keeps the slice and (past subsIndexed) its filter index consistent with
// a map model, below and above the threshold and back.
func TestSubscriptionsIndexed(t *testing.T) {
	s := New("c", "")
	model := map[string]Subscription{}
	check := func(step string) {
		t.Helper()
		got := map[string]Subscription{}
		for _, sub := range s.Subscriptions() {
			_, dup := got[sub.Filter]
			require.False(t, dup, "%s: %q twice", step, sub.Filter)
			got[sub.Filter] = sub
		}
		require.Equal(t, model, got, step)
		if idx := s.subIdx(); idx != nil {
			require.Len(t, idx, len(s.subs), step)
			for f, i := range idx {
				require.Equal(t, f, s.subs[i].Filter, "%s: index of %q", step, f)
			}
		}
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for step := range 2000 {
		f := fmt.Sprintf("t/%d", rnd.IntN(40))
		if rnd.IntN(3) == 0 {
			_, had := model[f]
			require.Equal(t, had, s.DeleteSub(f), "delete %q", f)
			delete(model, f)
		} else {
			sub := Subscription{Filter: f, QoS: codec.QoS(rnd.IntN(3))}
			_, had := model[f]
			require.Equal(t, had, s.SetSub(sub), "set %q", f)
			model[f] = sub
		}
		check(fmt.Sprintf("step %d", step))
	}
	taken := s.TakeSubs()
	assert.Len(t, taken, len(model))
	assert.Empty(t, s.Subscriptions())
	assert.Nil(t, s.subIdx())
}

// TestSessionSize guards the per-session footprint: idle sessions are
// most of a broker's memory, and a field more moves Session to the next
// size class. Put what most sessions do not use in sessionCold instead.
func TestSessionSize(t *testing.T) {
	assert.LessOrEqual(t, unsafe.Sizeof(Session{}), uintptr(112), "Session outgrew its 112-byte size class")
}

// TestSessionColdState: reading the rarely used state of a session that
// never had any allocates nothing; each kind of it works once used.
func TestSessionColdState(t *testing.T) {
	s := New("G1@@@dev", "G1")
	assert.Equal(t, "G1", s.Group())
	assert.Equal(t, "", New("dev", "").Group())
	assert.Panics(t, func() { New("dev", "G1") }, "a group is the client id's prefix")

	assert.Zero(t, s.QueueLen())
	assert.Zero(t, s.InflightLen())
	assert.Empty(t, s.Out())
	assert.Nil(t, s.NextUnsent())
	s.MarkSent()
	assert.Nil(t, s.Find(1))
	_, ok := s.Remove(1)
	assert.False(t, ok)
	assert.Empty(t, s.TrimQueue(0))
	assert.Empty(t, s.DropExpiredQueued(time.Now()))
	assert.False(t, s.HasReceived(1))
	assert.False(t, s.ReleaseReceived(1))
	assert.Zero(t, s.ReceivedLen())
	assert.Zero(t, s.Waiting())
	assert.Empty(t, s.TakeWaiters(nil))
	w, at := s.PendingWill()
	assert.Nil(t, w)
	assert.True(t, at.IsZero())
	s.SetPendingWill(nil, time.Time{})
	assert.Nil(t, s.TakePendingWill())
	s.SetSub(Subscription{Filter: "a"})
	s.DeleteSub("a")
	assert.Nil(t, s.cold, "nothing above needed the cold part")

	s.MarkReceived(7)
	assert.True(t, s.HasReceived(7))
	assert.Equal(t, 1, s.ReceivedLen())
	assert.True(t, s.ReleaseReceived(7))
	assert.False(t, s.HasReceived(7))

	calls := 0
	s.AddWaiter(func(error) { calls++ })
	s.AddWaiter(func(error) { calls++ })
	assert.Equal(t, 2, s.Waiting())
	got := s.TakeWaiters(nil)
	require.Len(t, got, 2)
	for _, f := range got {
		f(nil)
	}
	assert.Equal(t, 2, calls)
	assert.Zero(t, s.Waiting())
	assert.Empty(t, s.TakeWaiters(nil))

	due := time.Unix(1_700_000_000, 0)
	will := &Will{Msg: &Message{Topic: "w"}, Delay: time.Minute}
	s.SetPendingWill(will, due)
	w, at = s.PendingWill()
	assert.Same(t, will, w)
	assert.Equal(t, due, at)
	assert.Same(t, will, s.TakePendingWill())
	w, at = s.PendingWill()
	assert.Nil(t, w)
	assert.True(t, at.IsZero())
}
