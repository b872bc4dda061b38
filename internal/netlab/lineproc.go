package netlab

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// lineProc is a delay line run by a helper process (Spec.LineBin). The
// lab's tests are built with the race detector, and so was a line in
// their process: BenchmarkDelayLine's 1 Gbit/s, 20 ms link reached
// 0.51 Gbit/s with it against 0.83 without, the line wrote each packet
// 2.2 ms late on average against 0.34, and spent 2.3 times the CPU; on a
// busy machine such a line ran late enough to fail the tests' round trip
// checks. The helper is built without the race detector.
type lineProc struct {
	link string
	cmd  *exec.Cmd
	stop *os.File // the write end of the helper's stdin
}

// startLineProc hands the wire's two TUN devices to bin (as fds 3 and 4)
// and closes this process's copies: the devices then live as long as the
// helper. The helper runs until its stdin ends, which happens at Close or
// when this process dies, however it dies: a helper never outlives its
// lab.
func startLineProc(bin, link string, a, b *os.File, oneWay time.Duration, loss float64) (*lineProc, error) {
	defer a.Close()
	defer b.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := exec.Command(bin, "-one-way", oneWay.String(), "-loss", strconv.FormatFloat(loss, 'g', -1, 64))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = r, os.Stderr, os.Stderr
	cmd.ExtraFiles = []*os.File{a, b}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("delay line helper: %w", err)
	}
	return &lineProc{link: link, cmd: cmd, stop: w}, nil
}

// Close ends the helper's stdin and waits for it to close the devices and
// exit. A helper that did not exit cleanly (it crashed, or was killed,
// and the link stopped forwarding then) is an error: the run's figures
// may be off.
func (p *lineProc) Close() error {
	p.stop.Close()
	if err := p.cmd.Wait(); err != nil {
		return fmt.Errorf("link %s: delay line helper: %w", p.link, err)
	}
	return nil
}

// ServeLine is a delay line helper's work (scripts/delayline): it forwards
// between the TUN devices it was given as fds 3 and 4, holding each packet
// for oneWay and dropping it with probability loss, until stdin ends or
// ctx is done.
func ServeLine(ctx context.Context, stdin io.Reader, oneWay time.Duration, loss float64) error {
	var dev [2]*os.File
	for i := range dev {
		fd := 3 + i
		// exec hands over descriptors in blocking mode; the poller needs
		// them non-blocking, so that Close ends a blocked Read.
		if err := unix.SetNonblock(fd, true); err != nil {
			return fmt.Errorf("fd %d (want a TUN device): %w", fd, err)
		}
		dev[i] = os.NewFile(uintptr(fd), "tun"+strconv.Itoa(i))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		io.Copy(io.Discard, stdin)
		cancel()
	}()
	d := startDelayLine(dev[0], dev[1], oneWay, loss)
	<-ctx.Done()
	d.Close()
	return nil
}
