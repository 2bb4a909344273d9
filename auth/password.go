package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"hash"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// Password length bounds. bcrypt reads at most 72 bytes; a longer password
// is refused rather than silently cut.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 72
)

// passwordProblem returns what makes p an unacceptable new password, ""
// if it is fine. The empty password is handled by the callers: it makes a
// certificate-only user.
func passwordProblem(p string) string {
	switch {
	case len(p) < MinPasswordLen:
		return fmt.Sprintf("shorter than %d bytes", MinPasswordLen)
	case len(p) > MaxPasswordLen:
		return fmt.Sprintf("longer than %d bytes (bcrypt's limit)", MaxPasswordLen)
	}
	return ""
}

// hashPassword hashes a new password with the given bcrypt cost. An empty
// password gives a nil hash: the user can log in by certificate only.
func hashPassword(password string, cost int) ([]byte, error) {
	if password == "" {
		return nil, nil
	}
	if msg := passwordProblem(password); msg != "" {
		return nil, fieldErr("password", msg)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return nil, fmt.Errorf("auth: hashing password: %w", err)
	}
	return h, nil
}

// hashProblem returns what makes h unusable as a stored bcrypt hash, ""
// if it is one.
func hashProblem(h string) string {
	if _, err := bcrypt.Cost([]byte(h)); err != nil {
		return "not a bcrypt hash ($2a$, $2b$ or $2y$): " + err.Error()
	}
	return ""
}

// verifier checks passwords against bcrypt hashes, with the in-memory
// shortcut for passwords that verified before (see the package doc).
type verifier struct {
	dummy   []byte // bcrypt hash of a random secret, for unknown users
	noCache bool
	macs    sync.Pool // of hash.Hash: HMAC-SHA-256 under key
}

func newVerifier(cost int, noCache bool) (*verifier, error) {
	var secret, key [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return nil, fmt.Errorf("auth: random: %w", err)
	}
	if _, err := rand.Read(key[:]); err != nil {
		return nil, fmt.Errorf("auth: random: %w", err)
	}
	// The dummy must take as long as a real check: same cost, and a
	// secret of printable bytes no longer than a password.
	dummy, err := bcrypt.GenerateFromPassword(fmt.Appendf(nil, "%x", secret[:16]), cost)
	if err != nil {
		return nil, fmt.Errorf("auth: dummy hash: %w", err)
	}
	v := &verifier{dummy: dummy, noCache: noCache}
	v.macs.New = func() any { return hmac.New(sha256.New, key[:]) }
	return v, nil
}

// digest is the cache form of a verified password: HMAC(key, hash ‖ 0 ‖
// password). Binding the hash means a new password (new hash) never
// matches an old entry.
func (v *verifier) digest(h, password []byte) *[sha256.Size]byte {
	m := v.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(h)
	m.Write([]byte{0})
	m.Write(password)
	var d [sha256.Size]byte
	m.Sum(d[:0])
	v.macs.Put(m)
	return &d
}

// check reports whether password is u's password; u nil (unknown user)
// or a user without password spends a bcrypt run on the dummy hash and
// reports false.
func (v *verifier) check(u *user, password []byte) bool {
	if u == nil || u.hash == nil {
		_ = bcrypt.CompareHashAndPassword(v.dummy, password)
		return false
	}
	var d *[sha256.Size]byte
	if !v.noCache {
		d = v.digest(u.hash, password)
		if c := u.verified.Load(); c != nil && subtle.ConstantTimeCompare(c[:], d[:]) == 1 {
			return true
		}
	}
	// Any error is a refusal: a wrong password, or (never expected, as
	// hashes are checked when they enter the DB) a malformed hash.
	if bcrypt.CompareHashAndPassword(u.hash, password) != nil {
		return false
	}
	if d != nil {
		u.verified.Store(d)
	}
	return true
}
