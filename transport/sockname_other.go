//go:build !unix

package transport

import "net"

// socketLocalAddr is not available on this platform; callers fall back to
// the listener's address.
func socketLocalAddr(int) net.Addr { return nil }
