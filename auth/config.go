package auth

import (
	"fmt"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"
)

// DefaultCost is the bcrypt cost of new password hashes when Config.Cost
// is 0. Each step doubles the time of a hash (cost 10: about 50-100 ms on
// one core of a current server).
const DefaultCost = bcrypt.DefaultCost

// Config configures a DB. The zero value works: bcrypt cost DefaultCost,
// no superusers, anonymous clients may do nothing, certificates do not
// stand in for passwords, logs are discarded.
type Config struct {
	// CertCNAsUsername lets a verified TLS client certificate authenticate
	// its client as the user named by the certificate's common name,
	// without a password, when such a user exists. A client that also
	// sends a username must send that same name. When no user has the
	// CN's name, the client is checked by username and password as usual.
	// Default false: the certificate is ignored here.
	CertCNAsUsername bool

	// Superusers may publish and subscribe to anything, $SYS included.
	// They still have to authenticate as users of the DB. Default none.
	Superusers []string

	// AnonymousGrants are the grants of anonymous clients (user ""),
	// which the broker only lets in with -allow-anonymous. Default none:
	// anonymous clients may connect but neither publish nor subscribe.
	AnonymousGrants []Grant

	// Cost is the bcrypt cost of passwords hashed by this DB, from
	// bcrypt.MinCost (4) to bcrypt.MaxCost (31). 0 means DefaultCost (10).
	// Hashes made with another cost (older ones, or password_hash entries
	// of a users file) keep working.
	Cost int

	// DisableVerifyCache makes every Authenticate run bcrypt, even for a
	// password that verified before. Default false: a verified password
	// is remembered in memory as an HMAC-SHA-256 digest under a random
	// per-process key, so reconnects are cheap (see the package doc).
	DisableVerifyCache bool

	// Log receives user changes (Info) and refused logins (Debug).
	// Default: the zero zerolog.Logger, which discards everything.
	Log zerolog.Logger
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	for i, name := range c.Superusers {
		if msg := nameProblem(name); msg != "" {
			return fieldErr(fmt.Sprintf("superusers[%d]", i), msg)
		}
	}
	if _, err := compileGrants(c.AnonymousGrants); err != nil {
		return prefixField("anonymous_", err)
	}
	if c.Cost != 0 && (c.Cost < bcrypt.MinCost || c.Cost > bcrypt.MaxCost) {
		return fieldErr("cost", fmt.Sprintf("%d is outside %d..%d", c.Cost, bcrypt.MinCost, bcrypt.MaxCost))
	}
	return nil
}

func (c *Config) cost() int {
	if c.Cost == 0 {
		return DefaultCost
	}
	return c.Cost
}
