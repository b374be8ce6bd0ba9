package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/credhelper/credhelper/agent"
	"log/slog"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// Profile is one credential the agent serves.
type Profile struct {
	// Name is what callers ask for.
	Name string
	// Provider resolves the credential, normally a *refresh.Engine.
	Provider provider.CredentialProvider
	// Endpoint, when set, is required of every pair served (checked with
	// provider.Pair.CheckEndpoint).
	Endpoint string
	// Keep makes the server keep the profile fresh ahead of expiry, waking
	// when the provider (a Scheduler) says the pair is due; otherwise the
	// profile is only resolved when asked.
	Keep bool
	// Sinks are files kept with the profile's auth token (Keep only).
	Sinks []SinkSpec
	// MinValidity is the provider's minimum validity: a sink never holds a
	// pair with less than this left.
	MinValidity time.Duration
}

// Options configure a Server.
type Options struct {
	// Logger receives structured logs; nil is silent. Tokens are never
	// logged.
	Logger *slog.Logger
	// Metrics, when set, counts requests and refused peers and records
	// each profile's generation.
	Metrics *Metrics
	// ConfigPath is the config file the profiles came from; a request
	// naming another file gets agent.KindUnknownProfile. Empty accepts any.
	ConfigPath string
	// UID is the only user allowed to connect; default os.Geteuid().
	UID int
	// RequestTimeout bounds resolving one credential; default 20s.
	RequestTimeout time.Duration
	// IdleTimeout closes a connection that sends nothing; default 30s.
	IdleTimeout time.Duration
	// WriteTimeout bounds writing one response; default 5s.
	WriteTimeout time.Duration
	// ShutdownTimeout bounds waiting for requests in flight when Serve's
	// context ends; default 30s.
	ShutdownTimeout time.Duration
	// Version is reported by ping and status.
	Version string
	// Workers bounds how many profiles are warmed, refreshed or have their
	// sinks written at once; default 16.
	Workers int
	// Clock, when set, is the clock of every provider's engine; the server
	// advances its coarse reading before each call to a provider (see
	// Clock).
	Clock *Clock
	// Settled, when set, is called after a round of refreshes: once the
	// refreshes keepers started have all ended and none started for
	// settleDelay, at most once per settleEvery. The agent returns the
	// round's garbage to the operating system there.
	Settled func()
}

// settleDelay is how long no keeper refresh must run before Settled is
// called; settleEvery is the least time between two calls.
const (
	settleDelay = 2 * time.Second
	settleEvery = time.Minute
)

// Server answers requests on a unix socket and keeps profiles fresh. Create
// it with New.
type Server struct {
	opts Options
	set  atomic.Pointer[profileSet]
	cfg  atomic.Pointer[configFile] // the agent's config file, nil if none
	pool *pool

	reloads   atomic.Uint64
	reloadErr atomic.Pointer[string]

	mu       sync.Mutex // guards conns, down and running
	conns    map[*conn]struct{}
	down     bool
	running  bool
	updateMu sync.Mutex // serialises Update and Serve's start and end

	kickMu   sync.Mutex // guards kicks and kickWait
	kicks    int        // refreshes keepers started and have not heard end
	kickWait []*keeper  // keepers waiting for a refresh slot, oldest first

	settleMu    sync.Mutex  // guards the fields below
	settleTimer *time.Timer // pending Settled call
	settledAt   time.Time   // last Settled call
	settleOff   bool        // the server is shut down
}

// profileSet is the immutable set of profiles served; Update swaps it.
type profileSet struct {
	byName map[string]*served
	names  []string
}

// served is a Profile and what the agent knows about it.
type served struct {
	Profile
	keeper *keeper // nil unless Keep
	served atomic.Uint64

	mu        sync.Mutex // guards the fields below
	loaded    bool
	gen       uint64
	until     time.Time
	next      time.Time
	lastError string
}

func (p *served) failed(err error, next time.Time) {
	p.mu.Lock()
	p.lastError, p.next = err.Error(), next
	p.mu.Unlock()
}

func (p *served) scheduled(next time.Time) {
	p.mu.Lock()
	p.next = next
	p.mu.Unlock()
}

// New returns a Server for profiles. Sink templates are parsed and checked
// here, so a mistake in one is reported at start.
func New(profiles []Profile, optFns ...func(*Options)) (*Server, error) {
	o := Options{
		UID:             os.Geteuid(),
		RequestTimeout:  20 * time.Second,
		IdleTimeout:     30 * time.Second,
		WriteTimeout:    5 * time.Second,
		ShutdownTimeout: 30 * time.Second,
		Workers:         16,
	}
	for _, fn := range optFns {
		fn(&o)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RequestTimeout <= 0 || o.IdleTimeout <= 0 || o.WriteTimeout <= 0 || o.ShutdownTimeout <= 0 || o.Workers <= 0 {
		return nil, errors.New("agent: timeouts and workers must be positive")
	}
	s := &Server{opts: o, conns: make(map[*conn]struct{}), pool: &pool{max: o.Workers}}
	set, err := s.newSet(profiles, nil)
	if err != nil {
		return nil, err
	}
	s.set.Store(set)
	if err := s.SetConfigPath(o.ConfigPath); err != nil {
		return nil, err
	}
	return s, nil
}

// SetConfigPath changes the config file requests are checked against
// (after a reload that found it elsewhere); empty accepts any.
func (s *Server) SetConfigPath(path string) error {
	if path == "" {
		s.cfg.Store(nil)
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("agent: config file: %w", err)
	}
	s.cfg.Store(&configFile{path: path, info: fi})
	return nil
}

// configFile is the config file requests are checked against.
type configFile struct {
	path string
	info os.FileInfo
}

// newSet checks profiles and builds the set to serve. A profile of old
// with the same name and provider is carried over as it is, keeper and
// all.
func (s *Server) newSet(profiles []Profile, old *profileSet) (*profileSet, error) {
	set := &profileSet{byName: make(map[string]*served, len(profiles))}
	sinkOwner := map[string]string{}
	for _, p := range profiles {
		for _, sp := range p.Sinks {
			if other, ok := sinkOwner[sp.Path]; ok {
				return nil, fmt.Errorf("agent: sink %s is given twice (profiles %q and %q): give each sink its own file", sp.Path, other, p.Name)
			}
			sinkOwner[sp.Path] = p.Name
		}
		switch {
		case p.Name == "":
			return nil, errors.New("agent: a profile has no name")
		case p.Provider == nil:
			return nil, fmt.Errorf("agent: profile %q has no provider", p.Name)
		case set.byName[p.Name] != nil:
			return nil, fmt.Errorf("agent: profile %q given twice", p.Name)
		case len(p.Sinks) > 0 && !p.Keep:
			return nil, fmt.Errorf("agent: profile %q has sinks but is not kept fresh", p.Name)
		}
		if old != nil {
			if prev := old.byName[p.Name]; prev != nil && prev.Provider == p.Provider {
				set.byName[p.Name] = prev
				set.names = append(set.names, p.Name)
				continue
			}
		}
		sv := &served{Profile: p}
		if p.Keep {
			var sinks []*sink
			for _, spec := range p.Sinks {
				sk, err := compileSink(spec)
				if err != nil {
					return nil, fmt.Errorf("agent: profile %q: %w", p.Name, err)
				}
				sinks = append(sinks, sk)
			}
			sv.keeper = newKeeper(s, sv, sinks)
		}
		if s.opts.Metrics != nil && len(p.Sinks) > 0 {
			s.opts.Metrics.sinkProfile(p.Name)
		}
		set.byName[p.Name] = sv
		set.names = append(set.names, p.Name)
	}
	sort.Strings(set.names)
	return set, nil
}

// Warm resolves every kept profile once, on at most Options.Workers
// goroutines, and writes its sinks; it returns when all have finished or
// ctx ends. A profile that fails is logged and retried by its keeper.
// Serve warms the profiles it has not yet if Warm was not called.
func (s *Server) Warm(ctx context.Context) {
	set := s.set.Load()
	for _, name := range set.names {
		if k := set.byName[name].keeper; k != nil {
			k.start()
		}
	}
	for _, name := range set.names {
		if k := set.byName[name].keeper; k != nil {
			select {
			case <-k.firstRun:
			case <-ctx.Done():
				return
			}
		}
	}
}

// Notify tells the server that the named profile's provider has published
// a new pair, or that its refresh failed, so that its keeper writes the
// sinks (or retries) now rather than at its next look. A provider that
// implements ChangeNotifier (*refresh.Engine) needs no call; any other
// may call it from any goroutine for any name.
func (s *Server) Notify(name string) {
	if p := s.set.Load().byName[name]; p != nil && p.keeper != nil {
		p.keeper.wake()
	}
}

// Update makes profiles the set the server serves, as a reload does. A
// profile with the same name and Provider as before keeps running
// untouched; a new one starts (its sinks written as it warms); a removed
// or replaced one stops: its keeper finishes the step it is in, and the
// sinks that the new set no longer has are emptied or removed. Update
// returns the profiles that are no longer served; the caller closes their
// providers, which lets a refresh in flight finish and commit. Requests
// are answered throughout: each sees either the old or the new set. On an
// error (a duplicate name, a bad sink) nothing changes.
func (s *Server) Update(profiles []Profile) ([]Profile, error) {
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	old := s.set.Load()
	set, err := s.newSet(profiles, old)
	if err != nil {
		return nil, err
	}
	// Stop what goes before starting what comes, so that an old keeper's
	// last write never lands after a new keeper's first.
	var stale []*served
	for _, name := range old.names {
		if prev := old.byName[name]; set.byName[name] != prev {
			if prev.keeper != nil {
				prev.keeper.stop()
			}
			stale = append(stale, prev)
		}
	}
	s.set.Store(set)
	s.mu.Lock()
	running := s.running
	s.mu.Unlock()
	if running {
		for _, name := range set.names {
			if k := set.byName[name].keeper; k != nil {
				k.start()
			}
		}
	}
	keepPaths := map[string]bool{}
	for _, name := range set.names {
		for _, sp := range set.byName[name].Sinks {
			keepPaths[sp.Path] = true
		}
	}
	out := make([]Profile, 0, len(stale))
	for _, prev := range stale {
		if prev.keeper != nil {
			prev.keeper.expireAll(keepPaths)
		}
		if set.byName[prev.Name] == nil && s.opts.Metrics != nil {
			s.opts.Metrics.Forget(prev.Name)
		}
		out = append(out, prev.Profile)
	}
	return out, nil
}

// Reloaded records the outcome of a configuration reload, which ping and
// status report (credhelper agent reload waits for it).
func (s *Server) Reloaded(err error) {
	if err != nil {
		msg := err.Error()
		s.reloadErr.Store(&msg)
	} else {
		s.reloadErr.Store(nil)
	}
	s.reloads.Add(1)
}

// Serve keeps the profiles marked Keep fresh and answers connections on
// l until ctx ends. It then stops accepting (closing l), lets requests in
// flight finish (up to ShutdownTimeout), closes idle connections, stops the
// keepers and returns nil. It returns an error only if accepting fails.
// Closing the providers is the caller's job, after Serve returns.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	s.mu.Lock()
	s.running = true
	s.mu.Unlock()
	s.updateMu.Lock()
	set := s.set.Load()
	for _, name := range set.names {
		if k := set.byName[name].keeper; k != nil {
			k.start()
		}
	}
	s.updateMu.Unlock()
	defer func() {
		s.updateMu.Lock()
		defer s.updateMu.Unlock()
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
		set := s.set.Load()
		for _, name := range set.names {
			if k := set.byName[name].keeper; k != nil {
				k.stop()
			}
		}
	}()

	var handlers sync.WaitGroup
	acceptErr := make(chan error, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				acceptErr <- err
				return
			}
			uc, ok := c.(*net.UnixConn)
			if !ok {
				c.Close()
				continue
			}
			cn := &conn{c: uc}
			if !s.track(cn) {
				uc.Close()
				continue
			}
			handlers.Add(1)
			go func() {
				defer handlers.Done()
				defer s.untrack(cn)
				s.serveConn(cn)
			}()
		}
	}()

	var err error
	select {
	case <-ctx.Done():
	case err = <-acceptErr:
		err = fmt.Errorf("agent: accept: %w", err)
	}
	l.Close()
	s.shutdown()
	done := make(chan struct{})
	go func() { handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.opts.ShutdownTimeout):
		s.opts.Logger.Warn("agent: requests still in flight at shutdown timeout", slog.Duration("timeout", s.opts.ShutdownTimeout))
	}
	return err
}

// conn is one client connection; mu orders arming the read deadline
// against shutdown, so an idle connection cannot miss it.
type conn struct {
	c       *net.UnixConn
	mu      sync.Mutex
	closing bool
}

// armRead sets the idle deadline for the next request, unless the server
// is shutting down.
func (c *conn) armRead(d time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	_ = c.c.SetReadDeadline(time.Now().Add(d))
	return true
}

// stop wakes a connection waiting for a request; one busy with a request
// finishes it and then sees closing.
func (c *conn) stop() {
	c.mu.Lock()
	c.closing = true
	_ = c.c.SetReadDeadline(time.Unix(1, 0))
	c.mu.Unlock()
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) shutdown() {
	s.stopSettle()
	s.mu.Lock()
	s.down = true
	for c := range s.conns {
		c.stop()
	}
	s.mu.Unlock()
}

// serveConn checks the peer and answers requests until the client hangs
// up, goes idle, or the server shuts down.
func (s *Server) serveConn(cn *conn) {
	c := cn.c
	defer c.Close()
	cred, err := agent.PeerCred(c)
	if err != nil || cred.UID != s.opts.UID {
		attrs := []any{slog.Int("allowed_uid", s.opts.UID)}
		if err != nil {
			attrs = append(attrs, slog.String("error", err.Error()))
		} else {
			attrs = append(attrs, slog.Int("peer_uid", cred.UID), slog.Int("peer_pid", cred.PID))
		}
		s.opts.Logger.Warn("agent: refused a connection from another user", attrs...)
		if s.opts.Metrics != nil {
			s.opts.Metrics.refusedPeer()
		}
		return
	}
	br := bufio.NewReaderSize(c, 1024)
	enc := json.NewEncoder(c)
	for cn.armRead(s.opts.IdleTimeout) {
		line, err := agent.ReadLine(br, agent.MaxRequest)
		if err != nil {
			if errors.Is(err, agent.ErrTooLong) {
				s.write(c, enc, agent.Response{V: agent.ProtocolVersion, Error: fmt.Sprintf("agent: request over %d bytes", agent.MaxRequest), Kind: agent.KindBadRequest})
			}
			return
		}
		if !s.write(c, enc, s.handle(line)) {
			return
		}
	}
}

func (s *Server) write(c *net.UnixConn, enc *json.Encoder, r agent.Response) bool {
	_ = c.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
	return enc.Encode(r) == nil
}

// handle answers one request line.
func (s *Server) handle(line []byte) agent.Response {
	var req agent.Request
	if err := json.Unmarshal(line, &req); err != nil {
		s.count("invalid", agent.KindBadRequest)
		return agent.Response{V: agent.ProtocolVersion, Error: "agent: the request is not a JSON object: send {\"v\":1,\"op\":\"get\",\"profile\":\"NAME\"}", Kind: agent.KindBadRequest}
	}
	if req.V != agent.ProtocolVersion {
		s.count(req.Op, agent.KindBadVersion)
		return agent.Response{V: agent.ProtocolVersion, Error: fmt.Sprintf("agent: protocol version %d is not spoken here (this agent speaks %d): upgrade the client or the agent", req.V, agent.ProtocolVersion), Kind: agent.KindBadVersion}
	}
	switch req.Op {
	case agent.OpPing:
		s.count(agent.OpPing, "ok")
		return s.hello()
	case agent.OpStatus:
		s.count(agent.OpStatus, "ok")
		r := s.hello()
		r.Profiles = s.status()
		return r
	case agent.OpGet:
		r := s.get(req)
		result := "ok"
		if r.Kind != "" {
			result = r.Kind
		}
		s.count(agent.OpGet, result)
		return r
	}
	s.count("unknown", agent.KindBadRequest)
	return agent.Response{V: agent.ProtocolVersion, Error: fmt.Sprintf("agent: unknown operation %q: use get, status or ping", req.Op), Kind: agent.KindBadRequest}
}

func (s *Server) count(op, result string) {
	if s.opts.Metrics != nil {
		s.opts.Metrics.request(op, result)
	}
}

// hello is the part of ping and status that describes the agent.
func (s *Server) hello() agent.Response {
	r := agent.Response{V: agent.ProtocolVersion, PID: os.Getpid(), AgentVersion: s.opts.Version, Reloads: s.reloads.Load()}
	if msg := s.reloadErr.Load(); msg != nil {
		r.ReloadError = *msg
	}
	return r
}

// get resolves one profile's pair.
func (s *Server) get(req agent.Request) agent.Response {
	prof := s.set.Load().byName[req.Profile]
	if prof == nil {
		return agent.Response{V: agent.ProtocolVersion, Error: fmt.Sprintf("profile %q is not served by this agent", req.Profile), Kind: agent.KindUnknownProfile}
	}
	if !s.sameConfig(req.Config) {
		return agent.Response{V: agent.ProtocolVersion, Error: fmt.Sprintf("the agent serves profiles of another config file, not %s", req.Config), Kind: agent.KindUnknownProfile}
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.RequestTimeout)
	defer cancel()
	s.tick()
	p, err := prof.Provider.Credential(ctx)
	if err != nil {
		return agent.ErrorResponse(fmt.Errorf("agent: profile %q: %w", req.Profile, err))
	}
	s.observe(prof, p)
	for _, want := range []string{prof.Endpoint, req.Endpoint} {
		if want == "" {
			continue
		}
		if err := p.CheckEndpoint(want); err != nil {
			return agent.ErrorResponse(err)
		}
	}
	prof.served.Add(1)
	r := agent.Response{V: agent.ProtocolVersion, Token: p.AuthToken, Generation: p.Generation}
	r.Endpoint, _ = p.ResolveEndpoint()
	if !p.Never() {
		r.ValidUntil = p.ValidUntil.Unix()
	}
	return r
}

// tick advances the engines' coarse clock, if the server keeps it.
func (s *Server) tick() {
	if s.opts.Clock != nil {
		s.opts.Clock.tick()
	}
}

// sameConfig reports whether path names the agent's config file.
func (s *Server) sameConfig(path string) bool {
	cf := s.cfg.Load()
	if path == "" || cf == nil || path == cf.path {
		return true
	}
	fi, err := os.Stat(path)
	return err == nil && os.SameFile(fi, cf.info)
}

// observe records the public facts of the pair a profile now serves.
func (s *Server) observe(prof *served, p provider.Pair) {
	prof.mu.Lock()
	prof.loaded, prof.gen, prof.until, prof.lastError = true, p.Generation, p.ValidUntil, ""
	prof.mu.Unlock()
	if s.opts.Metrics != nil {
		s.opts.Metrics.setGeneration(prof.Name, p.Generation)
	}
}

func (s *Server) status() []agent.ProfileStatus {
	set := s.set.Load()
	out := make([]agent.ProfileStatus, 0, len(set.names))
	for _, name := range set.names {
		p := set.byName[name]
		p.mu.Lock()
		st := agent.ProfileStatus{Name: name, Generation: p.gen, Loaded: p.loaded, LastError: p.lastError, Served: p.served.Load()}
		if p.loaded && p.until.IsZero() {
			st.Never = true
		} else if !p.until.IsZero() {
			st.ValidUntil = p.until.Unix()
		}
		if !p.next.IsZero() {
			st.NextRefresh = p.next.Unix()
		}
		p.mu.Unlock()
		out = append(out, st)
	}
	return out
}
