package terraform

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/credhelper/credhelper/protocols/face"
	"github.com/credhelper/credhelper/provider"
)

const secret = "tok-TERRAFORM-27b9"

func newHelper(t *testing.T) *Helper {
	t.Helper()
	r := face.ResolverFunc(func(_ context.Context, profile string) (provider.Pair, error) {
		if profile == "broken" {
			return provider.Pair{}, provider.Transient(errors.New("backend down"))
		}
		return provider.Pair{AuthToken: secret + "-" + profile}, nil
	})
	h, err := New(r, []Rule{
		{Profile: "hcp", Hosts: []string{"App.Terraform.io"}},
		{Profile: "reg", Hosts: []string{"registry.example.com:8443", "xn--bcher-kva.example"}},
		{Profile: "broken", Hosts: []string{"broken.example.com"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestServe(t *testing.T) {
	h := newHelper(t)
	for _, tc := range []struct {
		args    []string
		in, out string
		fail    bool
	}{
		{[]string{"get", "app.terraform.io"}, "", `{"token":"` + secret + `-hcp"}` + "\n", false},
		{[]string{"get", "APP.terraform.io"}, "", `{"token":"` + secret + `-hcp"}` + "\n", false},
		{[]string{"get", "registry.example.com:8443"}, "", `{"token":"` + secret + `-reg"}` + "\n", false},
		{[]string{"get", "xn--bcher-kva.example"}, "", `{"token":"` + secret + `-reg"}` + "\n", false},
		{[]string{"get", "registry.example.com"}, "", "{}\n", false},
		{[]string{"forget", "other.example.com"}, "", "", false},
		{[]string{"forget", "app.terraform.io"}, "", "", true},
		{[]string{"store", "app.terraform.io"}, `{"token":"typed-by-user"}`, "", true},
		{[]string{"store", "other.example.com"}, `{"token":"typed-by-user"}`, "", true},
		{[]string{"store", "other.example.com"}, strings.Repeat("x", 1<<20), "", true},
		{[]string{"get", "broken.example.com"}, "", "", true},
		{[]string{"get", "bücher.example"}, "", "", true},
		{[]string{"get"}, "", "", true},
		{[]string{"get", "a", "b"}, "", "", true},
		{[]string{"list", "app.terraform.io"}, "", "", true},
		{nil, "", "", true},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			in := strings.NewReader(tc.in)
			err := h.Serve(context.Background(), tc.args, in, &out)
			if (err != nil) != tc.fail || out.String() != tc.out {
				t.Fatalf("err %v, out %q; want %q, failure %v", err, out.String(), tc.out, tc.fail)
			}
			if err != nil && (strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "typed-by-user")) {
				t.Errorf("error leaks a secret: %v", err)
			}
			if in.Len() != 0 && len(tc.args) > 0 && tc.args[0] == "store" {
				t.Errorf("store left %d bytes unread", in.Len())
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	r := face.ResolverFunc(func(context.Context, string) (provider.Pair, error) { return provider.Pair{}, nil })
	for _, rules := range [][]Rule{
		{{Profile: "a", Hosts: []string{"https://app.terraform.io"}}},
		{{Profile: "a", Hosts: []string{"bücher.example"}}},
		{{Profile: "a", Hosts: []string{""}}},
		{{Hosts: []string{"a.example.com"}}},
		{{Profile: "a", Hosts: []string{"a.example.com"}}, {Profile: "b", Hosts: []string{"A.example.com"}}},
	} {
		if _, err := New(r, rules); err == nil {
			t.Errorf("New(%+v) accepted it", rules)
		}
	}
}
