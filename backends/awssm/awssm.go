package awssm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/credhelper/credhelper/provider"
)

// API is the slice of *secretsmanager.Client that a Backend calls. Tests
// pass a stub; everything else passes the SDK client.
type API interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error)
	UpdateSecretVersionStage(ctx context.Context, in *secretsmanager.UpdateSecretVersionStageInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretVersionStageOutput, error)
	DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
	CreateSecret(ctx context.Context, in *secretsmanager.CreateSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error)
}

var (
	_ API                   = (*secretsmanager.Client)(nil)
	_ provider.Backend      = (*Backend)(nil)
	_ provider.WriteChecker = (*Backend)(nil)
)

// DefaultStagingLabel is the private staging label CompareAndSwap stores a
// new version under until it moves AWSCURRENT onto it.
const DefaultStagingLabel = "CREDHELPER_PENDING"

// Labels Secrets Manager and rotation lambdas own.
const (
	stageCurrent  = "AWSCURRENT"
	stagePending  = "AWSPENDING"
	stagePrevious = "AWSPREVIOUS"
)

// maxSecretString is Secrets Manager's limit on a SecretString, in bytes.
const maxSecretString = 65536

// Options configure a Backend.
type Options struct {
	// StagingLabel is the private label a new version carries between
	// PutSecretValue and the move of AWSCURRENT. It must not be AWSCURRENT,
	// AWSPENDING (rotation lambdas own it) or AWSPREVIOUS. Default
	// DefaultStagingLabel. Every writer of one secret should use the same
	// label, so that at most one version carries it.
	StagingLabel string
	// Logger receives debug records (never secret values). Default: silent.
	Logger *slog.Logger

	// Region, Profile and EndpointURL are used by NewFromConfig only.
	// Region overrides AWS_REGION and the profile's region; a key that is
	// an ARN always uses the ARN's region.
	Region string
	// Profile selects a named profile from the shared AWS config files,
	// overriding AWS_PROFILE.
	Profile string
	// EndpointURL overrides the Secrets Manager endpoint. Without it the
	// SDK honours AWS_ENDPOINT_URL_SECRETS_MANAGER, AWS_ENDPOINT_URL and the
	// profile's endpoint_url settings.
	EndpointURL string
}

func (o *Options) validate() error {
	label := o.StagingLabel
	switch {
	case label == "":
		return fmt.Errorf("awssm: empty staging label: leave StagingLabel unset to use %s", DefaultStagingLabel)
	case len(label) > 256:
		return fmt.Errorf("awssm: staging label is %d characters, over the 256-character limit", len(label))
	case strings.EqualFold(label, stageCurrent), strings.EqualFold(label, stagePending), strings.EqualFold(label, stagePrevious):
		return fmt.Errorf("awssm: staging label %q belongs to Secrets Manager and rotation lambdas: choose a private label such as %s", label, DefaultStagingLabel)
	case !printable(label):
		return fmt.Errorf("awssm: staging label %q contains whitespace or control characters", label)
	}
	return nil
}

// Backend stores records in AWS Secrets Manager. See the package
// documentation for how CompareAndSwap stays atomic.
type Backend struct {
	api   API
	label string
	log   *slog.Logger
	// noRegion is set when NewFromConfig found no region, so that a key
	// that is not an ARN fails with a clear message.
	noRegion bool
}

// New returns a Backend that calls client, usually a *secretsmanager.Client.
// It rejects an invalid StagingLabel.
func New(client API, optFns ...func(*Options)) (*Backend, error) {
	o, err := options(optFns)
	if err != nil {
		return nil, err
	}
	if client == nil {
		return nil, fmt.Errorf("awssm: nil Secrets Manager client")
	}
	return &Backend{api: client, label: o.StagingLabel, log: o.Logger}, nil
}

// NewFromConfig returns a Backend with a Secrets Manager client configured
// the way the AWS CLI is: the default credential chain, AWS_REGION /
// AWS_PROFILE / shared config files, and AWS_ENDPOINT_URL_SECRETS_MANAGER or
// AWS_ENDPOINT_URL for a custom endpoint, with Options.Region,
// Options.Profile and Options.EndpointURL taking precedence. The SDK's
// standard retryer stays on with its defaults.
func NewFromConfig(ctx context.Context, optFns ...func(*Options)) (*Backend, error) {
	o, err := options(optFns)
	if err != nil {
		return nil, err
	}
	var load []func(*config.LoadOptions) error
	if o.Region != "" {
		load = append(load, config.WithRegion(o.Region))
	}
	if o.Profile != "" {
		load = append(load, config.WithSharedConfigProfile(o.Profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("awssm: load AWS configuration: %w: check the profile name and ~/.aws/config", err)
	}
	client := secretsmanager.NewFromConfig(cfg, func(so *secretsmanager.Options) {
		if o.EndpointURL != "" {
			so.BaseEndpoint = aws.String(o.EndpointURL)
		}
	})
	return &Backend{api: client, label: o.StagingLabel, log: o.Logger, noRegion: cfg.Region == ""}, nil
}

func options(optFns []func(*Options)) (Options, error) {
	o := Options{StagingLabel: DefaultStagingLabel}
	for _, fn := range optFns {
		fn(&o)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, o.validate()
}

// Load returns the value and VersionId of the version of key labelled
// AWSCURRENT. A binary secret or one that is not a JSON object is refused
// with an error wrapping provider.ErrInvalidRecord.
func (b *Backend) Load(ctx context.Context, key string) (provider.Entry, error) {
	if err := b.checkKey(key); err != nil {
		return provider.Entry{}, err
	}
	cur, err := b.current(ctx, key)
	if err != nil {
		return provider.Entry{}, err
	}
	if err := cur.usable(key); err != nil {
		return provider.Entry{}, err
	}
	return provider.Entry{Value: []byte(cur.value), Version: provider.Version(cur.version)}, nil
}

// CompareAndSwap stores value as the AWSCURRENT version of key if the
// current version is expected, or creates the secret if expected is the zero
// Version. Calling it again with the same arguments after it succeeded
// returns the same version, as long as no other write came in between.
func (b *Backend) CompareAndSwap(ctx context.Context, key string, expected provider.Version, value []byte) (provider.Version, error) {
	if err := b.checkKey(key); err != nil {
		return "", err
	}
	if err := checkValue(key, value); err != nil {
		return "", err
	}
	token := versionToken(expected, value)
	if expected == "" {
		return b.create(ctx, key, token, value)
	}
	cur, err := b.current(ctx, key)
	if errors.Is(err, provider.ErrNotFound) {
		return "", b.conflict(key, expected, "")
	}
	if err != nil {
		return "", err
	}
	switch cur.version {
	case token:
		// This very swap already happened (a retry after a lost reply):
		// only CompareAndSwap(expected, value) creates this version id.
		b.unstage(ctx, key, token)
		return provider.Version(token), nil
	case string(expected):
	default:
		return "", b.conflict(key, expected, cur.version)
	}
	if err := cur.usable(key); err != nil {
		return "", err
	}
	if err := b.put(ctx, key, token, value); err != nil {
		if isResourceExists(err) {
			return "", b.tokenTaken(ctx, key, expected, token)
		}
		return "", err
	}
	_, err = b.api.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId:            aws.String(key),
		VersionStage:        aws.String(stageCurrent),
		MoveToVersionId:     aws.String(token),
		RemoveFromVersionId: aws.String(string(expected)),
	}, regionOf(key)...)
	if err == nil {
		b.unstage(ctx, key, token)
		return provider.Version(token), nil
	}
	if !isInvalidParameter(err) {
		// Whether the move happened is unknown; a retry with the same
		// arguments finds out.
		return "", classify("UpdateSecretVersionStage", key, err)
	}
	// The service refused the move. Decide by where AWSCURRENT is, never by
	// the error's text.
	holder, derr := b.currentHolder(ctx, key)
	if derr != nil {
		return "", fmt.Errorf("awssm: secret %q: moving AWSCURRENT was refused and checking why failed: %w", key, derr)
	}
	switch holder {
	case token:
		// An earlier attempt of this request already moved it.
		b.unstage(ctx, key, token)
		return provider.Version(token), nil
	case string(expected), "":
		return "", fmt.Errorf("awssm: secret %q: Secrets Manager refused to move AWSCURRENT from version %s although no other version holds it: %w", key, expected, classify("UpdateSecretVersionStage", key, err))
	default:
		b.log.DebugContext(ctx, "awssm: lost the move of AWSCURRENT", "key", key, "expected", string(expected), "current", holder)
		b.unstage(ctx, key, token)
		return "", b.conflict(key, expected, holder)
	}
}

// CheckWrite checks, without changing the secret, that this caller may read
// and write key: it reads AWSCURRENT (which must be a JSON object) and
// repeats that version's own PutSecretValue, with its VersionId as
// ClientRequestToken and its value, which Secrets Manager documents as
// succeeding without doing anything. That proves secretsmanager:GetSecretValue
// and secretsmanager:PutSecretValue on this secret, resource policies
// included. It does not prove secretsmanager:UpdateSecretVersionStage, nor
// permission to encrypt with a customer-managed KMS key.
func (b *Backend) CheckWrite(ctx context.Context, key string) error {
	if err := b.checkKey(key); err != nil {
		return err
	}
	cur, err := b.current(ctx, key)
	if err != nil {
		return err
	}
	if err := cur.usable(key); err != nil {
		return err
	}
	_, err = b.api.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId:           aws.String(key),
		ClientRequestToken: aws.String(cur.version),
		SecretString:       aws.String(cur.value),
		// Should the service ever not treat this as a repeat, it may only
		// label the version privately, never move AWSCURRENT.
		VersionStages: []string{b.label},
	}, regionOf(key)...)
	if err != nil {
		return classify("PutSecretValue", key, err)
	}
	return nil
}

// create handles CompareAndSwap with the zero expected version.
func (b *Backend) create(ctx context.Context, key, token string, value []byte) (provider.Version, error) {
	if !isARN(key) {
		out, err := b.api.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
			Name:               aws.String(key),
			SecretString:       aws.String(string(value)),
			ClientRequestToken: aws.String(token),
		}, regionOf(key)...)
		if err == nil {
			if v := aws.ToString(out.VersionId); v != "" {
				return provider.Version(v), nil
			}
			return provider.Version(token), nil
		}
		if !isResourceExists(err) {
			cerr := classify("CreateSecret", key, err)
			if !errors.Is(cerr, provider.ErrPermission) {
				return "", cerr
			}
			// CreateSecret is optional in the IAM policy: without it a
			// secret that exists must still give a conflict, or take its
			// first value.
			if _, derr := b.describe(ctx, key); errors.Is(derr, provider.ErrNotFound) {
				return "", cerr
			}
		}
	}
	// The secret exists (an ARN always names an existing one). It is
	// absent in the contract's sense only if it has no AWSCURRENT value.
	d, err := b.describe(ctx, key)
	if err != nil {
		return "", err
	}
	if d.DeletedDate != nil {
		return "", fmt.Errorf("awssm: secret %q is scheduled for deletion: restore it with `aws secretsmanager restore-secret --secret-id %s` or choose another name", key, key)
	}
	holder, err := currentOf(key, d.VersionIdsToStages)
	if err != nil {
		return "", err
	}
	switch holder {
	case token:
		// This create already happened (a retry after a lost reply).
		return provider.Version(token), nil
	case "":
	default:
		return "", b.conflict(key, "", holder)
	}
	if len(d.VersionIdsToStages) > 0 {
		return "", fmt.Errorf("awssm: secret %q has versions but none is labelled AWSCURRENT: label one with `aws secretsmanager update-secret-version-stage --version-stage AWSCURRENT` or store a value with `aws secretsmanager put-secret-value`", key)
	}
	// A secret without any value, as infrastructure-as-code tools create
	// it. Its first version gets AWSCURRENT from the service, and only one
	// writer's version can be the first.
	if err := b.put(ctx, key, token, value); err != nil {
		if isResourceExists(err) {
			return "", b.tokenTaken(ctx, key, "", token)
		}
		return "", err
	}
	holder, err = b.currentHolder(ctx, key)
	if err != nil {
		return "", fmt.Errorf("awssm: secret %q: stored a first value but could not check that it became current: %w", key, err)
	}
	switch holder {
	case token:
		b.unstage(ctx, key, token)
		return provider.Version(token), nil
	case "":
		return "", fmt.Errorf("awssm: secret %q: stored a first value but the service labelled no version AWSCURRENT", key)
	default:
		b.unstage(ctx, key, token)
		return "", b.conflict(key, "", holder)
	}
}

// tokenTaken handles a PutSecretValue that failed with
// ResourceExistsException: a version with our derived id exists but holds
// other data. credhelper never writes that (the id covers the value), so
// someone else chose the id. If the secret moved on, that is an ordinary
// conflict; if not, no retry of this request can succeed.
func (b *Backend) tokenTaken(ctx context.Context, key string, expected provider.Version, token string) error {
	holder, err := b.currentHolder(ctx, key)
	if err != nil {
		return fmt.Errorf("awssm: secret %q: version id %s is taken by other data and checking the current version failed: %w", key, token, err)
	}
	if holder != string(expected) {
		return b.conflict(key, expected, holder)
	}
	return fmt.Errorf("awssm: secret %q already has a version %s with different data, an id credhelper derives for this write: another tool reused it; store a different value or remove that version's staging labels", key, token)
}

// put stores value as version token under the private label only.
func (b *Backend) put(ctx context.Context, key, token string, value []byte) error {
	_, err := b.api.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId:           aws.String(key),
		ClientRequestToken: aws.String(token),
		SecretString:       aws.String(string(value)),
		VersionStages:      []string{b.label},
	}, regionOf(key)...)
	if err != nil && !isResourceExists(err) {
		return classify("PutSecretValue", key, err)
	}
	return err
}

// unstage removes the private label from version, best effort. It fails
// harmlessly when a later write already took the label.
func (b *Backend) unstage(ctx context.Context, key, version string) {
	_, err := b.api.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId:            aws.String(key),
		VersionStage:        aws.String(b.label),
		RemoveFromVersionId: aws.String(version),
	}, regionOf(key)...)
	if err != nil {
		b.log.DebugContext(ctx, "awssm: could not remove the staging label", "key", key, "version", version, "label", b.label, "error", err)
	}
}

// version is the AWSCURRENT version of a secret as GetSecretValue returns it.
type version struct {
	version   string
	value     string
	hasString bool
	binary    bool
}

func (b *Backend) current(ctx context.Context, key string) (version, error) {
	out, err := b.api.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId: aws.String(key),
		// Always explicit: without it moto returns a stale version after a
		// stage move.
		VersionStage: aws.String(stageCurrent),
	}, regionOf(key)...)
	if err != nil {
		return version{}, classify("GetSecretValue", key, err)
	}
	v := version{version: aws.ToString(out.VersionId)}
	if v.version == "" {
		return version{}, fmt.Errorf("awssm: secret %q: GetSecretValue returned no VersionId", key)
	}
	switch {
	case out.SecretString != nil:
		v.value, v.hasString = *out.SecretString, true
	case out.SecretBinary != nil:
		v.binary = true
	}
	return v, nil
}

// usable refuses a value credhelper must neither read nor overwrite.
func (v version) usable(key string) error {
	switch {
	case v.binary:
		return fmt.Errorf("awssm: secret %q holds a binary value (SecretBinary), not a JSON record: credhelper will not read or overwrite it; use another secret: %w", key, provider.ErrInvalidRecord)
	case !v.hasString:
		return fmt.Errorf("awssm: secret %q has no SecretString: credhelper will not read or overwrite it; use another secret: %w", key, provider.ErrInvalidRecord)
	case !isJSONObject(v.value):
		return fmt.Errorf("awssm: secret %q is not a JSON object (%d bytes): credhelper will not read or overwrite it; use another secret or store {\"apiKey\", \"refreshToken\", \"validUntil\"}: %w", key, len(v.value), provider.ErrInvalidRecord)
	}
	return nil
}

func (b *Backend) describe(ctx context.Context, key string) (*secretsmanager.DescribeSecretOutput, error) {
	out, err := b.api.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(key)}, regionOf(key)...)
	if err != nil {
		return nil, classify("DescribeSecret", key, err)
	}
	return out, nil
}

// currentHolder returns the version labelled AWSCURRENT, or "" if none is.
func (b *Backend) currentHolder(ctx context.Context, key string) (string, error) {
	d, err := b.describe(ctx, key)
	if err != nil {
		return "", err
	}
	return currentOf(key, d.VersionIdsToStages)
}

func currentOf(key string, stages map[string][]string) (string, error) {
	var holder string
	for id, labels := range stages {
		for _, l := range labels {
			if l != stageCurrent {
				continue
			}
			if holder != "" {
				return "", fmt.Errorf("awssm: secret %q has two versions labelled AWSCURRENT (%s and %s): fix the labels with `aws secretsmanager update-secret-version-stage`", key, min(holder, id), max(holder, id))
			}
			holder = id
		}
	}
	return holder, nil
}

func (b *Backend) conflict(key string, expected provider.Version, current string) error {
	if expected == "" {
		return fmt.Errorf("awssm: secret %q already has a value (version %s): load it instead of creating it: %w", key, current, provider.ErrConflict)
	}
	if current == "" {
		return fmt.Errorf("awssm: secret %q has no current value, not version %s: %w", key, expected, provider.ErrConflict)
	}
	return fmt.Errorf("awssm: secret %q is at version %s, not %s: another writer changed it; load it again: %w", key, current, expected, provider.ErrConflict)
}

func (b *Backend) checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("awssm: empty secret name: give a secret name or ARN")
	}
	if len(key) > 2048 || !printable(key) {
		return fmt.Errorf("awssm: secret name or ARN must be at most 2048 printable characters without spaces")
	}
	if b.noRegion && !isARN(key) {
		return fmt.Errorf("awssm: no AWS region configured for secret %q: pass a region (--region), set AWS_REGION, give the profile a region, or use the secret's ARN", key)
	}
	return nil
}

func checkValue(key string, value []byte) error {
	switch {
	case len(value) > maxSecretString:
		return fmt.Errorf("awssm: secret %q: value is %d bytes, over Secrets Manager's %d-byte limit: %w", key, len(value), maxSecretString, provider.ErrInvalidRecord)
	case !utf8.Valid(value):
		return fmt.Errorf("awssm: secret %q: value is not UTF-8 text; a SecretString must be: %w", key, provider.ErrInvalidRecord)
	case !isJSONObject(string(value)):
		return fmt.Errorf("awssm: secret %q: value is not a JSON object; Load would refuse it, so it is not stored: %w", key, provider.ErrInvalidRecord)
	}
	return nil
}

func isJSONObject(s string) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal([]byte(s), &m) == nil && m != nil
}

func isARN(key string) bool { return strings.HasPrefix(key, "arn:") }

// regionOf returns client options that send a request about an ARN to the
// ARN's region, so a full ARN works whatever region is configured.
func regionOf(key string) []func(*secretsmanager.Options) {
	if !isARN(key) {
		return nil
	}
	// arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME
	parts := strings.SplitN(key, ":", 5)
	if len(parts) < 5 || parts[2] != "secretsmanager" || parts[3] == "" {
		return nil
	}
	region := parts[3]
	return []func(*secretsmanager.Options){func(o *secretsmanager.Options) { o.Region = region }}
}

func printable(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == utf8.RuneError {
			return false
		}
	}
	return true
}
