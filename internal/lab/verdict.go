package lab

import "github.com/go-backpressure/go-backpressure/pkg/report"

// verdictShort is the client's verdict in a few words, for the summary
// table ("-" when the report has none).
func verdictShort(s report.Summary) string {
	if s.Verdict == nil {
		return "-"
	}
	return s.Verdict.Short()
}
