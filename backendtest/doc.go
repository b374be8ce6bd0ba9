// Package backendtest is the conformance suite every provider.Backend must
// pass, in-process or behind the plugin boundary.
//
// A backend's test calls Run from an ordinary test function:
//
//	func TestConformance(t *testing.T) {
//		backendtest.Run(t, backendtest.Config{
//			New: func(t testing.TB) provider.Backend { return mybackend.New(...) },
//			Key: func(t testing.TB) string { return uniqueKey(t) },
//		})
//	}
//
// The multi-process race re-executes the test binary: each child process
// runs the same test function, in which Run sees the child environment,
// performs one CompareAndSwap with a backend from Config.New, reports the
// outcome on stdout and returns. Config.New must therefore build a backend
// attached to the same store in a child as in the parent (from environment
// variables, absolute paths or the like).
package backendtest
