package verdict

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

// TestTwoLBsCapture holds twoLBsLaterGap's figures to the run it was taken
// from: the later gap's as the verdict before the fix named them, the
// pause's as the timeline's points show it, and the server's own pause
// (once, about 4 s) as the reference that the later gap was not a stop.
func TestTwoLBsCapture(t *testing.T) {
	raw, err := os.ReadFile("testdata/wan-two-lbs-later-gap.json")
	if err != nil {
		t.Fatal(err)
	}
	var capture struct {
		Client struct {
			BytesWritten int64 `json:"bytes_written"`
			PeakInPipe   int64 `json:"peak_bytes_in_pipe"`
			Verdict      Verdict
			Timeline     struct {
				Points []struct {
					T            float64 `json:"t"`
					Acked        int64   `json:"bytes_acked"`
					BlockedTotal float64 `json:"blocked_seconds"`
				} `json:"points"`
			} `json:"timeline"`
		} `json:"client"`
		Server struct {
			Numbers []struct {
				Key   string  `json:"key"`
				Value float64 `json:"value"`
			} `json:"numbers"`
		} `json:"server"`
	}
	if err := json.Unmarshal(raw, &capture); err != nil {
		t.Fatal(err)
	}
	tl, old := twoLBsLaterGap(), capture.Client.Verdict
	pause, gap := tl.Stalls[0], tl.Stalls[1]
	if old.Outcome != OutcomeBlocked || *old.ServerStoppedAtSeconds != gap.Since.Seconds() ||
		*old.ServerResumedAtSeconds != gap.Until.Seconds() || *old.ServerReadAtStopBytes != gap.AckedBytes ||
		*old.AbsorbedBytes != tl.Blocks[0].WrittenBefore-gap.AckedBytes || *old.WritesBlockedAtSeconds != tl.Blocks[0].Began.Seconds() {
		t.Errorf("the later gap and its block are not the captured verdict's: %+v", old)
	}
	eqInt(t, "written", tl.Written, capture.Client.BytesWritten)
	eqInt(t, "peak", pause.PeakInPipe, capture.Client.PeakInPipe)
	// Through the pause the acks stand at the bytes read at the stop, and
	// the writes never block: the blocked total does not move.
	var blockedAt2, blockedAt6 float64
	for _, p := range capture.Client.Timeline.Points {
		if p.T >= 2.3 && p.T <= 6.0 && p.Acked != pause.AckedBytes {
			t.Errorf("at %.1f s acked %d, want the stop's %d", p.T, p.Acked, pause.AckedBytes)
		}
		if math.Abs(p.T-2.2) < 0.01 {
			blockedAt2 = p.BlockedTotal
		}
		if math.Abs(p.T-6.0) < 0.01 {
			blockedAt6 = p.BlockedTotal
		}
	}
	if blockedAt6-blockedAt2 >= 0.1 {
		t.Errorf("writes blocked %.3f s in the pause, want under the 0.1 s threshold", blockedAt6-blockedAt2)
	}
	for _, n := range capture.Server.Numbers {
		if n.Key == "read_paused_seconds" && (n.Value < 3.9 || n.Value > 4.1) {
			t.Errorf("the server paused %.3f s, want its one 4 s pause", n.Value)
		}
	}
}
