package faults_test

// engineMarginFix makes the MinValidity boundary check strict: the slow
// path keeps a margin above MinValidity, so a pair served with less is a
// failure.
//
// engineBrokenFix stays off on purpose. After another instance took a live
// holder for dead and presented its spent token (a race the protocol
// cannot win once the holder is cut off for longer than its lease), the
// rejected instance adopts the generation the holder committed, as DESIGN
// section 5 step 5 says, because with an issuer that has no reuse
// detection (or a grace period) that pair is the lineage's valid
// continuation. With the dev issuer, which revokes the family on reuse,
// that pair is dead: such cells are marked NO in the report and logged, not
// failed. The holder's own late commit never revives a lineage another
// instance marked broken; the report checks that too.
const (
	engineBrokenFix = false
	engineMarginFix = true
)
