package initproc

import (
	"errors"
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/console"
)

// setupConsole makes a pty in the container's devpts, sends the master to the
// console socket, and makes the slave the process's controlling terminal and
// stdio. For the init it is also bound onto /dev/console.
func setupConsole(consoleFd int, uid int, size *specs.Box, devConsole bool) error {
	if consoleFd < 0 {
		return fmt.Errorf("process.terminal is true but no console socket was given")
	}
	sock := os.NewFile(uintptr(consoleFd), "console-socket")
	defer sock.Close()
	master, slave, err := console.NewPty("/dev/pts/ptmx")
	if err != nil {
		return err
	}
	defer master.Close()
	defer slave.Close()
	// The slave belongs to whoever opened ptmx, root here; as in runc
	// (fixStdioPermissions), the process's user gets it, so that it owns
	// its terminal as after a login. The group stays the one the devpts
	// mount chose (gid=5). Ids the user namespace cannot map, or a
	// read-only devpts, leave it as it is, as in runc.
	if err := unix.Fchown(int(slave.Fd()), uid, -1); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EROFS) {
		return fmt.Errorf("chown %s to uid %d: %w", slave.Name(), uid, err)
	}
	if cs := size; cs != nil {
		ws := &unix.Winsize{Row: uint16(cs.Height), Col: uint16(cs.Width)}
		if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws); err != nil {
			return fmt.Errorf("set console size: %w", err)
		}
	}
	if devConsole {
		if err := bindConsole(slave); err != nil {
			return err
		}
	}
	if err := console.SendFd(sock, master.Name(), master); err != nil {
		return fmt.Errorf("send pty master to console socket: %w", err)
	}
	if err := unix.IoctlSetInt(int(slave.Fd()), unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("make pty the controlling terminal: %w", err)
	}
	for i := 0; i < 3; i++ {
		if err := unix.Dup3(int(slave.Fd()), i, 0); err != nil {
			return fmt.Errorf("dup pty to fd %d: %w", i, err)
		}
	}
	return nil
}

// bindConsole mounts the pty slave on /dev/console. The mount point is
// created with O_NOFOLLOW: a symlink planted at /dev/console is refused.
func bindConsole(slave *os.File) error {
	fd, err := unix.Open("/dev/console", unix.O_CREAT|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create /dev/console: %w", err)
	}
	defer unix.Close(fd)
	tree, err := unix.OpenTree(int(slave.Fd()), "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if err != nil {
		return fmt.Errorf("open_tree pty: %w", err)
	}
	defer unix.Close(tree)
	if err := unix.MoveMount(tree, "", fd, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("mount pty on /dev/console: %w", err)
	}
	return nil
}
