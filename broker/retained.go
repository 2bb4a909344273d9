package broker

import (
	"sync"
	"sync/atomic"

	"github.com/mqttd/mqttd/session"
)

type retNode struct {
	children map[string]*retNode
	msg      *session.Message
	parent   *retNode
	key      string
}

// retained is the retained-message store: one message per topic, indexed
// by level so a subscription's filter walks only the matching branches.
type retained struct {
	mu    sync.RWMutex // guards the nodes
	root  retNode
	count atomic.Int64
}

// set stores m as the retained message of its topic; an empty payload
// deletes it [MQTT-3.3.1-10].
func (r *retained) set(m *session.Message) {
	var lb [maxLevels]string
	levels := splitLevels(m.Topic, lb[:])
	r.mu.Lock()
	defer r.mu.Unlock()
	n := &r.root
	if len(m.Payload) == 0 {
		for _, l := range levels {
			n = n.children[l]
			if n == nil {
				return
			}
		}
		if n.msg != nil {
			n.msg = nil
			r.count.Add(-1)
		}
		for n != &r.root && n.msg == nil && len(n.children) == 0 {
			delete(n.parent.children, n.key)
			n = n.parent
		}
		return
	}
	for _, l := range levels {
		c := n.children[l]
		if c == nil {
			if n.children == nil {
				n.children = make(map[string]*retNode)
			}
			c = &retNode{parent: n, key: l}
			n.children[l] = c
		}
		n = c
	}
	if n.msg == nil {
		r.count.Add(1)
	}
	n.msg = m
}

// match appends the retained messages matching filter (no $share prefix)
// to out.
func (r *retained) match(filter string, out []*session.Message) []*session.Message {
	var lb [maxLevels]string
	levels := splitLevels(filter, lb[:])
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.walk(&r.root, levels, 0, out)
}

func (r *retained) walk(n *retNode, f []string, i int, out []*session.Message) []*session.Message {
	if i == len(f) {
		if n.msg != nil {
			out = append(out, n.msg)
		}
		return out
	}
	switch f[i] {
	case "#":
		// "a/#" matches "a" itself and everything below it.
		if n != &r.root && n.msg != nil {
			out = append(out, n.msg)
		}
		for k, c := range n.children {
			if i == 0 && len(k) > 0 && k[0] == '$' {
				continue // [MQTT-4.7.2-1]
			}
			out = r.all(c, out)
		}
	case "+":
		for k, c := range n.children {
			if i == 0 && len(k) > 0 && k[0] == '$' {
				continue
			}
			out = r.walk(c, f, i+1, out)
		}
	default:
		if c := n.children[f[i]]; c != nil {
			out = r.walk(c, f, i+1, out)
		}
	}
	return out
}

func (r *retained) all(n *retNode, out []*session.Message) []*session.Message {
	if n.msg != nil {
		out = append(out, n.msg)
	}
	for _, c := range n.children {
		out = r.all(c, out)
	}
	return out
}
