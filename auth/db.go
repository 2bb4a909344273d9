package auth

import (
	"errors"
	"fmt"
	"hash/maphash"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/rs/zerolog"

	"github.com/mqttd/mqttd/broker"
	"github.com/mqttd/mqttd/session"
)

// MaxNameLen is the longest user name.
const MaxNameLen = 64

// nameProblem returns what makes name an invalid user name, "" if valid.
func nameProblem(name string) string {
	if name == "" {
		return "empty"
	}
	if len(name) > MaxNameLen {
		return fmt.Sprintf("longer than %d characters", MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z',
			c == '_', c == '.', c == '@', c == '-':
		default:
			return fmt.Sprintf("character %q at %d: only 0-9 A-Z a-z _ . @ - are allowed", rune(c), i)
		}
	}
	return ""
}

// user is one user as Authenticate and Allow see it. Everything but
// verified is immutable once the user is in a shard: a change builds a
// new user and swaps it in.
type user struct {
	name     string
	hash     []byte  // bcrypt; nil: certificate-only user
	spec     []Grant // as given, for listing and storing
	grants   []grant // compiled from spec
	created  time.Time
	updated  time.Time
	verified atomic.Pointer[[32]byte] // verifier cache, see verifier.check
}

// UserInfo describes a user to the admin API. It holds no password hash.
type UserInfo struct {
	Name      string    `json:"name"`
	Grants    []Grant   `json:"grants"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	Password  bool      `json:"password"`            // false: certificate-only user
	Superuser bool      `json:"superuser,omitempty"` // named in Config.Superusers
}

const nShards = 16 // a power of two

// shard is one part of the user map. Padded to its own cache line so that
// readers of different shards do not slow each other down.
type shard struct {
	mu sync.RWMutex     // guards m
	m  map[string]*user // by name
	_  [64 - unsafe.Sizeof(sync.RWMutex{}) - unsafe.Sizeof(map[string]*user(nil))]byte
}

// DB is the user database. It implements broker.Authenticator. Safe for
// concurrent use; see the package doc for the concurrency model.
type DB struct {
	kv    session.KV
	log   zerolog.Logger
	cost  int
	cnAs  bool
	super map[string]struct{}
	anon  []grant
	ver   *verifier
	seed  maphash.Seed

	shards [nShards]shard
	count  atomic.Int64 // users in the shards

	// wmu serializes changes, held across the KV write (see the package
	// doc). Lock order: wmu before shard.mu.
	wmu sync.Mutex

	now func() time.Time // time.Now; tests replace it
}

var _ broker.Authenticator = (*DB)(nil)

// New returns a DB holding the users stored in kv, which must not be nil
// (session.NewMemKV() keeps users in memory only). It fails when cfg is
// invalid or a stored user cannot be read; the error names its key.
func New(kv session.KV, cfg Config) (*DB, error) {
	if kv == nil {
		return nil, errors.New("auth: nil KV")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	anon, _ := compileGrants(cfg.AnonymousGrants) // checked by Validate
	ver, err := newVerifier(cfg.cost(), cfg.DisableVerifyCache)
	if err != nil {
		return nil, err
	}
	d := &DB{
		kv:    kv,
		log:   cfg.Log,
		cost:  cfg.cost(),
		cnAs:  cfg.CertCNAsUsername,
		super: make(map[string]struct{}, len(cfg.Superusers)),
		anon:  anon,
		ver:   ver,
		seed:  maphash.MakeSeed(),
		now:   time.Now,
	}
	for _, s := range cfg.Superusers {
		d.super[s] = struct{}{}
	}
	for i := range d.shards {
		d.shards[i].m = make(map[string]*user)
	}
	if err := d.load(); err != nil {
		return nil, err
	}
	d.log.Info().Int64("users", d.count.Load()).Msg("users loaded")
	return d, nil
}

func (d *DB) shardOf(name string) *shard {
	return &d.shards[maphash.String(d.seed, name)&(nShards-1)]
}

// lookup returns the user called name, nil if there is none.
func (d *DB) lookup(name string) *user {
	s := d.shardOf(name)
	s.mu.RLock()
	u := s.m[name]
	s.mu.RUnlock()
	return u
}

// lookupBytes is lookup for a name in bytes, without allocating.
func (d *DB) lookupBytes(name []byte) *user {
	s := &d.shards[maphash.Bytes(d.seed, name)&(nShards-1)]
	s.mu.RLock()
	u := s.m[string(name)]
	s.mu.RUnlock()
	return u
}

// Authenticate implements broker.Authenticator: it returns the name of the
// user that username/password (or, with Config.CertCNAsUsername, the
// verified client certificate's common name certCN) identifies, or
// broker.ErrBadCredentials. Never blocks on I/O; a password check that is
// not in the verification cache costs one bcrypt run.
func (d *DB) Authenticate(username, password []byte, certCN string) (string, error) {
	if d.cnAs && certCN != "" {
		if u := d.lookup(certCN); u != nil {
			if len(username) > 0 && string(username) != certCN {
				d.refused(username, "username differs from certificate CN")
				return "", broker.ErrBadCredentials
			}
			return u.name, nil
		}
	}
	if len(username) == 0 {
		d.refused(username, "no username")
		return "", broker.ErrBadCredentials
	}
	u := d.lookupBytes(username)
	if !d.ver.check(u, password) {
		d.refused(username, "bad username or password")
		return "", broker.ErrBadCredentials
	}
	return u.name, nil
}

// refused logs a refused login at Debug level (never the password).
func (d *DB) refused(username []byte, reason string) {
	if e := d.log.Debug(); e.Enabled() {
		e.Bytes("user", username).Str("reason", reason).Msg("login refused")
	}
}

// Allow implements broker.Authenticator: whether user may publish to the
// topic (broker.AccessPublish) or subscribe to the filter
// (broker.AccessSubscribe) topicOrFilter, which for a shared subscription
// is the filter without its $share/<group>/ prefix. Superusers may do
// anything, other users what their grants allow (see the package doc),
// user "" (anonymous) what Config.AnonymousGrants allow. A topic to publish
// to that contains a wildcard is refused. No allocation, no lock held
// while grants are checked.
func (d *DB) Allow(user, topicOrFilter string, access broker.Access) bool {
	if topicOrFilter == "" || access == 0 {
		return false
	}
	if user != "" && len(d.super) > 0 {
		if _, ok := d.super[user]; ok {
			return true
		}
	}
	gs := d.anon
	if user != "" {
		u := d.lookup(user)
		if u == nil {
			return false
		}
		gs = u.grants
	}
	if access&broker.AccessPublish != 0 && hasWildcard(topicOrFilter) {
		return false // [MQTT-3.3.2-2]
	}
	return allows(gs, topicOrFilter, access)
}

func hasWildcard(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '+' || s[i] == '#' {
			return true
		}
	}
	return false
}

// Len returns the number of users.
func (d *DB) Len() int { return int(d.count.Load()) }

// User describes the user called name.
func (d *DB) User(name string) (UserInfo, bool) {
	u := d.lookup(name)
	if u == nil {
		return UserInfo{}, false
	}
	return d.info(u), true
}

// Users describes all users, sorted by name.
func (d *DB) Users() []UserInfo {
	out := make([]UserInfo, 0, d.Len())
	for i := range d.shards {
		s := &d.shards[i]
		s.mu.RLock()
		for _, u := range s.m {
			out = append(out, d.info(u))
		}
		s.mu.RUnlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (d *DB) info(u *user) UserInfo {
	_, super := d.super[u.name]
	return UserInfo{
		Name:      u.name,
		Grants:    cloneGrants(u.spec),
		Created:   u.created,
		Updated:   u.updated,
		Password:  u.hash != nil,
		Superuser: super,
	}
}

// newUser validates name and grants and hashes password ("" makes a
// certificate-only user). Errors are *FieldError naming "name",
// "password" or "grants[i]....".
func (d *DB) newUser(name, password string, grants []Grant) (*user, error) {
	if msg := nameProblem(name); msg != "" {
		return nil, fieldErr("name", msg)
	}
	if password != "" {
		if msg := passwordProblem(password); msg != "" {
			return nil, fieldErr("password", msg)
		}
	}
	cg, err := compileGrants(grants)
	if err != nil {
		return nil, err
	}
	h, err := hashPassword(password, d.cost)
	if err != nil {
		return nil, err
	}
	return &user{name: name, hash: h, spec: cloneGrants(grants), grants: cg}, nil
}

// AddUser adds a user with a password of MinPasswordLen to MaxPasswordLen
// bytes, or with no password when password is "" (such a user can only
// log in with a client certificate, see Config.CertCNAsUsername), and the
// given grants (none: the user may do nothing). Errors: *FieldError for
// an invalid name, password or grant; ErrUserExists; or the KV's error.
func (d *DB) AddUser(name, password string, grants []Grant) error {
	u, err := d.newUser(name, password, grants)
	if err != nil {
		return err
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if d.lookup(name) != nil {
		return fmt.Errorf("%w: %q", ErrUserExists, name)
	}
	u.created = d.now().UTC()
	u.updated = u.created
	if err := d.put(u); err != nil {
		return err
	}
	d.log.Info().Str("user", name).Int("grants", len(u.grants)).Msg("user added")
	return nil
}

// EnsureUser adds the user as AddUser does when no user of that name
// exists, and otherwise leaves the existing one as it is. It reports
// whether it added the user. For a bootstrap admin user at start.
func (d *DB) EnsureUser(name, password string, grants []Grant) (added bool, err error) {
	if d.lookup(name) != nil {
		return false, nil
	}
	err = d.AddUser(name, password, grants)
	if errors.Is(err, ErrUserExists) {
		return false, nil // added meanwhile
	}
	return err == nil, err
}

// SetGrants replaces the grants of the user called name; clients already
// connected as that user are checked against the new grants from their
// next PUBLISH or SUBSCRIBE. Errors: *FieldError, ErrNoUser, the KV's.
func (d *DB) SetGrants(name string, grants []Grant) error {
	cg, err := compileGrants(grants)
	if err != nil {
		return err
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	old := d.lookup(name)
	if old == nil {
		return fmt.Errorf("%w: %q", ErrNoUser, name)
	}
	u := &user{name: name, hash: old.hash, spec: cloneGrants(grants), grants: cg, created: old.created, updated: d.now().UTC()}
	u.verified.Store(old.verified.Load()) // same hash: the cache stays valid
	if err := d.put(u); err != nil {
		return err
	}
	d.log.Info().Str("user", name).Int("grants", len(cg)).Msg("user grants set")
	return nil
}

// SetPassword replaces the password of the user called name ("" makes it
// a certificate-only user). Clients already connected stay connected.
// Errors: *FieldError, ErrNoUser, the KV's.
func (d *DB) SetPassword(name, password string) error {
	if password != "" {
		if msg := passwordProblem(password); msg != "" {
			return fieldErr("password", msg)
		}
	}
	if d.lookup(name) == nil {
		return fmt.Errorf("%w: %q", ErrNoUser, name) // before paying for a hash
	}
	h, err := hashPassword(password, d.cost)
	if err != nil {
		return err
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	old := d.lookup(name)
	if old == nil {
		return fmt.Errorf("%w: %q", ErrNoUser, name)
	}
	u := &user{name: name, hash: h, spec: old.spec, grants: old.grants, created: old.created, updated: d.now().UTC()}
	if err := d.put(u); err != nil {
		return err
	}
	d.log.Info().Str("user", name).Msg("user password set")
	return nil
}

// DeleteUser removes the user called name. Clients connected as that user
// stay connected but may no longer publish or subscribe (unless the name
// is a superuser's). Errors: ErrNoUser, the KV's.
func (d *DB) DeleteUser(name string) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if d.lookup(name) == nil {
		return fmt.Errorf("%w: %q", ErrNoUser, name)
	}
	if err := d.kv.Delete(userKey(name)); err != nil {
		return fmt.Errorf("auth: deleting user %q: %w", name, err)
	}
	s := d.shardOf(name)
	s.mu.Lock()
	delete(s.m, name)
	s.mu.Unlock()
	d.count.Add(-1)
	d.log.Info().Str("user", name).Msg("user deleted")
	return nil
}

// put stores u and then makes it visible, replacing a user of the same
// name. The caller holds wmu.
func (d *DB) put(u *user) error {
	val, err := encodeRecord(u)
	if err != nil {
		return err
	}
	if err := d.kv.Set(userKey(u.name), val); err != nil {
		return fmt.Errorf("auth: storing user %q: %w", u.name, err)
	}
	d.publish(u)
	return nil
}

// publish makes u visible in its shard without storing it.
func (d *DB) publish(u *user) {
	s := d.shardOf(u.name)
	s.mu.Lock()
	_, had := s.m[u.name]
	s.m[u.name] = u
	s.mu.Unlock()
	if !had {
		d.count.Add(1)
	}
}
