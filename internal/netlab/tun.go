package netlab

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The TUN offload flags of linux/if_tun.h (x/sys has TUNSETOFFLOAD but
// not these).
const (
	tunFCsum = 0x01 // the reader takes packets with a partial checksum
	tunFTSO4 = 0x02 // and TCP segments of up to 64 KiB, IPv4
	tunFTSO6 = 0x04 // and IPv6
)

// vnetHdrLen is the virtio_net_hdr in front of every packet of a TUN
// device opened with offloads: what the kernel says about the packet's
// checksum and segmentation, passed on unchanged by the delay line.
const vnetHdrLen = 10

// openTUN makes a TUN device (IP packets, no packet info header) in the
// namespace ns and returns it as a file on the Go poller, so that Close
// ends a blocked Read. The device lives as long as the file: it goes when
// the lab exits, however it exits.
//
// With offload the device takes and gives TCP segments of up to 64 KiB,
// each behind a virtio_net_hdr: the kernel does not cut a host's TSO
// segment into 1500-byte packets for the line, so the line makes one
// read and one write (each a pass through the kernel's forwarding) per
// 64 KiB rather than per packet: the per-packet writes were 77% of the
// line's CPU at 1 Gbit/s, and it topped at 0.64 Gbit/s.
func openTUN(ns, name string, offload bool) (*os.File, error) {
	var f *os.File
	err := Do(ns, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if offload {
			flags |= unix.IFF_VNET_HDR
		}
		var req [unix.IFNAMSIZ + 64]byte
		copy(req[:], name)
		*(*uint16)(unsafe.Pointer(&req[unix.IFNAMSIZ])) = flags
		if err := ioctl(fd, unix.TUNSETIFF, uintptr(unsafe.Pointer(&req[0]))); err != nil {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF %s: %w", name, err)
		}
		if offload {
			if err := ioctl(fd, unix.TUNSETOFFLOAD, tunFCsum|tunFTSO4|tunFTSO6); err != nil {
				unix.Close(fd)
				return fmt.Errorf("TUNSETOFFLOAD %s: %w", name, err)
			}
		}
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fd)
			return err
		}
		f = os.NewFile(uintptr(fd), name)
		return nil
	})
	return f, err
}

func ioctl(fd int, req, arg uintptr) error {
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg); errno != 0 {
		return errno
	}
	return nil
}
