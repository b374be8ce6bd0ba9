package awssm

import (
	"context"
	"errors"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/credhelper/credhelper/provider"
)

// stubAPI answers from functions a test sets; an unset function fails the
// test. It records every call as "Operation" or "UpdateSecretVersionStage
// LABEL".
type stubAPI struct {
	t        *testing.T
	get      func(*secretsmanager.GetSecretValueInput) (*secretsmanager.GetSecretValueOutput, error)
	put      func(*secretsmanager.PutSecretValueInput) (*secretsmanager.PutSecretValueOutput, error)
	stage    func(*secretsmanager.UpdateSecretVersionStageInput) (*secretsmanager.UpdateSecretVersionStageOutput, error)
	describe func(*secretsmanager.DescribeSecretInput) (*secretsmanager.DescribeSecretOutput, error)
	create   func(*secretsmanager.CreateSecretInput) (*secretsmanager.CreateSecretOutput, error)

	mu    sync.Mutex
	calls []string
}

func (s *stubAPI) record(c string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
}

func (s *stubAPI) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	s.record("GetSecretValue")
	if aws.ToString(in.VersionStage) != stageCurrent || in.VersionId != nil {
		s.t.Errorf("GetSecretValue without VersionStage=AWSCURRENT: stage %q, id %q", aws.ToString(in.VersionStage), aws.ToString(in.VersionId))
	}
	if s.get == nil {
		s.t.Fatal("unexpected GetSecretValue")
	}
	return s.get(in)
}

func (s *stubAPI) PutSecretValue(_ context.Context, in *secretsmanager.PutSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error) {
	s.record("PutSecretValue")
	if len(in.VersionStages) != 1 || in.VersionStages[0] == stageCurrent || in.VersionStages[0] == stagePending {
		s.t.Errorf("PutSecretValue with VersionStages %q, want only the private label", in.VersionStages)
	}
	if s.put == nil {
		s.t.Fatal("unexpected PutSecretValue")
	}
	return s.put(in)
}

func (s *stubAPI) UpdateSecretVersionStage(_ context.Context, in *secretsmanager.UpdateSecretVersionStageInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretVersionStageOutput, error) {
	s.record("UpdateSecretVersionStage " + aws.ToString(in.VersionStage))
	if s.stage == nil {
		s.t.Fatal("unexpected UpdateSecretVersionStage")
	}
	return s.stage(in)
}

func (s *stubAPI) DescribeSecret(_ context.Context, in *secretsmanager.DescribeSecretInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	s.record("DescribeSecret")
	if s.describe == nil {
		s.t.Fatal("unexpected DescribeSecret")
	}
	return s.describe(in)
}

func (s *stubAPI) CreateSecret(_ context.Context, in *secretsmanager.CreateSecretInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error) {
	s.record("CreateSecret")
	if s.create == nil {
		s.t.Fatal("unexpected CreateSecret")
	}
	return s.create(in)
}

// secretValue is a value whose text must never show up in an error.
const secretValue = `{"apiKey":"SECRET-API-KEY","refreshToken":"SECRET-REFRESH","validUntil":4102444800}`

// opErr wraps err the way the SDK returns it from a call: in an
// OperationError, after the retryer gave up.
func opErr(op string, err error) error {
	return &smithy.OperationError{ServiceID: "Secrets Manager", OperationName: op, Err: &retry.MaxAttemptsError{Attempt: 3, Err: err}}
}

// httpErr is err as it arrives in an HTTP response with status code.
func httpErr(status int, err error) error {
	return &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}}, Err: err},
		RequestID:     "req-1",
	}
}

func newStubBackend(t *testing.T, s *stubAPI) *Backend {
	t.Helper()
	s.t = t
	b, err := New(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestErrorClassification(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	for _, tc := range []struct {
		name      string
		err       error
		kind      error // sentinel the error must wrap, or nil
		transient bool
		mention   string // text the message must contain
	}{
		{"throttling", opErr("GetSecretValue", httpErr(400, &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"})), nil, true, "throttling"},
		{"5xx without a modelled error", opErr("GetSecretValue", httpErr(503, &smithy.GenericAPIError{Code: "ServiceUnavailable"})), nil, true, "unavailable"},
		{"InternalServiceError", opErr("GetSecretValue", httpErr(500, &types.InternalServiceError{Message: aws.String("oops")})), nil, true, "retry later"},
		{"connection refused", opErr("GetSecretValue", dial), nil, true, "retry later"},
		{"deadline", opErr("GetSecretValue", context.DeadlineExceeded), nil, true, "timed out"},
		{"quota", opErr("GetSecretValue", httpErr(400, &types.LimitExceededException{Message: aws.String("too many versions")})), nil, true, "quota"},
		{"not found", opErr("GetSecretValue", httpErr(400, &types.ResourceNotFoundException{Message: aws.String("no such secret")})), provider.ErrNotFound, false, "check the name"},
		{"access denied", opErr("GetSecretValue", httpErr(400, &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not authorized"})), provider.ErrPermission, false, "grant secretsmanager:GetSecretValue"},
		{"expired credentials", opErr("GetSecretValue", httpErr(400, &smithy.GenericAPIError{Code: "ExpiredTokenException"})), provider.ErrPermission, false, "renew"},
		{"decryption failure", opErr("GetSecretValue", httpErr(400, &types.DecryptionFailure{Message: aws.String("kms")})), nil, false, "kms:Decrypt"},
		{"scheduled for deletion", opErr("GetSecretValue", httpErr(400, &types.InvalidRequestException{Message: aws.String("marked deleted")})), nil, false, "restore-secret"},
		{"cancelled", opErr("GetSecretValue", context.Canceled), nil, false, "cancelled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newStubBackend(t, &stubAPI{get: func(*secretsmanager.GetSecretValueInput) (*secretsmanager.GetSecretValueOutput, error) {
				return nil, tc.err
			}})
			_, err := b.Load(context.Background(), "team/cred")
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if got := provider.IsTransient(err); got != tc.transient {
				t.Errorf("IsTransient = %v, want %v (err: %v)", got, tc.transient, err)
			}
			if tc.kind != nil && !errors.Is(err, tc.kind) {
				t.Errorf("err = %v, want one wrapping %v", err, tc.kind)
			}
			for _, s := range []error{provider.ErrNotFound, provider.ErrPermission, provider.ErrConflict} {
				if s != tc.kind && errors.Is(err, s) {
					t.Errorf("err wraps %v, which it must not: %v", s, err)
				}
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("the SDK error is not in the chain: %v", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.mention) || !strings.HasPrefix(msg, "awssm: ") || strings.Contains(msg, "\n") {
				t.Errorf("message %q: want one line starting with \"awssm: \" that mentions %q", msg, tc.mention)
			}
		})
	}
}

func TestAccessDeniedOnWriteNamesTheAction(t *testing.T) {
	s := &stubAPI{
		get: func(*secretsmanager.GetSecretValueInput) (*secretsmanager.GetSecretValueOutput, error) {
			return &secretsmanager.GetSecretValueOutput{VersionId: aws.String("v1"), SecretString: aws.String(secretValue)}, nil
		},
		put: func(*secretsmanager.PutSecretValueInput) (*secretsmanager.PutSecretValueOutput, error) {
			return nil, opErr("PutSecretValue", httpErr(400, &smithy.GenericAPIError{Code: "AccessDeniedException"}))
		},
	}
	b := newStubBackend(t, s)
	_, err := b.CompareAndSwap(context.Background(), "team/cred", "v1", []byte(secretValue))
	if !errors.Is(err, provider.ErrPermission) || !strings.Contains(err.Error(), "secretsmanager:PutSecretValue") {
		t.Fatalf("err = %v, want ErrPermission naming secretsmanager:PutSecretValue", err)
	}
	if err := b.CheckWrite(context.Background(), "team/cred"); !errors.Is(err, provider.ErrPermission) {
		t.Fatalf("CheckWrite: err = %v, want ErrPermission", err)
	}
}

// TestMoveRefused drives CompareAndSwap into a refused move of AWSCURRENT
// and checks that only DescribeSecret decides what the refusal means.
func TestMoveRefused(t *testing.T) {
	const expected = "v-expected"
	value := []byte(secretValue)
	token := versionToken(expected, value)
	refused := opErr("UpdateSecretVersionStage", httpErr(400, &types.InvalidParameterException{Message: aws.String("any text at all")}))
	for _, tc := range []struct {
		name     string
		holder   string // the version Describe reports as AWSCURRENT
		descErr  error
		wantErr  error // sentinel, or nil for success
		wantPerm bool  // a permanent error that is not a conflict
		wantTemp bool
	}{
		{name: "another writer won", holder: "v-other", wantErr: provider.ErrConflict},
		{name: "our earlier attempt already moved it", holder: token},
		{name: "still on expected", holder: expected, wantPerm: true},
		{name: "no current version", holder: "", wantPerm: true},
		{name: "describe throttled", descErr: opErr("DescribeSecret", httpErr(400, &smithy.GenericAPIError{Code: "ThrottlingException"})), wantTemp: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var unstaged []string
			s := &stubAPI{
				get: func(*secretsmanager.GetSecretValueInput) (*secretsmanager.GetSecretValueOutput, error) {
					return &secretsmanager.GetSecretValueOutput{VersionId: aws.String(expected), SecretString: aws.String(`{"old":true}`)}, nil
				},
				put: func(in *secretsmanager.PutSecretValueInput) (*secretsmanager.PutSecretValueOutput, error) {
					if aws.ToString(in.ClientRequestToken) != token {
						t.Errorf("ClientRequestToken = %q, want %q", aws.ToString(in.ClientRequestToken), token)
					}
					return &secretsmanager.PutSecretValueOutput{VersionId: in.ClientRequestToken}, nil
				},
				stage: func(in *secretsmanager.UpdateSecretVersionStageInput) (*secretsmanager.UpdateSecretVersionStageOutput, error) {
					if aws.ToString(in.VersionStage) == stageCurrent {
						if aws.ToString(in.MoveToVersionId) != token || aws.ToString(in.RemoveFromVersionId) != expected {
							t.Errorf("move of AWSCURRENT from %q to %q, want from %q to %q", aws.ToString(in.RemoveFromVersionId), aws.ToString(in.MoveToVersionId), expected, token)
						}
						return nil, refused
					}
					unstaged = append(unstaged, aws.ToString(in.RemoveFromVersionId))
					return &secretsmanager.UpdateSecretVersionStageOutput{}, nil
				},
				describe: func(*secretsmanager.DescribeSecretInput) (*secretsmanager.DescribeSecretOutput, error) {
					if tc.descErr != nil {
						return nil, tc.descErr
					}
					m := map[string][]string{expected: {"AWSPREVIOUS"}, token: {DefaultStagingLabel}}
					if tc.holder != "" {
						m[tc.holder] = append(m[tc.holder], stageCurrent)
					}
					if tc.holder != expected {
						m[expected] = []string{"AWSPREVIOUS"}
					}
					return &secretsmanager.DescribeSecretOutput{VersionIdsToStages: m}, nil
				},
			}
			b := newStubBackend(t, s)
			ver, err := b.CompareAndSwap(context.Background(), "team/cred", expected, value)
			switch {
			case tc.wantErr == nil && !tc.wantPerm && !tc.wantTemp:
				if err != nil || string(ver) != token {
					t.Fatalf("CompareAndSwap = %q, %v; want %q, nil", ver, err, token)
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
			case tc.wantPerm:
				if err == nil || errors.Is(err, provider.ErrConflict) || provider.IsTransient(err) {
					t.Fatalf("err = %v, want a permanent error that is not a conflict", err)
				}
			case tc.wantTemp:
				if !provider.IsTransient(err) || errors.Is(err, provider.ErrConflict) {
					t.Fatalf("err = %v, want a transient error, not a conflict", err)
				}
			}
			if err != nil && strings.Contains(err.Error(), "SECRET-") {
				t.Errorf("error leaks the value: %v", err)
			}
			// The private label must not stay behind on a version that
			// lost or won; it may stay only where the outcome is unknown.
			if tc.wantErr != nil || (tc.wantErr == nil && !tc.wantPerm && !tc.wantTemp) {
				if len(unstaged) != 1 || unstaged[0] != token {
					t.Errorf("staging label removed from %q, want from [%s]", unstaged, token)
				}
			}
		})
	}
}

func TestMoveFailsTransiently(t *testing.T) {
	s := &stubAPI{
		get: func(*secretsmanager.GetSecretValueInput) (*secretsmanager.GetSecretValueOutput, error) {
			return &secretsmanager.GetSecretValueOutput{VersionId: aws.String("v1"), SecretString: aws.String(`{}`)}, nil
		},
		put: func(in *secretsmanager.PutSecretValueInput) (*secretsmanager.PutSecretValueOutput, error) {
			return &secretsmanager.PutSecretValueOutput{VersionId: in.ClientRequestToken}, nil
		},
		stage: func(*secretsmanager.UpdateSecretVersionStageInput) (*secretsmanager.UpdateSecretVersionStageOutput, error) {
			return nil, opErr("UpdateSecretVersionStage", httpErr(503, &smithy.GenericAPIError{Code: "ServiceUnavailable"}))
		},
	}
	b := newStubBackend(t, s)
	_, err := b.CompareAndSwap(context.Background(), "team/cred", "v1", []byte(secretValue))
	if !provider.IsTransient(err) || errors.Is(err, provider.ErrConflict) {
		t.Fatalf("err = %v, want transient and not a conflict", err)
	}
}

// TestTokenTaken covers a PutSecretValue refused because our derived version
// id already holds other data.
func TestTokenTaken(t *testing.T) {
	for _, tc := range []struct {
		holder       string
		wantConflict bool
	}{{"v1", false}, {"v-other", true}} {
		t.Run(tc.holder, func(t *testing.T) {
			s := &stubAPI{
				get: func(*secretsmanager.GetSecretValueInput) (*secretsmanager.GetSecretValueOutput, error) {
					return &secretsmanager.GetSecretValueOutput{VersionId: aws.String("v1"), SecretString: aws.String(`{}`)}, nil
				},
				put: func(*secretsmanager.PutSecretValueInput) (*secretsmanager.PutSecretValueOutput, error) {
					return nil, opErr("PutSecretValue", httpErr(400, &types.ResourceExistsException{Message: aws.String("token in use")}))
				},
				describe: func(*secretsmanager.DescribeSecretInput) (*secretsmanager.DescribeSecretOutput, error) {
					return &secretsmanager.DescribeSecretOutput{VersionIdsToStages: map[string][]string{tc.holder: {stageCurrent}}}, nil
				},
			}
			b := newStubBackend(t, s)
			_, err := b.CompareAndSwap(context.Background(), "team/cred", "v1", []byte(secretValue))
			if got := errors.Is(err, provider.ErrConflict); got != tc.wantConflict || err == nil || provider.IsTransient(err) {
				t.Fatalf("err = %v; want conflict=%v, permanent", err, tc.wantConflict)
			}
		})
	}
}

func TestStagingLabelValidation(t *testing.T) {
	for _, label := range []string{"AWSCURRENT", "AWSPENDING", "awspending", "AWSPREVIOUS", "", "has space", strings.Repeat("x", 257)} {
		if _, err := New(&stubAPI{}, func(o *Options) { o.StagingLabel = label }); err == nil {
			t.Errorf("New accepted staging label %q", label)
		}
	}
	b, err := New(&stubAPI{}, func(o *Options) { o.StagingLabel = "MY_LABEL" })
	if err != nil || b.label != "MY_LABEL" {
		t.Fatalf("New with a private label: %v", err)
	}
	if _, err := New(nil); err == nil {
		t.Error("New accepted a nil client")
	}
}

func TestVersionToken(t *testing.T) {
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a := versionToken("v1", []byte(`{"a":1}`))
	if !uuid.MatchString(a) {
		t.Fatalf("token %q is not a version-8 UUID", a)
	}
	if a != versionToken("v1", []byte(`{"a":1}`)) {
		t.Error("token is not deterministic")
	}
	for _, other := range []string{
		versionToken("v1", []byte(`{"a":2}`)),
		versionToken("v2", []byte(`{"a":1}`)),
		versionToken("", []byte(`{"a":1}`)),
		versionToken("v1{", []byte(`"a":1}`)), // no ambiguity at the seam
	} {
		if other == a {
			t.Errorf("different inputs gave the same token %q", a)
		}
	}
}

func TestRefusesBadValuesWithoutCalling(t *testing.T) {
	b := newStubBackend(t, &stubAPI{})
	for _, v := range [][]byte{nil, []byte("plain"), []byte(`[1]`), []byte(`null`), []byte(`{"a":1} x`), {0xff}, []byte(`{"a":"` + strings.Repeat("x", maxSecretString) + `"}`)} {
		if _, err := b.CompareAndSwap(context.Background(), "k", "v1", v); !errors.Is(err, provider.ErrInvalidRecord) {
			t.Errorf("CompareAndSwap(%.20q): err = %v, want ErrInvalidRecord", v, err)
		}
	}
	if _, err := b.Load(context.Background(), ""); err == nil {
		t.Error("Load of an empty key succeeded")
	}
}

func TestRegionFromARN(t *testing.T) {
	for key, want := range map[string]string{
		"arn:aws:secretsmanager:eu-west-1:123456789012:secret:momento/authentication-token-AbCdEf": "eu-west-1",
		"momento/authentication-token": "",
		"arn:aws:s3:::bucket":          "",
	} {
		o := secretsmanager.Options{Region: ""}
		for _, fn := range regionOf(key) {
			fn(&o)
		}
		if o.Region != want {
			t.Errorf("regionOf(%q) sets region %q, want %q", key, o.Region, want)
		}
	}
}

// TestCreateWithoutCreatePermission checks that secretsmanager:CreateSecret
// is needed only to create a secret that does not exist.
func TestCreateWithoutCreatePermission(t *testing.T) {
	denied := opErr("CreateSecret", httpErr(400, &smithy.GenericAPIError{Code: "AccessDeniedException"}))
	notFound := opErr("DescribeSecret", httpErr(400, &types.ResourceNotFoundException{}))
	for _, tc := range []struct {
		name   string
		stages map[string][]string // nil: the secret does not exist
		want   error
	}{
		{"secret exists", map[string][]string{"v1": {stageCurrent}}, provider.ErrConflict},
		{"secret missing", nil, provider.ErrPermission},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &stubAPI{
				create: func(*secretsmanager.CreateSecretInput) (*secretsmanager.CreateSecretOutput, error) {
					return nil, denied
				},
				describe: func(*secretsmanager.DescribeSecretInput) (*secretsmanager.DescribeSecretOutput, error) {
					if tc.stages == nil {
						return nil, notFound
					}
					return &secretsmanager.DescribeSecretOutput{VersionIdsToStages: tc.stages}, nil
				},
			}
			b := newStubBackend(t, s)
			_, err := b.CompareAndSwap(context.Background(), "team/cred", "", []byte(secretValue))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want == provider.ErrPermission && !strings.Contains(err.Error(), "secretsmanager:CreateSecret") {
				t.Errorf("error does not name secretsmanager:CreateSecret: %v", err)
			}
		})
	}
}
