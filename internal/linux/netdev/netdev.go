// Package netdev moves host network devices into a container's network
// namespace (linux.netDevices), from the parent: netlink is a heavy
// library, and nothing of it runs inside the container.
//
// What runc 1.5 does, with three differences that only turn its failures
// into successes or clearer errors: a name ending in "%d" is numbered by
// the kernel and the device is then found by its index (runc moves it and
// then fails looking it up by the literal name); a name already taken in
// the container is refused before anything moves; a missing device is
// named by its config key.
//
// On the container's exit hako does what runc does, which is nothing: when
// the namespace goes, the kernel moves physical devices back to the
// initial namespace (under their current names) and destroys virtual ones
// (veth, ifb, ...), as the runtime-spec's lifecycle says.
package netdev

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Move moves every device in devs into the network namespace at nsPath.
// On failure the devices already moved stay there; the caller kills the
// container, and the kernel hands them back (or destroys them) with the
// namespace, as runc relies on too.
func Move(nsPath string, devs map[string]specs.LinuxNetDevice) error {
	if len(devs) == 0 {
		return nil
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return fmt.Errorf("linux.netDevices: open network namespace %s: %w", nsPath, err)
	}
	defer ns.Close()
	in, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("linux.netDevices: netlink in %s: %w", nsPath, err)
	}
	defer in.Close()
	names := make([]string, 0, len(devs))
	for n := range devs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := move(in, ns, n, devs[n]); err != nil {
			return fmt.Errorf("linux.netDevices[%q]: %w", n, err)
		}
	}
	return nil
}

func dumpIntr(err error) bool { return err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) }

func move(in *netlink.Handle, ns netns.NsHandle, name string, dev specs.LinuxNetDevice) error {
	link, err := netlink.LinkByName(name)
	if dumpIntr(err) {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return fmt.Errorf("no network device %q on the host", name)
		}
		return fmt.Errorf("look up %q on the host: %w", name, err)
	}
	newName := name
	if dev.Name != "" {
		newName = dev.Name
	}
	numbered := strings.Contains(newName, "%d")
	if !numbered {
		if _, err := in.LinkByName(newName); err == nil {
			return fmt.Errorf("a device named %q already exists in the container's network namespace", newName)
		}
	}
	// Down first, as runc: nothing on the host uses it half-moved.
	if err := netlink.LinkSetDown(link); err != nil {
		return fmt.Errorf("set %q down: %w", name, err)
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if dumpIntr(err) {
		return fmt.Errorf("list addresses of %q: %w", name, err)
	}
	// Rename and move in one request, so that neither name clashes
	// halfway (runc's devChangeNetNamespace). With "%d" the kernel picks
	// the number in the target namespace.
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(link.Attrs().Index)
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(newName)))
	req.AddData(nl.NewRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(ns))))
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); dumpIntr(err) {
		return fmt.Errorf("move %q into the container as %q: %w", name, newName, err)
	}
	// The index stays the same where it is free in the target, which a
	// fresh namespace guarantees (only lo, index 1); the name is looked
	// up only when it is not.
	moved, err := in.LinkByIndex(link.Attrs().Index)
	if err != nil || (!numbered && moved.Attrs().Name != newName) {
		if numbered {
			return fmt.Errorf("find %q in the container after the move: %v", newName, err)
		}
		if moved, err = in.LinkByName(newName); err != nil {
			return fmt.Errorf("find %q in the container after the move: %w", newName, err)
		}
	}
	// The kernel drops addresses on a move: put back the permanent ones
	// of global scope (runc's rule; others depend on the host's network).
	for _, a := range addrs {
		if a.Flags&unix.IFA_F_PERMANENT == 0 || a.Scope != unix.RT_SCOPE_UNIVERSE {
			continue
		}
		if err := in.AddrAdd(moved, &netlink.Addr{IPNet: a.IPNet}); err != nil {
			return fmt.Errorf("add address %s to %q in the container: %w", a.IPNet, moved.Attrs().Name, err)
		}
	}
	if err := in.LinkSetUp(moved); err != nil {
		return fmt.Errorf("set %q up in the container: %w", moved.Attrs().Name, err)
	}
	return nil
}
