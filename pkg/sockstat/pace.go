package sockstat

import "time"

// startPassCost starts measuring a pass's cost: the CPU time its thread
// spent in it, where the system tells a thread's (Linux), else the time it
// took. Neither the wait for the goroutine to run after the timer fired
// nor the time the thread was preempted in the pass is sampling: on a
// loaded machine counting either nine times over left seconds between
// passes (a pass preempted for 300 ms held the next back 2.7 s), and every
// figure that old.
func startPassCost() (cost func() time.Duration) {
	began := time.Now()
	cpu, ok := threadCPU()
	return func() time.Duration {
		if now, ok2 := threadCPU(); ok && ok2 {
			return now - cpu
		}
		return time.Since(began)
	}
}
