// Command mqttd runs the mqttd broker. `mqttd -h` lists every setting.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/mqttd/mqttd/admin"
	"github.com/mqttd/mqttd/auth"
	"github.com/mqttd/mqttd/broker"
	"github.com/mqttd/mqttd/internal/gctune"
	"github.com/mqttd/mqttd/internal/wiring"
	"github.com/mqttd/mqttd/kafkabridge"
	"github.com/mqttd/mqttd/session"
	"github.com/mqttd/mqttd/transport"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	o, err := parseOptions(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "mqttd:", err)
		return 2
	}
	if err := o.validate(); err != nil {
		fmt.Fprintln(stderr, "mqttd:", err)
		return 2
	}
	log, err := newLogger(o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "mqttd:", err)
		return 2
	}
	srv, err := start(o, log)
	if err != nil {
		log.Error().Err(err).Msg("start failed")
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	s := <-sig
	log.Info().Str("signal", s.String()).Msg("shutting down")
	srv.stop()
	log.Info().Msg("stopped")
	return 0
}

func newLogger(o *options, w io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(o.logLevel)
	if err != nil {
		return zerolog.Logger{}, fmt.Errorf("-log.level %q: %w", o.logLevel, err)
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	console := o.logFormat == "console"
	if o.logFormat == "auto" {
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			console = true
		}
	} else if o.logFormat != "json" && o.logFormat != "console" {
		return zerolog.Logger{}, fmt.Errorf("-log.format %q: want auto, console or json", o.logFormat)
	}
	if console {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000"}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// server is the running broker with its listeners.
type server struct {
	gc        *gctune.Tuner
	b         *broker.Broker
	store     *session.Store
	listeners []transport.Listener
	pprof     *http.Server
	bridge    *kafkabridge.Bridge
	admin     *admin.Server
	log       zerolog.Logger
}

func off(addr string) bool { return addr == "" || addr == "off" }

func start(o *options, log zerolog.Logger) (*server, error) {
	cfg := broker.Config{
		MaxPacketSize:       int(o.maxPacket),
		Names:               broker.Names(o.names),
		MaxClientIDLen:      o.maxClientID,
		AllowAnonymous:      o.allowAnonymous,
		SessionMaxExpiry:    o.sessMaxExpiry,
		SessionMaxQueued:    o.sessMaxQueued,
		MaxPending:          o.maxPending,
		MaxKeepAlive:        uint16(o.maxKeepAlive),
		ReceiveMaximum:      uint16(o.receiveMax),
		MaxInflight:         uint16(o.maxInflight),
		TopicAliasMaximum:   uint16(o.topicAliasMax),
		DisableTopicAlias:   o.noTopicAlias || o.topicAliasMax == 0,
		OutboundLimit:       int(o.outboundLimit),
		ConnectTimeout:      o.connectTimeout,
		DenySubscribe:       o.denySubscribe,
		MaxConnections:      o.maxConns,
		MaxConnectionsPerIP: o.maxConnsPerIP,
		ConnectRate:         o.connectRate,
		MaxMsgRate:          o.maxMsgRate,
		NodeID:              o.nodeID,
		Log:                 log.With().Str("component", "broker").Logger(),
	}
	var backend session.Backend
	if o.persistence {
		p, err := session.OpenPebble(session.PebbleConfig{Dir: o.dataDir, Log: log.With().Str("component", "store").Logger()})
		if err != nil {
			return nil, err
		}
		backend = p
		log.Info().Str("dir", o.dataDir).Msg("store opened")
	} else {
		log.Warn().Msg("persistence off: sessions, queues and retained messages live in memory only")
	}
	store := session.NewStore(backend)
	cfg.Store = store
	users, err := openUsers(o, store, log)
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	cfg.Users = users
	if o.allowAnonymous {
		cfg.Users = anonymousAccess{DB: users, access: anonAccessBits(o.anonAccess)}
	}
	s := &server{store: store, log: log}
	// Every failure path below ends in s.stop() or exits; a tuner left
	// running on an error return only keeps GOGC raised in a process
	// that is about to end.
	s.gc = gctune.Start(gctune.Config{Min: uint64(o.gcMinHeap)})
	bridge, err := s.newBridge(o)
	if err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("kafka bridge: %w", err)
	}
	if bridge != nil {
		cfg.Ackers = append(cfg.Ackers, bridge)
		cfg.Hooks = append(cfg.Hooks, bridge)
	}
	b, err := broker.New(cfg)
	if err != nil {
		if bridge != nil {
			_ = bridge.Close()
		}
		_ = store.Close()
		return nil, err
	}
	s.b = b
	if bridge != nil {
		s.bridge = bridge
		bridge.SetBroker(b)
		if err := bridge.Start(context.Background()); err != nil {
			s.stop()
			return nil, fmt.Errorf("kafka bridge: %w", err)
		}
		log.Info().Str("brokers", o.kafkaBrokers).Str("ack", o.kafkaAck).Msg("kafka bridge on")
	}
	if !off(o.adminAddr) {
		deps := admin.Deps{Metrics: s.metrics}
		if bridge != nil {
			deps.ParentTopics = wiring.ParentTopics(bridge)
		}
		as, err := admin.New(admin.Config{Addr: o.adminAddr, Token: o.adminToken,
			Log: log.With().Str("component", "admin").Logger()}, deps)
		if err == nil {
			err = as.Start()
		}
		if err != nil {
			s.stop()
			return nil, fmt.Errorf("admin listener: %w", err)
		}
		s.admin = as
		log.Info().Str("addr", as.Addr()).Msg("admin API listening")
		if o.adminToken == "" {
			log.Warn().Msg("no -admin.token: every admin API request is refused")
		}
	}
	var tlsCfg *tls.Config
	if o.tlsCert != "" {
		if tlsCfg, err = serverTLS(o); err != nil {
			s.stop()
			return nil, err
		}
	}
	tlog := log.With().Str("component", "transport").Logger()
	type lis struct {
		name, addr string
		open       func() (transport.Listener, error)
	}
	all := []lis{
		{"mqtt", o.mqttAddr, func() (transport.Listener, error) {
			return transport.ListenTCP(transport.TCPConfig{Addr: o.mqttAddr, Loops: o.loops, Log: tlog}, b)
		}},
		{"ws", o.wsAddr, func() (transport.Listener, error) {
			return transport.ListenWS(transport.WSConfig{Addr: o.wsAddr, Log: tlog}, b)
		}},
	}
	if tlsCfg != nil {
		all = append(all,
			lis{"tls", o.tlsAddr, func() (transport.Listener, error) {
				return transport.ListenTLS(transport.TLSConfig{Addr: o.tlsAddr, TLS: tlsCfg, Log: tlog}, b)
			}},
			lis{"wss", o.wssAddr, func() (transport.Listener, error) {
				return transport.ListenWS(transport.WSConfig{Addr: o.wssAddr, TLS: tlsCfg, Log: tlog}, b)
			}})
	}
	for _, l := range all {
		if off(l.addr) {
			continue
		}
		ln, err := l.open()
		if err != nil {
			s.stop()
			return nil, fmt.Errorf("%s listener on %s: %w", l.name, l.addr, err)
		}
		s.listeners = append(s.listeners, ln)
		log.Info().Str("listener", l.name).Str("addr", ln.Addr().String()).Msg("listening")
	}
	if len(s.listeners) == 0 {
		s.stop()
		return nil, errors.New("every listener is off")
	}
	if o.allowAnonymous {
		log.Warn().Msg("anonymous clients are allowed (-allow-anonymous)")
	}
	if !off(o.pprofAddr) {
		if err := s.servePprof(o.pprofAddr); err != nil {
			s.stop()
			return nil, err
		}
	}
	return s, nil
}

func serverTLS(o *options) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("-tls.cert/-tls.key: %w", err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	mode := o.tlsClientAuth
	if o.tlsClientCA != "" {
		pem, err := os.ReadFile(o.tlsClientCA)
		if err != nil {
			return nil, fmt.Errorf("-tls.client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-tls.client-ca %s: no PEM certificates", o.tlsClientCA)
		}
		c.ClientCAs = pool
		if mode == "" {
			mode = "require"
		}
	}
	switch mode {
	case "require":
		if c.ClientCAs == nil {
			return nil, errors.New("-tls.client-auth require needs -tls.client-ca")
		}
		c.ClientAuth = tls.RequireAndVerifyClientCert
	case "request":
		if c.ClientCAs == nil {
			return nil, errors.New("-tls.client-auth request needs -tls.client-ca")
		}
		c.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return c, nil
}

// openUsers opens the users and grants kept in the store and loads
// -users.
func openUsers(o *options, store *session.Store, log zerolog.Logger) (*auth.DB, error) {
	acfg := auth.Config{
		CertCNAsUsername: o.cnAsUsername,
		Superusers:       o.superusers,
		Cost:             o.bcryptCost,
		Log:              log.With().Str("component", "auth").Logger(),
	}
	db, err := auth.New(store.KV(), acfg)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	if o.usersFile != "" {
		if err := db.LoadFile(o.usersFile); err != nil {
			return nil, fmt.Errorf("-users: %w", err)
		}
	}
	log.Info().Int("users", db.Len()).Msg("users loaded")
	return db, nil
}

// anonymousAccess lets anonymous clients (user "") do what
// -anonymous.access says on every topic, $-topics included (clients never
// publish to $SYS: the broker refuses that itself), and asks the user
// database about everyone else.
type anonymousAccess struct {
	*auth.DB
	access broker.Access
}

func (a anonymousAccess) Allow(user, topic string, access broker.Access) bool {
	if user == "" {
		return a.access&access != 0
	}
	return a.DB.Allow(user, topic, access)
}

func anonAccessBits(s string) broker.Access {
	switch s {
	case "pubsub":
		return broker.AccessPublish | broker.AccessSubscribe
	case "pub":
		return broker.AccessPublish
	case "sub":
		return broker.AccessSubscribe
	}
	return 0
}

// servePprof serves net/http/pprof on a loopback address.
func (s *server) servePprof(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-debug.pprof-addr: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-debug.pprof-addr %s: profiles are served on loopback only", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("-debug.pprof-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	s.pprof = srv
	go func() { _ = srv.Serve(ln) }()
	s.log.Info().Str("addr", ln.Addr().String()).Msg("pprof listening")
	return nil
}

// stop disconnects the clients, then closes the listeners.
func (s *server) stop() {
	defer s.gc.Stop()
	if s.pprof != nil {
		_ = s.pprof.Close()
	}
	if s.admin != nil {
		_ = s.admin.Close()
	}
	if s.b != nil {
		_ = s.b.Close()
	}
	for _, l := range s.listeners {
		if err := l.Close(); err != nil {
			s.log.Warn().Err(err).Msg("closing listener")
		}
	}
	// After the broker: its disconnects are presence events, and the
	// bridge drains what it holds into the spool.
	if s.bridge != nil {
		if err := s.bridge.Close(); err != nil {
			s.log.Warn().Err(err).Msg("closing the kafka bridge")
		}
	}
	if err := s.store.Close(); err != nil {
		s.log.Error().Err(err).Msg("closing the store")
	}
}
