package session

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/codec"
)

// openPebble opens the store in dir; the test closes it at the end (a
// second Close is harmless).
func openPebble(t *testing.T, dir string) *Pebble {
	t.Helper()
	p, err := OpenPebble(PebbleConfig{Dir: dir})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// commit waits for a group commit of everything queued so far.
func commit(t *testing.T, p *Pebble) {
	t.Helper()
	done := make(chan error, 1)
	p.Commit(func(err error) { done <- err })
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("commit did not complete")
	}
}

// reopen closes p and opens the same directory again.
func reopen(t *testing.T, p *Pebble, dir string) *Pebble {
	t.Helper()
	require.NoError(t, p.Close())
	return openPebble(t, dir)
}

func load(t *testing.T, p *Pebble) *Snapshot {
	t.Helper()
	snap, err := p.Load()
	require.NoError(t, err)
	return snap
}

func sessionByID(snap *Snapshot, id string) *Session {
	for _, s := range snap.Sessions {
		if s.ClientID == id {
			return s
		}
	}
	return nil
}

func outMsg(id uint16, seq uint64, payload string, qos codec.QoS, phase Phase, subIDs ...uint32) *Inflight {
	m := bareMessage()
	m.Payload = []byte(payload)
	m.QoS = qos
	return &Inflight{Delivery: Delivery{Msg: m, QoS: qos, SubIDs: subIDs}, PacketID: id, Seq: seq, Phase: phase}
}

// restored is f as Load gives it back: sent (resent with DUP) and durable.
// restored is f as Restore leaves it: durable, maybe seen by the client,
// and in flight only when its PUBREC had arrived.
func restored(f *Inflight) *Inflight {
	c := *f
	c.Durable, c.MaybeSent = true, true
	c.Sent = f.Phase == PhaseReleased
	return &c
}

// rawKeys lists every key in the database.
func rawKeys(t *testing.T, p *Pebble) []string {
	t.Helper()
	it, err := p.db.NewIter(&pebble.IterOptions{})
	require.NoError(t, err)
	defer it.Close()
	var keys []string
	for it.First(); it.Valid(); it.Next() {
		keys = append(keys, string(it.Key()))
	}
	require.NoError(t, it.Error())
	return keys
}

func TestPebbleReopenLoadsEverything(t *testing.T) {
	dir := t.TempDir()
	p := openPebble(t, dir)

	full := fullSession()
	bare := New("bare", "")
	bare.Expiry = time.Hour
	p.SaveSession(full)
	p.SaveSession(bare)
	// Seqs that sort differently as text and as numbers: the store keeps
	// numeric order.
	outs := []*Inflight{
		outMsg(5, 2, "two", codec.QoS1, PhasePublished),
		outMsg(6, 10, "ten", codec.QoS2, PhaseReleased, 3, 4),
		outMsg(7, 256, "256", codec.QoS2, PhasePublished, 1),
		outMsg(1, 1<<33, "big", codec.QoS1, PhasePublished),
	}
	for _, i := range []int{2, 0, 3, 1} { // written out of order
		p.SaveOut(full.ClientID, outs[i])
	}
	p.SaveOut("bare", outMsg(9, 1, "bare-1", codec.QoS1, PhasePublished))
	p.SaveReceived(full.ClientID, 1)
	p.SaveReceived(full.ClientID, 65535)
	p.SaveReceived("bare", 300)
	willA := &Will{Msg: fullMessage(), Delay: 0}
	willB := &Will{Msg: bareMessage(), Delay: time.Minute}
	p.SaveWill("online-a", willA)
	p.SaveWill("online-b", willB)
	retA, retB := fullMessage(), bareMessage()
	retB.Topic = "other/topic"
	p.SaveRetained(retA)
	p.SaveRetained(retB)
	require.NoError(t, p.KV().Set([]byte("users/ann"), []byte("hash")))
	commit(t, p)

	p = reopen(t, p, dir)
	snap := load(t, p)

	require.Len(t, snap.Sessions, 2)
	assert.Equal(t, "bare", snap.Sessions[0].ClientID, "sorted by client id")
	got := sessionByID(snap, full.ClientID)
	require.NotNil(t, got)
	assert.Equal(t, full.Group(), got.Group())
	assert.Equal(t, full.Expiry, got.Expiry)
	assert.Equal(t, full.DisconnectedAt, got.DisconnectedAt)
	assert.Equal(t, full.Subscriptions(), got.Subscriptions())
	fullWill, fullWillAt := full.PendingWill()
	gotWill, gotWillAt := got.PendingWill()
	assert.Equal(t, fullWill, gotWill)
	assert.Equal(t, fullWillAt, gotWillAt)
	assert.Equal(t, map[uint16]struct{}{1: {}, 65535: {}}, received(got))
	// The released QoS 2 message is in flight (PUBREL resent); the others
	// wait to be sent again, in store order, within the client's window.
	assert.Equal(t, []*Inflight{restored(outs[1]), restored(outs[0]), restored(outs[2]), restored(outs[3])}, got.Out())
	assert.Equal(t, 1, got.InflightLen(), "only the released QoS 2 message counts as in flight")
	// New messages continue after the restored ones.
	f, ok := got.Add(msgN("new"), true)
	require.True(t, ok)
	assert.Equal(t, uint64(1<<33+1), f.Seq)
	assert.Same(t, f, got.Find(f.PacketID))
	checkIDs(t, got)

	gotBare := sessionByID(snap, "bare")
	require.NotNil(t, gotBare)
	assert.Equal(t, time.Hour, gotBare.Expiry)
	assert.Empty(t, gotBare.Subscriptions())
	assert.Nil(t, gotBare.TakePendingWill())
	assert.Equal(t, map[uint16]struct{}{300: {}}, received(gotBare))
	require.Len(t, gotBare.Out(), 1)
	assert.Equal(t, "bare-1", string(gotBare.Out()[0].Msg.Payload))

	assert.Equal(t, map[string]*Will{"online-a": willA, "online-b": willB}, snap.Wills)
	assert.ElementsMatch(t, []*Message{retA, retB}, snap.Retained)

	v, err := p.KV().Get([]byte("users/ann"))
	require.NoError(t, err)
	assert.Equal(t, []byte("hash"), v)
}

func TestPebbleOverwriteAndDelete(t *testing.T) {
	dir := t.TempDir()
	p := openPebble(t, dir)
	s := fullSession()
	p.SaveSession(s)
	f := outMsg(1, 1, "q2", codec.QoS2, PhasePublished)
	p.SaveOut(s.ClientID, f)
	p.SaveOut(s.ClientID, outMsg(2, 2, "gone", codec.QoS1, PhasePublished))
	p.SaveReceived(s.ClientID, 10)
	p.SaveReceived(s.ClientID, 11)
	p.SaveWill("w", &Will{Msg: bareMessage()})
	ret := bareMessage()
	p.SaveRetained(ret)
	commit(t, p)

	// The QoS 2 message moves on to PUBREL: the record is rewritten in
	// place (same seq).
	f.Phase = PhaseReleased
	p.SaveOut(s.ClientID, f)
	p.DeleteOut(s.ClientID, outMsg(2, 2, "gone", codec.QoS1, PhasePublished))
	p.DeleteReceived(s.ClientID, 10)
	p.DeleteWill("w")
	p.DeleteRetained(ret.Topic)
	s.DeleteSub("plain")
	s.SetPendingWill(nil, time.Time{})
	p.SaveSession(s)
	commit(t, p)

	p = reopen(t, p, dir)
	snap := load(t, p)
	got := sessionByID(snap, s.ClientID)
	require.NotNil(t, got)
	assert.Equal(t, s.Subscriptions(), got.Subscriptions())
	assert.Nil(t, got.TakePendingWill())
	require.Len(t, got.Out(), 1)
	assert.Equal(t, PhaseReleased, got.Out()[0].Phase)
	assert.Equal(t, map[uint16]struct{}{11: {}}, received(got))
	assert.Empty(t, snap.Wills)
	assert.Empty(t, snap.Retained)
}

// TestPebbleDeleteSessionPrefix checks that DeleteSession removes every
// record of one client and none of a client whose ID extends it.
func TestPebbleDeleteSessionPrefix(t *testing.T) {
	ids := []string{"ab", "abc", "a", "ab-", "b"}
	for _, del := range []string{"ab", "abc", "a"} {
		t.Run(del, func(t *testing.T) {
			dir := t.TempDir()
			p := openPebble(t, dir)
			for _, id := range ids {
				s := New(id, "")
				s.Expiry = time.Hour
				s.SetSub(Subscription{Filter: "t/" + id, QoS: 1})
				p.SaveSession(s)
				p.SaveOut(id, outMsg(1, 1, id+"-1", codec.QoS1, PhasePublished))
				p.SaveOut(id, outMsg(2, 1<<40, id+"-2", codec.QoS2, PhaseReleased))
				p.SaveReceived(id, 7)
				p.SaveWill(id, &Will{Msg: bareMessage()})
			}
			commit(t, p)
			p.DeleteSession(del)
			commit(t, p)

			p = reopen(t, p, dir)
			snap := load(t, p)
			for _, id := range ids {
				s := sessionByID(snap, id)
				_, hasWill := snap.Wills[id]
				if id == del {
					assert.Nil(t, s, "session %q deleted", id)
					assert.False(t, hasWill, "will of %q deleted", id)
					continue
				}
				require.NotNil(t, s, "session %q kept", id)
				assert.True(t, hasWill, "will of %q kept", id)
				assert.Len(t, s.Out(), 2, "outbound of %q", id)
				assert.Equal(t, 1, s.ReceivedLen(), "received of %q", id)
				assert.Contains(t, s.Subscriptions(), Subscription{Filter: "t/" + id, QoS: 1}, "subscription of %q kept", id)
			}
			for _, k := range rawKeys(t, p) {
				rest := k[2:]
				if i := bytes.IndexByte([]byte(rest), 0); i >= 0 {
					rest = rest[:i]
				}
				if k[0] != pfxRetained && k[0] != pfxKV {
					assert.NotEqual(t, del, rest, "key %q left behind", k)
				}
			}
		})
	}
}

// TestPebbleDeleteThenRecreate is a clean start: the old session's
// records go and the new one's, queued after in the same batch, stay.
func TestPebbleDeleteThenRecreate(t *testing.T) {
	dir := t.TempDir()
	p := openPebble(t, dir)
	old := New("c", "")
	old.Expiry = time.Hour
	old.SetSub(Subscription{Filter: "old"})
	p.SaveSession(old)
	p.SaveOut("c", outMsg(1, 1, "old-1", codec.QoS1, PhasePublished))
	p.SaveOut("c", outMsg(2, 2, "old-2", codec.QoS1, PhasePublished))
	p.SaveReceived("c", 5)
	commit(t, p)

	p.DeleteSession("c")
	fresh := New("c", "")
	fresh.Expiry = time.Minute
	fresh.SetSub(Subscription{Filter: "new", QoS: 2})
	p.SaveSession(fresh)
	p.SaveOut("c", outMsg(1, 1, "new-1", codec.QoS2, PhasePublished))
	commit(t, p)

	p = reopen(t, p, dir)
	got := sessionByID(load(t, p), "c")
	require.NotNil(t, got)
	assert.Equal(t, time.Minute, got.Expiry)
	assert.Equal(t, fresh.Subscriptions(), got.Subscriptions())
	assert.Zero(t, got.ReceivedLen())
	require.Len(t, got.Out(), 1)
	assert.Equal(t, "new-1", string(got.Out()[0].Msg.Payload))
}

// TestPebbleStaleRecordsDropped checks that records of a client without
// session meta (left over from a session that ended) are not loaded and
// are deleted with the next commit.
func TestPebbleStaleRecordsDropped(t *testing.T) {
	dir := t.TempDir()
	p := openPebble(t, dir)
	p.SaveOut("ghost", outMsg(1, 1, "g", codec.QoS1, PhasePublished))
	p.SaveReceived("ghost", 3)
	live := New("live", "")
	live.Expiry = time.Hour
	p.SaveSession(live)
	commit(t, p)

	p = reopen(t, p, dir)
	snap := load(t, p)
	require.Len(t, snap.Sessions, 1)
	assert.Equal(t, "live", snap.Sessions[0].ClientID)
	commit(t, p)
	for _, k := range rawKeys(t, p) {
		assert.NotContains(t, k, "ghost")
	}
}

// TestPebbleGroupCommit has many goroutines write and commit at once:
// every commit completes, everything is durable, and the commits share
// fsyncs.
func TestPebbleGroupCommit(t *testing.T) {
	const callers = 200
	dir := t.TempDir()
	p := openPebble(t, dir)
	s := New("c", "")
	s.Expiry = time.Hour
	p.SaveSession(s)
	commit(t, p)
	syncsBefore := fsyncs(t, p)

	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			p.SaveOut("c", outMsg(uint16(i+1), uint64(i+1), "m", codec.QoS1, PhasePublished))
			done := make(chan error, 1)
			p.Commit(func(err error) { done <- err })
			errs <- <-done
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	syncs := fsyncs(t, p) - syncsBefore
	t.Logf("%d commits took %d fsyncs", callers, syncs)
	assert.Positive(t, syncs)
	assert.Less(t, syncs, uint64(callers), "commits are grouped")

	p = reopen(t, p, dir)
	got := sessionByID(load(t, p), "c")
	require.NotNil(t, got)
	assert.Len(t, got.Out(), callers)
}

// fsyncs is the number of WAL fsyncs pebble has made.
func fsyncs(t *testing.T, p *Pebble) uint64 {
	t.Helper()
	h := p.db.Metrics().LogWriter.FsyncLatency
	require.NotNil(t, h)
	var m dto.Metric
	require.NoError(t, h.Write(&m))
	return m.GetHistogram().GetSampleCount()
}

func TestPebbleCommitWithoutWrites(t *testing.T) {
	p := openPebble(t, t.TempDir())
	commit(t, p) // nothing queued: done still runs
}

func TestPebbleClose(t *testing.T) {
	p := openPebble(t, t.TempDir())
	p.SaveSession(New("c", ""))
	require.NoError(t, p.Close())
	require.NoError(t, p.Close(), "second Close")
	// After Close: writes are dropped, commits fail, nothing panics.
	p.SaveOut("c", outMsg(1, 1, "late", codec.QoS1, PhasePublished))
	p.DeleteSession("c")
	done := make(chan error, 1)
	p.Commit(func(err error) { done <- err })
	assert.Error(t, <-done)
}

func TestPebbleCloseCommitsQueuedWrites(t *testing.T) {
	dir := t.TempDir()
	p := openPebble(t, dir)
	s := New("c", "")
	s.Expiry = time.Hour
	p.SaveSession(s)
	p = reopen(t, p, dir) // no Commit: Close commits
	assert.NotNil(t, sessionByID(load(t, p), "c"))
}

func TestPebbleKV(t *testing.T) {
	dir := t.TempDir()
	p := openPebble(t, dir)
	kv := p.KV()
	_, err := kv.Get([]byte("missing"))
	assert.ErrorIs(t, err, ErrNotFound)
	for _, k := range []string{"u/b", "u/a", "u/c", "v/a", "u"} {
		require.NoError(t, kv.Set([]byte(k), []byte("val-"+k)))
	}
	require.NoError(t, kv.Delete([]byte("u/c")))
	require.NoError(t, kv.Delete([]byte("never-set")))
	// KV lives beside the sessions without disturbing them.
	s := New("c", "")
	s.Expiry = time.Hour
	p.SaveSession(s)
	commit(t, p)

	p = reopen(t, p, dir)
	kv = p.KV()
	var keys, vals []string
	require.NoError(t, kv.Scan([]byte("u/"), func(k, v []byte) error {
		keys = append(keys, string(k))
		vals = append(vals, string(v))
		return nil
	}))
	assert.Equal(t, []string{"u/a", "u/b"}, keys)
	assert.Equal(t, []string{"val-u/a", "val-u/b"}, vals)
	v, err := kv.Get([]byte("u"))
	require.NoError(t, err)
	assert.Equal(t, "val-u", string(v))
	stop := errors.New("stop")
	n := 0
	err = kv.Scan(nil, func(k, v []byte) error { n++; return stop })
	assert.ErrorIs(t, err, stop)
	assert.Equal(t, 1, n)

	snap := load(t, p)
	require.Len(t, snap.Sessions, 1)
	assert.Empty(t, snap.Retained)
}

func TestOpenPebbleRefusesUnusableDir(t *testing.T) {
	notStore := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(notStore, "notes.txt"), []byte("mine"), 0o600))

	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o600))

	badCurrent := t.TempDir()
	p := openPebble(t, badCurrent)
	require.NoError(t, p.Close())
	require.NoError(t, os.WriteFile(filepath.Join(badCurrent, "CURRENT"), []byte("MANIFEST-999999\n"), 0o600))

	garbageManifest := t.TempDir()
	p = openPebble(t, garbageManifest)
	require.NoError(t, p.Close())
	manifests, err := filepath.Glob(filepath.Join(garbageManifest, "MANIFEST-*"))
	require.NoError(t, err)
	require.NotEmpty(t, manifests)
	for _, m := range manifests {
		require.NoError(t, os.WriteFile(m, bytes.Repeat([]byte{0xde, 0xad}, 100), 0o600))
	}

	for _, tc := range []struct{ name, dir string }{
		{"no directory given", ""},
		{"directory of other files", notStore},
		{"a file, not a directory", file},
		{"CURRENT names a missing manifest", badCurrent},
		{"garbage manifest", garbageManifest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := OpenPebble(PebbleConfig{Dir: tc.dir})
			if p != nil {
				_ = p.Close()
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrDataDir)
		})
	}
	// Nothing was reset: the other files are still there.
	b, err := os.ReadFile(filepath.Join(notStore, "notes.txt"))
	require.NoError(t, err)
	assert.Equal(t, "mine", string(b))
}

func TestPebbleLoadCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name string
		k, v []byte
	}{
		{"garbage session record", key(pfxSession, "c"), []byte{recordV1, 0xff}},
		{"garbage outbound record", outKey("c", 1), []byte("not a record")},
		{"garbage will record", key(pfxWill, "c"), []byte{9}},
		{"garbage retained record", key(pfxRetained, "t"), nil},
		{"outbound key without seq", key(pfxOut, "c"), encodeOut(outMsg(1, 1, "x", codec.QoS1, PhasePublished))},
		{"received key without id", append(key(pfxReceived, "c"), 0, 1), []byte{recordV1}},
		{"unknown key prefix", []byte("x\x00c"), []byte{recordV1}},
		{"key without separator", []byte("s"), []byte{recordV1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := openPebble(t, dir)
			s := New("c", "")
			s.Expiry = time.Hour
			p.SaveSession(s)
			commit(t, p)
			require.NoError(t, p.db.Set(tc.k, tc.v, pebble.Sync))
			p = reopen(t, p, dir)
			_, err := p.Load()
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrCorrupt)
		})
	}
}
