package broker

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mqttd/mqttd/codec"
	"github.com/mqttd/mqttd/session"
)

// maxLevels is how many topic levels are split without allocating.
const maxLevels = 32

// splitLevels splits a topic or filter on '/' into buf (or a larger slice
// when buf is too small).
func splitLevels(t string, buf []string) []string {
	out := buf[:0]
	for {
		i := strings.IndexByte(t, '/')
		if i < 0 {
			return append(out, t)
		}
		out = append(out, t[:i])
		t = t[i+1:]
	}
}

// subEntry is one client's subscription in the trie: what routing needs
// of it (the filter is the node's path; the session keeps the rest).
type subEntry struct {
	s       *session.Session
	id      uint32    // subscription identifier; 0: none
	qos     codec.QoS // granted QoS
	noLocal bool
	rap     bool // Retain As Published
}

func newSubEntry(s *session.Session, sub session.Subscription) subEntry {
	return subEntry{s: s, id: sub.ID, qos: sub.QoS, noLocal: sub.NoLocal, rap: sub.RetainAsPublished}
}

// shareGroup is the members of one shared-subscription group on one
// filter. next rotates delivery among them.
type shareGroup struct {
	members []subEntry
	next    atomic.Uint32
}

// node is one level of the trie. Most nodes are leaves with a single
// subscriber (a device's own topic), so that one is kept inline and a
// node is 32 bytes; more subscribers and shared groups live in nodeMore.
// A node does not know its key or parent: remove walks down from the
// root and prunes on the way back.
type node struct {
	children map[string]*node
	// one is the plain subscription when the node has exactly one;
	// otherwise one.s is nil and more.subs holds them (two or more).
	one  subEntry
	more *nodeMore // nil: no subscriptions besides one
}

// nodeMore is what a node with more than one subscriber keeps.
type nodeMore struct {
	subs   []subEntry             // plain subscriptions, one per client, when more than one
	subIdx map[string]int         // client ID → index in subs, once subs is long
	shared map[string]*shareGroup // by group name
}

// subsIndexed is the length of a node's subscriber list from which it
// keeps an index by client ID: below it a scan is cheaper than a map, and
// most filters have a handful of subscribers.
const subsIndexed = 16

func (n *node) moreSubs() *nodeMore {
	if n.more == nil {
		n.more = new(nodeMore)
	}
	return n.more
}

// findSub returns the plain subscription of clientID, or nil.
func (n *node) findSub(clientID string) *subEntry {
	if n.one.s != nil && n.one.s.ClientID == clientID {
		return &n.one
	}
	if x := n.more; x != nil {
		if i := x.findSub(clientID); i >= 0 {
			return &x.subs[i]
		}
	}
	return nil
}

// addSub adds a plain subscription of a client the node does not have.
func (n *node) addSub(e subEntry) {
	if n.one.s == nil && (n.more == nil || len(n.more.subs) == 0) {
		n.one = e
		return
	}
	x := n.moreSubs()
	if n.one.s != nil {
		x.addSub(n.one)
		n.one = subEntry{}
	}
	x.addSub(e)
}

// removeSub removes clientID's plain subscription if it belongs to s
// (nil: any session) and reports whether it did.
func (n *node) removeSub(s *session.Session, clientID string) bool {
	if n.one.s != nil && n.one.s.ClientID == clientID {
		if s != nil && n.one.s != s {
			return false
		}
		n.one = subEntry{}
		return true
	}
	x := n.more
	if x == nil {
		return false
	}
	i := x.findSub(clientID)
	if i < 0 || s != nil && x.subs[i].s != s {
		return false
	}
	x.removeSubAt(i)
	if len(x.subs) == 1 {
		n.one = x.subs[0]
		x.subs, x.subIdx = nil, nil
	}
	n.tidy()
	return true
}

// tidy drops more once it holds nothing.
func (n *node) tidy() {
	if x := n.more; x != nil && len(x.subs) == 0 && len(x.shared) == 0 {
		n.more = nil
	}
}

func (x *nodeMore) findSub(clientID string) int {
	if x.subIdx != nil {
		if i, ok := x.subIdx[clientID]; ok {
			return i
		}
		return -1
	}
	for i := range x.subs {
		if x.subs[i].s.ClientID == clientID {
			return i
		}
	}
	return -1
}

func (x *nodeMore) addSub(e subEntry) {
	x.subs = append(x.subs, e)
	if x.subIdx != nil {
		x.subIdx[e.s.ClientID] = len(x.subs) - 1
	} else if len(x.subs) > subsIndexed {
		x.subIdx = make(map[string]int, len(x.subs))
		for i := range x.subs {
			x.subIdx[x.subs[i].s.ClientID] = i
		}
	}
}

func (x *nodeMore) removeSubAt(i int) {
	last := len(x.subs) - 1
	id := x.subs[i].s.ClientID
	x.subs[i] = x.subs[last]
	x.subs[last] = subEntry{}
	x.subs = x.subs[:last]
	if x.subIdx != nil {
		delete(x.subIdx, id)
		if i < last {
			x.subIdx[x.subs[i].s.ClientID] = i
		}
		if len(x.subs) <= subsIndexed/2 {
			x.subIdx = nil
		}
	}
	if len(x.subs) == 0 {
		x.subs = nil
	}
}

func (n *node) empty() bool {
	return len(n.children) == 0 && n.one.s == nil && n.more == nil
}

// trie is the subscription index: topic filters by level, with the
// subscribers of each filter at its node. One RWMutex: matching (the hot
// path) takes the read lock; subscribe/unsubscribe the write lock.
type trie struct {
	mu    sync.RWMutex // guards every node
	root  node
	count atomic.Int64 // subscriptions, shared members included
}

// add records sub for s on filter (group "" for a plain subscription).
// It reports whether the subscription already existed.
func (t *trie) add(s *session.Session, group, filter string, sub session.Subscription) (existed bool) {
	var lb [maxLevels]string
	levels := splitLevels(filter, lb[:])
	t.mu.Lock()
	defer t.mu.Unlock()
	n := &t.root
	for _, l := range levels {
		c := n.children[l]
		if c == nil {
			if n.children == nil {
				n.children = make(map[string]*node)
			}
			c = new(node)
			n.children[l] = c
		}
		n = c
	}
	e := newSubEntry(s, sub)
	if group == "" {
		if old := n.findSub(s.ClientID); old != nil {
			*old = e
			existed = true
		} else {
			n.addSub(e)
		}
	} else {
		x := n.moreSubs()
		if x.shared == nil {
			x.shared = make(map[string]*shareGroup)
		}
		g := x.shared[group]
		if g == nil {
			g = &shareGroup{}
			x.shared[group] = g
		}
		for i := range g.members {
			if g.members[i].s.ClientID == s.ClientID {
				// Copy on write: matchers may hold the old slice.
				ms := append([]subEntry(nil), g.members...)
				ms[i] = e
				g.members = ms
				return true
			}
		}
		ms := make([]subEntry, len(g.members), len(g.members)+1)
		copy(ms, g.members)
		g.members = append(ms, e)
	}
	if !existed {
		t.count.Add(1)
	}
	return existed
}

// remove deletes clientID's subscription on filter (group "" for plain)
// if it belongs to s (nil: any session) and reports whether it existed.
func (t *trie) remove(s *session.Session, clientID, group, filter string) bool {
	var lb [maxLevels]string
	levels := splitLevels(filter, lb[:])
	// path[i] is the node at depth i (the root at 0), for pruning.
	var pb [maxLevels + 1]*node
	path := append(pb[:0], &t.root)
	t.mu.Lock()
	defer t.mu.Unlock()
	n := &t.root
	for _, l := range levels {
		n = n.children[l]
		if n == nil {
			return false
		}
		path = append(path, n)
	}
	found := false
	if group == "" {
		found = n.removeSub(s, clientID)
	} else if x := n.more; x != nil {
		if g := x.shared[group]; g != nil {
			for i := range g.members {
				if g.members[i].s.ClientID == clientID && (s == nil || g.members[i].s == s) {
					ms := make([]subEntry, 0, len(g.members)-1)
					ms = append(ms, g.members[:i]...)
					g.members = append(ms, g.members[i+1:]...)
					found = true
					break
				}
			}
			if len(g.members) == 0 {
				delete(x.shared, group)
				n.tidy()
			}
		}
	}
	if found {
		t.count.Add(-1)
	}
	// Prune empty nodes up to the root.
	for i := len(path) - 1; i > 0 && path[i].empty(); i-- {
		delete(path[i-1].children, levels[i-1])
	}
	return found
}

// matcher collects the subscribers of one topic. Reused through a pool so
// that matching allocates nothing once warm.
type matcher struct {
	plain  []subEntry   // every matching plain subscription (a client may appear more than once)
	groups []groupMatch // every matching shared group
	levels [maxLevels]string
	out    []target
	idx    map[*session.Session]int
}

// groupMatch is a matching shared group with its members as they were
// under the trie's read lock: members is copy-on-write, so the slice
// stays valid while a concurrent (un)subscribe replaces the field.
type groupMatch struct {
	g       *shareGroup
	members []subEntry
}

// target is one session's merged delivery.
type target struct {
	s *session.Session
	session.Delivery
}

var matcherPool = sync.Pool{New: func() any { return new(matcher) }}

func (m *matcher) reset() {
	clear(m.plain)
	m.plain = m.plain[:0]
	clear(m.groups)
	m.groups = m.groups[:0]
	clear(m.out)
	m.out = m.out[:0]
	if len(m.idx) > 0 {
		clear(m.idx)
	}
}

// mergeLinear is the largest match merged by pairwise comparison; larger
// ones use a map.
const mergeLinear = 16

// merge turns the matching plain subscriptions into one delivery per
// session: the highest granted QoS, RETAIN kept when any subscription
// wants it as published, and every subscription identifier
// [MQTT-3.3.4-3..5]. Subscriptions with No Local skip the publisher.
func (m *matcher) merge(msg *session.Message, publisher string) []target {
	for i := range m.plain {
		e := &m.plain[i]
		if e.noLocal && e.s.ClientID == publisher {
			continue // [MQTT-3.8.3-3]
		}
		q := min(msg.QoS, e.qos)
		ret := msg.Retain && e.rap
		k := -1
		if len(m.plain) <= mergeLinear {
			for j := range m.out {
				if m.out[j].s == e.s {
					k = j
					break
				}
			}
		} else {
			if m.idx == nil {
				m.idx = make(map[*session.Session]int)
			}
			if j, ok := m.idx[e.s]; ok {
				k = j
			} else {
				m.idx[e.s] = len(m.out)
			}
		}
		if k < 0 {
			t := target{s: e.s, Delivery: session.Delivery{Msg: msg, QoS: q, Retain: ret}}
			if e.id != 0 {
				t.SubIDs = []uint32{e.id}
			}
			m.out = append(m.out, t)
			continue
		}
		t := &m.out[k]
		t.QoS = max(t.QoS, q)
		t.Retain = t.Retain || ret
		if e.id != 0 {
			t.SubIDs = append(t.SubIDs, e.id)
		}
	}
	return m.out
}

// match fills m with the subscriptions matching topic.
func (t *trie) match(topic string, m *matcher) {
	levels := splitLevels(topic, m.levels[:])
	t.mu.RLock()
	t.matchNode(&t.root, levels, 0, m)
	t.mu.RUnlock()
}

func (t *trie) matchNode(n *node, levels []string, i int, m *matcher) {
	if i == len(levels) {
		t.collect(n, m)
		// "a/#" also matches "a" [MQTT-4.7.1-2].
		if c := n.children["#"]; c != nil {
			t.collect(c, m)
		}
		return
	}
	// Topics starting with '$' are not matched by a leading wildcard
	// [MQTT-4.7.2-1].
	wild := !(i == 0 && len(levels[0]) > 0 && levels[0][0] == '$')
	if wild {
		if c := n.children["#"]; c != nil {
			t.collect(c, m)
		}
		if c := n.children["+"]; c != nil {
			t.matchNode(c, levels, i+1, m)
		}
	}
	if c := n.children[levels[i]]; c != nil {
		t.matchNode(c, levels, i+1, m)
	}
}

func (t *trie) collect(n *node, m *matcher) {
	if n.one.s != nil {
		m.plain = append(m.plain, n.one)
	}
	if x := n.more; x != nil {
		m.plain = append(m.plain, x.subs...)
		for _, g := range x.shared {
			m.groups = append(m.groups, groupMatch{g: g, members: g.members})
		}
	}
}
