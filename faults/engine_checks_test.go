package faults_test

// engineBrokenFix and engineMarginFix make two checks strict that were
// logged as known engine defects while the engine had them: a deferred
// commit reviving a lineage another instance marked broken, and a pair
// served with a few milliseconds less than MinValidity (the slow path now
// keeps a margin). Both are fixed; the checks now fail the test.
const (
	engineBrokenFix = true
	engineMarginFix = true
)
