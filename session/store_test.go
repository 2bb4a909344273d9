package session

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/codec"
)

// TestStoreWritesOnlyPersistentSessions checks which writes reach the
// backend: the records of a session that ends with its connection
// (expiry 0) never do; wills and retained messages always do.
func TestStoreWritesOnlyPersistentSessions(t *testing.T) {
	dir := t.TempDir()
	p := openPebble(t, dir)
	st := NewStore(p)
	require.True(t, st.Durable())

	persistent := New("keep", "")
	persistent.Expiry = time.Minute
	transient := New("drop", "")
	for _, s := range []*Session{persistent, transient} {
		st.Put(s)
		st.SaveSession(s)
		f, ok := s.Add(msgN(s.ClientID), true)
		require.True(t, ok)
		st.SaveOut(s, f)
		st.SaveReceived(s, 3)
	}
	st.SaveWill("drop", &Will{Msg: bareMessage()})
	ret := bareMessage()
	ret.Topic = "r"
	st.SaveRetained(ret)
	cleared := bareMessage()
	cleared.Topic = "cleared"
	st.SaveRetained(cleared)
	empty := bareMessage()
	empty.Topic, empty.Payload = "cleared", []byte{}
	st.SaveRetained(empty) // an empty payload deletes
	done := make(chan error, 1)
	st.Commit(func(err error) { done <- err })
	require.NoError(t, <-done)
	require.NoError(t, st.Close())

	p = openPebble(t, dir)
	st = NewStore(p)
	now := time.Unix(5_000, 0)
	snap, err := st.Load(now)
	require.NoError(t, err)
	require.Len(t, snap.Sessions, 1)
	got := snap.Sessions[0]
	assert.Equal(t, "keep", got.ClientID)
	assert.Len(t, got.Out(), 1)
	assert.Equal(t, 1, got.ReceivedLen())
	// It was connected when the process stopped: disconnected as of now.
	assert.Equal(t, now, got.DisconnectedAt)
	loaded, ok := st.Get("keep")
	require.True(t, ok)
	assert.Same(t, got, loaded)
	_, ok = st.Get("drop")
	assert.False(t, ok)
	assert.Contains(t, snap.Wills, "drop")
	require.Len(t, snap.Retained, 1)
	assert.Equal(t, "r", snap.Retained[0].Topic)
}

func TestStoreLoadKeepsDisconnectTime(t *testing.T) {
	dir := t.TempDir()
	p := openPebble(t, dir)
	s := New("c", "")
	s.Expiry = time.Hour
	s.DisconnectedAt = tGone
	p.SaveSession(s)
	commit(t, p)
	p = reopen(t, p, dir)
	snap, err := NewStore(p).Load(time.Unix(9_000_000_000, 0))
	require.NoError(t, err)
	require.Len(t, snap.Sessions, 1)
	assert.Equal(t, tGone, snap.Sessions[0].DisconnectedAt, "an offline session's expiry runs from its disconnect")
}

func TestStoreMemoryOnly(t *testing.T) {
	st := NewStore(nil)
	assert.False(t, st.Durable())
	assert.Nil(t, st.Backend())
	s := New("c", "")
	s.Expiry = time.Hour
	st.Put(s)
	st.SaveSession(s) // no backend: nothing to do, nothing panics
	st.SaveRetained(&Message{Topic: "t", Payload: []byte("x"), QoS: codec.QoS1})
	called := false
	st.Commit(func(err error) { called = err == nil })
	assert.True(t, called, "done runs at once on the caller's goroutine")
	snap, err := st.Load(time.Now())
	require.NoError(t, err)
	assert.Empty(t, snap.Sessions)
	require.NoError(t, st.KV().Set([]byte("k"), []byte("v")))
	v, err := st.KV().Get([]byte("k"))
	require.NoError(t, err)
	assert.Equal(t, []byte("v"), v)
	assert.NoError(t, st.Close())
}

func TestStoreRegistry(t *testing.T) {
	st := NewStore(nil)
	a, b := New("a", ""), New("b", "")
	st.Put(a)
	st.Put(b)
	assert.Equal(t, 2, st.Len())

	replaced := New("a", "")
	st.Put(replaced)
	assert.False(t, st.Delete("a", a), "a stale session does not remove its successor")
	got, ok := st.Get("a")
	require.True(t, ok)
	assert.Same(t, replaced, got)
	assert.True(t, st.Delete("a", replaced))
	assert.True(t, st.Delete("b", nil), "nil deletes whichever")
	assert.False(t, st.Delete("b", nil))
	assert.Zero(t, st.Len())

	for i := range 200 {
		st.Put(New(string(rune('A'+i%26))+time.Duration(i).String(), ""))
	}
	assert.Equal(t, 200, st.Len())
}
