package plugins

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/credhelper/credhelper/provider"
)

// errorCase is one error a plugin may return, as the kinds it wraps.
type errorCase struct {
	kinds     []string
	transient bool
}

func (c errorCase) name() string {
	n := strings.Join(c.kinds, "+")
	if n == "" {
		n = "PLAIN"
	}
	if c.transient {
		n += "+TRANSIENT"
	}
	return n
}

// build returns the error the case stands for, built as an implementation
// would: sentinels wrapped with %w, transient via provider.Transient.
func (c errorCase) build() error {
	err := errors.New("plain failure")
	for _, k := range c.kinds {
		err = fmt.Errorf("%w: %w", err, kindOfReason(k).Err())
	}
	if c.transient {
		err = provider.Transient(err)
	}
	return err
}

// errorCases covers every kind alone, permanent and transient, and the
// combinations implementations produce.
func errorCases() []errorCase {
	cases := []errorCase{{}, {transient: true}}
	for _, k := range provider.Kinds() {
		cases = append(cases, errorCase{kinds: []string{reasonOf(k)}}, errorCase{kinds: []string{reasonOf(k)}, transient: true})
	}
	return append(cases,
		errorCase{kinds: []string{"NOT_DELIVERED", "DEADLINE_EXCEEDED"}, transient: true},
		errorCase{kinds: []string{"NOT_DELIVERED", "PERMISSION"}, transient: true},
		errorCase{kinds: []string{"REFRESH_REJECTED", "LINEAGE_BROKEN"}},
		errorCase{kinds: []string{"CONFLICT", "READ_ONLY"}},
		errorCase{kinds: []string{"INVALID_RECORD", "EXPIRED"}},
	)
}

// sameKind fails t unless got carries exactly the kinds and transience of
// want.
func sameKind(t *testing.T, got, want error) {
	t.Helper()
	for _, k := range provider.Kinds() {
		if g, w := errors.Is(got, k.Err()), errors.Is(want, k.Err()); g != w {
			t.Errorf("errors.Is(err, %s) = %v, want %v (err: %v)", k, g, w, got)
		}
	}
	if g, w := provider.IsTransient(got), provider.IsTransient(want); g != w {
		t.Errorf("IsTransient = %v, want %v (err: %v)", g, w, got)
	}
	if errors.Is(got, errConnection) {
		t.Errorf("a plugin's error was taken for a connection failure: %v", got)
	}
}

func TestErrorKindsEncodeDecode(t *testing.T) {
	for _, c := range errorCases() {
		t.Run(c.name(), func(t *testing.T) {
			want := c.build()
			got := fromStatus(toStatus(want))
			sameKind(t, got, want)
			if got.Error() != want.Error() {
				t.Errorf("message = %q, want %q", got.Error(), want.Error())
			}
		})
	}
}

func TestErrorKindsThroughPlugin(t *testing.T) {
	p := open(t, "testplugin", nil)
	b, iss := backendOf(t, p), issuerOf(t, p)
	for _, c := range errorCases() {
		t.Run(c.name(), func(t *testing.T) {
			spec := strings.Join(c.kinds, ",")
			if c.transient {
				spec += ",TRANSIENT"
			}
			want := c.build()
			_, err := b.Load(ctxFor(t, 10*time.Second), "err:"+spec)
			sameKind(t, err, want)
			if !strings.Contains(err.Error(), `plugins: plugin "testplugin" Load: testplugin: requested failure`) {
				t.Errorf("Load error %q does not name the plugin, the method and the plugin's message", err)
			}
			_, err = iss.Refresh(ctxFor(t, 10*time.Second), provider.Pair{AuthToken: "a", RefreshToken: "err:" + spec, ValidUntil: time.Now().Add(time.Hour)})
			sameKind(t, err, want)
		})
	}
}

func TestErrorMessageCapped(t *testing.T) {
	p := open(t, "testplugin", nil)
	_, err := backendOf(t, p).Load(ctxFor(t, 10*time.Second), "err:NOT_FOUND,LONG")
	if !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if n := len(err.Error()); n > MaxErrorMessage+100 {
		t.Errorf("error is %d bytes, want at most about MaxErrorMessage (%d)", n, MaxErrorMessage)
	}
	if strings.ContainsAny(err.Error(), "\n\r") {
		t.Errorf("error spans several lines: %q", err)
	}
}

func TestStatusWithoutDetails(t *testing.T) {
	// A non-Go plugin may send bare status codes; a bare Unavailable is
	// what gRPC itself reports for a broken connection.
	for _, tc := range []struct {
		name      string
		err       error
		want      error
		transient bool
	}{
		{"not found", fromStatus(statusErr(5)), provider.ErrNotFound, false},
		{"aborted", fromStatus(statusErr(10)), provider.ErrConflict, false},
		{"unimplemented", fromStatus(statusErr(12)), provider.ErrUnsupported, false},
		{"deadline", fromStatus(statusErr(4)), context.DeadlineExceeded, true},
		{"unavailable", fromStatus(statusErr(14)), errConnection, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, tc.want) {
				t.Errorf("err = %v, want %v", tc.err, tc.want)
			}
			if provider.IsTransient(tc.err) != tc.transient {
				t.Errorf("IsTransient = %v, want %v", !tc.transient, tc.transient)
			}
			if errors.Is(tc.err, provider.ErrNotDelivered) {
				t.Errorf("a bare status claims ErrNotDelivered")
			}
		})
	}
}

func statusErr(code uint32) error { return status.Error(codes.Code(code), "bare status") }

func TestEveryKindHasACode(t *testing.T) {
	for _, k := range provider.Kinds() {
		if _, ok := kindCodes[k]; !ok {
			t.Errorf("kind %q has no gRPC code in kindCodes: it would cross the boundary as Unknown", k)
		}
		if kindOfReason(reasonOf(k)) != k {
			t.Errorf("kind %q does not survive its reason %q", k, reasonOf(k))
		}
	}
	if len(kindCodes) != len(provider.Kinds()) {
		t.Errorf("kindCodes has %d entries for %d kinds", len(kindCodes), len(provider.Kinds()))
	}
}
