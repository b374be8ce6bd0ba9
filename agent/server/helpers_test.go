package server_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credhelper/credhelper/agent"
	"github.com/credhelper/credhelper/agent/server"
	"github.com/credhelper/credhelper/provider"
)

// fakeProvider returns a fixed pair or error and counts calls. It is the
// in-memory stand-in for an engine in unit tests; the end-to-end tests use
// real engines.
type fakeProvider struct {
	mu    sync.Mutex
	pair  provider.Pair
	err   error
	block chan struct{} // when set, Credential waits for it to close
	calls atomic.Int64
}

func (f *fakeProvider) Credential(ctx context.Context) (provider.Pair, error) {
	f.calls.Add(1)
	f.mu.Lock()
	p, err, block := f.pair, f.err, f.block
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return provider.Pair{}, ctx.Err()
		}
	}
	return p, err
}

func (f *fakeProvider) set(p provider.Pair, err error) {
	f.mu.Lock()
	f.pair, f.err = p, err
	f.mu.Unlock()
}

// testServer is an in-process agent on a socket in a fresh directory.
type testServer struct {
	path    string
	srv     *server.Server
	metrics *server.Metrics
	cancel  context.CancelFunc
	done    chan error
}

// socketDir returns a short 0700 directory: unix socket paths are limited
// to 107 bytes, and t.TempDir's names can be long.
func socketDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "chag")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func startServer(t testing.TB, profiles []server.Profile, optFns ...func(*server.Options)) *testServer {
	t.Helper()
	ts := &testServer{path: filepath.Join(socketDir(t), "agent.sock"), metrics: server.NewMetrics(), done: make(chan error, 1)}
	opts := append([]func(*server.Options){func(o *server.Options) { o.Metrics = ts.metrics; o.Version = "test" }}, optFns...)
	srv, err := server.New(profiles, opts...)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ts.srv = srv
	ln, err := agent.Listen(ts.path)
	if err != nil {
		t.Fatalf("agent.Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	go func() { ts.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop shuts the server down and waits for Serve to return.
func (ts *testServer) stop(t testing.TB) {
	t.Helper()
	ts.cancel()
	select {
	case err, ok := <-ts.done:
		if ok && err != nil {
			t.Errorf("Serve: %v", err)
		}
		if ok {
			close(ts.done)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return 10s after its context ended")
	}
}

func (ts *testServer) client() *agent.Client { return &agent.Client{Path: ts.path} }

// rawRoundTrip sends one line and returns the reply line, or "" on EOF.
func rawRoundTrip(t *testing.T, path, line string) string {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(line)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 4096)
	for {
		n, err := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if len(buf) > 0 && buf[len(buf)-1] == '\n' {
			return string(buf)
		}
		if err != nil {
			return string(buf)
		}
	}
}

// promSample is one parsed sample line.
type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseProm parses the Prometheus text exposition format strictly enough
// to catch what a scraper would reject: every sample belongs to a family
// declared by a TYPE line before it, HELP and TYPE appear at most once per
// family, label values are quoted with valid escapes, values are floats,
// and no series repeats.
func parseProm(t *testing.T, text string) []promSample {
	t.Helper()
	types := map[string]string{}
	helps := map[string]bool{}
	seen := map[string]bool{}
	var out []promSample
	if !strings.HasSuffix(text, "\n") {
		t.Fatalf("exposition does not end in a newline")
	}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		fail := func(why string) { t.Fatalf("line %d %q: %s", i+1, line, why) }
		switch {
		case line == "":
			fail("empty line")
		case strings.HasPrefix(line, "# HELP "):
			name, _, _ := strings.Cut(strings.TrimPrefix(line, "# HELP "), " ")
			if helps[name] {
				fail("second HELP")
			}
			helps[name] = true
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(strings.TrimPrefix(line, "# TYPE "))
			if len(f) != 2 {
				fail("malformed TYPE")
			}
			if _, dup := types[f[0]]; dup {
				fail("second TYPE")
			}
			switch f[1] {
			case "counter", "gauge", "untyped", "summary", "histogram":
			default:
				fail("unknown type")
			}
			types[f[0]] = f[1]
		case strings.HasPrefix(line, "#"):
		default:
			s := promSample{labels: map[string]string{}}
			rest := line
			j := strings.IndexAny(rest, "{ ")
			if j <= 0 {
				fail("no metric name")
			}
			s.name, rest = rest[:j], rest[j:]
			if !validName(s.name) {
				fail("invalid metric name")
			}
			if _, ok := types[s.name]; !ok {
				fail("sample before its TYPE line")
			}
			if strings.HasPrefix(rest, "{") {
				rest = rest[1:]
				for !strings.HasPrefix(rest, "}") {
					k, v, ok := strings.Cut(rest, `="`)
					if !ok || !validName(k) {
						fail("malformed label")
					}
					var val strings.Builder
					v2 := v
					for {
						if v2 == "" {
							fail("unterminated label value")
						}
						c := v2[0]
						if c == '"' {
							v2 = v2[1:]
							break
						}
						if c == '\\' {
							if len(v2) < 2 {
								fail("dangling escape")
							}
							switch v2[1] {
							case '\\':
								val.WriteByte('\\')
							case '"':
								val.WriteByte('"')
							case 'n':
								val.WriteByte('\n')
							default:
								fail("invalid escape")
							}
							v2 = v2[2:]
							continue
						}
						val.WriteByte(c)
						v2 = v2[1:]
					}
					if _, dup := s.labels[k]; dup {
						fail("repeated label")
					}
					s.labels[k] = val.String()
					rest = strings.TrimPrefix(v2, ",")
				}
				rest = rest[1:]
			}
			if !strings.HasPrefix(rest, " ") {
				fail("no space before the value")
			}
			f := strings.Fields(rest)
			if len(f) < 1 || len(f) > 2 {
				fail("malformed value")
			}
			v, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				fail("value is not a float")
			}
			s.value = v
			key := line[:len(line)-len(rest)]
			if seen[key] {
				fail("repeated series")
			}
			seen[key] = true
			out = append(out, s)
		}
	}
	return out
}

func validName(s string) bool {
	for i, c := range s {
		if !(c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

// promValue returns the value of the series name{labels}, and whether it
// is present.
func promValue(samples []promSample, name string, labels ...string) (float64, bool) {
	for _, s := range samples {
		if s.name != name || len(s.labels) != len(labels)/2 {
			continue
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			if s.labels[labels[i]] != labels[i+1] {
				match = false
			}
		}
		if match {
			return s.value, true
		}
	}
	return 0, false
}
