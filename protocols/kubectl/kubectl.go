package kubectl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/credhelper/credhelper/protocols/face"
	"github.com/credhelper/credhelper/provider"
)

// API versions of the ExecCredential.
const (
	APIVersionV1      = "client.authentication.k8s.io/v1"
	APIVersionV1beta1 = "client.authentication.k8s.io/v1beta1"
)

// EnvExecInfo is the variable client-go passes the request in.
const EnvExecInfo = "KUBERNETES_EXEC_INFO"

// maxExecInfo bounds KUBERNETES_EXEC_INFO, which may carry cluster
// information with a CA bundle.
const maxExecInfo = 1 << 20

// ExecCredential is the object client-go exchanges with the plugin; only
// the fields credhelper reads or writes are declared.
type ExecCredential struct {
	APIVersion string  `json:"apiVersion"`
	Kind       string  `json:"kind"`
	Status     *Status `json:"status,omitempty"`
}

// Status carries the token.
type Status struct {
	Token               string `json:"token"`
	ExpirationTimestamp string `json:"expirationTimestamp,omitempty"`
}

// RequestedVersion returns the apiVersion client-go asks for in execInfo,
// the value of KUBERNETES_EXEC_INFO; an empty execInfo means APIVersionV1.
func RequestedVersion(execInfo string) (string, error) {
	if execInfo == "" {
		return APIVersionV1, nil
	}
	if len(execInfo) > maxExecInfo {
		return "", fmt.Errorf("kubectl: %s is over %d bytes", EnvExecInfo, maxExecInfo)
	}
	var req ExecCredential
	if err := json.Unmarshal([]byte(execInfo), &req); err != nil {
		return "", fmt.Errorf("kubectl: %s is not a JSON ExecCredential: unset it, or run credhelper from a kubeconfig exec section", EnvExecInfo)
	}
	if req.Kind != "ExecCredential" {
		return "", fmt.Errorf("kubectl: %s has kind %q, not ExecCredential", EnvExecInfo, req.Kind)
	}
	switch req.APIVersion {
	case APIVersionV1, APIVersionV1beta1:
		return req.APIVersion, nil
	case "":
		return "", fmt.Errorf("kubectl: %s names no apiVersion", EnvExecInfo)
	}
	return "", fmt.Errorf("kubectl: %s asks for apiVersion %q; credhelper answers %s and %s: set apiVersion: %s in the kubeconfig's exec section", EnvExecInfo, req.APIVersion, APIVersionV1, APIVersionV1beta1, APIVersionV1)
}

// Options configure the answer: the minimum validity (for every profile;
// default one minute), subtracted from the token's expiry so that
// client-go asks again while the token is still usable, as every face
// tells its tool.
type Options = face.CacheOptions

// Write writes the ExecCredential of apiVersion carrying p's auth token,
// with expirationTimestamp the options' minimum validity before it expires.
func Write(w io.Writer, apiVersion string, p provider.Pair, optFns ...func(*Options)) error {
	if p.AuthToken == "" {
		return errors.New("kubectl: the credential has an empty auth token: store a pair with 'credhelper put'")
	}
	st := &Status{Token: p.AuthToken}
	if !p.Never() {
		st.ExpirationTimestamp = Options{}.Apply(optFns...).Expiry(p, "").UTC().Format(time.RFC3339)
	}
	b, err := json.Marshal(ExecCredential{APIVersion: apiVersion, Kind: "ExecCredential", Status: st})
	if err != nil {
		return fmt.Errorf("kubectl: encode ExecCredential: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Serve answers one request: it checks execInfo (the value of
// KUBERNETES_EXEC_INFO, possibly empty) before resolving the credential
// from src, and writes the ExecCredential to out, or nothing on error.
func Serve(ctx context.Context, src provider.CredentialProvider, execInfo string, out io.Writer, optFns ...func(*Options)) error {
	v, err := RequestedVersion(execInfo)
	if err != nil {
		return err
	}
	p, err := src.Credential(ctx)
	if err != nil {
		return err
	}
	return Write(out, v, p, optFns...)
}
