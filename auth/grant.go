package auth

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/mqttd/mqttd/broker"
)

// Access values of a Grant.
const (
	AccessPub    = "pub"    // publish
	AccessSub    = "sub"    // subscribe
	AccessPubSub = "pubsub" // publish and subscribe
)

// MaxGrants is the most grants one user may have. Allow looks at each in
// turn, so the bound keeps it cheap.
const MaxGrants = 256

// maxFilterLen is the longest grant filter: an MQTT UTF-8 string.
const maxFilterLen = 65535

// Grant allows publishing, subscribing or both on the topics a filter
// matches. A Filter of one level without wildcards ("meter") is a parent
// topic grant: it means "meter/#", that is "meter" and everything below.
type Grant struct {
	Filter string `json:"filter" yaml:"filter"`
	Access string `json:"access" yaml:"access"` // AccessPub, AccessSub or AccessPubSub
}

// grant is a Grant compiled for matching: the filter split into levels,
// a parent topic grant already extended with "#".
type grant struct {
	levels    []string
	access    broker.Access
	wildFirst bool // levels[0] is "+" or "#"
}

// parseAccess maps a Grant.Access to broker access bits.
func parseAccess(s string) (broker.Access, bool) {
	switch s {
	case AccessPub:
		return broker.AccessPublish, true
	case AccessSub:
		return broker.AccessSubscribe, true
	case AccessPubSub:
		return broker.AccessPublish | broker.AccessSubscribe, true
	}
	return 0, false
}

// filterProblem returns what makes f an invalid grant filter, "" if it is
// a valid MQTT topic filter [MQTT-4.7.1-1] [MQTT-4.7.1-2] [MQTT-4.7.3-1]
// [MQTT-4.7.3-2]. Shared subscription prefixes are refused: the broker
// checks a shared subscription's filter without its $share/<group>/ part.
func filterProblem(f string) string {
	switch {
	case f == "":
		return "empty" // [MQTT-4.7.3-1]
	case len(f) > maxFilterLen:
		return fmt.Sprintf("longer than %d bytes", maxFilterLen)
	case !utf8.ValidString(f):
		return "not valid UTF-8"
	case strings.IndexByte(f, 0) >= 0:
		return "contains U+0000" // [MQTT-4.7.3-2]
	}
	first, _, _ := strings.Cut(f, "/")
	if first == "$share" || first == "$queue" {
		return "a grant filter has no $share/ or $queue/ prefix; grant the filter itself"
	}
	rest := f
	for {
		lvl, after, more := strings.Cut(rest, "/")
		switch {
		case lvl == "#" && more:
			return `"#" must be the last level` // [MQTT-4.7.1-2]
		case lvl != "#" && lvl != "+" && strings.ContainsAny(lvl, "#+"):
			return `"+" and "#" must fill a whole level` // [MQTT-4.7.1-2] [MQTT-4.7.1-3]
		}
		if !more {
			return ""
		}
		rest = after
	}
}

// compile validates g and compiles it.
func (g Grant) compile() (grant, error) {
	if msg := filterProblem(g.Filter); msg != "" {
		return grant{}, fieldErr("filter", msg)
	}
	acc, ok := parseAccess(g.Access)
	if !ok {
		return grant{}, fieldErr("access", fmt.Sprintf("%q is not pub, sub or pubsub", g.Access))
	}
	levels := strings.Split(g.Filter, "/")
	if len(levels) == 1 && levels[0] != "#" && levels[0] != "+" {
		levels = append(levels, "#") // parent topic grant
	}
	return grant{levels: levels, access: acc, wildFirst: levels[0] == "+" || levels[0] == "#"}, nil
}

// allows reports whether one of gs grants access to s (a topic name or a
// filter, not empty). The first level is compared before the full check:
// most grants start with a literal parent topic, so most are passed over
// with one string comparison.
func allows(gs []grant, s string, access broker.Access) bool {
	first, _, _ := strings.Cut(s, "/")
	for i := range gs {
		g := &gs[i]
		if g.access&access != access || (!g.wildFirst && g.levels[0] != first) {
			continue
		}
		if g.covers(s) {
			return true
		}
	}
	return false
}

// compileGrants validates and compiles gs; errors name the field as
// "grants[i].filter" or "grants[i].access".
func compileGrants(gs []Grant) ([]grant, error) {
	if len(gs) > MaxGrants {
		return nil, fieldErr("grants", fmt.Sprintf("%d grants, at most %d allowed", len(gs), MaxGrants))
	}
	out := make([]grant, 0, len(gs))
	for i, g := range gs {
		c, err := g.compile()
		if err != nil {
			return nil, prefixField(fmt.Sprintf("grants[%d].", i), err)
		}
		out = append(out, c)
	}
	return out, nil
}

// cloneGrants returns a copy of gs, so that callers' slices and the DB's
// never share an array.
func cloneGrants(gs []Grant) []Grant {
	out := make([]Grant, len(gs))
	copy(out, gs)
	return out
}

// covers reports whether every topic that s matches is matched by the
// grant's filter. For a topic name s (no wildcards) that is plain MQTT
// matching; for a topic filter s it is the subset rule that SUBSCRIBE
// checks use: "+" in s needs "+" or "#" in the grant at that level, "#" in
// s needs "#". A grant level "+" or "#" in first place does not cover a
// first level that starts with "$", as such topics are not matched by
// those wildcards [MQTT-4.7.2-1]. An empty s is covered by nothing (it is
// neither a topic nor a filter [MQTT-4.7.3-1]). No allocation.
func (g *grant) covers(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '$' && (g.levels[0] == "#" || g.levels[0] == "+") {
		return false
	}
	end := false        // all levels of s consumed
	firstEmpty := false // the first level of s is ""
	for i, gl := range g.levels {
		if gl == "#" {
			return true // also when s ended: "a/#" matches "a" [MQTT-4.7.1-2]
		}
		if end {
			return false
		}
		lvl, after, more := strings.Cut(s, "/")
		s, end = after, !more
		if i == 0 {
			firstEmpty = lvl == ""
		}
		if gl == "+" {
			if lvl == "#" {
				// "x/#" matches "x" too, which "x/+/#" does not: "+/#"
				// covers "#" only where that parent is no topic, that
				// is at the start ("#" vs "+/#") or after an empty
				// first level ("/#" vs "/+/#": "" is no topic).
				return i+2 == len(g.levels) && g.levels[i+1] == "#" && (i == 0 || (i == 1 && firstEmpty))
			}
			continue
		}
		if lvl != gl {
			return false
		}
	}
	return end
}
