package broker

import (
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/mqttd/mqttd/codec"
	"github.com/mqttd/mqttd/session"
	"github.com/mqttd/mqttd/transport"
)

// Message is the immutable shared form of an accepted PUBLISH.
type Message = session.Message

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("broker: closed")

// tickEvery is the period of the housekeeping sweep: keepalive and
// connect timeouts, delayed wills, session and message expiry.
const tickEvery = 250 * time.Millisecond

// Broker is the MQTT protocol engine. It implements transport.Handler, so
// any transport listener can feed it connections.
type Broker struct {
	cfg   Config
	log   zerolog.Logger
	store *session.Store

	subs trie
	ret  retained

	seed maphash.Seed
	idMu [256]sync.Mutex // serializes CONNECTs per client-ID stripe
	// conns registers the open connections in shards; a slice each (a
	// connection knows its index), because the housekeeping sweep walks
	// them all four times a second and a slice walks several times
	// faster than a map.
	conns [64]struct {
		mu   sync.Mutex // guards list and the conns' slot
		list []*conn
	}

	// offline holds every session without a connection, so the session
	// sweep need not visit (and lock) the online ones. A session enters
	// when its connection goes and at restore; the sweep lets go of one
	// it finds online again or removed from the store, under mu and
	// re-checked, so one that went offline meanwhile stays.
	offline struct {
		mu    sync.Mutex
		set   map[*session.Session]struct{}
		batch []*session.Session // the sweep's copy
	}

	// watched lists the connections the sweep checks every tick (see
	// watch); the rest it visits once per sweepParts ticks.
	watched struct {
		mu    sync.Mutex
		list  []*conn
		spare []*conn
	}

	lim         connLimits
	connectRate *bucket // nil: no cap

	groupsMu sync.Mutex // guards groups
	groups   map[string]int

	authq chan func() // password checks for the auth workers

	// clock is a coarse unix-ns time, advanced by the housekeeping sweep:
	// keepalive bookkeeping needs no more than that, and reading it costs
	// nothing on the per-packet path.
	clock atomic.Int64

	st      counters
	idSeq   atomic.Uint64
	closed  atomic.Bool
	stop    chan struct{}
	wg      sync.WaitGroup
	started time.Time
}

// New returns a running broker (its housekeeping goroutine started).
// Close stops it.
func New(cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	b := &Broker{
		cfg:     cfg,
		log:     cfg.Log,
		store:   cfg.Store,
		seed:    maphash.MakeSeed(),
		groups:  make(map[string]int),
		stop:    make(chan struct{}),
		started: time.Now(),
	}
	if b.store == nil {
		b.store = session.NewStore(nil)
	}
	b.lim.perIP = make(map[string]int)
	if cfg.ConnectRate > 0 {
		b.connectRate = newBucket(cfg.ConnectRate, cfg.ConnectRate)
	}
	b.idSeq.Store(uint64(time.Now().UnixNano()))
	b.clock.Store(time.Now().UnixNano())
	if err := b.restore(); err != nil {
		return nil, err
	}
	b.startAuthWorkers()
	b.wg.Add(1)
	go b.housekeeping()
	return b, nil
}

// Close disconnects every client (MQTT 5: DISCONNECT 0x8B) and stops the
// housekeeping goroutine. Listeners are closed by their owner, after.
func (b *Broker) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	close(b.stop)
	b.wg.Wait()
	b.forEachConn(func(c *conn) { c.closeWith(codec.ServerShuttingDown, "shutdown") })
	// Give the final packets a moment to leave and the clients a moment
	// to read them, then close what is left.
	deadline := time.Now().Add(lingerFor)
	for time.Now().Before(deadline) && b.connCount() > 0 {
		time.Sleep(10 * time.Millisecond)
	}
	b.forEachConn(func(c *conn) { _ = c.tc.Close() })
	return nil
}

func (b *Broker) addConn(c *conn) {
	sh := &b.conns[c.shard]
	sh.mu.Lock()
	c.slot = int32(len(sh.list))
	sh.list = append(sh.list, c)
	sh.mu.Unlock()
	b.st.connections.Add(1)
}

func (b *Broker) removeConn(c *conn) {
	sh := &b.conns[c.shard]
	sh.mu.Lock()
	i := int(c.slot)
	ok := i >= 0 && i < len(sh.list) && sh.list[i] == c
	if ok {
		last := len(sh.list) - 1
		sh.list[i] = sh.list[last]
		sh.list[i].slot = int32(i)
		sh.list[last] = nil
		sh.list = sh.list[:last]
		c.slot = -1
	}
	sh.mu.Unlock()
	if ok {
		b.st.connections.Add(-1)
	}
}

func (b *Broker) connCount() int {
	return int(b.st.connections.Load())
}

// forEachConn calls fn for every open connection, without holding any
// lock during fn.
func (b *Broker) forEachConn(fn func(*conn)) { b.forEachConnIn(0, 1, fn) }

// forEachConnIn is forEachConn over the shards first, first+step, ...
func (b *Broker) forEachConnIn(first, step int, fn func(*conn)) {
	var batch []*conn
	for i := first; i < len(b.conns); i += step {
		sh := &b.conns[i]
		sh.mu.Lock()
		batch = append(batch[:0], sh.list...)
		sh.mu.Unlock()
		for _, c := range batch {
			fn(c)
		}
	}
}

func (b *Broker) idLock(id string) *sync.Mutex {
	return &b.idMu[maphash.String(b.seed, id)%uint64(len(b.idMu))]
}

// assignID makes a client ID for a client that sent an empty one.
func (b *Broker) assignID() string {
	return "auto-" + strconv.FormatUint(b.idSeq.Add(1), 36)
}

// OnOpen implements transport.Handler.
func (b *Broker) OnOpen(tc transport.Conn) {
	c := newConn(b, tc)
	tc.SetContext(c)
	if b.closed.Load() {
		c.set(fStopRead)
		_ = tc.Close()
		return
	}
	b.watch(c) // until CONNECT: the connect timeout
	if b.cfg.MaxConnectionsPerIP > 0 {
		c.x().ip = c.remoteIP()
	}
	if !b.admit(c.ip()) {
		b.log.Warn().Str("remote", c.remote()).Msg("connection limit reached: closing")
		c.set(fStopRead)
		_ = tc.Close()
		return
	}
	c.admitted = true
	b.addConn(c)
}

// maxHeld bounds the bytes kept while a CONNECT waits for its password
// check (a client may pipeline packets behind its CONNECT).
func (b *Broker) maxHeld() int { return 2*b.cfg.MaxPacketSize + 64<<10 }

// OnData implements transport.Handler: it frames and handles every whole
// packet in data.
func (b *Broker) OnData(tc transport.Conn, data []byte) (int, error) {
	c, _ := tc.Context().(*conn)
	if c == nil {
		return len(data), errors.New("broker: connection without state")
	}
	c.inMu.Lock()
	defer c.inMu.Unlock()
	if c.deferred || c.heldLen() > 0 {
		x := c.x()
		// Bytes behind a CONNECT that waits for its password check: keep
		// them (copied) until it is done.
		if len(x.held)+len(data) > b.maxHeld() {
			c.closeWith(codec.PacketTooLarge, "too much data before CONNACK")
			return len(data), nil
		}
		x.held = append(x.held, data...)
		if !c.deferred {
			c.processHeld()
			c.flush()
		}
		return len(data), nil
	}
	off := c.process(data)
	if c.deferred && off < len(data) {
		x := c.x()
		x.held = append(x.held, data[off:]...)
		off = len(data)
	}
	c.flush()
	return off, nil
}

// process frames and handles the whole packets at the start of data and
// returns how many bytes it consumed. It stops after a packet that left
// the connection waiting (c.deferred). Caller holds c.inMu.
func (c *conn) process(data []byte) int {
	b := c.b
	off := 0
	for off < len(data) && !c.deferred {
		if c.is(fStopRead) {
			return len(data)
		}
		h, n, err := codec.ParseHeader(data[off:], b.cfg.MaxPacketSize)
		if err == codec.ErrIncomplete {
			break
		}
		if err != nil {
			c.fail(err)
			return len(data)
		}
		total := n + h.Remaining
		if len(data)-off < total {
			break
		}
		c.lastRecv.Store(b.clock.Load())
		b.st.bytesIn.Add(uint64(total))
		if err := c.handle(h, data[off+n:off+total]); err != nil {
			c.fail(err)
			return len(data)
		}
		off += total
	}
	return off
}

// processHeld handles the whole packets in cold.held, keeping the rest.
// Caller holds c.inMu.
func (c *conn) processHeld() {
	x := c.x()
	n := c.process(x.held)
	rest := copy(x.held, x.held[n:])
	x.held = x.held[:rest]
	if rest == 0 {
		x.held = nil
	}
}

// OnClose implements transport.Handler.
func (b *Broker) OnClose(tc transport.Conn, err error) {
	c, _ := tc.Context().(*conn)
	if c == nil {
		return
	}
	c.inMu.Lock()
	defer c.inMu.Unlock()
	c.gone = true
	c.set(fStopRead | fGone)
	c.markDead()
	b.removeConn(c)
	if c.admitted {
		b.releaseIP(c.ip())
	}
	if c.connected {
		c.disconnected(err)
	}
}

// idleBuffersEvery is how often the housekeeping lets the write buffers
// of connections that wrote nothing meanwhile go (dropIdleBuffers).
const idleBuffersEvery = 2 * time.Second

// housekeeping runs the periodic sweep until Close.
func (b *Broker) housekeeping() {
	defer b.wg.Done()
	t := time.NewTicker(tickEvery)
	defer t.Stop()
	lastSessions := time.Now()
	for tick := 0; ; tick++ {
		select {
		case <-b.stop:
			return
		case now := <-t.C:
			b.clock.Store(now.UnixNano())
			b.sweepWatched(now)
			// Every connection once per sweepParts ticks; the write
			// buffers on every other such round (idleBuffersEvery).
			part := tick % sweepParts
			round := tick / sweepParts
			b.sweepPart(now, part, round%max(int(idleBuffersEvery/(sweepParts*tickEvery)), 1) == 0)
			if now.Sub(lastSessions) >= 500*time.Millisecond {
				lastSessions = now
				b.sweepSessions(now)
			}
		}
	}
}

// sweepParts is how many ticks the sweep takes to visit every
// connection once: each tick visits one part of the registry's shards.
// Connections that need a closer look (watch) get it every tick.
const sweepParts = 4

// fastKeepAlive is the longest keepalive checked every tick (on the
// watch list); a longer one is checked by the once-a-round visit, up to a
// round later.
const fastKeepAlive = 4 * time.Second

// watch puts c on the list the sweep looks at every tick: a connection
// awaiting its CONNECT, closing, congested, or with a keepalive of at
// most fastKeepAlive. The sweep lets go of it once none holds.
func (b *Broker) watch(c *conn) {
	if c.flags.Load()&fWatched != 0 || c.flags.Or(fWatched)&fWatched != 0 {
		return // listed already: once is enough
	}
	b.watched.mu.Lock()
	b.watched.list = append(b.watched.list, c)
	b.watched.mu.Unlock()
}

// watchedCount is the length of the watch list (for the tests).
func (b *Broker) watchedCount() int {
	b.watched.mu.Lock()
	defer b.watched.mu.Unlock()
	return len(b.watched.list)
}

// needsWatch reports whether c still needs a look every tick.
func needsWatch(c *conn) bool {
	f := c.flags.Load()
	switch {
	case f&fGone != 0:
		return false
	case f&(fClosing|fCongested) != 0, f&fConnected == 0:
		return true
	}
	ka := time.Duration(c.keepAlive) * time.Second
	return ka > 0 && ka <= fastKeepAlive
}

// sweepWatched checks the watched connections and keeps those that
// still need it.
func (b *Broker) sweepWatched(now time.Time) {
	b.watched.mu.Lock()
	list := b.watched.list
	b.watched.list = b.watched.spare[:0]
	b.watched.spare = nil
	b.watched.mu.Unlock()
	keep := list[:0]
	for _, c := range list {
		b.checkConn(c, now, false)
		if needsWatch(c) {
			keep = append(keep, c)
			continue
		}
		// Let go, then look again: a watch that came between the
		// check and the unset found the flag still set and listed
		// nothing.
		c.unset(fWatched)
		if needsWatch(c) {
			b.watch(c)
		}
	}
	clear(list[len(keep):])
	b.watched.mu.Lock()
	// Connections watched meanwhile are in the new list; the kept ones
	// join them.
	b.watched.list = append(b.watched.list, keep...)
	clear(keep)
	b.watched.spare = keep[:0]
	b.watched.mu.Unlock()
}

// sweepPart checks the connections in part p of sweepParts of the
// registry's shards.
func (b *Broker) sweepPart(now time.Time, p int, dropBuffers bool) {
	b.forEachConnIn(p, sweepParts, func(c *conn) { b.checkConn(c, now, dropBuffers) })
}

// checkConn closes c when past its CONNECT deadline, keepalive or close
// deadline and retries deliveries held back by a full outbound buffer;
// with dropBuffers, an idle c lets its write buffers go.
func (b *Broker) checkConn(c *conn, now time.Time, dropBuffers bool) {
	nowNs := now.UnixNano()
	f := c.flags.Load()
	switch {
	case f&fGone != 0:
		// Closed; only a watch list may still hold it.
	case f&fClosing != 0:
		// Past the grace for the final packet, or the linger after it.
		if x := c.cold.Load(); x != nil {
			if d := x.closeBy.Load(); d != 0 && nowNs >= d {
				_ = c.tc.Close()
			}
		}
	case f&fConnected == 0:
		if now.Sub(time.Unix(0, c.since.Load())) > b.cfg.ConnectTimeout {
			b.log.Debug().Str("remote", c.remote()).Msg("no CONNECT in time")
			c.closeWith(codec.MaximumConnectTime, "connect timeout")
		}
	default:
		// lastRecv is read off the coarse clock (up to one tick early):
		// allow that tick on top of 1.5 x keepalive [MQTT-3.1.2-22].
		if ka := int64(c.keepAlive) * int64(time.Second); ka > 0 && nowNs-c.lastRecv.Load() > ka*3/2+int64(tickEvery) {
			b.log.Debug().Str("client_id", c.clientID()).Msg("keepalive timeout")
			c.set(fNoLinger)
			c.closeWith(codec.KeepAliveTimeout, "keepalive timeout")
			return
		}
		if f&fCongested != 0 {
			c.drain()
		}
		if dropBuffers && f&fSpare != 0 {
			c.dropIdleBuffers()
		}
	}
}

// markOffline puts s, whose connection is gone, in the offline set.
// Call it without s.Mu held.
func (b *Broker) markOffline(s *session.Session) {
	b.offline.mu.Lock()
	if b.offline.set == nil {
		b.offline.set = make(map[*session.Session]struct{})
	}
	b.offline.set[s] = struct{}{}
	b.offline.mu.Unlock()
}

// offlineCount is the size of the offline set (for the tests).
func (b *Broker) offlineCount() int {
	b.offline.mu.Lock()
	defer b.offline.mu.Unlock()
	return len(b.offline.set)
}

// sweepSessions ends expired offline sessions, publishes due wills and
// drops expired queued messages. It visits the offline set only.
func (b *Broker) sweepSessions(now time.Time) {
	var ended []*session.Session
	var wills []*session.Will
	b.offline.mu.Lock()
	batch := b.offline.batch[:0]
	b.offline.batch = nil // a concurrent sweep (tests) allocates its own
	for s := range b.offline.set {
		batch = append(batch, s)
	}
	b.offline.mu.Unlock()
	var leave []*session.Session // online again, or ended
	for _, s := range batch {
		s.Mu.Lock()
		if s.Owner != nil {
			leave = append(leave, s)
		} else {
			if w, at := s.PendingWill(); w != nil && !now.Before(at) {
				wills = append(wills, s.TakePendingWill())
				b.store.SaveSession(s)
			}
			if !s.DisconnectedAt.IsZero() && now.Sub(s.DisconnectedAt) >= s.Expiry {
				if w := s.TakePendingWill(); w != nil { // the session ends: the will goes now
					wills = append(wills, w)
				}
				ended = append(ended, s)
			} else {
				for _, f := range s.DropExpiredQueued(now) {
					b.store.DeleteOut(s, f)
					b.st.droppedExpired.Add(1)
				}
			}
		}
		s.Mu.Unlock()
	}
	clear(batch)
	b.offline.mu.Lock()
	b.offline.batch = batch[:0]
	b.offline.mu.Unlock()
	for _, w := range wills {
		b.publishWill(w)
	}
	for _, s := range ended {
		b.endSession(s)
	}
	leave = append(leave, ended...)
	if len(leave) > 0 {
		b.offline.mu.Lock()
		for _, s := range leave {
			s.Mu.Lock()
			online := s.Owner != nil
			s.Mu.Unlock()
			cur, ok := b.store.Get(s.ClientID)
			if online || !ok || cur != s { // a removed session never comes back: a new one takes its ID
				delete(b.offline.set, s)
			}
		}
		b.offline.mu.Unlock()
	}
	if len(wills)+len(ended) > 0 {
		b.store.Commit(func(error) {})
	}
}

// restore rebuilds the trie, the retained messages and the wills from
// what the store kept. Clients that were connected when the process
// stopped count as disconnected now: their wills follow the usual rules.
func (b *Broker) restore() error {
	now := time.Now()
	snap, err := b.store.Load(now)
	if err != nil {
		return fmt.Errorf("broker: restoring sessions: %w", err)
	}
	for _, m := range snap.Retained {
		b.ret.set(m)
	}
	subs := 0
	for _, s := range snap.Sessions {
		b.markOffline(s)
		for _, sub := range slices.Clone(s.Subscriptions()) {
			pf, ok := b.parseFilter(sub.Filter)
			if !ok {
				b.log.Warn().Str("client_id", s.ClientID).Str("topic", sub.Filter).Msg("dropping a stored subscription the naming rules refuse")
				s.DeleteSub(sub.Filter)
				continue
			}
			b.subs.add(s, pf.group, pf.filter, sub)
			subs++
		}
	}
	for id, w := range snap.Wills {
		s, ok := b.store.Get(id)
		switch {
		case !ok || w.Delay == 0:
			b.publishWill(w) // its session ended with the process, or no delay
		default:
			s.Mu.Lock()
			s.SetPendingWill(w, now.Add(min(w.Delay, s.Expiry)))
			b.store.SaveSession(s)
			s.Mu.Unlock()
		}
		b.store.DeleteWill(id)
	}
	if len(snap.Wills) > 0 {
		done := make(chan error, 1)
		b.store.Commit(func(err error) { done <- err })
		if err := <-done; err != nil {
			return fmt.Errorf("broker: restoring wills: %w", err)
		}
	}
	if len(snap.Sessions)+len(snap.Retained)+len(snap.Wills) > 0 {
		b.log.Info().Int("sessions", len(snap.Sessions)).Int("subscriptions", subs).
			Int("retained", len(snap.Retained)).Int("wills", len(snap.Wills)).Msg("restored from the store")
	}
	return nil
}

// endSession removes an offline session and its subscriptions.
func (b *Broker) endSession(s *session.Session) {
	mu := b.idLock(s.ClientID)
	mu.Lock()
	s.Mu.Lock()
	if s.Owner != nil { // a client took it back meanwhile
		s.Mu.Unlock()
		mu.Unlock()
		return
	}
	subs := s.TakeSubs()
	s.Mu.Unlock()
	b.store.Delete(s.ClientID, s)
	mu.Unlock()
	b.unsubscribeAll(s, subs)
	b.log.Debug().Str("client_id", s.ClientID).Msg("session ended")
}

func (b *Broker) unsubscribeAll(s *session.Session, subs []session.Subscription) {
	for _, sub := range subs {
		pf, ok := b.parseFilter(sub.Filter)
		if ok {
			b.subs.remove(s, s.ClientID, pf.group, pf.filter)
		}
	}
}

func (b *Broker) groupOnline(group string, delta int) {
	if group == "" {
		return
	}
	b.groupsMu.Lock()
	b.groups[group] += delta
	if b.groups[group] <= 0 {
		delete(b.groups, group)
	}
	b.groupsMu.Unlock()
}

// GroupOnline returns how many clients of group are connected.
func (b *Broker) GroupOnline(group string) int {
	b.groupsMu.Lock()
	defer b.groupsMu.Unlock()
	return b.groups[group]
}
