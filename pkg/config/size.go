package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size is a number of bytes. It reads "65536", "64KiB", "64KB", "1.5MiB".
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30},
	{"b", 1},
}

// ParseSize reads a size as people write it.
func ParseSize(s string) (Size, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return 0, fmt.Errorf("empty size")
	}
	mult := 1.0
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("not a size (want bytes, e.g. 65536, 64KiB or 1MB)")
	}
	b := v * mult
	if b > math.MaxInt64/2 || b < math.MinInt64/2 {
		return 0, fmt.Errorf("size out of range")
	}
	return Size(math.Round(b)), nil
}

// Decode implements envconfig.Decoder.
func (s *Size) Decode(v string) error {
	n, err := ParseSize(v)
	if err != nil {
		return err
	}
	*s = n
	return nil
}

// String writes the size with the largest binary unit that divides it.
func (s Size) String() string {
	n := int64(s)
	for _, u := range []struct {
		name string
		mult int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// HumanBytes formats a byte count for people: 1.5 MB, 312 kB, 12 B (SI
// units, as throughput is usually read).
func HumanBytes(n float64) string {
	neg := n < 0
	if neg {
		n = -n
	}
	units := []string{"B", "kB", "MB", "GB", "TB"}
	i := 0
	for n >= 1000 && i < len(units)-1 {
		n /= 1000
		i++
	}
	sign := ""
	if neg {
		sign = "-"
	}
	if i == 0 {
		return fmt.Sprintf("%s%.0f %s", sign, n, units[i])
	}
	return fmt.Sprintf("%s%.1f %s", sign, n, units[i])
}
