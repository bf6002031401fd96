package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

	"github.com/hako-runtime/hako/internal/nsenter"
)

// Connect opens a connection to the system's systemd (the system bus, or
// its private socket when root and no bus daemon runs, as go-systemd's
// NewWithContext does) or, rootless, to the user's own systemd instance.
func Connect(user bool) (Bus, error) {
	if !user {
		c, err := sd.NewWithContext(context.Background())
		if err != nil {
			return nil, fmt.Errorf("systemd: connect to the system manager (is systemd PID 1, and dbus running?): %w", err)
		}
		return c, nil
	}
	addr, err := userBusAddress()
	if err != nil {
		return nil, err
	}
	uid, err := hostUID()
	if err != nil {
		return nil, err
	}
	c, err := sd.NewConnection(func() (*dbus.Conn, error) {
		conn, err := dbus.Dial(addr)
		if err != nil {
			return nil, fmt.Errorf("dial user bus %s: %w", addr, err)
		}
		// EXTERNAL with the uid the bus sees. The bus checks the claim
		// against SO_PEERCRED, which the kernel reports in the
		// listener's (the host's) user namespace; godbus's default
		// claims getuid(), which inside podman's rootless user
		// namespace is 0 and is refused. runc does the same (it asks
		// `busctl --user status` for OwnerUID=).
		if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(uid))}); err != nil {
			conn.Close()
			return nil, fmt.Errorf("authenticate to user bus %s as uid %d: %w", addr, uid, err)
		}
		if err := conn.Hello(); err != nil {
			conn.Close()
			return nil, fmt.Errorf("hello on user bus %s: %w", addr, err)
		}
		return conn, nil
	})
	if err != nil {
		return nil, fmt.Errorf("systemd: connect to the user manager: %w", err)
	}
	return c, nil
}

// userBusAddress is runc's DetectUserDbusSessionBusAddress:
// $DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus, else what
// `systemctl --user show-environment` says.
func userBusAddress() (string, error) {
	if a := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" {
		return a, nil
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		p := filepath.Join(d, "bus")
		if _, err := os.Stat(p); err == nil {
			return "unix:path=" + dbus.EscapeBusAddressValue(p), nil
		}
	}
	var out []byte
	err := nsenter.WithCallerSlack(func() (err error) {
		out, err = exec.Command("systemctl", "--user", "--no-pager", "show-environment").CombinedOutput()
		return err
	})
	if err != nil {
		return "", fmt.Errorf("systemd: find the user bus: no $DBUS_SESSION_BUS_ADDRESS, no $XDG_RUNTIME_DIR/bus, and systemctl --user show-environment failed: %w: %s", err, strings.TrimSpace(string(out)))
	}
	for line := range strings.Lines(string(out)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "DBUS_SESSION_BUS_ADDRESS="); ok {
			return v, nil
		}
	}
	return "", errors.New("systemd: find the user bus: DBUS_SESSION_BUS_ADDRESS not set in systemctl --user show-environment")
}

// hostUID is our uid as the user namespace's parent sees it: getuid() when
// not in a user namespace, else the outside uid uid_map maps ours to.
func hostUID() (int, error) {
	data, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return os.Getuid(), nil // no user namespaces: the initial one
	}
	return mapToParent(string(data), os.Getuid())
}

func mapToParent(uidMap string, uid int) (int, error) {
	for line := range strings.Lines(uidMap) {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		in, err1 := strconv.ParseUint(f[0], 10, 32)
		out, err2 := strconv.ParseUint(f[1], 10, 32)
		n, err3 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		if u := uint64(uid); u >= in && u-in < n {
			return int(out + (u - in)), nil
		}
	}
	return 0, fmt.Errorf("systemd: uid %d is not mapped in /proc/self/uid_map", uid)
}
