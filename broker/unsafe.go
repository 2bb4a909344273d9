package broker

import "unsafe"

// unsafeString views b as a string without copying. The string is valid
// only while b is unchanged: use it for look-ups, never keep it.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// unsafeBytes views s as bytes without copying; the bytes must not be
// modified.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
