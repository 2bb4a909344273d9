package broker

import (
	"fmt"
	"testing"

	"github.com/mqttd/mqttd/session"
)

// BenchmarkTrieMatch matches one topic against a trie holding n client
// subscriptions spread over many filters; the match itself must not
// allocate once the pooled matcher is warm.
func BenchmarkTrieMatch(b *testing.B) {
	for _, n := range []int{100, 10000, 100000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			tr := &trie{}
			for i := 0; i < n; i++ {
				f := fmt.Sprintf("meter/%d/+", i%1000)
				if i%10 == 0 {
					f = fmt.Sprintf("meter/%d/#", i%1000)
				}
				tr.add(session.New(fmt.Sprint("c", i), ""), "", f, session.Subscription{QoS: 1})
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					m := matcherPool.Get().(*matcher)
					tr.match("meter/42/temp", m)
					m.reset()
					matcherPool.Put(m)
					i++
				}
			})
		})
	}
}

func TestTrieMatchAllocs(t *testing.T) {
	tr := &trie{}
	for i := 0; i < 50; i++ {
		tr.add(session.New(fmt.Sprint("c", i), ""), "", "a/+/c", session.Subscription{})
	}
	m := &matcher{}
	tr.match("a/b/c", m)
	m.reset()
	allocs := testing.AllocsPerRun(100, func() {
		tr.match("a/b/c", m)
		m.reset()
	})
	if allocs != 0 {
		t.Fatalf("trie match allocates %v times, want 0", allocs)
	}
}
