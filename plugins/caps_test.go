package plugins

import (
	"cmp"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// calls returns how often the test plugin's process answered method.
func calls(t *testing.T, b provider.Backend, method string) int {
	t.Helper()
	e, err := b.Load(ctxFor(t, 10*time.Second), "calls:"+method)
	if err != nil {
		t.Fatalf("Load calls:%s: %v", method, err)
	}
	n, err := strconv.Atoi(string(e.Value))
	if err != nil {
		t.Fatalf("calls:%s = %q: %v", method, e.Value, err)
	}
	return n
}

// killPlugin SIGKILLs p's process and waits until the host can know it
// exited.
func killPlugin(t *testing.T, p *Plugin) {
	t.Helper()
	pid := p.PID()
	if pid == 0 {
		t.Fatalf("no plugin process runs")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !processExited(pid); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("killed plugin %d not reported exited", pid)
		}
	}
}

// TestReadOnlyAnsweredWithoutCalls: a read-only backend's ReadOnly is
// answered from what the plugin declared when it was opened, with no call
// into the plugin, even when its process is gone.
func TestReadOnlyAnsweredWithoutCalls(t *testing.T) {
	p := open(t, "testplugin", []string{"-read-only"})
	b := backendOf(t, p)
	ro, ok := b.(provider.ReadOnlyBackend)
	if !ok {
		t.Fatalf("the plugin's backend is no ReadOnlyBackend")
	}
	if _, ok := b.(provider.WriteChecker); ok {
		t.Errorf("a backend that declared no write check is a WriteChecker")
	}
	for range 1000 {
		if !ro.ReadOnly() {
			t.Fatalf("ReadOnly() = false for a backend that declared read-only")
		}
	}
	if n := calls(t, b, "ReadOnly"); n != 1 {
		t.Errorf("the plugin was asked %d times whether it is read-only, want once (when opened)", n)
	}
	dead := p.PID()
	killPlugin(t, p)
	start := time.Now()
	if !ro.ReadOnly() {
		t.Errorf("ReadOnly() = false after the plugin died")
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("ReadOnly() took %v with the plugin dead, want an answer without I/O", took)
	}
	// The host may not have noticed the death yet (it still reports the
	// dead process), but no new process may have been started.
	if pid := p.PID(); pid != 0 && pid != dead {
		t.Errorf("ReadOnly() started plugin process %d", pid)
	}
	// The plugin's own refusal keeps its kind.
	if _, err := b.CompareAndSwap(ctxFor(t, 10*time.Second), "k", "", []byte("v")); !errors.Is(err, provider.ErrReadOnly) {
		t.Errorf("CompareAndSwap on the read-only backend: err = %v, want ErrReadOnly", err)
	}
}

// TestIssuerDeclares checks that the host's issuer implements exactly the
// optional interfaces the served issuer does, with its policy.
func TestIssuerDeclares(t *testing.T) {
	for _, tc := range []struct {
		caps                 string
		generate, introspect bool
		policy               provider.RefreshPolicy
	}{
		{caps: ""},
		{caps: "generate", generate: true},
		{caps: "introspect", introspect: true},
		{caps: "refresh-after-expiry", policy: provider.RefreshPolicy{RefreshAfterExpiry: true}},
		{caps: "generate,introspect,refresh-after-expiry,revokes", generate: true, introspect: true,
			policy: provider.RefreshPolicy{RefreshAfterExpiry: true, RejectionRevokesAuthToken: true}},
	} {
		t.Run(cmp.Or(tc.caps, "none"), func(t *testing.T) {
			iss := issuerOf(t, open(t, "testplugin", []string{"-serve=issuer", "-issuer-caps=" + tc.caps}))
			ctx := ctxFor(t, 10*time.Second)
			gen, isGen := iss.(provider.Generator)
			in, isIn := iss.(provider.Introspector)
			if isGen != tc.generate || isIn != tc.introspect {
				t.Errorf("Generator %v, Introspector %v; want %v, %v", isGen, isIn, tc.generate, tc.introspect)
			}
			if got := provider.PolicyOf(iss); got != tc.policy {
				t.Errorf("policy %+v, want %+v", got, tc.policy)
			}
			if _, err := iss.Refresh(ctx, provider.Pair{AuthToken: "a", RefreshToken: "r"}); err != nil {
				t.Errorf("Refresh: %v", err)
			}
			if isGen {
				if p, err := gen.Generate(ctx, provider.GenerateRequest{Lifetime: time.Hour, Description: "d"}); err != nil || p.AuthToken != "auth-d" {
					t.Errorf("Generate = %v, %v", p, err)
				}
			}
			if isIn {
				for token, want := range map[string]bool{"r": true, "spent-r": false} {
					if active, err := in.RefreshTokenActive(ctx, provider.Pair{AuthToken: "a", RefreshToken: token}); err != nil || active != want {
						t.Errorf("RefreshTokenActive(%q) = %v, %v; want %v", token, active, err, want)
					}
				}
				_, err := in.RefreshTokenActive(ctx, provider.Pair{AuthToken: "a", RefreshToken: "err:PERMISSION,TRANSIENT"})
				if !errors.Is(err, provider.ErrPermission) || !provider.IsTransient(err) {
					t.Errorf("RefreshTokenActive failing: err = %v, want transient ErrPermission", err)
				}
			}
		})
	}
}

// TestOldPlugin: a plugin built before the policy, the pair times and
// RefreshTokenActive existed keeps working, with the zero policy and
// unknown times; an RPC it lacks is provider.ErrUnsupported.
func TestOldPlugin(t *testing.T) {
	ctx := ctxFor(t, 20*time.Second)
	iss := issuerOf(t, open(t, "testplugin", []string{"-old"}))
	if _, ok := iss.(provider.Introspector); ok {
		t.Errorf("an old plugin's issuer is an Introspector")
	}
	if got := provider.PolicyOf(iss); got != (provider.RefreshPolicy{}) {
		t.Errorf("an old plugin's policy = %+v, want the zero policy", got)
	}
	in := provider.Pair{AuthToken: "a", RefreshToken: "r", ValidUntil: time.Unix(1_700_000_000, 0), Generation: 3,
		RefreshValidUntil: time.Unix(1_800_000_000, 0), IssuedAt: time.Unix(1_699_990_000, 0)}
	got, err := iss.Refresh(ctx, in)
	if err != nil {
		t.Fatalf("Refresh through an old plugin: %v", err)
	}
	want := provider.Pair{AuthToken: "a+", RefreshToken: "r+", ValidUntil: time.Unix(1_700_003_600, 0), Generation: 3}
	if got != want {
		t.Errorf("Refresh = %v (refresh valid until %v, issued at %v), want %v with both unknown", got, got.RefreshValidUntil, got.IssuedAt, want)
	}
	gen, ok := iss.(provider.Generator)
	if !ok {
		t.Fatalf("an old plugin that declares generate is no Generator")
	}
	if p, err := gen.Generate(ctx, provider.GenerateRequest{Lifetime: time.Hour, Description: "d"}); err != nil || p.AuthToken != "auth-d" {
		t.Errorf("Generate through an old plugin = %v, %v", p, err)
	}

	// One that declares introspection without the RPC: Unimplemented
	// arrives as ErrUnsupported, which callers take for "cannot tell".
	liar := issuerOf(t, open(t, "testplugin", []string{"-old", "-issuer-caps=introspect"}))
	n, ok := liar.(provider.Introspector)
	if !ok {
		t.Fatalf("a plugin that declares introspect is no Introspector")
	}
	if _, err := n.RefreshTokenActive(ctx, in); !errors.Is(err, provider.ErrUnsupported) || provider.IsTransient(err) {
		t.Errorf("RefreshTokenActive on a plugin without the RPC: err = %v, want permanent ErrUnsupported", err)
	}
}

// TestCapabilitiesChangeAfterRestart: a restarted process is asked again;
// values opened under other capabilities then fail without sending the
// call, and a newly opened value matches the new ones.
func TestCapabilitiesChangeAfterRestart(t *testing.T) {
	capsFile := filepath.Join(t.TempDir(), "caps")
	setCaps := func(caps string) {
		t.Helper()
		if err := os.WriteFile(capsFile, []byte(caps), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	setCaps("generate")
	p := open(t, "testplugin", []string{"-issuer-caps=@" + capsFile})
	ctx := ctxFor(t, 30*time.Second)
	pair := provider.Pair{AuthToken: "a", RefreshToken: "r"}
	old := issuerOf(t, p)
	if _, ok := old.(provider.Introspector); ok {
		t.Fatalf("an issuer that declared generate only is an Introspector")
	}

	// Same capabilities after a restart: calls go on.
	killPlugin(t, p)
	if _, err := old.Refresh(ctx, pair); err != nil {
		t.Fatalf("Refresh after a restart with the same capabilities: %v", err)
	}

	// Other capabilities: concurrent calls all fail, none reaches the
	// plugin, and the error says what changed.
	setCaps("generate,introspect,refresh-after-expiry")
	killPlugin(t, p)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for n := range errs {
		wg.Go(func() { _, errs[n] = old.Refresh(ctx, pair) })
	}
	wg.Wait()
	for _, err := range errs {
		if !errors.Is(err, ErrCapabilitiesChanged) || !errors.Is(err, provider.ErrNotDelivered) || !provider.IsTransient(err) {
			t.Fatalf("Refresh after the capabilities changed: err = %v, want transient ErrCapabilitiesChanged and ErrNotDelivered", err)
		}
	}
	for _, want := range []string{"[generate, introspect, refresh after expiry]", "[generate]", "open the plugin's issuer again"} {
		if !strings.Contains(errs[0].Error(), want) {
			t.Errorf("error %q does not say %q", errs[0], want)
		}
	}
	b := backendOf(t, p)
	if n := calls(t, b, "Refresh"); n != 0 {
		t.Errorf("the plugin answered %d refreshes after its capabilities changed, want 0", n)
	}

	// A newly opened issuer tells the new truth and works.
	cur := issuerOf(t, p)
	in, ok := cur.(provider.Introspector)
	if !ok || !provider.PolicyOf(cur).RefreshAfterExpiry {
		t.Fatalf("the reopened issuer: Introspector %v, policy %+v; want both declared", ok, provider.PolicyOf(cur))
	}
	if active, err := in.RefreshTokenActive(ctx, pair); err != nil || !active {
		t.Errorf("RefreshTokenActive through the reopened issuer = %v, %v", active, err)
	}
	if _, err := cur.Refresh(ctx, pair); err != nil {
		t.Errorf("Refresh through the reopened issuer: %v", err)
	}

	// Back to the old capabilities: the old value works again, the new
	// one fails.
	setCaps("generate")
	killPlugin(t, p)
	if _, err := old.Refresh(ctx, pair); err != nil {
		t.Errorf("Refresh through the first issuer once its capabilities are back: %v", err)
	}
	if _, err := cur.Refresh(ctx, pair); !errors.Is(err, ErrCapabilitiesChanged) {
		t.Errorf("Refresh through the second issuer: err = %v, want ErrCapabilitiesChanged", err)
	}
}
