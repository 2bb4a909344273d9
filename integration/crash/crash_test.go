package crash

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/codec"
)

// TestKill9NoAcknowledgedLoss publishes a numbered QoS 1 stream and a
// numbered QoS 2 stream to two persistent subscribers (one acknowledging
// at once, one after random delays that also goes offline now and then),
// kills the broker with SIGKILL 3 to 5
// times at random moments and restarts it on the same data directory
// while every client reconnects and carries on. At the end every
// sequence number the broker acknowledged to its publisher must have
// reached each subscriber: QoS 1 at least once, QoS 2 exactly once.
//
// The kill schedule comes from a seed that the test logs; CRASH_SEED=n
// replays the same schedule (the broker's timing still varies).
func TestKill9NoAcknowledgedLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("the kill loop runs for about half a minute")
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CRASH_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "CRASH_SEED")
		seed = n
	}
	t.Logf("seed %d (CRASH_SEED=%d replays the kill schedule)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	srv := newServer(t)
	srv.Start()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()

	subs := []*subscriber{
		newSubscriber("crash-sub-fast", false, seed+1),
		newSubscriber("crash-sub-slow", true, seed+2),
	}
	for _, s := range subs {
		wg.Add(1)
		go func() { defer wg.Done(); s.run(ctx, srv.Addr) }()
	}
	for _, s := range subs {
		select {
		case <-s.ready: // SUBACK received: subscribed before the first publish
		case <-s.done:
			s.mu.Lock()
			err := s.mu.subErr
			s.mu.Unlock()
			t.Fatalf("%s could not subscribe: %v", s.clientID, err)
		case <-time.After(waitMsg):
			t.Fatalf("%s: no SUBACK within %v", s.clientID, waitMsg)
		}
	}

	pubs := [nStreams]*publisher{
		streamQoS1: newPublisher("crash-pub-q1", streamQoS1, codec.QoS1),
		streamQoS2: newPublisher("crash-pub-q2", streamQoS2, codec.QoS2),
	}
	for _, p := range pubs {
		wg.Add(1)
		go func() { defer wg.Done(); p.run(ctx, srv.Addr) }()
	}

	// The kill schedule: 3 to 5 kills spread over 18-24s, each at a
	// random moment of its own slot; the broker dies at once (SIGKILL),
	// stays down for a random moment and restarts. The sleeps are the
	// schedule itself, not waits for a condition.
	kills := 3 + rng.IntN(3)
	total := 18*time.Second + time.Duration(rng.Int64N(int64(6*time.Second)))
	slot := total / time.Duration(kills)
	began := time.Now()
	for i := range kills {
		at := slot*time.Duration(i) + slot*3/10 + time.Duration(rng.Int64N(int64(slot*7/10)))
		time.Sleep(time.Until(began.Add(at)))
		a1, a2 := pubs[streamQoS1].ackedCount(), pubs[streamQoS2].ackedCount()
		srv.Kill()
		down := time.Duration(rng.Int64N(int64(400 * time.Millisecond)))
		time.Sleep(down)
		srv.Start()
		t.Logf("kill %d/%d at %v (acked so far: QoS 1 %d, QoS 2 %d), down %v",
			i+1, kills, time.Since(began).Round(time.Millisecond), a1, a2, down.Round(time.Millisecond))
	}
	time.Sleep(time.Until(began.Add(total + time.Second))) // traffic after the last restart

	// Stop publishing; let what is in flight complete.
	for _, p := range pubs {
		p.stopping.Store(true)
	}
	for _, p := range pubs {
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_, _, inFlight := p.snapshot()
			t.Fatalf("%s: %d publishes still unacknowledged 30s after publishing stopped", p.clientID, inFlight)
		}
	}

	// Wait until every acknowledged message has arrived everywhere (or
	// give up and report what is missing), then for a quiet second to
	// catch late duplicates.
	var acked [nStreams]map[int]bool
	var published [nStreams]int
	for st, p := range pubs {
		published[st], acked[st], _ = p.snapshot()
	}
	allDelivered := func() bool {
		for _, s := range subs {
			for st := range nStreams {
				got := s.deliveries(st)
				for seq := range acked[st] {
					if got[seq] == 0 {
						return false
					}
				}
			}
		}
		return true
	}
	deadline := time.Now().Add(30 * time.Second)
	for !allDelivered() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	for _, s := range subs {
		for !s.quietFor(time.Second) && time.Now().Before(deadline.Add(5*time.Second)) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	cancel()
	wg.Wait()

	// Report and check.
	for st, p := range pubs {
		p.mu.Lock()
		t.Logf("publisher %s (%v): published %d, acknowledged %d, connects %d, resent PUBLISH %d, resent PUBREL %d",
			p.clientID, stream(st), published[st], len(acked[st]), p.mu.connects, p.mu.resent, p.mu.resentRel)
		assert.Zerof(t, p.mu.sessionLost, "%s: the broker answered %d reconnects with session present = 0 "+
			"(its QoS 2 state was lost)", p.clientID, p.mu.sessionLost)
		assert.Emptyf(t, p.mu.stray, "%s: acknowledgements that match nothing in flight", p.clientID)
		p.mu.Unlock()
		assert.Equal(t, published[st], len(acked[st]), "%s: every publish was acknowledged in the end", p.clientID)
		assert.Positive(t, len(acked[st]), "%s published nothing", p.clientID)
	}
	for _, s := range subs {
		s.mu.Lock()
		t.Logf("subscriber %s: connects %d (%d after leaving on purpose), PUBLISH with DUP %d, "+
			"QoS 2 re-deliveries ignored (id held) %d", s.clientID, s.mu.connects, s.mu.away, s.mu.dupFlag, s.mu.ignored)
		assert.Zerof(t, s.mu.sessionLost, "%s: the broker answered %d reconnects with session present = 0",
			s.clientID, s.mu.sessionLost)
		assert.Emptyf(t, s.mu.protocol, "%s: packets a correct broker does not send", s.clientID)
		s.mu.Unlock()
		for st := range nStreams {
			got := s.deliveries(st)
			var missing, dups, unknown []int
			extra := 0
			for seq := range acked[st] {
				if got[seq] == 0 {
					missing = append(missing, seq)
				}
			}
			for seq, n := range got {
				if n > 1 {
					dups = append(dups, seq)
					extra += n - 1
				}
				if seq < 1 || seq > published[st] {
					unknown = append(unknown, seq)
				}
			}
			slices.Sort(missing)
			slices.Sort(dups)
			t.Logf("  %s %v: acknowledged %d, delivered %d distinct, %d duplicate deliveries, %d missing",
				s.clientID, st, len(acked[st]), len(got), extra, len(missing))
			assert.Truef(t, len(missing) == 0, "%s %v: %d acknowledged but never delivered: %s",
				s.clientID, st, len(missing), firstN(missing, 30))
			assert.Truef(t, len(unknown) == 0, "%s %v: delivered but never published: %s", s.clientID, st, firstN(unknown, 30))
			if st == streamQoS2 {
				assert.Truef(t, len(dups) == 0, "%s %v: %d QoS 2 messages delivered more than once: %s",
					s.clientID, st, len(dups), firstN(dups, 30))
			}
		}
	}
	if t.Failed() {
		t.Logf("broker stderr (last run):\n%s", srv.Stderr())
	}
}

// firstN formats at most n numbers of xs.
func firstN(xs []int, n int) string {
	var b strings.Builder
	for i, x := range xs {
		if i == n {
			fmt.Fprintf(&b, " ... (%d in all)", len(xs))
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Itoa(x))
	}
	return b.String()
}
