package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Errors a dependency returns to get a specific status; wrap them with %w.
var (
	ErrNotFound    = errors.New("admin: not found")           // 404
	ErrConflict    = errors.New("admin: conflict")            // 409
	ErrUnavailable = errors.New("admin: service unavailable") // 503
)

// FieldError is a dependency's verdict on one request field: 400 with
// that field named.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Config configures the admin listener.
type Config struct {
	// Addr is the listen address. Default "127.0.0.1:8080".
	Addr string
	// Token is the bearer token every /api/ request must present. Empty:
	// every /api/ request is refused (401) until one is configured.
	Token string
	// ReadTimeout bounds reading a request (headers and body). Default 10s.
	ReadTimeout time.Duration
	// Log is the listener's logger. Zero value: discard.
	Log zerolog.Logger
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 10 * time.Second
	}
}

// Validate reports the first invalid setting, naming it.
func (c *Config) Validate() error {
	d := *c
	d.setDefaults()
	if _, _, err := net.SplitHostPort(d.Addr); err != nil {
		return fmt.Errorf("admin: addr %q: %w", d.Addr, err)
	}
	if d.ReadTimeout < 0 {
		return fmt.Errorf("admin: read timeout %s must not be negative", d.ReadTimeout)
	}
	return nil
}

// Deps are the services behind the routes. A nil field turns its routes
// off (404).
type Deps struct {
	// ParentTopics is the Kafka bridge's parent-topic registry.
	ParentTopics ParentTopics
	// Health reports whether the process is healthy; nil: always.
	Health func() error
	// Metrics returns the samples of GET /metrics; nil: none.
	Metrics func() []Metric
}

// Server is the admin HTTP listener.
type Server struct {
	cfg  Config
	deps Deps
	log  zerolog.Logger
	mux  *http.ServeMux
	// tokenSum is the SHA-256 of the configured token: comparing fixed-
	// length digests in constant time reveals neither the token nor its
	// length.
	tokenSum [32]byte

	mu struct {
		sync.Mutex // guards srv and ln
		srv        *http.Server
		ln         net.Listener
	}
}

// New builds the server; Start listens.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	s := &Server{cfg: cfg, deps: deps, log: cfg.Log, mux: http.NewServeMux()}
	s.tokenSum = sha256.Sum256([]byte(cfg.Token))
	if cfg.Token == "" {
		s.log.Warn().Msg("admin: no token configured: the API refuses every request")
	}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /metrics", s.metrics)
	if deps.ParentTopics != nil {
		s.mux.Handle("GET /api/v1/parent-topics", s.auth(s.listParentTopics))
		s.mux.Handle("POST /api/v1/parent-topics", s.auth(s.createParentTopic))
		s.mux.Handle("DELETE /api/v1/parent-topics/{name}", s.auth(s.deleteParentTopic))
	} else {
		s.mux.Handle("/api/v1/parent-topics", s.auth(bridgeOff))
		s.mux.Handle("/api/v1/parent-topics/", s.auth(bridgeOff))
	}
	s.mux.Handle("/api/", s.auth(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "", "no such route: "+r.Method+" "+r.URL.Path)
	}))
	return s, nil
}

// bridgeOff answers the parent-topic routes when no Kafka bridge runs.
func bridgeOff(w http.ResponseWriter, _ *http.Request) {
	writeError(w, http.StatusServiceUnavailable, "", "the Kafka bridge is off: start mqttd with -kafka.brokers")
}

// Handler is the server's routing handler (for tests and for mounting).
func (s *Server) Handler() http.Handler { return s.mux }

// Start listens on Config.Addr and serves in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("admin: listening on %s: %w", s.cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: s.cfg.ReadTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		IdleTimeout:       2 * time.Minute,
	}
	s.mu.Lock()
	s.mu.srv, s.mu.ln = srv, ln
	s.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Msg("admin: listener stopped")
		}
	}()
	s.log.Info().Str("addr", ln.Addr().String()).Msg("admin listener started")
	return nil
}

// Addr is the address the server listens on ("" before Start).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.ln == nil {
		return ""
	}
	return s.mu.ln.Addr().String()
}

// Close stops listening and waits up to 5 s for requests in progress.
func (s *Server) Close() error {
	s.mu.Lock()
	srv := s.mu.srv
	s.mu.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}

// auth requires the bearer token.
func (s *Server) auth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if !ok || s.cfg.Token == "" || subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mqttd"`)
			writeError(w, http.StatusUnauthorized, "", "missing or wrong bearer token")
			return
		}
		h(w, r)
	})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if s.deps.Health != nil {
		if err := s.deps.Health(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unhealthy", "error": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// apiError is the error body of every failed request.
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func writeError(w http.ResponseWriter, status int, field, msg string) {
	writeJSON(w, status, apiError{Error: msg, Field: field})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// depError answers a dependency's error with its status.
func (s *Server) depError(w http.ResponseWriter, r *http.Request, err error, field string) {
	var fe *FieldError
	switch {
	case errors.As(err, &fe):
		writeError(w, http.StatusBadRequest, fe.Field, fe.Msg)
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, field, err.Error())
	case errors.Is(err, ErrConflict):
		writeError(w, http.StatusConflict, field, err.Error())
	case errors.Is(err, ErrUnavailable):
		writeError(w, http.StatusServiceUnavailable, "", err.Error())
	default:
		s.log.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("admin: request failed")
		writeError(w, http.StatusInternalServerError, "", "internal error")
	}
}

// maxBody bounds request bodies.
const maxBody = 64 << 10

// decode reads a JSON body strictly: one object, known fields only.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		field := ""
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			field = ute.Field
		}
		writeError(w, http.StatusBadRequest, field, "body: "+err.Error())
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "", "body: one JSON object expected")
		return false
	}
	return true
}
