package broker

import (
	"runtime"

	"github.com/mqttd/mqttd/codec"
)

// authQueue bounds the CONNECTs waiting for a password check; past it
// CONNACK 0x89 (server busy) / 0x03.
const authQueue = 4096

// startAuthWorkers starts the goroutines that run Authenticator calls off
// the event loops. They stop with the broker.
func (b *Broker) startAuthWorkers() {
	b.authq = make(chan func(), authQueue)
	n := max(2, runtime.NumCPU())
	for i := 0; i < n; i++ {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			for {
				select {
				case job := <-b.authq:
					job()
				case <-b.stop:
					return
				}
			}
		}()
	}
}

// authenticateAsync hands a password check to the auth workers. The
// connection reads nothing further until authDone.
func (c *conn) authenticateAsync(p *codec.Connect, clientID, certCN, group string, assigned bool) error {
	users := c.b.cfg.Users
	c.deferred = true
	job := func() {
		user, err := users.Authenticate(p.Username, p.Password, certCN)
		c.authDone(p, clientID, group, assigned, user, err)
	}
	select {
	case c.b.authq <- job:
		return nil
	default:
		c.deferred = false
		return c.refuse(clientID, codec.ServerBusy, "too many logins waiting")
	}
}

// authDone completes a CONNECT whose password was checked by a worker,
// then handles whatever the client sent meanwhile. Runs on the worker.
func (c *conn) authDone(p *codec.Connect, clientID, group string, assigned bool, user string, err error) {
	c.inMu.Lock()
	defer c.inMu.Unlock()
	c.deferred = false
	if c.gone || c.is(fStopRead) {
		return
	}
	if err != nil {
		_ = c.refuse(clientID, codec.BadUserNameOrPassword, "bad credentials")
		return
	}
	c.user = user
	if err := c.establish(p, clientID, group, assigned, nil); err != nil {
		c.fail(err)
		return
	}
	if c.heldLen() > 0 {
		c.processHeld()
	}
	c.flush()
}
