package flow

import "testing"

func TestParseSourceAddrs(t *testing.T) {
	sa, err := ParseSourceAddrs("127.0.0.2-127.0.0.4, 10.0.0.9")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 5 {
		got = append(got, sa.localAddr().String())
	}
	want := []string{"127.0.0.2:0", "127.0.0.3:0", "127.0.0.4:0", "10.0.0.9:0", "127.0.0.2:0"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("round-robin %v, want %v", got, want)
		}
	}
	for _, bad := range []string{"x", "127.0.0.9-127.0.0.2", "127.0.0.1-::1", "10.0.0.0-10.1.0.0"} {
		if _, err := ParseSourceAddrs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if sa, err := ParseSourceAddrs(""); sa != nil || err != nil || sa.localAddr() != nil {
		t.Errorf("empty: %v, %v", sa, err)
	}
}
