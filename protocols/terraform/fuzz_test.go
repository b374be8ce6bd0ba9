package terraform

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/credhelper/credhelper/protocols/face"
	"github.com/credhelper/credhelper/provider"
)

const (
	fuzzToken  = "FUZZ-TERRAFORM-AUTH-e4c8"
	fuzzStored = "FUZZ-TERRAFORM-STORED-5a17" // what store is given
)

// FuzzServe drives arbitrary commands, hosts and input. It checks: no
// panic, nothing written on error, errors without the token or what store
// was given, and get answers that are {} or {"token": the token}.
func FuzzServe(f *testing.F) {
	for _, c := range []string{"get", "store", "forget", "list", ""} {
		for _, h := range []string{"app.terraform.io", "APP.TERRAFORM.IO", "other.io", "", "a b", "x:1"} {
			f.Add(c, h, []byte(`{"token":"x"}`))
		}
	}
	f.Fuzz(func(t *testing.T, command, host string, in []byte) {
		r := face.ResolverFunc(func(context.Context, string) (provider.Pair, error) {
			return provider.Pair{AuthToken: fuzzToken}, nil
		})
		h, err := New(r, []Rule{{Profile: "a", Hosts: []string{"app.terraform.io"}}})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		input := append(append([]byte{}, in...), fuzzStored...)
		err = h.Serve(context.Background(), []string{command, host}, bytes.NewReader(input), &out)
		if err != nil {
			args := command + host
			if out.Len() != 0 || strings.Contains(err.Error(), fuzzToken) && !strings.Contains(args, fuzzToken) ||
				strings.Contains(err.Error(), fuzzStored) && !strings.Contains(args, fuzzStored) {
				t.Fatalf("err %v, out %q", err, out.String())
			}
			return
		}
		if command != "get" {
			if out.Len() != 0 {
				t.Fatalf("%s wrote %q", command, out.String())
			}
			return
		}
		var tok map[string]any
		if err := json.Unmarshal(out.Bytes(), &tok); err != nil || len(tok) > 1 || len(tok) == 1 && tok["token"] != fuzzToken {
			t.Fatalf("answer %q", out.String())
		}
	})
}
