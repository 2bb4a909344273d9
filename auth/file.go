package auth

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"
)

// usersFile is the YAML users file read by LoadFile:
//
//	replace: false            # optional: true replaces users already stored
//	users:
//	  - name: alice
//	    password: "correct horse"   # 8..72 bytes, hashed on load
//	    grants:
//	      - {filter: "meter/#", access: pub}
//	      - {filter: "cmd/alice", access: sub}
//	  - name: bob
//	    password_hash: "$2a$10$..."  # a bcrypt hash instead of a password
//	    replace: true                # per user, overrides the top level
//	    grants: [{filter: "#", access: pubsub}]
//	  - name: gateway-7              # neither: certificate-only user
//
// Unknown keys are errors, so a misspelt key is not silently ignored.
type usersFile struct {
	Replace bool       `yaml:"replace"`
	Users   []fileUser `yaml:"users"`
}

type fileUser struct {
	Name         string  `yaml:"name"`
	Password     string  `yaml:"password"`
	PasswordHash string  `yaml:"password_hash"`
	Replace      *bool   `yaml:"replace"`
	Grants       []Grant `yaml:"grants"`
}

// FileError is an error in a users file: Path is the file, Err what is
// wrong, usually a *FieldError whose Field locates the entry
// ("users[2].grants[0].access").
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string {
	msg := e.Err.Error()
	var fe *FieldError
	if errors.As(e.Err, &fe) {
		msg = fe.Field + ": " + fe.Msg
	}
	return "auth: users file " + e.Path + ": " + msg
}
func (e *FileError) Unwrap() error { return e.Err }

// fileEntry is a checked entry of a users file.
type fileEntry struct {
	name, password string // password "" with hash nil: certificate-only
	hash           []byte // from password_hash
	spec           []Grant
	grants         []grant
	replace        bool
}

// LoadFile reads a YAML users file (format: the package doc, "Users
// file") for the first start. A user of the file that is not in
// the DB is added. A user that already exists is left as it is, unless
// the file sets "replace: true" (at the top level for every user, or on
// the user), which replaces its password and grants. The whole file is
// checked before anything is changed: an invalid file changes nothing and
// returns a *FileError naming the entry and field. A KV error part way
// leaves the users before it applied.
func (d *DB) LoadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return &FileError{Path: path, Err: err}
	}
	entries, err := parseUsersFile(data)
	if err != nil {
		return &FileError{Path: path, Err: err}
	}

	// Hash the passwords that will be used, before taking wmu: a user that
	// exists and is kept needs none. An entry whose user appears meanwhile
	// is re-checked under wmu.
	for i := range entries {
		e := &entries[i]
		if e.password == "" || (!e.replace && d.lookup(e.name) != nil) {
			continue
		}
		if e.hash, err = hashPassword(e.password, d.cost); err != nil {
			return &FileError{Path: path, Err: prefixField(fmt.Sprintf("users[%d].", i), err)}
		}
	}

	d.wmu.Lock()
	defer d.wmu.Unlock()
	var added, replaced, kept int
	now := d.now().UTC()
	for i := range entries {
		e := &entries[i]
		old := d.lookup(e.name)
		if old != nil && !e.replace {
			kept++
			continue
		}
		if e.password != "" && e.hash == nil {
			// Kept when we hashed, gone now: hash under wmu (rare).
			if e.hash, err = hashPassword(e.password, d.cost); err != nil {
				return &FileError{Path: path, Err: prefixField(fmt.Sprintf("users[%d].", i), err)}
			}
		}
		u := &user{name: e.name, hash: e.hash, spec: e.spec, grants: e.grants, created: now, updated: now}
		if old != nil {
			u.created = old.created
		}
		if err := d.put(u); err != nil {
			return &FileError{Path: path, Err: err}
		}
		if old != nil {
			replaced++
		} else {
			added++
		}
	}
	d.log.Info().Str("path", path).Int("added", added).Int("replaced", replaced).Int("kept", kept).Msg("users file loaded")
	return nil
}

// parseUsersFile decodes and checks a users file. Errors are *FieldError
// with the field located as "users[i].field" where there is an entry.
func parseUsersFile(data []byte) ([]fileEntry, error) {
	var f usersFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty file: want a users: list")
		}
		return nil, fmt.Errorf("not a valid users file: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}
	if f.Users == nil {
		return nil, fieldErr("users", "missing: want a list of users")
	}
	seen := make(map[string]int, len(f.Users))
	out := make([]fileEntry, 0, len(f.Users))
	for i, fu := range f.Users {
		at := fmt.Sprintf("users[%d].", i)
		if msg := nameProblem(fu.Name); msg != "" {
			return nil, fieldErr(at+"name", msg)
		}
		if j, dup := seen[fu.Name]; dup {
			return nil, fieldErr(at+"name", fmt.Sprintf("%q is also users[%d]", fu.Name, j))
		}
		seen[fu.Name] = i
		e := fileEntry{name: fu.Name, spec: cloneGrants(fu.Grants), replace: f.Replace}
		if fu.Replace != nil {
			e.replace = *fu.Replace
		}
		switch {
		case fu.Password != "" && fu.PasswordHash != "":
			return nil, fieldErr(at+"password", "give password or password_hash, not both")
		case fu.Password != "":
			if msg := passwordProblem(fu.Password); msg != "" {
				return nil, fieldErr(at+"password", msg)
			}
			e.password = fu.Password
		case fu.PasswordHash != "":
			if msg := hashProblem(fu.PasswordHash); msg != "" {
				return nil, fieldErr(at+"password_hash", msg)
			}
			e.hash = []byte(fu.PasswordHash)
		}
		for j, g := range fu.Grants {
			if g.Filter == "" {
				// The usual cause: an unquoted # starts a YAML comment.
				return nil, fieldErr(fmt.Sprintf("%sgrants[%d].filter", at, j), `empty (in YAML, quote a filter that starts with #: filter: "#")`)
			}
		}
		cg, err := compileGrants(fu.Grants)
		if err != nil {
			return nil, prefixField(at, err)
		}
		e.grants = cg
		out = append(out, e)
	}
	return out, nil
}
