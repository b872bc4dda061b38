package verdict

import (
	"cmp"
	"slices"
)

// median is the middle value (the lower of the two middle ones for an
// even count; the zero value for none).
func median[T cmp.Ordered](v []T) T {
	if len(v) == 0 {
		var zero T
		return zero
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// spread is the largest over the smallest value (1 when all agree; values
// under 64 KiB count as 64 KiB, so tiny figures do not look like a
// disagreement).
func spread(v []int64) float64 {
	if len(v) < 2 {
		return 1
	}
	lo, hi := max(slices.Min(v), 64<<10), max(slices.Max(v), 64<<10)
	return float64(hi) / float64(lo)
}

func ptr[T any](v T) *T { return &v }
