package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/credhelper/credhelper/provider"
)

// maxStdin bounds what commands read from standard input.
const maxStdin = 1 << 20

func (a *app) getCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "get",
		Short: "Print the current auth token, refreshing it first if it is due",
		Long: `get prints the profile's current auth token, alone, on standard output. If
the pair is due for refresh it is refreshed through the fleet-safe protocol
first; every other process sharing the credential adopts the new pair.`,
		Example: `  credhelper get --backend file:./cred.json
  export MOMENTO_API_KEY=$(credhelper get --profile prod)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := a.credential(cmd.Context(), a.profile)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(a.stdout, p.AuthToken)
			return err
		},
	}
}

func (a *app) refreshCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "refresh",
		Short: "Refresh the credential now if it is due (--force: even if it is not)",
		Long: `refresh runs the refresh protocol for the profile: with --force it spends the
current refresh token even if the pair is fresh (unless another instance has
already committed a newer generation, which is then adopted). It prints the
resulting status, never a token.`,
		Example: `  credhelper refresh --profile prod --force`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w, err := a.wire(cmd.Context(), a.profile)
			if err != nil {
				return err
			}
			defer w.Close()
			if w.issuer == nil {
				return usagef("refresh needs an issuer: %s", w.resolved.HowToSet("issuer"))
			}
			e, err := a.engine(w)
			if err != nil {
				return err
			}
			var p provider.Pair
			if force {
				p, err = e.Refresh(cmd.Context())
			} else {
				p, err = e.Credential(cmd.Context())
			}
			if cerr := a.closeEngine(e, w); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			return writeStatus(a.stdout, w.key, statusOf(p, nil, time.Now()), false)
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "refresh even if the pair is not due")
	return cmd
}

// status is what `credhelper status` reports: never a token.
type status struct {
	Key              string     `json:"key"`
	Generation       uint64     `json:"generation"`
	Endpoint         string     `json:"endpoint,omitempty"`
	Never            bool       `json:"neverExpires"`
	ValidUntil       *time.Time `json:"validUntil,omitempty"`
	SecondsLeft      int64      `json:"secondsLeft"`
	Valid            bool       `json:"valid"`
	TokenForm        string     `json:"tokenForm"`
	AuthFingerprint  string     `json:"authTokenSHA256"`
	LeaseHolder      string     `json:"leaseHolder,omitempty"`
	LeaseExpires     *time.Time `json:"leaseExpires,omitempty"`
	LineageBroken    bool       `json:"lineageBroken,omitempty"`
	LineageBrokenWhy string     `json:"lineageBrokenReason,omitempty"`
	// IssuedAt and RefreshValidUntil are the record's, when known.
	IssuedAt          *time.Time `json:"issuedAt,omitempty"`
	RefreshValidUntil *time.Time `json:"refreshValidUntil,omitempty"`
	// Refreshable reports an expired auth token whose issuer refreshes
	// after expiry (OAuth2) and whose refresh token is not known expired.
	Refreshable bool `json:"refreshableAfterExpiry,omitempty"`
	// BelowMinValidity reports a valid pair with less than the profile's
	// min_validity left: get refreshes it first, or refuses it.
	BelowMinValidity   bool  `json:"belowMinValidity,omitempty"`
	MinValiditySeconds int64 `json:"minValiditySeconds"`
}

// withMinValidity marks a valid pair with less than minValidity left.
func (s status) withMinValidity(minValidity time.Duration, now time.Time, p provider.Pair) status {
	s.MinValiditySeconds = int64(minValidity.Seconds())
	s.BelowMinValidity = s.Valid && !p.Never() && !p.ValidFor(now, minValidity)
	return s
}

func statusOf(p provider.Pair, rec *provider.Record, now time.Time) status {
	s := status{Generation: p.Generation, Never: p.Never(), Valid: p.Never() || now.Before(p.ValidUntil), AuthFingerprint: provider.Fingerprint(p.AuthToken)}
	s.Endpoint, _ = p.ResolveEndpoint()
	switch info, err := provider.ParseAuthToken(p.AuthToken); {
	case err == nil:
		s.TokenForm = string(info.Form)
	case len(p.AuthToken) > 16<<10:
		// Too large for the decoder to look at: likely an opaque OAuth2
		// token, which is legitimate, not a broken one.
		s.TokenForm = string(provider.TokenOpaque) + " (over 16 KiB, not decoded)"
	default:
		s.TokenForm = "undecodable"
	}
	if !p.Never() {
		vu := p.ValidUntil.UTC()
		s.ValidUntil = &vu
		s.SecondsLeft = int64(p.ValidUntil.Sub(now).Seconds())
	}
	if rec != nil && rec.Lease != nil {
		s.LeaseHolder = rec.Lease.Holder
		le := rec.Lease.Expires.UTC()
		s.LeaseExpires = &le
	}
	if rec != nil && rec.Broken != nil && rec.Broken.Generation == p.Generation {
		s.LineageBroken, s.LineageBrokenWhy = true, rec.Broken.Reason
	}
	if !p.IssuedAt.IsZero() {
		t := p.IssuedAt.UTC()
		s.IssuedAt = &t
	}
	if !p.RefreshValidUntil.IsZero() {
		t := p.RefreshValidUntil.UTC()
		s.RefreshValidUntil = &t
	}
	return s
}

// withPolicy marks an expired auth token that its issuer can still renew.
func (s status) withPolicy(pol provider.RefreshPolicy, now time.Time) status {
	s.Refreshable = !s.Valid && !s.LineageBroken && pol.RefreshAfterExpiry && (s.RefreshValidUntil == nil || now.Before(*s.RefreshValidUntil))
	return s
}

func writeStatus(w io.Writer, key string, s status, asJSON bool) error {
	s.Key = key
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	validity := "valid"
	switch {
	case s.LineageBroken:
		validity = "LINEAGE BROKEN (" + s.LineageBrokenWhy + "): store a new pair with 'credhelper generate' or 'credhelper put'"
	case s.Refreshable:
		validity = "auth token expired; the next get refreshes it with its refresh token"
	case !s.Valid && s.RefreshValidUntil != nil && !time.Now().Before(*s.RefreshValidUntil):
		validity = "EXPIRED, and so is its refresh token: store a new pair with 'credhelper generate' or 'credhelper put'"
	case !s.Valid:
		validity = "EXPIRED: store a new pair with 'credhelper generate' or 'credhelper put'"
	case s.BelowMinValidity:
		validity = fmt.Sprintf("valid, but with less than min_validity (%v) left: get refreshes it first, and without a refresh refuses it (--min-validity sets a lower bar)", time.Duration(s.MinValiditySeconds)*time.Second)
	}
	until, left := "never", "forever"
	if s.ValidUntil != nil {
		until = s.ValidUntil.Format(time.RFC3339)
		left = (time.Duration(s.SecondsLeft) * time.Second).String()
		if s.SecondsLeft < 0 {
			left = "none: expired " + (time.Duration(-s.SecondsLeft) * time.Second).String() + " ago"
		}
	}
	endpoint := s.Endpoint
	if endpoint == "" {
		endpoint = "(not stated)"
	}
	fmt.Fprintf(w, "key:          %s\n", s.Key)
	fmt.Fprintf(w, "status:       %s\n", validity)
	fmt.Fprintf(w, "valid until:  %s\n", until)
	fmt.Fprintf(w, "time left:    %s\n", left)
	if s.IssuedAt != nil {
		fmt.Fprintf(w, "issued at:    %s\n", s.IssuedAt.Format(time.RFC3339))
	}
	if s.RefreshValidUntil != nil {
		fmt.Fprintf(w, "refreshable:  until %s (the refresh token's expiry)\n", s.RefreshValidUntil.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "generation:   %d\n", s.Generation)
	fmt.Fprintf(w, "endpoint:     %s\n", endpoint)
	fmt.Fprintf(w, "token:        %s, sha256 %s…\n", s.TokenForm, s.AuthFingerprint)
	if s.LeaseHolder != "" {
		fmt.Fprintf(w, "refreshing:   claimed by %s until %s\n", s.LeaseHolder, s.LeaseExpires.Format(time.RFC3339))
	}
	return nil
}

func (a *app) statusCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show validity, time left, generation and endpoint (never a token)",
		Long: `status reads the stored record without refreshing it and reports its validity,
time left, generation, endpoint, token form and fingerprint, and any refresh
in flight, and says when a valid pair has less than min_validity left (get
then refreshes it first). It never prints a token. The exit code is 1 if the
pair has expired or its lineage is broken.`,
		Example: `  credhelper status --backend file:./cred.json
  credhelper status --profile prod --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w, err := a.wire(cmd.Context(), a.profile)
			if err != nil {
				return err
			}
			defer w.Close()
			entry, err := w.backend.Load(cmd.Context(), w.key)
			if err != nil {
				return err
			}
			rec, err := provider.DecodeRecord(entry.Value)
			if err != nil {
				return err
			}
			now := time.Now()
			s := statusOf(rec.Pair, rec, now).withMinValidity(w.profile.MinValidity.Duration, now, rec.Pair)
			if w.issuer != nil {
				s = s.withPolicy(provider.PolicyOf(w.issuer), now)
			}
			if err := writeStatus(a.stdout, w.key, s, asJSON); err != nil {
				return err
			}
			if (!s.Valid && !s.Refreshable) || s.LineageBroken {
				return errors.New("the stored pair is not usable")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) putCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "put",
		Aliases: []string{"import"},
		Short:   "Store a pair read as JSON from standard input",
		Long: `put reads one JSON record on standard input, {"apiKey": ..., "refreshToken":
..., "validUntil": <epoch seconds, 0 for never>, "endpoint": ... (optional)},
validates it and stores it with compare-and-swap, replacing any stored pair
(its generation continues from the stored one, so running engines adopt it,
and a broken lineage is cleared). Unknown fields are kept. Files are created
0600.`,
		Example: `  credhelper put --backend file:./cred.json < pair.json
  aws secretsmanager get-secret-value --secret-id old --query SecretString --output text | credhelper put --backend vault:kv/app`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := io.ReadAll(io.LimitReader(a.stdin, maxStdin+1))
			if err != nil {
				return fmt.Errorf("read standard input: %w", err)
			}
			if len(strings.TrimSpace(string(data))) == 0 {
				return usagef("put: standard input is empty: pipe a JSON record into it")
			}
			if f, ok := a.stdin.(*os.File); ok {
				if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0 {
					fmt.Fprintf(a.stderr, "credhelper: warning: standard input is a file that others can read (mode %04o) and it holds a refresh token: chmod 600 it, or delete it once stored\n", fi.Mode().Perm())
				}
			}
			rec, err := provider.DecodeRecord(data)
			if err != nil {
				return usageError{err}
			}
			w, err := a.wire(cmd.Context(), a.profile)
			if err != nil {
				return err
			}
			defer w.Close()
			gen, err := a.store(cmd.Context(), w, rec)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "credhelper: stored generation %d under %s\n", gen, w.key)
			return nil
		},
	}
	return cmd
}

// store writes rec over whatever is stored, continuing the generation
// count so that running engines adopt it.
func (a *app) store(ctx context.Context, w *wired, rec *provider.Record) (uint64, error) {
	now := time.Now()
	// An expired auth token is worth storing only where its refresh token
	// alone can renew it (OAuth2) and is not known to have expired.
	refreshable := w.issuer != nil && provider.PolicyOf(w.issuer).RefreshAfterExpiry &&
		(rec.Pair.RefreshValidUntil.IsZero() || now.Before(rec.Pair.RefreshValidUntil))
	if !rec.Pair.Never() && !now.Before(rec.Pair.ValidUntil) && !refreshable {
		return 0, usagef("the pair expired at %s: store a valid one", rec.Pair.ValidUntil.UTC().Format(time.RFC3339))
	}
	if rec.Pair.IssuedAt.IsZero() {
		// Record when the pair was issued, so every process sizes its
		// refresh window alike: the JWT's iat if it has one, else now.
		rec.Pair.IssuedAt = now.Truncate(time.Second)
		if info, err := provider.ParseAuthToken(rec.Pair.AuthToken); err == nil && !info.IssuedAt.IsZero() && info.IssuedAt.Before(now) {
			rec.Pair.IssuedAt = info.IssuedAt
		}
	}
	if w.profile.Endpoint != "" {
		if err := rec.Pair.CheckEndpoint(w.profile.Endpoint); err != nil {
			return 0, usageError{err}
		}
	}
	rec.Lease, rec.Broken = nil, nil
	for attempt := 0; attempt < 10; attempt++ {
		var expected provider.Version
		entry, err := w.backend.Load(ctx, w.key)
		switch {
		case errors.Is(err, provider.ErrNotFound):
		case err != nil:
			return 0, err
		default:
			expected = entry.Version
			if cur, err := provider.DecodeRecord(entry.Value); err == nil && cur.Pair.Generation >= rec.Pair.Generation {
				rec.Pair.Generation = cur.Pair.Generation + 1
			}
		}
		value, err := rec.Encode()
		if err != nil {
			return 0, usageError{err}
		}
		_, err = w.backend.CompareAndSwap(ctx, w.key, expected, value)
		if errors.Is(err, provider.ErrConflict) {
			continue
		}
		if err != nil {
			return 0, err
		}
		return rec.Pair.Generation, nil
	}
	return 0, fmt.Errorf("%s kept changing while storing; try again: %w", w.key, provider.ErrConflict)
}

func (a *app) generateCommand() *cobra.Command {
	var (
		sessionEnv, out, description string
		ttl                          durationFlag
		never                        bool
	)
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Mint a first pair from the issuer and store it (or print it with --out -)",
		Long: `generate asks the issuer for a new pair, authorized by a session token read
from the environment variable --session-token-env names (never from a flag,
which would show in process listings), with a lifetime of --ttl or --never.
The pair goes straight into the backend. With --out FILE it is written to a
new file created 0600 instead (then store it with 'credhelper put < FILE'),
and with --out - it is printed, so it never lands in a terminal's scrollback
by accident.`,
		Example: `  export MOMENTO_SESSION_TOKEN=...   # from the Momento console
  credhelper generate --issuer momento --session-token-env MOMENTO_SESSION_TOKEN --ttl 720h --backend awssm:momento/authentication-token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case ttl.d.IsSet() && never:
				return usagef("generate: give --ttl DURATION or --never, not both")
			case !ttl.d.IsSet() && !never:
				return usagef("generate: give the pair's lifetime: --ttl DURATION (such as 720h) or --never")
			case ttl.d.IsSet() && ttl.d.Duration == 0:
				return usagef("generate: --ttl %s: the lifetime must be longer than zero, such as 720h", ttl.d)
			}
			if sessionEnv == "" {
				return usagef("generate: --session-token-env VAR is required (the session token is read from $VAR)")
			}
			session, ok := os.LookupEnv(sessionEnv)
			if !ok || session == "" {
				return usagef("generate: $%s is not set: export the session token in it", sessionEnv)
			}
			session, err := cleanSecret(session, "$"+sessionEnv)
			if err != nil {
				return err
			}
			w, err := a.wireFor(cmd.Context(), a.profile, out == "")
			if err != nil {
				return err
			}
			defer w.Close()
			if w.issuer == nil {
				return usagef("generate needs an issuer: %s", w.resolved.HowToSet("issuer"))
			}
			gen, ok := w.issuer.(provider.Generator)
			if !ok {
				return usagef("generate: the issuer %q cannot mint pairs (OAuth2 first pairs come from a browser flow: store one with 'credhelper put')", w.profile.Issuer)
			}
			p, err := gen.Generate(cmd.Context(), provider.GenerateRequest{SessionToken: session, Lifetime: ttl.d.Duration, Never: never, Description: description})
			if err != nil {
				return err
			}
			rec := &provider.Record{Pair: p}
			if out != "" {
				return a.writePair(out, rec)
			}
			g, err := a.store(cmd.Context(), w, rec)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "credhelper: generated and stored generation %d under %s\n", g, w.key)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&sessionEnv, "session-token-env", "", "environment variable holding the session token")
	f.Var(&ttl, "ttl", "lifetime of the pair, e.g. 24h")
	f.BoolVar(&never, "never", false, "mint a pair that never expires")
	f.StringVar(&out, "out", "", "write the pair as JSON to this new file (created 0600) instead of storing it; \"-\" prints it")
	f.StringVar(&description, "description", "", "description stored by the issuer")
	return cmd
}

// writePair writes rec as JSON to a new file created 0600, or to standard
// output for "-", warning when standard output is a file others can read.
func (a *app) writePair(out string, rec *provider.Record) error {
	b, err := rec.Encode()
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if out == "-" {
		if f, ok := a.stdout.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0 {
				fmt.Fprintf(a.stderr, "credhelper: warning: standard output is a file that others can read (mode %04o) and now holds a refresh token: chmod 600 it, or use --out FILE, which creates the file 0600\n", fi.Mode().Perm())
			}
		}
		_, err = a.stdout.Write(b)
		return err
	}
	path := expandHome(out)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return usagef("--out %s exists: it is never overwritten; remove it or name a new file", out)
	}
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("--out %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--out %s: %w", out, err)
	}
	fmt.Fprintf(a.stderr, "credhelper: wrote generation %d to %s (mode 0600): store it with 'credhelper put < %s'\n", rec.Pair.Generation, out, out)
	return nil
}
