package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// keyPrefix is the KV key prefix of user records: "u/" + name.
const keyPrefix = "u/"

func userKey(name string) []byte { return []byte(keyPrefix + name) }

// recordVersion is the version of the record encoding this code writes.
// A reader refuses records of a newer version rather than misread them.
const recordVersion = 1

// record is the stored form of a user, encoded as JSON:
//
//	{"v":1,"name":"alice","hash":"$2a$10$...","grants":[{"filter":"meter/#","access":"pub"}],
//	 "created":"2025-01-02T03:04:05.678Z","updated":"2025-01-02T03:04:05.678Z"}
//
// hash is "" for a certificate-only user.
type record struct {
	V       int       `json:"v"`
	Name    string    `json:"name"`
	Hash    string    `json:"hash"`
	Grants  []Grant   `json:"grants"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

func encodeRecord(u *user) ([]byte, error) {
	grants := u.spec
	if grants == nil {
		grants = []Grant{}
	}
	b, err := json.Marshal(record{V: recordVersion, Name: u.name, Hash: string(u.hash), Grants: grants, Created: u.created, Updated: u.updated})
	if err != nil {
		return nil, fmt.Errorf("auth: encoding user %q: %w", u.name, err)
	}
	return b, nil
}

// decodeRecord decodes and checks the record stored under key.
func decodeRecord(key, val []byte) (*user, error) {
	var r record
	dec := json.NewDecoder(bytes.NewReader(val))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("auth: stored user %q: %w", key, err)
	}
	switch {
	case r.V < 1 || r.V > recordVersion:
		return nil, fmt.Errorf("auth: stored user %q: record version %d, this build reads 1 to %d", key, r.V, recordVersion)
	case string(key) != keyPrefix+r.Name:
		return nil, fmt.Errorf("auth: stored user %q: record names user %q", key, r.Name)
	}
	if msg := nameProblem(r.Name); msg != "" {
		return nil, fmt.Errorf("auth: stored user %q: %w", key, fieldErr("name", msg))
	}
	u := &user{name: r.Name, spec: r.Grants, created: r.Created, updated: r.Updated}
	if r.Hash != "" {
		if msg := hashProblem(r.Hash); msg != "" {
			return nil, fmt.Errorf("auth: stored user %q: %w", key, fieldErr("hash", msg))
		}
		u.hash = []byte(r.Hash)
	}
	cg, err := compileGrants(r.Grants)
	if err != nil {
		return nil, fmt.Errorf("auth: stored user %q: %w", key, err)
	}
	u.grants = cg
	return u, nil
}

// load reads every user record of the KV into the shards.
func (d *DB) load() error {
	return d.kv.Scan([]byte(keyPrefix), func(k, v []byte) error {
		u, err := decodeRecord(k, v)
		if err != nil {
			return err
		}
		d.publish(u)
		return nil
	})
}
