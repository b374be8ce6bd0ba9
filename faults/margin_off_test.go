//go:build !engine_margin_fix

package faults_test

// engineMarginFix turns the MinValidity boundary check (a pair served with
// a few milliseconds less than MinValidity left, because the engine checks
// at its own instant with no margin) from a logged known defect into a
// test failure; build with -tags engine_margin_fix once the engine is
// fixed.
const engineMarginFix = false
