package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/agent"
	"github.com/credhelper/credhelper/agent/server"
	"github.com/credhelper/credhelper/provider"
)

func testPair(gen uint64, validFor time.Duration) provider.Pair {
	p := provider.Pair{AuthToken: fmt.Sprintf("auth-token-%d", gen), RefreshToken: "refresh-secret", Endpoint: "cell-1.example.com", Generation: gen}
	if validFor > 0 {
		p.ValidUntil = time.Now().Add(validFor).Truncate(time.Second)
	}
	return p
}

func TestGet(t *testing.T) {
	exp := &fakeProvider{pair: testPair(7, time.Hour)}
	never := &fakeProvider{pair: testPair(0, 0)}
	ts := startServer(t, []server.Profile{{Name: "exp", Provider: exp}, {Name: "never", Provider: never}})
	ctx := context.Background()

	got, err := ts.client().Get(ctx, agent.Request{Profile: "exp"})
	if err != nil {
		t.Fatalf("Get(exp): %v", err)
	}
	want := exp.pair
	want.RefreshToken = ""
	if got.AuthToken != want.AuthToken || !got.ValidUntil.Equal(want.ValidUntil) || got.Endpoint != want.Endpoint || got.Generation != want.Generation {
		t.Errorf("Get(exp) = %v, want %v", got, want)
	}
	if got.RefreshToken != "" {
		t.Error("Get returned a refresh token: only the agent may hold it")
	}
	got, err = ts.client().Get(ctx, agent.Request{Profile: "never"})
	if err != nil {
		t.Fatalf("Get(never): %v", err)
	}
	if !got.Never() || got.AuthToken != never.pair.AuthToken {
		t.Errorf("Get(never) = %v, want a never-expiring pair", got)
	}
	// The refresh token never crosses the socket, on any operation.
	for _, op := range []string{"get", "status", "ping"} {
		line := rawRoundTrip(t, ts.path, fmt.Sprintf(`{"v":1,"op":%q,"profile":"exp"}`+"\n", op))
		if strings.Contains(line, "refresh-secret") {
			t.Errorf("%s response carries the refresh token", op)
		}
		if op == "status" && strings.Contains(line, "auth-token") {
			t.Errorf("status response carries an auth token: %s", line)
		}
	}
}

func TestErrorKinds(t *testing.T) {
	cases := []struct {
		name      string
		err       error
		want      error
		kind      string
		transient bool
	}{
		{"not found", fmt.Errorf("file: no such key: %w", provider.ErrNotFound), provider.ErrNotFound, agent.KindNotFound, false},
		{"expired", fmt.Errorf("refresh: too old: %w", provider.ErrExpired), provider.ErrExpired, agent.KindExpired, false},
		{"lineage", fmt.Errorf("refresh: rejected and no newer generation: %w: %w", provider.ErrLineageBroken, provider.ErrRefreshRejected), provider.ErrLineageBroken, agent.KindLineageBroken, false},
		{"rejected", fmt.Errorf("x: %w", provider.ErrRefreshRejected), provider.ErrRefreshRejected, agent.KindRefreshRejected, false},
		{"permission", fmt.Errorf("awssm: %w", provider.ErrPermission), provider.ErrPermission, agent.KindPermission, false},
		{"invalid record", fmt.Errorf("p: %w", provider.ErrInvalidRecord), provider.ErrInvalidRecord, agent.KindInvalidRecord, false},
		{"invalid token", fmt.Errorf("p: %w", provider.ErrInvalidToken), provider.ErrInvalidToken, agent.KindInvalidToken, false},
		{"transient", provider.Transient(fmt.Errorf("vault: 503: %w", provider.ErrNotFound)), provider.ErrNotFound, agent.KindNotFound, true},
		{"deadline", fmt.Errorf("refresh: waiting: %w", context.DeadlineExceeded), context.DeadlineExceeded, agent.KindTimeout, true},
		{"other", errors.New("boom"), nil, agent.KindFailed, false},
	}
	fp := &fakeProvider{}
	ts := startServer(t, []server.Profile{{Name: "p", Provider: fp}})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fp.set(provider.Pair{}, tc.err)
			_, err := ts.client().Get(context.Background(), agent.Request{Profile: "p"})
			var ae *agent.Error
			if !errors.As(err, &ae) {
				t.Fatalf("Get error = %v (%T), want *agent.Error", err, err)
			}
			if ae.Kind != tc.kind {
				t.Errorf("kind = %q, want %q", ae.Kind, tc.kind)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.want)
			}
			if got := provider.IsTransient(err); got != tc.transient {
				t.Errorf("IsTransient = %v, want %v", got, tc.transient)
			}
			if errors.Is(err, agent.ErrUnavailable) || errors.Is(err, agent.ErrUnknownProfile) {
				t.Errorf("an error for a served profile must not ask the caller to fall back: %v", err)
			}
			if !strings.Contains(err.Error(), tc.err.Error()) {
				t.Errorf("message %q lost the cause %q", err, tc.err)
			}
		})
	}
}

func TestEndpoint(t *testing.T) {
	fp := &fakeProvider{pair: testPair(1, time.Hour)}
	ts := startServer(t, []server.Profile{
		{Name: "ok", Provider: fp, Endpoint: "cell-1.example.com"},
		{Name: "wrong", Provider: fp, Endpoint: "cell-2.example.com"},
	})
	ctx := context.Background()
	if _, err := ts.client().Get(ctx, agent.Request{Profile: "ok"}); err != nil {
		t.Errorf("profile endpoint matches: %v", err)
	}
	for _, req := range []agent.Request{{Profile: "wrong"}, {Profile: "ok", Endpoint: "cell-3.example.com"}} {
		_, err := ts.client().Get(ctx, req)
		var mm *provider.EndpointMismatchError
		if !errors.As(err, &mm) || mm.Have != "cell-1.example.com" {
			t.Errorf("Get(%+v) = %v, want an *EndpointMismatchError with Have cell-1.example.com", req, err)
		}
	}
}

func TestFallbackSignals(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	other := filepath.Join(dir, "other.toml")
	link := filepath.Join(dir, "link.toml")
	for _, f := range []string{cfg, other} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(cfg, link); err != nil {
		t.Fatal(err)
	}
	fp := &fakeProvider{pair: testPair(1, time.Hour)}
	ts := startServer(t, []server.Profile{{Name: "p", Provider: fp}}, func(o *server.Options) { o.ConfigPath = cfg })
	ctx := context.Background()
	cases := []struct {
		name string
		req  agent.Request
		want error // nil: served
	}{
		{"served", agent.Request{Profile: "p", Config: cfg}, nil},
		{"same file by another name", agent.Request{Profile: "p", Config: link}, nil},
		{"no config named", agent.Request{Profile: "p"}, nil},
		{"unknown profile", agent.Request{Profile: "q", Config: cfg}, agent.ErrUnknownProfile},
		{"another config file", agent.Request{Profile: "p", Config: other}, agent.ErrUnknownProfile},
		{"missing config file", agent.Request{Profile: "p", Config: filepath.Join(dir, "none.toml")}, agent.ErrUnknownProfile},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ts.client().Get(ctx, tc.req)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("Get = %v, want %v", err, tc.want)
			}
		})
	}

	t.Run("no socket", func(t *testing.T) {
		start := time.Now()
		_, err := (&agent.Client{Path: filepath.Join(dir, "none.sock")}).Get(ctx, agent.Request{Profile: "p"})
		if !errors.Is(err, agent.ErrUnavailable) {
			t.Errorf("Get = %v, want ErrUnavailable", err)
		}
		if d := time.Since(start); d > 50*time.Millisecond {
			t.Errorf("a missing socket took %v to report", d)
		}
	})
	t.Run("stale socket", func(t *testing.T) {
		path := filepath.Join(socketDir(t), "stale.sock")
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false)
		l.Close()
		start := time.Now()
		_, err = (&agent.Client{Path: path}).Get(ctx, agent.Request{Profile: "p"})
		if !errors.Is(err, agent.ErrUnavailable) {
			t.Errorf("Get = %v, want ErrUnavailable", err)
		}
		if d := time.Since(start); d > 50*time.Millisecond {
			t.Errorf("a dead socket took %v to report", d)
		}
	})
}

func TestBadRequests(t *testing.T) {
	ts := startServer(t, []server.Profile{{Name: "p", Provider: &fakeProvider{pair: testPair(1, time.Hour)}}})
	cases := []struct {
		name, line, kind string
	}{
		{"garbage", "not json\n", agent.KindBadRequest},
		{"array", "[1,2]\n", agent.KindBadRequest},
		{"no version", `{"op":"get","profile":"p"}` + "\n", agent.KindBadVersion},
		{"future version", `{"v":2,"op":"get","profile":"p"}` + "\n", agent.KindBadVersion},
		{"unknown op", `{"v":1,"op":"put","profile":"p"}` + "\n", agent.KindBadRequest},
		{"oversized", `{"v":1,"op":"get","profile":"` + strings.Repeat("x", agent.MaxRequest) + `"}` + "\n", agent.KindBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			line := rawRoundTrip(t, ts.path, tc.line)
			var r agent.Response
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("reply %q is not JSON: %v", line, err)
			}
			if r.V != agent.ProtocolVersion || r.Kind != tc.kind || r.Error == "" || r.Token != "" {
				t.Errorf("reply %+v, want v=1 kind %q with a message and no token", r, tc.kind)
			}
		})
	}
	t.Run("several requests on one connection", func(t *testing.T) {
		line := rawRoundTrip(t, ts.path, `{"v":1,"op":"ping"}`+"\n")
		if !strings.Contains(line, `"pid"`) {
			t.Fatalf("ping reply %q", line)
		}
		c, err := net.Dial("unix", ts.path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		dec := json.NewDecoder(c)
		for i := 0; i < 3; i++ {
			fmt.Fprintf(c, `{"v":1,"op":"get","profile":"p"}`+"\n")
			var r agent.Response
			if err := dec.Decode(&r); err != nil || r.Token == "" {
				t.Fatalf("request %d: %+v, %v", i, r, err)
			}
		}
	})
}

func TestPeerUIDChecked(t *testing.T) {
	// A server that only admits another uid must refuse this process: the
	// same SO_PEERCRED check that refuses other users (see also
	// TestOtherUserRefused, which connects as another uid for real).
	fp := &fakeProvider{pair: testPair(1, time.Hour)}
	ts := startServer(t, []server.Profile{{Name: "p", Provider: fp}}, func(o *server.Options) { o.UID = os.Geteuid() + 1 })
	_, err := ts.client().Get(context.Background(), agent.Request{Profile: "p"})
	if !errors.Is(err, agent.ErrUnavailable) {
		t.Errorf("Get = %v, want ErrUnavailable (connection refused by peer check)", err)
	}
	if n := fp.calls.Load(); n != 0 {
		t.Errorf("the provider was called %d times for a refused peer", n)
	}
	var sb strings.Builder
	if err := ts.metrics.WriteText(&sb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sb.String(), "credhelper_agent_refused_peers_total 1\n") {
		t.Errorf("refused peer not counted:\n%s", sb.String())
	}
}

func TestStatusAndPing(t *testing.T) {
	fp := &fakeProvider{pair: testPair(3, time.Hour)}
	never := &fakeProvider{pair: testPair(0, 0)}
	ts := startServer(t, []server.Profile{{Name: "b", Provider: fp}, {Name: "a", Provider: never}})
	ctx := context.Background()
	ping, err := ts.client().Ping(ctx)
	if err != nil || ping.PID != os.Getpid() || ping.AgentVersion != "test" {
		t.Fatalf("Ping = %+v, %v", ping, err)
	}
	if _, err := ts.client().Get(ctx, agent.Request{Profile: "b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.client().Get(ctx, agent.Request{Profile: "a"}); err != nil {
		t.Fatal(err)
	}
	st, err := ts.client().Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Profiles) != 2 || st.Profiles[0].Name != "a" || st.Profiles[1].Name != "b" {
		t.Fatalf("status profiles = %+v, want a and b in order", st.Profiles)
	}
	a, b := st.Profiles[0], st.Profiles[1]
	if !a.Never || !a.Loaded || a.Served != 1 {
		t.Errorf("status a = %+v", a)
	}
	if b.Never || b.Generation != 3 || b.ValidUntil != fp.pair.ValidUntil.Unix() || b.Served != 1 {
		t.Errorf("status b = %+v", b)
	}
}

func TestShutdownFinishesInFlight(t *testing.T) {
	fp := &fakeProvider{pair: testPair(1, time.Hour), block: make(chan struct{})}
	ts := startServer(t, []server.Profile{{Name: "p", Provider: fp}})
	got := make(chan error, 1)
	go func() {
		_, err := ts.client().Get(context.Background(), agent.Request{Profile: "p"})
		got <- err
	}()
	// An idle connection must not hold up shutdown.
	idle, err := net.Dial("unix", ts.path)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	for fp.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ts.cancel()
	time.Sleep(50 * time.Millisecond)
	select {
	case <-ts.done:
		t.Fatal("Serve returned with a request in flight")
	default:
	}
	if _, err := net.Dial("unix", ts.path); err == nil {
		t.Error("the socket still accepts connections after shutdown began")
	}
	close(fp.block)
	if err := <-got; err != nil {
		t.Errorf("the in-flight request failed: %v", err)
	}
	select {
	case err := <-ts.done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		close(ts.done)
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the last request finished")
	}
	if _, err := os.Lstat(ts.path); !os.IsNotExist(err) {
		t.Errorf("socket still present after Serve returned: %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	fp := &fakeProvider{}
	for name, profiles := range map[string][]server.Profile{
		"no name":     {{Provider: fp}},
		"no provider": {{Name: "p"}},
		"duplicate":   {{Name: "p", Provider: fp}, {Name: "p", Provider: fp}},
	} {
		if _, err := server.New(profiles); err == nil || !strings.HasPrefix(err.Error(), "agent: ") {
			t.Errorf("%s: New error = %v, want an agent: error", name, err)
		}
	}
}
