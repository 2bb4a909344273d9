package broker

import (
	"sync"
	"time"
)

// bucket is a token bucket: rate tokens per second, at most burst.
type bucket struct {
	mu     sync.Mutex // guards tokens and last
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate, burst int) *bucket {
	return &bucket{rate: float64(rate), burst: float64(burst), tokens: float64(burst), last: time.Now()}
}

// take reports whether a token was available at now, taking it.
func (b *bucket) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// connLimits tracks open connections per IP.
type connLimits struct {
	mu    sync.Mutex // guards perIP
	perIP map[string]int
}

// admit counts a new connection from ip and reports whether it is within
// the caps. A refused one is not counted.
func (b *Broker) admit(ip string) bool {
	if b.cfg.MaxConnections > 0 && int(b.st.connections.Load()) >= b.cfg.MaxConnections {
		b.st.refusedConns.Add(1)
		return false
	}
	if b.cfg.MaxConnectionsPerIP <= 0 {
		return true
	}
	b.lim.mu.Lock()
	defer b.lim.mu.Unlock()
	if b.lim.perIP[ip] >= b.cfg.MaxConnectionsPerIP {
		b.st.refusedConns.Add(1)
		return false
	}
	b.lim.perIP[ip]++
	return true
}

// release forgets a connection counted by admit.
func (b *Broker) releaseIP(ip string) {
	if b.cfg.MaxConnectionsPerIP <= 0 {
		return
	}
	b.lim.mu.Lock()
	if n := b.lim.perIP[ip] - 1; n > 0 {
		b.lim.perIP[ip] = n
	} else {
		delete(b.lim.perIP, ip)
	}
	b.lim.mu.Unlock()
}
