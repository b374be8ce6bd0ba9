package kubectl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/credhelper/credhelper/provider"
)

// Markers of the fuzzing source's secrets: an error may carry neither, and
// only status.token may carry the auth token.
const (
	fuzzToken   = "FUZZ-KUBE-AUTH-71d0"
	fuzzRefresh = "FUZZ-KUBE-REFRESH-4ac2"
)

// fuzzDeadline bounds one Serve call: KUBERNETES_EXEC_INFO is bounded
// (maxExecInfo), so a call that takes this long is a hang.
const fuzzDeadline = 10 * time.Second

// maxRecordExpiry is the last second of year 9999, the latest expiry a
// stored record may hold.
const maxRecordExpiry = 253402300799

// Source behaviours a fuzz input picks.
const (
	sourceOK = iota
	sourceNever
	sourceEmpty
	sourceError
	sourceModes
)

// FuzzServe parses arbitrary KUBERNETES_EXEC_INFO values (padded with a
// long run of one byte to reach maxExecInfo) and answers with arbitrary
// tokens and expiries. It checks: no panic, no hang, nothing written on
// error, errors on one line with no secret, a source never consulted for a
// refused request, and an answer that is one line of JSON, an
// ExecCredential of the requested version whose status.token is the token.
func FuzzServe(f *testing.F) {
	for _, info := range []string{
		"",
		`{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}`,
		`{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{}}`,
		`{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1alpha1"}`,
		`{"kind":"ExecCredential"}`,
		`{"kind":"Pod","apiVersion":"v1"}`,
		`{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"cluster":{"server":"https://127.0.0.1:6443","certificate-authority-data":"LS0t"}}}`,
		`{"kind":"ExecCredential","apiVersion":"x\ny"}`,
		`{"kind":"Exec\u0000Credential"}`,
		`{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","status":{"token":"` + fuzzToken + `"}}`,
		`[]`,
		`null`,
		`{"kind":`,
		"\xff\xfe",
	} {
		f.Add(info, byte(0), uint32(0), "", "", int64(1900000000), uint8(sourceOK))
	}
	f.Add(`{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"x":"`, byte('a'), uint32(maxExecInfo-100), `"}}`, "", int64(0), uint8(sourceOK))
	f.Add(`{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"x":"`, byte('a'), uint32(maxExecInfo), `"}}`, "", int64(0), uint8(sourceOK))
	f.Add(`[`, byte('['), uint32(100000), "", "", int64(0), uint8(sourceOK))
	f.Add("", byte(0), uint32(0), "", "\"\n\\u0000</script>", int64(253402300800), uint8(sourceOK))
	f.Add("", byte(0), uint32(0), "", "", int64(-62135596801), uint8(sourceOK))
	f.Add("", byte(0), uint32(0), "", "", int64(0), uint8(sourceNever))
	f.Add("", byte(0), uint32(0), "", "", int64(0), uint8(sourceEmpty))
	f.Add("", byte(0), uint32(0), "", "", int64(0), uint8(sourceError))

	f.Fuzz(func(t *testing.T, info string, fill byte, fillLen uint32, suffix string, tokenSuffix string, validUntil int64, mode uint8) {
		execInfo := info + strings.Repeat(string(rune(fill&0x7f)), int(fillLen%(maxExecInfo+2))) + suffix
		mode %= sourceModes
		// Records hold expiries from 1970 to the end of year 9999.
		expiry := time.Unix(1+int64(uint64(validUntil)%maxRecordExpiry), 0)
		token := fuzzToken + tokenSuffix
		consulted := false
		src := provider.CredentialProviderFunc(func(context.Context) (provider.Pair, error) {
			consulted = true
			switch mode {
			case sourceNever:
				return provider.Pair{AuthToken: token, RefreshToken: fuzzRefresh}, nil
			case sourceEmpty:
				return provider.Pair{RefreshToken: fuzzRefresh}, nil
			case sourceError:
				return provider.Pair{}, provider.Transient(errors.New("backend down"))
			}
			return provider.Pair{AuthToken: token, RefreshToken: fuzzRefresh, ValidUntil: expiry}, nil
		})
		want, verr := RequestedVersion(execInfo)

		var out bytes.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- Serve(ctx, src, execInfo, &out) }()
		timer := time.NewTimer(fuzzDeadline)
		defer timer.Stop()
		var err error
		select {
		case err = <-done:
		case <-timer.C:
			t.Fatalf("Serve did not return within %v", fuzzDeadline)
		}

		if verr != nil {
			if err == nil || err.Error() != verr.Error() {
				t.Fatalf("RequestedVersion failed with %v but Serve returned %v", verr, err)
			}
			if consulted {
				t.Fatal("the credential was resolved for a request that is refused")
			}
		}
		if err != nil {
			if out.Len() != 0 {
				t.Fatalf("failed with %v after writing %q", err, out.Bytes())
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("error is not one line: %q", msg)
			}
			for _, s := range []string{fuzzToken, fuzzRefresh} {
				if strings.Contains(msg, s) && !strings.Contains(execInfo, s) {
					t.Fatalf("error carries a secret: %q", msg)
				}
			}
			return
		}
		if want != APIVersionV1 && want != APIVersionV1beta1 {
			t.Fatalf("RequestedVersion accepted %q", want)
		}
		got := out.String()
		if strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") {
			t.Fatalf("answer is not one line: %q", got)
		}
		if strings.Contains(got, fuzzRefresh) && !strings.Contains(tokenSuffix, fuzzRefresh) {
			t.Fatalf("answer carries the refresh token: %q", got)
		}
		var ec struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Status     struct {
				Token               string     `json:"token"`
				ExpirationTimestamp *time.Time `json:"expirationTimestamp"`
			} `json:"status"`
		}
		if err := json.Unmarshal(out.Bytes(), &ec); err != nil {
			t.Fatalf("answer %q does not decode: %v", got, err)
		}
		if ec.APIVersion != want || ec.Kind != "ExecCredential" {
			t.Fatalf("answer is %s %s, asked for %s", ec.APIVersion, ec.Kind, want)
		}
		if utf8.ValidString(token) && ec.Status.Token != token || !strings.HasPrefix(ec.Status.Token, fuzzToken) {
			t.Fatalf("status.token %q, want %q", ec.Status.Token, token)
		}
		switch {
		case mode == sourceNever && ec.Status.ExpirationTimestamp != nil:
			t.Fatalf("expirationTimestamp for a token that never expires: %q", got)
		case mode == sourceOK && ec.Status.ExpirationTimestamp == nil:
			t.Fatalf("no expirationTimestamp for a token that expires: %q", got)
		case mode == sourceOK && !ec.Status.ExpirationTimestamp.Equal(expiry.Add(-time.Minute)):
			t.Fatalf("expirationTimestamp %v, want %v", ec.Status.ExpirationTimestamp, expiry.UTC())
		}
	})
}
