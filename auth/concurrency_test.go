package auth

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mqttd/mqttd/broker"
)

// TestConcurrentUse runs Allow, Authenticate and Users from many
// goroutines while users are added, changed and deleted; run it with
// -race. Readers check what holds at every moment: "steady" never
// changes, and a "flip-N" user, whichever of its two grant sets it has,
// is never allowed what neither grants.
func TestConcurrentUse(t *testing.T) {
	d, _ := newTestDB(t, Config{})
	require.NoError(t, d.AddUser("steady", "steady-password", []Grant{g("steady/#", "pubsub")}))
	setA := []Grant{g("a/1", "pub"), g("a/2", "pub")}
	setB := []Grant{g("b/1", "pub"), g("b/2", "pub")}
	const flips = 4
	for i := range flips {
		require.NoError(t, d.AddUser(fmt.Sprintf("flip-%d", i), "flip-password", setA))
	}

	var stop atomic.Bool
	var readers sync.WaitGroup
	var checks atomic.Int64
	for r := range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for n := 0; !stop.Load(); n++ {
				if !d.Allow("steady", "steady/x", broker.AccessPublish) || d.Allow("steady", "other", broker.AccessPublish) {
					t.Error("steady user's grants changed")
					return
				}
				u := fmt.Sprintf("flip-%d", (r+n)%flips)
				d.Allow(u, "a/1", broker.AccessPublish)
				d.Allow(u, "b/2", broker.AccessPublish)
				if d.Allow(u, "c/1", broker.AccessPublish) || d.Allow(u, "a/1", broker.AccessSubscribe) {
					t.Errorf("%s allowed what neither grant set grants", u)
					return
				}
				if n%50 == 0 {
					if _, err := d.Authenticate([]byte("steady"), []byte("steady-password"), ""); err != nil {
						t.Errorf("steady login: %v", err)
						return
					}
				}
				if n%50 == 25 {
					_ = d.Users()
				}
				checks.Add(1)
			}
		}()
	}

	var writers sync.WaitGroup
	writers.Add(2)
	go func() { // flips grants
		defer writers.Done()
		for n := range 300 {
			set := setA
			if n%2 == 0 {
				set = setB
			}
			if err := d.SetGrants(fmt.Sprintf("flip-%d", n%flips), set); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() { // adds and deletes users
		defer writers.Done()
		for n := range 100 {
			name := fmt.Sprintf("temp-%d", n)
			// Certificate-only: no bcrypt run, which under -race is slow.
			if err := d.AddUser(name, "", []Grant{g("t", "pub")}); err != nil {
				t.Error(err)
				return
			}
			if n%2 == 0 {
				if err := d.DeleteUser(name); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	writers.Wait()
	stop.Store(true)
	readers.Wait()

	assert.Positive(t, checks.Load())
	assert.Equal(t, 1+flips+50, d.Len())
	assert.Len(t, d.Users(), 1+flips+50)
	// 300 flips, the last one (n=299, odd) set A on flip-3.
	assert.True(t, d.Allow("flip-3", "a/1", broker.AccessPublish))
	assert.False(t, d.Allow("flip-3", "b/1", broker.AccessPublish))
}

// TestGrantSetIsAtomic: a reader never sees half of a grant change. Each
// SetGrants swaps between two sets that differ in every grant, and a
// reader evaluates a single snapshot of the user (one lookup), so for one
// user value exactly one of the sets holds.
func TestGrantSetIsAtomic(t *testing.T) {
	d, _ := newTestDB(t, Config{})
	setA := []Grant{g("a/1", "pub"), g("a/2", "pub")}
	setB := []Grant{g("b/1", "pub"), g("b/2", "pub")}
	require.NoError(t, d.AddUser("u", "u-password", setA))

	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				u := d.lookup("u")
				var a, b int
				for _, topic := range []string{"a/1", "a/2", "b/1", "b/2"} {
					for i := range u.grants {
						if u.grants[i].covers(topic) {
							if topic[0] == 'a' {
								a++
							} else {
								b++
							}
						}
					}
				}
				if !(a == 2 && b == 0) && !(a == 0 && b == 2) {
					t.Errorf("mixed grant sets: a=%d b=%d", a, b)
					return
				}
			}
		}()
	}
	for n := range 500 {
		set := setA
		if n%2 == 0 {
			set = setB
		}
		require.NoError(t, d.SetGrants("u", set))
	}
	stop.Store(true)
	wg.Wait()
}
