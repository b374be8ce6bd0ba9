//go:build !engine_broken_fix

package faults_test

// engineBrokenFix turns the revived-lineage check (a deferred commit over
// another instance's broken mark) from a logged known defect into a test
// failure; build with -tags engine_broken_fix once the engine is fixed.
const engineBrokenFix = false
