package refresh

import (
	"context"
	"testing"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// benchEngine returns an engine on the real clock with a fresh cached pair.
func benchEngine(b *testing.B) *Engine {
	be := newMem(b)
	be.put(testKey, &provider.Record{Pair: provider.Pair{AuthToken: "a", RefreshToken: "r", ValidUntil: time.Now().Add(time.Hour)}})
	e, err := New(be, newIssuer(newFakeClock(), time.Hour), testKey, func(o *Options) { o.JournalDir = b.TempDir() })
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	if _, err := e.Credential(context.Background()); err != nil {
		b.Fatal(err)
	}
	return e
}

func BenchmarkCredentialCached(b *testing.B) {
	e := benchEngine(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Credential(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCredentialCachedParallel(b *testing.B) {
	e := benchEngine(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.Credential(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkClockRead is the cost the hot path avoids.
func BenchmarkClockRead(b *testing.B) {
	for b.Loop() {
		_ = time.Now()
	}
}
