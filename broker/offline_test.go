package broker

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/codec"
	"github.com/mqttd/mqttd/session"
)

// openPersistent connects an MQTT 5 client with a session that outlives
// its connection by expiry.
func openPersistent(t *testing.T, b *Broker, id string, expiry uint32) *benchConn {
	t.Helper()
	bc := &benchConn{}
	b.OnOpen(bc)
	p := codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V5, ClientID: []byte(id)}
	p.Props.SessionExpiry = expiry
	p.Props.Set(codec.PropSessionExpiry)
	pkt := p.Append(nil)
	if n, err := b.OnData(bc, pkt); err != nil || n != len(pkt) {
		t.Fatalf("%s: OnData = %d, %v", id, n, err)
	}
	bc.complete()
	c, _ := bc.ctx.(*conn)
	require.True(t, c != nil && c.connected, "%s: not connected", id)
	return bc
}

// TestOfflineSessionSet: the session sweep visits only sessions without a
// connection. A session enters the set when its connection goes, leaves
// it once found online again, and leaves it when it expires; sessions
// that end with their connection never enter.
func TestOfflineSessionSet(t *testing.T) {
	b := newBenchBroker(t)
	stopHousekeeping(b)

	online := openPersistent(t, b, "stays", 60)
	closeOnCleanup(t, b, online)
	benchOpen(t, b, "clean", "", 0) // clean start, expiry 0
	assert.Equal(t, 0, b.offlineCount())

	gone := openPersistent(t, b, "goes", 60)
	b.OnClose(gone, nil)
	assert.Equal(t, 1, b.offlineCount(), "a persistent session whose connection went")
	_, ok := b.store.Get("goes")
	require.True(t, ok)

	back := openPersistent(t, b, "goes", 60)
	b.sweepSessions(time.Now())
	assert.Equal(t, 0, b.offlineCount(), "resumed: the sweep lets it go")

	b.OnClose(back, nil)
	require.Equal(t, 1, b.offlineCount())
	b.sweepSessions(time.Now())
	assert.Equal(t, 1, b.offlineCount(), "offline and not expired: kept")
	_, ok = b.store.Get("goes")
	assert.True(t, ok)

	b.sweepSessions(time.Now().Add(61 * time.Second))
	assert.Equal(t, 0, b.offlineCount(), "expired: ended and let go")
	_, ok = b.store.Get("goes")
	assert.False(t, ok, "the expired session was removed from the store")
	_, ok = b.store.Get("stays")
	assert.True(t, ok, "the online session is untouched by the sweep")

	clean := benchOpen(t, b, "clean2", "", 0)
	b.OnClose(clean, nil)
	assert.Equal(t, 0, b.offlineCount(), "a session that ends with its connection never enters")
}

// TestRestoredSessionsAreOffline: sessions loaded from the store at start
// have no connection, so they are in the offline set and expire.
func TestRestoredSessionsAreOffline(t *testing.T) {
	dir := t.TempDir()
	open := func() *Broker {
		p, err := session.OpenPebble(session.PebbleConfig{Dir: dir})
		require.NoError(t, err)
		b, err := New(Config{AllowAnonymous: true, Store: session.NewStore(p)})
		require.NoError(t, err)
		stopHousekeeping(b)
		return b
	}
	b := open()
	bc := openPersistent(t, b, "kept", 60)
	b.OnClose(bc, nil)
	done := make(chan error, 1)
	b.store.Commit(func(err error) { done <- err })
	require.NoError(t, <-done)
	b.Close()
	require.NoError(t, b.store.Close())

	b = open()
	t.Cleanup(func() {
		b.Close()
		_ = b.store.Close()
	})
	_, ok := b.store.Get("kept")
	require.True(t, ok, "restored")
	assert.Equal(t, 1, b.offlineCount(), "a restored session is offline")
	b.sweepSessions(time.Now().Add(61 * time.Second))
	_, ok = b.store.Get("kept")
	assert.False(t, ok, "the restored session expired")
	assert.Equal(t, 0, b.offlineCount())
}
