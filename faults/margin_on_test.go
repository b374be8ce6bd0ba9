//go:build engine_margin_fix

package faults_test

// engineMarginFix: see margin_off_test.go.
const engineMarginFix = true
