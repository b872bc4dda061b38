package relay

// SpliceFill is spliceFill for the external tests: the most payload a
// spliced write holds.
const SpliceFill = spliceFill
