package broker

import (
	"strings"
	"sync"
	"sync/atomic"

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

// subEntry is one client's subscription in the trie.
type subEntry struct {
	s   *session.Session
	sub session.Subscription
}

// shareGroup is the members of one shared-subscription group on one
// filter. next rotates delivery among them.
type shareGroup struct {
	members []subEntry
	next    atomic.Uint32
}

type node struct {
	children map[string]*node
	subs     []subEntry             // plain subscriptions, one per client
	subIdx   map[string]int         // client ID → index in subs, once subs is long
	shared   map[string]*shareGroup // by group name
	parent   *node
	key      string
}

// subsIndexed is the length of a node's subscriber list from which it
// keeps an index by client ID: below it a scan is cheaper than a map, and
// most filters have a handful of subscribers.
const subsIndexed = 16

func (n *node) findSub(clientID string) int {
	if n.subIdx != nil {
		if i, ok := n.subIdx[clientID]; ok {
			return i
		}
		return -1
	}
	for i := range n.subs {
		if n.subs[i].s.ClientID == clientID {
			return i
		}
	}
	return -1
}

func (n *node) addSub(e subEntry) {
	n.subs = append(n.subs, e)
	if n.subIdx != nil {
		n.subIdx[e.s.ClientID] = len(n.subs) - 1
	} else if len(n.subs) > subsIndexed {
		n.subIdx = make(map[string]int, len(n.subs))
		for i := range n.subs {
			n.subIdx[n.subs[i].s.ClientID] = i
		}
	}
}

func (n *node) removeSubAt(i int) {
	last := len(n.subs) - 1
	id := n.subs[i].s.ClientID
	n.subs[i] = n.subs[last]
	n.subs[last] = subEntry{}
	n.subs = n.subs[:last]
	if n.subIdx != nil {
		delete(n.subIdx, id)
		if i < last {
			n.subIdx[n.subs[i].s.ClientID] = i
		}
		if len(n.subs) <= subsIndexed/2 {
			n.subIdx = nil
		}
	}
	if len(n.subs) == 0 {
		n.subs = nil
	}
}

func (n *node) empty() bool {
	return len(n.children) == 0 && len(n.subs) == 0 && len(n.shared) == 0
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
			c = &node{parent: n, key: l}
			n.children[l] = c
		}
		n = c
	}
	e := subEntry{s: s, sub: sub}
	if group == "" {
		if i := n.findSub(s.ClientID); i >= 0 {
			n.subs[i] = e
			existed = true
		} else {
			n.addSub(e)
		}
	} else {
		if n.shared == nil {
			n.shared = make(map[string]*shareGroup)
		}
		g := n.shared[group]
		if g == nil {
			g = &shareGroup{}
			n.shared[group] = g
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
	t.mu.Lock()
	defer t.mu.Unlock()
	n := &t.root
	for _, l := range levels {
		n = n.children[l]
		if n == nil {
			return false
		}
	}
	found := false
	if group == "" {
		if i := n.findSub(clientID); i >= 0 && (s == nil || n.subs[i].s == s) {
			n.removeSubAt(i)
			found = true
		}
	} else if g := n.shared[group]; g != nil {
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
			delete(n.shared, group)
		}
	}
	if found {
		t.count.Add(-1)
	}
	// Prune empty nodes up to the root.
	for n != &t.root && n.empty() {
		p := n.parent
		delete(p.children, n.key)
		n = p
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
		if e.sub.NoLocal && e.s.ClientID == publisher {
			continue // [MQTT-3.8.3-3]
		}
		q := min(msg.QoS, e.sub.QoS)
		ret := msg.Retain && e.sub.RetainAsPublished
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
			if e.sub.ID != 0 {
				t.SubIDs = []uint32{e.sub.ID}
			}
			m.out = append(m.out, t)
			continue
		}
		t := &m.out[k]
		t.QoS = max(t.QoS, q)
		t.Retain = t.Retain || ret
		if e.sub.ID != 0 {
			t.SubIDs = append(t.SubIDs, e.sub.ID)
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
	for _, e := range n.subs {
		m.plain = append(m.plain, e)
	}
	for _, g := range n.shared {
		m.groups = append(m.groups, groupMatch{g: g, members: g.members})
	}
}
