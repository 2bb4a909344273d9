// Package auth keeps the broker's users: their hashed passwords and their
// topic grants. A *DB implements broker.Authenticator; the admin API and
// cmd/mqttd manage users through its methods (AddUser, SetGrants, LoadFile,
// ...).
//
// Design note (a boundary DESIGN.md draws differently): DESIGN puts
// "auth/ACL" in package broker. The broker keeps the checks (where, when,
// which reason code) behind its Authenticator interface; the user database
// lives here because it is persisted through session.KV, managed by the
// admin API and cmd, and replaceable (LDAP, an HTTP hook) without touching
// the protocol engine. Imports: auth → broker (for Access and
// ErrBadCredentials) and session (KV); broker never imports auth.
//
// # Users and passwords
//
// A user has a name (1 to 64 characters of [0-9A-Za-z_.@-]), a bcrypt hash
// of its password (8 to 72 bytes; bcrypt ignores anything past 72) or no
// password at all (a certificate-only user, see Config.CertCNAsUsername),
// and a list of grants. Passwords are never stored or logged in clear.
//
// Authenticate runs bcrypt for every password it checks, except that a
// password that verified once is remembered as a keyed SHA-256 digest (the
// key is random per process and never leaves memory), so a device that
// reconnects costs microseconds instead of a full bcrypt run on the event
// loop. A wrong password always pays the full bcrypt cost, and an unknown
// user is checked against a dummy hash of the same cost, so response time
// does not tell which user names exist. Config.DisableVerifyCache turns the
// shortcut off.
//
// # Grants
//
// A Grant allows publishing ("pub"), subscribing ("sub") or both ("pubsub")
// on a topic filter. A grant on a single level without wildcards, such as
// "meter", is a parent topic grant and means "meter/#" (which also matches
// "meter" itself). A PUBLISH topic is allowed when a pub grant's filter
// matches it; a SUBSCRIBE filter is allowed when a sub grant's filter
// covers every topic the subscribed filter can match (grant "meter/#"
// covers "meter/+/temp"; grant "meter/+/temp" does not cover "meter/#").
// As in MQTT matching, a leading "+" or "#" does not reach topics that
// start with "$" [MQTT-4.7.2-1]: grant "#" does not cover "$SYS/...".
// A user without grants may do nothing; a superuser (Config.Superusers)
// may do anything; anonymous clients (user "") get Config.AnonymousGrants.
//
// # Users file
//
// LoadFile reads a YAML file of users for the first start:
//
//	users:
//	  - name: alice
//	    password: "correct horse"        # hashed on load
//	    grants:
//	      - {filter: "meter/#", access: pub}
//	      - {filter: "cmd/alice", access: sub}
//	  - name: bob
//	    password_hash: "$2a$10$..."      # or an existing bcrypt hash
//	    grants: [{filter: "#", access: pubsub}]
//	  - name: client1                    # neither: certificate-only
//
// A user already in the store is left unchanged unless the file says
// "replace: true", at the top level (every user) or on the user. The whole
// file is checked before anything changes; errors name the entry and field
// ("users[1].grants[0].access"). Unknown keys are errors. In YAML a filter
// that starts with "#" must be quoted.
//
// # Persistence
//
// Every user is one record of the session.KV given to New, under the key
// "u/" + name; the value is versioned JSON (see record). New loads all of
// them into memory; every change is written to the KV first and becomes
// visible to Authenticate and Allow only once the write succeeded.
//
// # Concurrency
//
// Authenticate and Allow are called from event loops. They never touch the
// KV: users live in memory in a map split into shards, each guarded by a
// sync.RWMutex that readers take only around one map lookup. A user value
// is immutable once published (a change replaces it), except for its
// verification cache, an atomic pointer; so grants are evaluated with no
// lock held. Allow does not allocate.
//
// Changes (AddUser, SetGrants, DeleteUser, LoadFile, ...) are serialized by
// DB.wmu, held across the KV write so that the store and memory see changes
// in the same order. Only callers that change users wait on it; readers
// never do. Lock order: DB.wmu before a shard's mutex. bcrypt hashing of
// new passwords happens before wmu is taken.
package auth
