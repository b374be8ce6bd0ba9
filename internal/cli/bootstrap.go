package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/credhelper/credhelper/config"
	"github.com/credhelper/credhelper/provider"
)

// maxBootstrapOutput bounds what a bootstrap command may print.
const maxBootstrapOutput = provider.MaxRecordSize

// bootstrapper builds the profile's [bootstrap], or nil when it has none.
// A session token is read afresh at each use (it may be rotated); a
// command's output is never logged or quoted, since it holds secrets.
func (a *app) bootstrapper(w *wired) (provider.Bootstrapper, error) {
	b := w.profile.Bootstrap
	if !b.Configured() {
		return nil, nil
	}
	timeout := b.Timeout.Duration
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	switch {
	case len(b.Command) > 0 && (b.SessionTokenEnv != "" || b.SessionTokenFile != ""):
		return nil, usagef("profile %q: [bootstrap] sets both command and a session token: choose one", w.name)
	case len(b.Command) > 0:
		return provider.BootstrapperFunc(func(ctx context.Context) (provider.Pair, error) {
			return runBootstrapCommand(ctx, b.Command, timeout)
		}), nil
	}
	gen, ok := w.issuer.(provider.Generator)
	if w.issuer == nil || !ok {
		return nil, usagef("profile %q: [bootstrap] session_token_* needs an issuer that can generate pairs (momento, dev); for others use command", w.name)
	}
	if b.TTL.Duration <= 0 {
		return nil, usagef("profile %q: [bootstrap] needs ttl, the lifetime of a generated pair (e.g. ttl = \"720h\")", w.name)
	}
	return provider.BootstrapperFunc(func(ctx context.Context) (provider.Pair, error) {
		session, err := bootstrapSession(b)
		if err != nil {
			return provider.Pair{}, err
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return gen.Generate(ctx, provider.GenerateRequest{SessionToken: session, Lifetime: b.TTL.Duration, Description: "credhelper bootstrap of " + w.name})
	}), nil
}

func bootstrapSession(b config.Bootstrap) (string, error) {
	if b.SessionTokenEnv != "" {
		v, ok := os.LookupEnv(b.SessionTokenEnv)
		if !ok || v == "" {
			return "", fmt.Errorf("bootstrap: $%s is not set", b.SessionTokenEnv)
		}
		return provider.CleanSecret(v, "$"+b.SessionTokenEnv)
	}
	data, err := readSecretFile(expandHome(b.SessionTokenFile))
	if err != nil {
		return "", fmt.Errorf("bootstrap: session_token_file: %w", err)
	}
	return provider.CleanSecret(string(data), "session_token_file "+b.SessionTokenFile)
}

// runBootstrapCommand runs argv and decodes the record it prints.
func runBootstrapCommand(ctx context.Context, argv []string, timeout time.Duration) (provider.Pair, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out limitedBuffer
	out.limit = maxBootstrapOutput
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return provider.Pair{}, fmt.Errorf("bootstrap: %s did not finish within %v", argv[0], timeout)
		}
		return provider.Pair{}, fmt.Errorf("bootstrap: %s: %v", argv[0], err) // not %w: its exit code is not ours
	}
	if out.over {
		return provider.Pair{}, fmt.Errorf("bootstrap: %s printed more than %d bytes", argv[0], maxBootstrapOutput)
	}
	rec, err := provider.DecodeRecord(bytes.TrimSpace(out.Bytes()))
	if err != nil {
		return provider.Pair{}, fmt.Errorf("bootstrap: %s did not print a record: %w", argv[0], err)
	}
	return rec.Pair, nil
}

// limitedBuffer keeps at most limit bytes and notes whether more came.
type limitedBuffer struct {
	bytes.Buffer
	limit int
	over  bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.limit - b.Len(); len(p) > room {
		b.over = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return 0, errors.New("output too large")
	}
	return b.Buffer.Write(p)
}

var _ io.Writer = (*limitedBuffer)(nil)
