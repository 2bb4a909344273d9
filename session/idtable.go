package session

import "hash/maphash"

// idTable is a set of sessions keyed by their ClientID: an open-addressing
// hash table with linear probing and backward-shift deletion.
//
// Why not a map[string]*Session: every client has a session, and a Go map
// stores the key's 16-byte string header beside the 8-byte value in slots
// kept between about half and seven eighths full, some 45 bytes a session.
// The table stores only the pointer (the key is the session's own
// ClientID) and a byte of the hash that spares most comparisons: 9 bytes
// a slot, at most 3/4 full and 3/8 right after growing, about 16 bytes a
// session. It also shrinks when most sessions are gone (below 1/8 full).
//
// Not safe for concurrent use: the Store's shard lock guards it.
type idTable struct {
	seed  maphash.Seed
	tags  []uint8    // per slot: 0 empty, else tagOf(hash)
	slots []*Session // nil where tags is 0
	n     int        // sessions held
}

// minSlots is the size of a table's first allocation; it never shrinks
// below it.
const minSlots = 8

func tagOf(h uint64) uint8 { return uint8(h>>57) | 0x80 }

func (t *idTable) hash(id string) uint64 { return maphash.String(t.seed, id) }

// home is the slot where probing for hash h starts.
func (t *idTable) home(h uint64) int { return int(h & uint64(len(t.slots)-1)) }

// find returns the slot holding id, or -1.
func (t *idTable) find(id string) int {
	if t.n == 0 {
		return -1
	}
	h := t.hash(id)
	tag, mask := tagOf(h), len(t.slots)-1
	for i := t.home(h); t.tags[i] != 0; i = (i + 1) & mask {
		if t.tags[i] == tag && t.slots[i].ClientID == id {
			return i
		}
	}
	return -1
}

func (t *idTable) get(id string) (*Session, bool) {
	if i := t.find(id); i >= 0 {
		return t.slots[i], true
	}
	return nil, false
}

// put adds s, replacing the session of the same ClientID.
func (t *idTable) put(s *Session) {
	if i := t.find(s.ClientID); i >= 0 {
		t.slots[i] = s
		return
	}
	if (t.n+1)*4 > len(t.slots)*3 {
		t.resize(max(minSlots, 2*len(t.slots)))
	}
	t.insert(s, t.hash(s.ClientID))
	t.n++
}

// insert places s in the first free slot from its home; s is not held.
func (t *idTable) insert(s *Session, h uint64) {
	mask := len(t.slots) - 1
	i := t.home(h)
	for t.tags[i] != 0 {
		i = (i + 1) & mask
	}
	t.tags[i], t.slots[i] = tagOf(h), s
}

// delete removes the session of id if it is s (nil: whichever) and
// reports whether it did.
func (t *idTable) delete(id string, s *Session) bool {
	i := t.find(id)
	if i < 0 || s != nil && t.slots[i] != s {
		return false
	}
	// Backward shift: move later entries of the probe run into the hole
	// when their home is not in (hole, their slot], so that every entry
	// stays reachable from its home without tombstones.
	mask := len(t.slots) - 1
	for j := (i + 1) & mask; t.tags[j] != 0; j = (j + 1) & mask {
		k := t.home(t.hash(t.slots[j].ClientID))
		if (j > i && (k <= i || k > j)) || (j < i && k <= i && k > j) {
			t.tags[i], t.slots[i] = t.tags[j], t.slots[j]
			i = j
		}
	}
	t.tags[i], t.slots[i] = 0, nil
	t.n--
	if len(t.slots) > minSlots && t.n*8 < len(t.slots) {
		t.resize(len(t.slots) / 2)
	}
	return true
}

// resize rehashes into size slots (a power of two, more than n).
func (t *idTable) resize(size int) {
	old := t.slots
	t.tags, t.slots = make([]uint8, size), make([]*Session, size)
	for _, s := range old {
		if s != nil {
			t.insert(s, t.hash(s.ClientID))
		}
	}
}
