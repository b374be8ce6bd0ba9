package awssm_test

// These tests run against a real moto_server (moto 5.2.1). They find it
// through AWS_ENDPOINT_URL_SECRETS_MANAGER, as scripts/testenv.sh exports it,
// and fail, never skip, when it is not set.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/credhelper/credhelper/backends/awssm"
	"github.com/credhelper/credhelper/backendtest"
	"github.com/credhelper/credhelper/provider"
)

// requireMoto fails the test unless a Secrets Manager endpoint is configured.
func requireMoto(t testing.TB) {
	t.Helper()
	if os.Getenv("AWS_ENDPOINT_URL_SECRETS_MANAGER") == "" {
		t.Fatal("awssm tests need moto_server, found through AWS_ENDPOINT_URL_SECRETS_MANAGER, which is unset: " +
			"run them with `scripts/testenv.sh go test ./backends/awssm/...` (it starts moto_server; install it with pip install 'moto[server]==5.2.1')")
	}
}

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newBackend(t testing.TB, optFns ...func(*awssm.Options)) *awssm.Backend {
	t.Helper()
	requireMoto(t)
	b, err := awssm.NewFromConfig(ctxFor(t), optFns...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawClient is another Secrets Manager client, the way a person with the aws
// CLI or a rotation lambda reaches the same secret.
func rawClient(t testing.TB) *secretsmanager.Client {
	t.Helper()
	requireMoto(t)
	cfg, err := config.LoadDefaultConfig(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	return secretsmanager.NewFromConfig(cfg)
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9/_+=.@-]+`)

// secretName returns a secret name no other test uses.
func secretName(t testing.TB) string {
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	return "credhelper-test/" + unsafeName.ReplaceAllString(t.Name(), "_") + "-" + hex.EncodeToString(r[:])
}

// stages returns the secret's VersionIdsToStages.
func stages(t testing.TB, c *secretsmanager.Client, key string) map[string][]string {
	t.Helper()
	d, err := c.DescribeSecret(ctxFor(t), &secretsmanager.DescribeSecretInput{SecretId: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	return d.VersionIdsToStages
}

func holderOf(m map[string][]string, label string) []string {
	var ids []string
	for id, labels := range m {
		for _, l := range labels {
			if l == label {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// rawCurrent reads AWSCURRENT with the other client.
func rawCurrent(t testing.TB, c *secretsmanager.Client, key string) *secretsmanager.GetSecretValueOutput {
	t.Helper()
	out, err := c.GetSecretValue(ctxFor(t), &secretsmanager.GetSecretValueInput{SecretId: aws.String(key), VersionStage: aws.String("AWSCURRENT")})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, backendtest.Config{
		New: func(t testing.TB) provider.Backend { return newBackend(t) },
		Key: secretName,
	})
}

// TestMomentoRotationSecret reads a secret as Momento's rotation lambda
// leaves it, then refreshes it without losing the lambda's fields, and leaves
// the labels as a rotation would: AWSCURRENT and AWSPREVIOUS, nothing else.
func TestMomentoRotationSecret(t *testing.T) {
	b, c, key := newBackend(t), rawClient(t), secretName(t)
	lambda := `{"apiKey": "eyJhbGciOiJIUzI1NiJ9.eyJjIjoiY2FjaGUuY2VsbC00LXVzLXdlc3QtMi0xLnByb2QuYTEubW9tZW50b2hxLmNvbSJ9.c2ln", "refreshToken": "rt-from-lambda", "validUntil": 4102444800}`
	created, err := c.CreateSecret(ctxFor(t), &secretsmanager.CreateSecretInput{Name: aws.String(key), SecretString: aws.String(lambda)})
	if err != nil {
		t.Fatal(err)
	}
	e, err := b.Load(ctxFor(t), key)
	if err != nil {
		t.Fatalf("Load of a rotation-lambda secret: %v", err)
	}
	if string(e.Value) != lambda || string(e.Version) != aws.ToString(created.VersionId) {
		t.Fatalf("Load = %q at %q, want the stored value unchanged at %q", e.Value, e.Version, aws.ToString(created.VersionId))
	}
	rec, err := provider.DecodeRecord(e.Value)
	if err != nil {
		t.Fatalf("the lambda's record does not decode: %v", err)
	}
	if ep, err := rec.Pair.ResolveEndpoint(); err != nil || ep != "cell-4-us-west-2-1.prod.a1.momentohq.com" {
		t.Errorf("endpoint = %q, %v", ep, err)
	}
	rec.SetExtra("rotatedBy", []byte(`"lambda-v2"`))
	rec.Pair.RefreshToken = "rt-from-credhelper"
	rec.Pair.Generation = 1
	next, err := rec.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// The same secret, addressed by its ARN, as --backend awssm:ARN does.
	arn := aws.ToString(created.ARN)
	ver, err := b.CompareAndSwap(ctxFor(t), arn, e.Version, next)
	if err != nil {
		t.Fatalf("CompareAndSwap by ARN: %v", err)
	}
	got := rawCurrent(t, c, key)
	if aws.ToString(got.VersionId) != string(ver) || aws.ToString(got.SecretString) != string(next) {
		t.Fatalf("AWSCURRENT is %q, want the swapped version %q with the new value", aws.ToString(got.VersionId), ver)
	}
	want := map[string][]string{string(e.Version): {"AWSPREVIOUS"}, string(ver): {"AWSCURRENT"}}
	if m := stages(t, c, key); !sameStages(m, want) {
		t.Errorf("labels after a swap = %v, want %v", m, want)
	}
}

func sameStages(got, want map[string][]string) bool {
	if len(got) != len(want) {
		return false
	}
	for id, w := range want {
		g := got[id]
		if len(g) != len(w) {
			return false
		}
		for _, l := range w {
			found := false
			for _, x := range g {
				found = found || x == l
			}
			if !found {
				return false
			}
		}
	}
	return true
}

// TestRefusesForeignSecrets checks that a binary or non-JSON secret is
// refused by Load, CompareAndSwap and CheckWrite, and left untouched.
func TestRefusesForeignSecrets(t *testing.T) {
	b, c := newBackend(t), rawClient(t)
	for _, tc := range []struct {
		name   string
		input  secretsmanager.CreateSecretInput
		marker string
	}{
		{"binary", secretsmanager.CreateSecretInput{SecretBinary: []byte("\x00\x01 binary-marker")}, "binary-marker"},
		{"plain text", secretsmanager.CreateSecretInput{SecretString: aws.String("hunter2-plain-marker")}, "plain-marker"},
		{"JSON array", secretsmanager.CreateSecretInput{SecretString: aws.String(`["array-marker"]`)}, "array-marker"},
		{"JSON string", secretsmanager.CreateSecretInput{SecretString: aws.String(`"string-marker"`)}, "string-marker"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := secretName(t)
			in := tc.input
			in.Name = aws.String(key)
			created, err := c.CreateSecret(ctxFor(t), &in)
			if err != nil {
				t.Fatal(err)
			}
			ver := provider.Version(aws.ToString(created.VersionId))
			check := func(op string, err error) {
				t.Helper()
				if !errors.Is(err, provider.ErrInvalidRecord) || provider.IsTransient(err) {
					t.Errorf("%s: err = %v, want permanent ErrInvalidRecord", op, err)
				} else if strings.Contains(err.Error(), tc.marker) {
					t.Errorf("%s: error leaks the stored value: %v", op, err)
				}
			}
			_, err = b.Load(ctxFor(t), key)
			check("Load", err)
			_, err = b.CompareAndSwap(ctxFor(t), key, ver, backendtest.Value("overwrite"))
			check("CompareAndSwap", err)
			check("CheckWrite", b.CheckWrite(ctxFor(t), key))
			if _, err := b.CompareAndSwap(ctxFor(t), key, "", backendtest.Value("create")); !errors.Is(err, provider.ErrConflict) {
				t.Errorf("create over it: err = %v, want ErrConflict", err)
			}
			got := rawCurrent(t, c, key)
			if aws.ToString(got.VersionId) != string(ver) || !bytes.Equal(got.SecretBinary, in.SecretBinary) || aws.ToString(got.SecretString) != aws.ToString(in.SecretString) {
				t.Fatal("the secret was changed")
			}
			if m := stages(t, c, key); len(m) != 1 {
				t.Errorf("versions were added: %v", m)
			}
		})
	}
}

// TestOutOfBandWrite has another client write the secret with a plain
// PutSecretValue, as a person with the aws CLI would, between Load and
// CompareAndSwap. The swap must report a conflict and the other write must
// survive.
func TestOutOfBandWrite(t *testing.T) {
	// The secret starts from a CreateSecret, as in the field: moto 5.2.1
	// mishandles a plain PutSecretValue after an UpdateSecretVersionStage
	// (it can leave two versions labelled AWSCURRENT), which AWS does not.
	seed := func(t *testing.T, c *secretsmanager.Client) (string, string) {
		key := secretName(t)
		out, err := c.CreateSecret(ctxFor(t), &secretsmanager.CreateSecretInput{Name: aws.String(key), SecretString: aws.String(string(backendtest.Value("seed")))})
		if err != nil {
			t.Fatal(err)
		}
		return key, aws.ToString(out.VersionId)
	}
	outOfBand := func(t testing.TB, c *secretsmanager.Client, key string) string {
		out, err := c.PutSecretValue(ctxFor(t), &secretsmanager.PutSecretValueInput{SecretId: aws.String(key), SecretString: aws.String(string(backendtest.Value("by-hand")))})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.VersionId)
	}
	check := func(t *testing.T, b *awssm.Backend, c *secretsmanager.Client, key, oob string, err error) {
		t.Helper()
		if !errors.Is(err, provider.ErrConflict) {
			t.Fatalf("CompareAndSwap after an out-of-band write: err = %v, want ErrConflict", err)
		}
		e, err := b.Load(ctxFor(t), key)
		if err != nil {
			t.Fatal(err)
		}
		if string(e.Version) != oob || !bytes.Equal(e.Value, backendtest.Value("by-hand")) {
			t.Fatalf("Load after the conflict = version %q, want the out-of-band version %q and value", e.Version, oob)
		}
		m := stages(t, c, key)
		if cur := holderOf(m, "AWSCURRENT"); len(cur) != 1 || cur[0] != oob {
			t.Errorf("AWSCURRENT on %v, want only %s", cur, oob)
		}
		if staged := holderOf(m, awssm.DefaultStagingLabel); len(staged) != 0 {
			t.Errorf("the losing write left its staging label on %v", staged)
		}
	}

	t.Run("BeforeTheSwap", func(t *testing.T) {
		b, c := newBackend(t), rawClient(t)
		key, _ := seed(t, c)
		e, err := b.Load(ctxFor(t), key)
		if err != nil {
			t.Fatal(err)
		}
		oob := outOfBand(t, c, key)
		_, err = b.CompareAndSwap(ctxFor(t), key, e.Version, backendtest.Value("engine"))
		check(t, b, c, key, oob, err)
	})

	// The out-of-band write lands after the swap checked the current
	// version and staged its own, just before it moves AWSCURRENT: only the
	// conditional move stands between it and a lost update.
	t.Run("DuringTheSwap", func(t *testing.T) {
		c := rawClient(t)
		key, _ := seed(t, c)
		var oob string
		api := &hookAPI{Client: c, beforeMove: func() { oob = outOfBand(t, c, key) }}
		b, err := awssm.New(api)
		if err != nil {
			t.Fatal(err)
		}
		e, err := b.Load(ctxFor(t), key)
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.CompareAndSwap(ctxFor(t), key, e.Version, backendtest.Value("engine"))
		if oob == "" {
			t.Fatal("the swap never tried to move AWSCURRENT")
		}
		check(t, b, c, key, oob, err)
	})
}

// hookAPI is the real client with hooks around the move of AWSCURRENT.
type hookAPI struct {
	*secretsmanager.Client
	beforeMove func()
	// afterMove, if set, replaces the move's result once the move is done.
	afterMove func(ctx context.Context, in *secretsmanager.UpdateSecretVersionStageInput) (*secretsmanager.UpdateSecretVersionStageOutput, error)
}

func (h *hookAPI) UpdateSecretVersionStage(ctx context.Context, in *secretsmanager.UpdateSecretVersionStageInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretVersionStageOutput, error) {
	if aws.ToString(in.VersionStage) != "AWSCURRENT" {
		return h.Client.UpdateSecretVersionStage(ctx, in, optFns...)
	}
	if h.beforeMove != nil {
		h.beforeMove()
	}
	out, err := h.Client.UpdateSecretVersionStage(ctx, in, optFns...)
	if err == nil && h.afterMove != nil {
		return h.afterMove(ctx, in)
	}
	return out, err
}

// TestRetriedSwap checks that repeating a CompareAndSwap with the same
// expected version and value, as after a lost reply, is a no-op that
// reports the same version, and that it is a conflict once the secret has
// moved on.
func TestRetriedSwap(t *testing.T) {
	b, c, key := newBackend(t), rawClient(t), secretName(t)
	v1 := mustCAS(t, b, key, "", backendtest.Value("one"))
	if again := mustCAS(t, b, key, "", backendtest.Value("one")); again != v1 {
		t.Errorf("retried create = %q, want %q", again, v1)
	}
	v2 := mustCAS(t, b, key, v1, backendtest.Value("two"))
	if again := mustCAS(t, b, key, v1, backendtest.Value("two")); again != v2 {
		t.Errorf("retried swap = %q, want %q", again, v2)
	}
	if m := stages(t, c, key); len(m) != 2 {
		t.Errorf("a retried swap added versions: %v", m)
	}
	mustCAS(t, b, key, v2, backendtest.Value("three"))
	if _, err := b.CompareAndSwap(ctxFor(t), key, v1, backendtest.Value("two")); !errors.Is(err, provider.ErrConflict) {
		t.Fatalf("a retry after a later write: err = %v, want ErrConflict", err)
	}
	if e, _ := b.Load(ctxFor(t), key); !bytes.Equal(e.Value, backendtest.Value("three")) {
		t.Fatal("a stale retry overwrote the newer value")
	}

	// The move went through but its reply was lost, twice over: once as a
	// transient failure the caller retries, once as a repeat the SDK's own
	// retryer sent, which the service refuses because AWSCURRENT moved.
	t.Run("LostReply", func(t *testing.T) {
		c := rawClient(t)
		key := secretName(t)
		v1 := mustCAS(t, newBackend(t), key, "", backendtest.Value("one"))
		lost := &hookAPI{Client: c, afterMove: func(context.Context, *secretsmanager.UpdateSecretVersionStageInput) (*secretsmanager.UpdateSecretVersionStageOutput, error) {
			return nil, context.DeadlineExceeded
		}}
		b, _ := awssm.New(lost)
		if _, err := b.CompareAndSwap(ctxFor(t), key, v1, backendtest.Value("two")); !provider.IsTransient(err) {
			t.Fatalf("lost reply: err = %v, want transient", err)
		}
		lost.afterMove = nil
		v2 := mustCAS(t, b, key, v1, backendtest.Value("two"))

		resent := &hookAPI{Client: c, afterMove: func(ctx context.Context, in *secretsmanager.UpdateSecretVersionStageInput) (*secretsmanager.UpdateSecretVersionStageOutput, error) {
			return c.UpdateSecretVersionStage(ctx, in)
		}}
		b, _ = awssm.New(resent)
		v3 := mustCAS(t, b, key, v2, backendtest.Value("three"))
		if e, _ := b.Load(ctxFor(t), key); e.Version != v3 || !bytes.Equal(e.Value, backendtest.Value("three")) {
			t.Fatalf("after a resent move: Load = %q, want %q", e.Version, v3)
		}
		if staged := holderOf(stages(t, c, key), awssm.DefaultStagingLabel); len(staged) != 0 {
			t.Errorf("staging label left on %v", staged)
		}
	})
}

func mustCAS(t testing.TB, b *awssm.Backend, key string, expected provider.Version, v []byte) provider.Version {
	t.Helper()
	ver, err := b.CompareAndSwap(ctxFor(t), key, expected, v)
	if err != nil {
		t.Fatalf("CompareAndSwap(%q): %v", expected, err)
	}
	return ver
}

// TestValuelessSecret covers a secret created without a value, as
// Terraform's aws_secretsmanager_secret does: Load says not found, and of
// several concurrent creates exactly one stores the first value.
func TestValuelessSecret(t *testing.T) {
	b, c, key := newBackend(t), rawClient(t), secretName(t)
	if _, err := c.CreateSecret(ctxFor(t), &secretsmanager.CreateSecretInput{Name: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load(ctxFor(t), key); !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("Load of a secret without a value: err = %v, want ErrNotFound", err)
	}
	const n = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []provider.Version
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ver, err := b.CompareAndSwap(ctxFor(t), key, "", backendtest.Value(string(rune('a'+i))))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				winners = append(winners, ver)
			case !errors.Is(err, provider.ErrConflict):
				t.Errorf("a losing create: err = %v, want ErrConflict", err)
			}
		}()
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d of %d creates won, want 1", len(winners), n)
	}
	if e, err := b.Load(ctxFor(t), key); err != nil || e.Version != winners[0] {
		t.Fatalf("Load = %q, %v; want the winner %q", e.Version, err, winners[0])
	}
}

// TestErrorsFromMoto maps the service's real answers.
func TestErrorsFromMoto(t *testing.T) {
	b, c := newBackend(t), rawClient(t)

	t.Run("NotFound", func(t *testing.T) {
		key := secretName(t)
		_, err := b.Load(ctxFor(t), key)
		if !errors.Is(err, provider.ErrNotFound) || provider.IsTransient(err) {
			t.Fatalf("err = %v, want permanent ErrNotFound", err)
		}
		if err := b.CheckWrite(ctxFor(t), key); !errors.Is(err, provider.ErrNotFound) {
			t.Fatalf("CheckWrite: err = %v, want ErrNotFound", err)
		}
		arn := "arn:aws:secretsmanager:us-east-1:123456789012:secret:" + key + "-AbCdEf"
		if _, err := b.CompareAndSwap(ctxFor(t), arn, "", backendtest.Value("x")); !errors.Is(err, provider.ErrNotFound) {
			t.Fatalf("create by ARN: err = %v, want ErrNotFound (an ARN cannot be created)", err)
		}
	})

	t.Run("ScheduledForDeletion", func(t *testing.T) {
		key := secretName(t)
		ver := mustCAS(t, b, key, "", backendtest.Value("doomed"))
		if _, err := c.DeleteSecret(ctxFor(t), &secretsmanager.DeleteSecretInput{SecretId: aws.String(key), RecoveryWindowInDays: aws.Int64(7)}); err != nil {
			t.Fatal(err)
		}
		permanent := func(op string, err error) {
			t.Helper()
			if err == nil || provider.IsTransient(err) || errors.Is(err, provider.ErrNotFound) || errors.Is(err, provider.ErrConflict) {
				t.Errorf("%s: err = %v, want a permanent error of its own", op, err)
			} else if !strings.Contains(err.Error(), "restore-secret") {
				t.Errorf("%s: error does not say how to restore the secret: %v", op, err)
			}
		}
		_, err := b.Load(ctxFor(t), key)
		permanent("Load", err)
		_, err = b.CompareAndSwap(ctxFor(t), key, ver, backendtest.Value("x"))
		permanent("CompareAndSwap", err)
		_, err = b.CompareAndSwap(ctxFor(t), key, "", backendtest.Value("x"))
		permanent("create", err)
	})

	t.Run("Unreachable", func(t *testing.T) {
		t.Setenv("AWS_MAX_ATTEMPTS", "1")
		dead := newBackend(t, func(o *awssm.Options) { o.EndpointURL = "http://127.0.0.1:1" })
		_, err := dead.Load(ctxFor(t), "any")
		if !provider.IsTransient(err) {
			t.Fatalf("connection refused: err = %v, want transient", err)
		}
	})

	t.Run("CheckWrite", func(t *testing.T) {
		key := secretName(t)
		ver := mustCAS(t, b, key, "", backendtest.Value("check"))
		if err := b.CheckWrite(ctxFor(t), key); err != nil {
			t.Fatalf("CheckWrite: %v", err)
		}
		m := stages(t, c, key)
		if len(m) != 1 || holderOf(m, "AWSCURRENT")[0] != string(ver) || len(holderOf(m, awssm.DefaultStagingLabel)) != 0 {
			t.Fatalf("CheckWrite changed the secret: %v", m)
		}
	})
}

// TestNewFromConfigRegion checks the region rules: an ARN brings its own
// region; a name needs one configured.
func TestNewFromConfigRegion(t *testing.T) {
	requireMoto(t)
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	b := newBackend(t)
	_, err := b.Load(ctxFor(t), "by-name")
	if err == nil || !strings.Contains(err.Error(), "region") {
		t.Fatalf("Load by name without a region: err = %v, want one about the region", err)
	}
	_, err = b.Load(ctxFor(t), "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf")
	if !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("Load by ARN without a configured region: err = %v, want ErrNotFound from the service", err)
	}
	withRegion := newBackend(t, func(o *awssm.Options) { o.Region = "us-east-1" })
	if _, err := withRegion.Load(ctxFor(t), "by-name-"+secretName(t)); !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("Load with Options.Region: err = %v, want ErrNotFound", err)
	}
}

// BenchmarkLoad and BenchmarkCompareAndSwap report the median latency of
// one call as median-ms, besides the mean.
func BenchmarkLoad(b *testing.B) {
	be, key := newBackend(b), secretName(b)
	mustCAS(b, be, key, "", backendtest.Value("bench"))
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := be.Load(context.Background(), key); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	reportMedian(b, lat)
}

func BenchmarkCompareAndSwap(b *testing.B) {
	be, key := newBackend(b), secretName(b)
	ver := mustCAS(b, be, key, "", backendtest.Value("bench"))
	values := [][]byte{backendtest.Value("bench-a"), backendtest.Value("bench-b")}
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		var err error
		if ver, err = be.CompareAndSwap(context.Background(), key, ver, values[len(lat)%2]); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	reportMedian(b, lat)
}

func reportMedian(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/float64(time.Millisecond), "median-ms")
}

// TestEndpointSettings checks the ways to point the backend at an endpoint:
// AWS_ENDPOINT_URL_SECRETS_MANAGER (every other test), the global
// AWS_ENDPOINT_URL, and Options.EndpointURL over both.
func TestEndpointSettings(t *testing.T) {
	requireMoto(t)
	moto := os.Getenv("AWS_ENDPOINT_URL_SECRETS_MANAGER")
	load := func(t *testing.T, optFns ...func(*awssm.Options)) error {
		b, err := awssm.NewFromConfig(ctxFor(t), optFns...)
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.Load(ctxFor(t), secretName(t))
		return err
	}
	t.Run("AWS_ENDPOINT_URL", func(t *testing.T) {
		t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "")
		t.Setenv("AWS_ENDPOINT_URL", moto)
		if err := load(t); !errors.Is(err, provider.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound from moto", err)
		}
	})
	t.Run("EndpointURL", func(t *testing.T) {
		t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://127.0.0.1:1")
		if err := load(t, func(o *awssm.Options) { o.EndpointURL = moto }); !errors.Is(err, provider.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound from moto", err)
		}
	})
}
