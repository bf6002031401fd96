// Package netns owns what hako does inside a new network namespace: bring
// its loopback interface up. The kernel creates every network namespace with
// lo down, so 127.0.0.1 is unreachable (ENETUNREACH) rather than closed
// (ECONNREFUSED) until someone sets IFF_UP: seed 001's daemon probing a local
// port it expects to find closed must get its refusal at once, as under runc
// and crun. Nothing else about networking is hako's: engines attach
// interfaces through CNI or slirp4netns.
//
// It uses the SIOCSIFFLAGS ioctl rather than netlink: one flag on one
// interface needs no library in the container's init.
package netns

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// LoopbackUp sets IFF_UP on lo in the caller's network namespace.
func LoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring lo up: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: SIOCGIFFLAGS lo: %w", err)
	}
	flags := ifr.Uint16()
	if flags&unix.IFF_UP != 0 {
		return nil
	}
	ifr.SetUint16(flags | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: SIOCSIFFLAGS lo: %w (needs CAP_NET_ADMIN in the network namespace's owning user namespace)", err)
	}
	return nil
}
