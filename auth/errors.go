package auth

import "errors"

// Sentinels a caller branches on (test with errors.Is).
var (
	// ErrUserExists is returned by AddUser for a name already in use.
	ErrUserExists = errors.New("auth: user already exists")
	// ErrNoUser is returned for a user that does not exist.
	ErrNoUser = errors.New("auth: no such user")
)

// FieldError is an invalid input value: Field names it the way the admin
// API and the users file spell it ("name", "password", "grants[2].filter",
// "users[0].password_hash", ...), Msg says what is wrong with it.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return "auth: " + e.Field + ": " + e.Msg }

// fieldErr builds a *FieldError.
func fieldErr(field, msg string) *FieldError { return &FieldError{Field: field, Msg: msg} }

// prefixField returns err with prefix added in front of its field name when
// err is a *FieldError, err otherwise.
func prefixField(prefix string, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		return &FieldError{Field: prefix + fe.Field, Msg: fe.Msg}
	}
	return err
}
