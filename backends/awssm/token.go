package awssm

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/credhelper/credhelper/provider"
)

// tokenDomain separates these version ids from any other use of the hash.
const tokenDomain = "credhelper/awssm/version-token/v1\x00"

// versionToken derives the ClientRequestToken (and so the VersionId) of the
// version that CompareAndSwap(expected, value) writes: a UUID (RFC 9562
// version 8) made of the first 122 bits of SHA-256 over the expected version
// and the value. A retried write sends the same token and is a no-op; a
// different value for the same parent gets a different token.
func versionToken(expected provider.Version, value []byte) string {
	h := sha256.New()
	h.Write([]byte(tokenDomain))
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(expected)))
	h.Write(n[:])
	h.Write([]byte(expected))
	h.Write(value)
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x80 // version 8
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
