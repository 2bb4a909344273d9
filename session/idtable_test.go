package session

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// checkTable fails unless t holds exactly model, every session reachable
// from its home slot, within the load bounds.
func checkTable(t *testing.T, tb *idTable, model map[string]*Session, step string) {
	t.Helper()
	require.Equal(t, len(model), tb.n, step)
	held := 0
	for _, s := range tb.slots {
		if s != nil {
			held++
		}
	}
	require.Equal(t, len(model), held, step)
	for id, s := range model {
		got, ok := tb.get(id)
		require.True(t, ok, "%s: %q not found", step, id)
		require.Same(t, s, got, step)
	}
	if len(tb.slots) > 0 {
		require.LessOrEqual(t, tb.n*4, len(tb.slots)*3, "%s: over 3/4 full", step)
		require.Zero(t, len(tb.slots)&(len(tb.slots)-1), "%s: size %d not a power of two", step, len(tb.slots))
	}
	for i, s := range tb.slots {
		require.Equal(t, s == nil, tb.tags[i] == 0, "%s: slot %d tag and pointer disagree", step, i)
	}
}

// TestIDTableModel runs random puts, replaces and deletes against a map,
// through growth and shrinking, with long probe runs whose deletions
// shift entries back.
func TestIDTableModel(t *testing.T) {
	tb := &idTable{seed: maphash.MakeSeed()}
	model := map[string]*Session{}
	rnd := rand.New(rand.NewPCG(3, 4))
	for step := range 20000 {
		// The key space swells and ebbs so that the table grows and
		// shrinks several times.
		space := 10 + (step/2000%5)*200
		id := fmt.Sprintf("c%d", rnd.IntN(space))
		switch r := rnd.IntN(10); {
		case r < 5:
			s := New(id, "")
			tb.put(s)
			model[id] = s
		case r < 6:
			// Deleting another session under the same id does nothing.
			assert.False(t, tb.delete(id, New(id, "")), "step %d", step)
		default:
			_, had := model[id]
			assert.Equal(t, had, tb.delete(id, nil), "step %d delete %q", step, id)
			delete(model, id)
		}
		if step%50 == 0 {
			checkTable(t, tb, model, fmt.Sprintf("step %d", step))
		}
	}
	for id := range model {
		require.True(t, tb.delete(id, model[id]))
	}
	checkTable(t, tb, map[string]*Session{}, "emptied")
	assert.Equal(t, minSlots, len(tb.slots), "shrinks back to its first size")
	_, ok := tb.get("c1")
	assert.False(t, ok)
}

// TestIDTableSessionFootprint: a session costs the table about 16 bytes
// (9 per slot, at least 3/8 full after growing), where a
// map[string]*Session costs about 45.
func TestIDTableSessionFootprint(t *testing.T) {
	tb := &idTable{seed: maphash.MakeSeed()}
	for i := range 1000 {
		tb.put(New(fmt.Sprint("dev", i), ""))
	}
	perSession := float64(len(tb.slots)*9) / float64(tb.n)
	assert.LessOrEqual(t, perSession, 24.0)
}
