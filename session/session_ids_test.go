package session

import (
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/codec"
)

// TestPacketIDsUniqueAcrossIndexing adds and removes messages at random,
// crossing the length at which ids in use are tracked in a bitmap, and
// checks that no id is ever held twice and removals keep the order.
func TestPacketIDsUniqueAcrossIndexing(t *testing.T) {
	s := New("c", "")
	rng := rand.New(rand.NewSource(1))
	m := &Message{Topic: "t", QoS: codec.QoS1}
	for step := 0; step < 20000; step++ {
		if len(s.Out()) < 200 && (len(s.Out()) == 0 || rng.Intn(3) > 0) {
			_, ok := s.Add(Delivery{Msg: m, QoS: codec.QoS1}, true)
			require.True(t, ok)
		} else {
			i := 0
			if rng.Intn(4) == 0 {
				i = rng.Intn(len(s.Out()))
			}
			_, ok := s.Remove(s.Out()[i].PacketID)
			require.True(t, ok)
		}
		if step%97 == 0 {
			seen := map[uint16]bool{}
			var last uint64
			for _, f := range s.Out() {
				require.False(t, seen[f.PacketID], "packet id %d held twice", f.PacketID)
				seen[f.PacketID] = true
				require.Greater(t, f.Seq, last, "order broken")
				last = f.Seq
				if s.cold.used != nil {
					require.True(t, s.cold.idInUse(f.PacketID))
				}
			}
		}
	}
}
