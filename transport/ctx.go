package transport

import "sync/atomic"

// ctxHolder implements Conn.Context and Conn.SetContext. It is atomic so
// that the protocol layer may read the value from any goroutine, not only
// from its Handler callbacks.
type ctxHolder struct {
	p atomic.Pointer[any]
}

// Context returns the value last given to SetContext, or nil.
func (h *ctxHolder) Context() any {
	if p := h.p.Load(); p != nil {
		return *p
	}
	return nil
}

// SetContext stores v for Context.
func (h *ctxHolder) SetContext(v any) { h.p.Store(&v) }
