package broker

import "strings"

// groupSep separates a client ID's group from its device ID.
const groupSep = "@@@"

func strictChar(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '-'
}

func strictWord(s string) bool {
	for i := 0; i < len(s); i++ {
		if !strictChar(s[i]) {
			return false
		}
	}
	return true
}

// checkClientID validates a non-empty client ID under the policy and
// returns its group ("" when it has none).
func (b *Broker) checkClientID(id string) (group string, ok bool) {
	if b.cfg.Names == NamesMQTT {
		// Plain MQTT: any UTF-8 (already checked by the codec).
		if i := strings.Index(id, groupSep); i > 0 {
			return id[:i], true
		}
		return "", true
	}
	if len(id) > b.cfg.MaxClientIDLen {
		return "", false
	}
	if i := strings.Index(id, groupSep); i >= 0 {
		g, d := id[:i], id[i+len(groupSep):]
		if g == "" || d == "" || !strictWord(g) || !strictWord(d) {
			return "", false
		}
		return g, true
	}
	return "", strictWord(id)
}

// validTopic checks a PUBLISH topic name: no wildcards (the codec checks
// that already), and under strict names every level from [0-9A-Za-z_-],
// the first level optionally starting with '$'.
func (b *Broker) validTopic(t string) bool {
	if t == "" {
		return false
	}
	if b.cfg.Names == NamesMQTT {
		return !strings.ContainsAny(t, "+#")
	}
	for i, lvl := 0, 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c == '/':
			lvl++
		case c == '$' && lvl == 0 && i == 0:
		case !strictChar(c):
			return false
		}
	}
	return true
}

// parsedFilter is a SUBSCRIBE/UNSUBSCRIBE filter with its shared-group
// prefix taken apart.
type parsedFilter struct {
	raw    string // as sent: the session's key
	group  string // shared group ("" when not shared)
	filter string // the topic filter proper
}

// parseFilter splits "$share/group/filter" and "$queue/filter" and
// validates the filter [MQTT-4.7.1, 4.8.2]. Under strict names levels
// other than wildcards use [0-9A-Za-z_-] (first level may start with '$').
func (b *Broker) parseFilter(raw string) (parsedFilter, bool) {
	pf := parsedFilter{raw: raw, filter: raw}
	switch {
	case strings.HasPrefix(raw, "$share/"):
		rest := raw[len("$share/"):]
		i := strings.IndexByte(rest, '/')
		if i <= 0 {
			return pf, false
		}
		pf.group, pf.filter = rest[:i], rest[i+1:]
		if strings.ContainsAny(pf.group, "+#") {
			return pf, false // [MQTT-4.8.2-2]
		}
	case strings.HasPrefix(raw, "$queue/"):
		pf.group, pf.filter = "$queue", raw[len("$queue/"):]
	}
	if pf.filter == "" {
		return pf, false
	}
	var lb [maxLevels]string
	levels := splitLevels(pf.filter, lb[:])
	for i, l := range levels {
		switch {
		case l == "#":
			if i != len(levels)-1 {
				return pf, false // [MQTT-4.7.1-2]
			}
		case l == "+":
		case strings.ContainsAny(l, "+#"):
			return pf, false // [MQTT-4.7.1-3]
		case b.cfg.Names == NamesMQTT:
		default:
			w := l
			if i == 0 && strings.HasPrefix(w, "$") {
				w = w[1:]
			}
			if !strictWord(w) {
				return pf, false
			}
		}
	}
	return pf, true
}
