package authpb_test

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/credhelper/credhelper/issuers/momento/authpb"
)

// TestWireFormat pins the bytes Momento's servers expect: field numbers and
// wire types of Momento's public auth.proto, and the full method names.
func TestWireFormat(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  proto.Message
		want []byte
	}{
		{"refresh request", &authpb.XRefreshApiTokenRequest{ApiKey: "k", RefreshToken: "r"},
			[]byte{0x0a, 1, 'k', 0x12, 1, 'r'}},
		{"generate never, super user", &authpb.XGenerateApiTokenRequest{
			Expiry:      &authpb.XGenerateApiTokenRequest_Never_{Never: &authpb.XGenerateApiTokenRequest_Never{}},
			AuthToken:   "s",
			Permissions: &authpb.Permissions{Kind: &authpb.Permissions_SuperUser{}},
		}, []byte{0x0a, 0, 0x1a, 1, 's', 0x22, 2, 0x08, 0}},
		{"generate expires", &authpb.XGenerateApiTokenRequest{
			Expiry:      &authpb.XGenerateApiTokenRequest_Expires_{Expires: &authpb.XGenerateApiTokenRequest_Expires{ValidForSeconds: 60}},
			TokenId:     "i",
			Description: "d",
		}, []byte{0x12, 2, 0x08, 60, 0x2a, 1, 'i', 0x32, 1, 'd'}},
		{"refresh response", &authpb.XRefreshApiTokenResponse{ApiKey: "k", RefreshToken: "r", Endpoint: "e", ValidUntil: 1},
			[]byte{0x0a, 1, 'k', 0x12, 1, 'r', 0x1a, 1, 'e', 0x20, 1}},
		{"generate response", &authpb.XGenerateApiTokenResponse{ApiKey: "k", RefreshToken: "r", Endpoint: "e", ValidUntil: 1},
			[]byte{0x0a, 1, 'k', 0x12, 1, 'r', 0x1a, 1, 'e', 0x20, 1}},
	} {
		got, err := proto.MarshalOptions{Deterministic: true}.Marshal(tc.msg)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !bytes.Equal(fields(t, got), fields(t, tc.want)) {
			t.Errorf("%s: wire bytes % x, want % x", tc.name, got, tc.want)
		}
	}
	if authpb.Auth_RefreshApiToken_FullMethodName != "/auth.Auth/RefreshApiToken" || authpb.Auth_GenerateApiToken_FullMethodName != "/auth.Auth/GenerateApiToken" {
		t.Errorf("method names %q, %q", authpb.Auth_RefreshApiToken_FullMethodName, authpb.Auth_GenerateApiToken_FullMethodName)
	}
}

// fields returns the top-level fields of an encoded message in field order,
// since encoders may emit oneof members after the other fields.
func fields(t *testing.T, b []byte) []byte {
	t.Helper()
	var out []string
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag in % x", b)
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			t.Fatalf("bad field %d in % x", num, b)
		}
		out = append(out, fmt.Sprintf("%04d/%d/% x", num, typ, b[n:n+m]))
		b = b[n+m:]
	}
	sort.Strings(out)
	return []byte(strings.Join(out, ";"))
}
