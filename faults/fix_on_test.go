//go:build engine_broken_fix

package faults_test

// engineBrokenFix: see fix_off_test.go.
const engineBrokenFix = true
