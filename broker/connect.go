package broker

import (
	"errors"
	"time"

	"github.com/mqttd/mqttd/codec"
	"github.com/mqttd/mqttd/session"
)

// ClientInfo describes a connected client (hooks, admin queries).
type ClientInfo struct {
	ClientID    string
	Group       string
	Username    string
	Node        string
	Remote      string // ip:port
	IP          string
	Transport   string // tcp, tls, ws, wss
	Protocol    string // "mqtt"
	Version     codec.Version
	KeepAlive   uint16 // seconds, effective
	CleanStart  bool
	ConnectedAt time.Time
}

// connackCode maps an MQTT 5 CONNACK reason onto the 3.1.1 return code.
func connackCode(v codec.Version, r codec.ReasonCode) codec.ReasonCode {
	if v == codec.V5 {
		return r
	}
	switch r {
	case codec.Success:
		return codec.ConnAccepted
	case codec.UnsupportedProtocolVersion:
		return codec.ConnRefusedProtocolVersion
	case codec.ClientIdentifierNotValid:
		return codec.ConnRefusedIdentifierRejected
	case codec.BadUserNameOrPassword:
		return codec.ConnRefusedBadCredentials
	case codec.NotAuthorized, codec.Banned, codec.BadAuthenticationMethod:
		return codec.ConnRefusedNotAuthorized
	default:
		return codec.ConnRefusedServerUnavailable
	}
}

// refuse answers CONNECT with a failure CONNACK and closes [MQTT-3.2.2-6].
// clientID is the CONNECT's client ID for the log, "" before it is known.
func (c *conn) refuse(clientID string, r codec.ReasonCode, why string) error {
	c.b.log.Debug().Str("client_id", clientID).Str("remote", c.remote()).Str("reason", why).Msg("connect refused")
	ack := codec.Connack{Reason: connackCode(c.version, r)}
	if c.version == codec.V5 && why != "" {
		ack.Props.Set(codec.PropReasonString)
		ack.Props.ReasonString = []byte(why)
	}
	v := c.version
	c.set(fStopRead)
	c.startClosing()
	c.writeFinal(func(b []byte) []byte { return ack.Append(b, v) })
	return nil
}

func (c *conn) onConnect(body []byte) error {
	var p codec.Connect
	if err := p.Decode(body); err != nil {
		var me *codec.MalformedError
		if errors.As(err, &me) && me.Reason == codec.UnsupportedProtocolVersion {
			// Answer in the 3.1.1 format: the client's level is unknown
			// [MQTT-3.1.2-2].
			c.version = codec.V311
			return c.refuse("", codec.UnsupportedProtocolVersion, "unsupported protocol version")
		}
		return err
	}
	c.version = p.Version
	if c.version == codec.V31 {
		c.version = codec.V311
	}
	if c.version == codec.V5 && p.Props.Has(codec.PropAuthMethod) {
		return c.startEnhancedAuth(&p)
	}
	return c.connect(&p, nil)
}

// connect completes a CONNECT. auth is the outcome of an enhanced
// authentication exchange (nil: username/password authentication).
func (c *conn) connect(p *codec.Connect, auth *authOutcome) error {
	b := c.b
	now := time.Now()
	if b.closed.Load() {
		return c.refuse("", codec.ServerUnavailable, "shutting down")
	}
	if b.connectRate != nil && !b.connectRate.take(now) {
		b.st.refusedConns.Add(1)
		return c.refuse("", codec.ConnectionRateExceeded, "connect rate exceeded")
	}
	if b.cfg.MaxMsgRate > 0 {
		c.msgRate = newBucket(b.cfg.MaxMsgRate, 2*b.cfg.MaxMsgRate)
	}

	clientID := string(p.ClientID)
	assigned := false
	if clientID == "" {
		if !p.CleanStart {
			return c.refuse("", codec.ClientIdentifierNotValid, "empty client id without clean start") // [MQTT-3.1.3-8]
		}
		clientID, assigned = b.assignID(), true
	}
	group, ok := b.checkClientID(clientID)
	if !ok && !assigned {
		return c.refuse(clientID, codec.ClientIdentifierNotValid, "client id not valid")
	}

	// Authentication.
	certCN := ""
	if certs := c.tc.PeerCertificates(); len(certs) > 0 {
		certCN = certs[0].Subject.CommonName
	}
	switch {
	case auth != nil:
		c.user = auth.user
		c.x().authMethod = auth.method
	case b.cfg.Users != nil && (p.UsernameFlag || certCN != ""):
		// Password hashes are slow by design: check them on the auth
		// workers, never on the event loop. The CONNECT (copied off the
		// read buffer) and anything the client sends meanwhile wait.
		return c.authenticateAsync(cloneConnect(p), clientID, certCN, group, assigned)
	case p.UsernameFlag && b.cfg.Users == nil && !b.cfg.AllowAnonymous:
		return c.refuse(clientID, codec.BadUserNameOrPassword, "no users configured")
	case !p.UsernameFlag && !b.cfg.AllowAnonymous:
		return c.refuse(clientID, codec.NotAuthorized, "anonymous access refused")
	default:
		c.user = string(p.Username)
	}
	return c.establish(p, clientID, group, assigned, auth)
}

// establish completes an authenticated CONNECT: will, keepalive, session
// attach or takeover, CONNACK.
func (c *conn) establish(p *codec.Connect, clientID, group string, assigned bool, auth *authOutcome) error {
	b := c.b
	v5 := c.version == codec.V5
	now := time.Now()

	// Will.
	if p.WillFlag {
		topic := string(p.WillTopic)
		if !b.validTopic(topic) {
			return c.refuse(clientID, codec.TopicNameInvalid, "will topic not valid")
		}
		if isSys(topic) || !b.allowed(c.user, topic, AccessPublish) {
			return c.refuse(clientID, codec.NotAuthorized, "will topic not authorized")
		}
		wp := codec.Publish{Topic: p.WillTopic, Payload: p.WillPayload, QoS: p.WillQoS, Retain: p.WillRetain, Props: p.WillProps}
		wp.Props.Clear(codec.PropMessageExpiry) // counted from when the will is published
		m := session.NewMessage(&wp, p.WillTopic, clientID, now)
		c.will = &connWill{Will: session.Will{Msg: m}}
		if v5 {
			if p.WillProps.Has(codec.PropWillDelay) {
				c.will.Delay = time.Duration(p.WillProps.WillDelay) * time.Second
			}
			if p.WillProps.Has(codec.PropMessageExpiry) {
				c.will.expiry, c.will.hasExpiry = p.WillProps.MessageExpiry, true
			}
		}
	}

	// Keepalive [MQTT-3.1.2-24], MQTT 5 Server Keep Alive [MQTT-3.2.2-21].
	ka := p.KeepAlive
	serverKA := false
	if v5 && b.cfg.MaxKeepAlive > 0 && (ka == 0 || ka > b.cfg.MaxKeepAlive) {
		ka, serverKA = b.cfg.MaxKeepAlive, true
	}
	c.keepAlive = ka // read by the housekeeping once fConnected is set

	// Session expiry.
	var expiry time.Duration
	expiryCapped := false
	if v5 {
		if p.Props.Has(codec.PropSessionExpiry) {
			expiry = time.Duration(p.Props.SessionExpiry) * time.Second
			if p.Props.SessionExpiry == 0xFFFFFFFF || expiry > b.cfg.SessionMaxExpiry {
				expiry, expiryCapped = b.cfg.SessionMaxExpiry, true
			}
		}
	} else if !p.CleanStart {
		expiry = b.cfg.SessionMaxExpiry
	}

	// Flow control and limits the client asked for.
	c.window = b.cfg.MaxInflight
	if v5 {
		if p.Props.Has(codec.PropReceiveMaximum) && p.Props.ReceiveMaximum < c.window {
			c.window = p.Props.ReceiveMaximum
		}
		if p.Props.Has(codec.PropMaximumPacketSize) {
			c.maxOut = p.Props.MaximumPacketSize
		}
		if p.Props.Has(codec.PropTopicAliasMaximum) {
			c.aliasMax = min(p.Props.TopicAliasMaximum, b.cfg.TopicAliasMaximum)
		}
		if p.Props.Has(codec.PropRequestProblemInfo) {
			c.problem = p.Props.RequestProblemInfo == 1
		}
		c.aliasInMax = b.cfg.TopicAliasMaximum
	}

	// Attach the session, taking it over from another connection.
	mu := b.idLock(clientID)
	mu.Lock()
	s, exists := b.store.Get(clientID)
	var old *conn
	var endedWill *session.Will
	var endedSubs []session.Subscription
	var ended *session.Session
	var endedWaiters []func(error)
	if exists {
		s.Mu.Lock()
		if o, ok := s.Owner.(*conn); ok && o != nil {
			old = o
			s.Owner = nil
		}
		// A session whose expiry passed is over even if the sweep has not
		// removed it yet (right after a restart, say).
		expired := s.Owner == nil && old == nil && !s.DisconnectedAt.IsZero() && now.Sub(s.DisconnectedAt) >= s.Expiry
		if p.CleanStart || expired {
			// Discard the old session [MQTT-3.1.2-4].
			endedWill = s.TakePendingWill()
			endedWaiters = s.TakeWaiters(nil)
			endedSubs = append(endedSubs, s.TakeSubs()...)
			s.Mu.Unlock()
			b.store.Delete(clientID, s)
			ended = s
			exists = false
		}
	}
	if !exists {
		s = session.New(clientID, group)
		b.store.Put(s)
		s.Mu.Lock()
	}
	// A delayed will of the last connection is not sent when the session
	// is resumed in time [MQTT-3.1.3-9].
	s.SetPendingWill(nil, time.Time{})
	s.Owner = c
	s.Expiry = expiry
	s.DisconnectedAt = time.Time{}
	c.sess = s
	c.connected = true
	c.since.Store(now.UnixNano())
	c.set(fConnected) // watched since OnOpen: a keepalive up to fastKeepAlive keeps it so

	if exists && expiry == 0 && b.store.Durable() && s.Stored.Load() {
		// Resumed as a session that ends with this connection: its records
		// must not outlive a crash.
		b.store.Backend().DeleteSession(clientID)
	}
	b.store.SaveSession(s)
	if c.will != nil {
		b.store.SaveWill(clientID, &c.will.Will)
	}

	ack := codec.Connack{SessionPresent: exists, Reason: codec.Success}
	if v5 {
		pr := &ack.Props
		if assigned {
			pr.Set(codec.PropAssignedClientID)
			pr.AssignedClientID = []byte(clientID)
		}
		if serverKA {
			pr.Set(codec.PropServerKeepAlive)
			pr.ServerKeepAlive = ka
		}
		if expiryCapped {
			pr.Set(codec.PropSessionExpiry)
			pr.SessionExpiry = uint32(expiry / time.Second)
		}
		if b.cfg.ReceiveMaximum < 65535 {
			pr.Set(codec.PropReceiveMaximum)
			pr.ReceiveMaximum = b.cfg.ReceiveMaximum
		}
		if b.cfg.TopicAliasMaximum > 0 {
			pr.Set(codec.PropTopicAliasMaximum)
			pr.TopicAliasMaximum = b.cfg.TopicAliasMaximum
		}
		pr.Set(codec.PropMaximumPacketSize)
		pr.MaximumPacketSize = uint32(b.cfg.MaxPacketSize)
		if auth != nil {
			pr.Set(codec.PropAuthMethod)
			pr.AuthMethod = []byte(auth.method)
			if auth.data != nil {
				pr.Set(codec.PropAuthData)
				pr.AuthData = auth.data
			}
		}
	}
	ver := c.version
	c.write(true, func(buf []byte) []byte { return ack.Append(buf, ver) })
	if exists {
		c.resumeLocked(now)
	}
	wrote := b.store.Durable() && (expiry > 0 || c.will != nil || exists || ended != nil)
	s.Mu.Unlock()
	mu.Unlock()
	if wrote {
		b.store.Commit(func(error) {})
	}

	if old != nil {
		f := fTakenOver
		if p.CleanStart {
			f |= fTakenOverClean
		}
		old.set(f)
		old.closeWith(codec.SessionTakenOver, "takeover")
	}
	if ended != nil {
		b.unsubscribeAll(ended, endedSubs)
	}
	for _, f := range endedWaiters {
		f(nil)
	}
	if endedWill != nil {
		b.publishWill(endedWill)
	}

	c.cleanStart = p.CleanStart
	b.groupOnline(group, 1)
	if e := b.log.Debug(); e.Enabled() {
		e.Str("client_id", clientID).Str("remote", c.remote()).Bool("session_present", exists).Msg("connected")
	}
	if len(b.cfg.Hooks) > 0 {
		info := c.clientInfo()
		for _, h := range b.cfg.Hooks {
			h.OnConnect(info)
		}
	}
	return nil
}

// clientInfo describes the connected client for hooks. It is built when
// asked rather than kept: idle connections are most of the memory.
func (c *conn) clientInfo() ClientInfo {
	return ClientInfo{
		ClientID: c.sess.ClientID, Group: c.sess.Group(), Username: c.user, Node: c.b.cfg.NodeID,
		Remote: c.remote(), IP: c.remoteIP(), Transport: c.tc.Transport(), Protocol: "mqtt",
		Version: c.version, KeepAlive: c.keepAlive, CleanStart: c.cleanStart,
		ConnectedAt: time.Unix(0, c.since.Load()),
	}
}

// resumeLocked re-sends what was in flight, then the queue [MQTT-4.4.0-1].
// Caller holds c.sess.Mu.
func (c *conn) resumeLocked(now time.Time) {
	s := c.sess
	for _, f := range s.Out()[:s.InflightLen()] {
		if f.Phase == session.PhaseReleased {
			id := f.PacketID
			c.write(true, func(b []byte) []byte {
				a := codec.Ack{Kind: codec.PUBREL, PacketID: id}
				return a.Append(b, c.version)
			})
			continue
		}
		c.writePublishLocked(f, f.Sent, now)
	}
	c.drainLocked(now)
}

// onDisconnect handles a client's DISCONNECT.
func (c *conn) onDisconnect(h codec.Header, body []byte) error {
	var d codec.Disconnect
	if err := d.Decode(h, body, c.version); err != nil {
		return err
	}
	if c.v5() && d.Props.Has(codec.PropSessionExpiry) {
		s := c.sess
		s.Mu.Lock()
		if s.Expiry == 0 && d.Props.SessionExpiry != 0 {
			s.Mu.Unlock()
			return &codec.MalformedError{Packet: codec.DISCONNECT, Field: "session expiry interval", Reason: codec.ProtocolError,
				Msg: "cannot set a session expiry after connecting with 0"} // [MQTT-3.14.2-2]
		}
		e := time.Duration(d.Props.SessionExpiry) * time.Second
		if d.Props.SessionExpiry == 0xFFFFFFFF || e > c.b.cfg.SessionMaxExpiry {
			e = c.b.cfg.SessionMaxExpiry
		}
		s.Expiry = e
		s.Mu.Unlock()
	}
	if d.Reason != codec.DisconnectWithWill {
		c.normalExit = true // [MQTT-3.14.4-3]: the will is discarded
	}
	c.setExitReason("client disconnect")
	c.set(fStopRead)
	_ = c.tc.Close()
	return nil
}

// disconnected runs once when a connected client's connection is gone.
func (c *conn) disconnected(err error) {
	b := c.b
	now := time.Now()
	c.unset(fConnected)
	s := c.sess
	mu := b.idLock(s.ClientID)
	mu.Lock()
	s.Mu.Lock()
	mine := s.Owner == c
	endNow := false
	var subs []session.Subscription
	var waiters []func(error)
	if mine {
		// Publishers held back by this session's queue go on: what does
		// not fit the offline queue is dropped and counted below.
		waiters = s.TakeWaiters(nil)
		s.Owner = nil
		s.DisconnectedAt = now
		if s.Expiry == 0 {
			endNow = true
			subs = append(subs, s.TakeSubs()...)
		} else {
			for _, f := range s.TrimQueue(b.cfg.SessionMaxQueued) {
				b.store.DeleteOut(s, f)
				b.st.droppedOffline.Add(1)
			}
		}
	}
	// The will [MQTT-3.1.2-8]: published unless the client said
	// DISCONNECT (without 0x04). A delay waits unless the session ends
	// first [MQTT-3.1.3-9].
	var willNow *session.Will
	if cw := c.will; cw != nil && !c.normalExit {
		w := &cw.Will
		if cw.hasExpiry {
			m := *w.Msg
			m.ExpiresAt = now.Add(w.Delay + time.Duration(cw.expiry)*time.Second)
			w = &session.Will{Msg: &m, Delay: w.Delay}
		}
		switch {
		case !mine:
			// Taken over: a resumed session cancels a delayed will; a
			// clean start ended the old session, so the will goes now.
			if w.Delay == 0 || c.is(fTakenOverClean) {
				willNow = w
			}
		case endNow || w.Delay == 0:
			willNow = w
		default:
			s.SetPendingWill(w, now.Add(min(w.Delay, s.Expiry)))
		}
	}
	if mine && !endNow {
		b.store.SaveSession(s)
	}
	if c.will != nil && mine {
		b.store.DeleteWill(s.ClientID)
	}
	wrote := b.store.Durable() && (s.Stored.Load() || c.will != nil)
	s.Mu.Unlock()
	if endNow {
		b.store.Delete(s.ClientID, s)
	} else if mine {
		b.markOffline(s)
	}
	mu.Unlock()
	if wrote {
		b.store.Commit(func(error) {})
	}
	if endNow {
		b.unsubscribeAll(s, subs)
	}
	if willNow != nil {
		b.publishWill(willNow)
	}
	for _, f := range waiters {
		f(nil)
	}
	b.groupOnline(s.Group(), -1)

	var reason string
	if x := c.cold.Load(); x != nil {
		c.outMu.Lock()
		reason = x.exitReason
		c.outMu.Unlock()
	}
	switch {
	case c.is(fTakenOver):
		reason = "takeover"
	case reason != "":
	case err != nil:
		reason = "network error: " + err.Error()
	default:
		reason = "connection closed"
	}
	b.log.Debug().Str("client_id", s.ClientID).Str("reason", reason).Msg("disconnected")
	if len(b.cfg.Hooks) > 0 {
		info := c.clientInfo()
		for _, h := range b.cfg.Hooks {
			h.OnDisconnect(info, reason)
		}
	}
}

// publishWill publishes a will message as if its client had sent it.
func (b *Broker) publishWill(w *session.Will) {
	m := w.Msg
	rt := &routing{}
	b.store.Atomic(func() {
		if m.Retain {
			b.ret.set(m)
			b.store.SaveRetained(m)
		}
		b.route(m, "", rt, false)
	})
	if b.store.Durable() {
		b.store.Commit(func(error) { b.release(rt) })
	}
	// A will is a device's message: bridges take it like a QoS 0 one
	// (nobody waits for its acknowledgement).
	for _, a := range b.cfg.Ackers {
		a.Accept(m, func(error) {})
	}
	for _, h := range b.cfg.Hooks {
		h.OnPublish(m)
	}
}
