package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"golang.org/x/oauth2"

	"github.com/credhelper/credhelper/backends/file"
	"github.com/credhelper/credhelper/provider"
	"github.com/credhelper/credhelper/refresh"
)

// HotPath is one cached-credential benchmark: a name in Go's benchmark
// naming and the function testing.Benchmark runs.
type HotPath struct {
	Name     string
	Parallel bool
	Peer     string // "" for credhelper itself
	Fn       func(b *testing.B)
}

// HotPaths returns credhelper's cached Credential call and the calls users
// would otherwise make (x/oauth2's ReuseTokenSource, the AWS SDK's
// CredentialsCache), each serial and under RunParallel.
func HotPaths() []HotPath {
	var out []HotPath
	for _, par := range []bool{false, true} {
		suffix := ""
		if par {
			suffix = "Parallel"
		}
		out = append(out,
			HotPath{Name: "CredhelperEngine" + suffix, Parallel: par, Fn: engineBench(par)},
			HotPath{Name: "OAuth2ReuseTokenSource" + suffix, Parallel: par, Peer: "golang.org/x/oauth2 ReuseTokenSource.Token", Fn: oauth2Bench(par)},
			HotPath{Name: "AWSCredentialsCache" + suffix, Parallel: par, Peer: "aws-sdk-go-v2 aws.CredentialsCache.Retrieve", Fn: awsBench(par)},
		)
	}
	return out
}

func loop(b *testing.B, parallel bool, fn func() error) {
	b.ReportAllocs()
	b.ResetTimer()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
		return
	}
	for i := 0; i < b.N; i++ {
		if err := fn(); err != nil {
			b.Fatal(err)
		}
	}
}

func engineBench(parallel bool) func(b *testing.B) {
	return func(b *testing.B) {
		dir, err := os.MkdirTemp("", "credbench-*")
		if err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(dir)
		be, err := file.New()
		if err != nil {
			b.Fatal(err)
		}
		key := filepath.Join(dir, "cred.json")
		v, _ := (&provider.Record{Pair: provider.Pair{AuthToken: "a", RefreshToken: "r", ValidUntil: time.Now().Add(time.Hour)}}).Encode()
		if _, err := be.CompareAndSwap(context.Background(), key, "", v); err != nil {
			b.Fatal(err)
		}
		e, err := refresh.New(be, nil, key, func(o *refresh.Options) { o.JournalDir = filepath.Join(dir, "journal") })
		if err != nil {
			b.Fatal(err)
		}
		defer e.Close()
		ctx := context.Background()
		if _, err := e.Credential(ctx); err != nil {
			b.Fatal(err)
		}
		loop(b, parallel, func() error { _, err := e.Credential(ctx); return err })
	}
}

func oauth2Bench(parallel bool) func(b *testing.B) {
	return func(b *testing.B) {
		tok := &oauth2.Token{AccessToken: "a", RefreshToken: "r", Expiry: time.Now().Add(time.Hour)}
		ts := oauth2.ReuseTokenSource(nil, oauth2.StaticTokenSource(tok))
		loop(b, parallel, func() error { _, err := ts.Token(); return err })
	}
}

func awsBench(parallel bool) func(b *testing.B) {
	return func(b *testing.B) {
		c := aws.NewCredentialsCache(aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "a", SecretAccessKey: "s", SessionToken: "t", CanExpire: true, Expires: time.Now().Add(time.Hour)}, nil
		}))
		ctx := context.Background()
		loop(b, parallel, func() error { _, err := c.Retrieve(ctx); return err })
	}
}
