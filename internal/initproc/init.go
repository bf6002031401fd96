package initproc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/hooks"
	"github.com/hako-runtime/hako/internal/linux/idmap"
	"github.com/hako-runtime/hako/internal/linux/netns"
	"github.com/hako-runtime/hako/internal/linux/ns"
	"github.com/hako-runtime/hako/internal/linux/rootfs"
	"github.com/hako-runtime/hako/internal/nsenter"
	"github.com/hako-runtime/hako/internal/spec"
	"github.com/hako-runtime/hako/internal/state"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// IsChild reports whether this process was started by hako as a container
// process (nsexec.c has run).
func IsChild() bool { return os.Getenv(nsenter.EnvSync) != "" }

// Main runs the child side and never returns.
func Main() {
	// Capabilities, seccomp and no_new_privs are per thread: everything
	// happens on this one, which is the one that calls execve.
	runtime.LockOSThread()
	fd, err := strconv.Atoi(os.Getenv(nsenter.EnvSync))
	if err != nil {
		os.Exit(1)
	}
	os.Unsetenv(nsenter.EnvSync)
	conn := os.NewFile(uintptr(fd), "sync")
	c := &child{conn: conn, dec: json.NewDecoder(conn)}
	fds, err := recvFds(fd)
	if err != nil {
		c.fail(err)
	}
	var p Plan
	if err := c.dec.Decode(&p); err != nil {
		c.fail(fmt.Errorf("read plan: %w", err))
	}
	if len(fds) != len(p.IDMapMounts)+len(p.BindSources) {
		c.fail(fmt.Errorf("got %d fds for %d idmapped mounts and %d bind sources", len(fds), len(p.IDMapMounts), len(p.BindSources)))
	}
	c.idmap, c.bindSrcs = map[int]int{}, map[int]int{}
	for i, idx := range p.IDMapMounts {
		c.idmap[idx] = fds[i]
	}
	for i, idx := range p.BindSources {
		c.bindSrcs[idx] = fds[len(p.IDMapMounts)+i]
	}
	switch p.Kind {
	case KindInit:
		err = c.runInit(&p)
	case KindExec:
		err = c.runExec(&p)
	default:
		err = fmt.Errorf("unknown plan kind %q", p.Kind)
	}
	c.fail(err)
}

type child struct {
	conn     *os.File
	dec      *json.Decoder
	idmap    map[int]int
	bindSrcs map[int]int
}

// MaxPassFds is how many fds the parent may pass before the plan: the
// kernel's SCM_MAX_FD for one message.
const MaxPassFds = 253

// recvFds reads the one message the parent sends before the plan.
func recvFds(sock int) ([]int, error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4*MaxPassFds))
	_, oobn, flags, _, err := unix.Recvmsg(sock, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("receive fds: %w", err)
	}
	if flags&unix.MSG_CTRUNC != 0 {
		return nil, fmt.Errorf("receive fds: %w (more than %d)", unix.EMSGSIZE, MaxPassFds)
	}
	if oobn == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("receive fds: %w", err)
	}
	var fds []int
	for i := range msgs {
		f, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			return nil, fmt.Errorf("receive fds: %w", err)
		}
		fds = append(fds, f...)
	}
	return fds, nil
}

func (c *child) send(m Message) error {
	return json.NewEncoder(c.conn).Encode(m)
}

func (c *child) fail(err error) {
	if err == nil {
		err = errors.New("container process returned without exec")
	}
	// After "ready" nobody listens on the socket any more (the parent of
	// a created container is gone): stderr is the container's, and the
	// only place left to say why it died.
	if c.send(Message{Type: MsgError, Error: err.Error()}) != nil {
		fmt.Fprintf(os.Stderr, "hako init: %v\n", err)
	}
	os.Exit(1)
}

// ready reports that everything that can fail has.
func (c *child) ready() error {
	return c.send(Message{Type: MsgReady})
}

func (c *child) await(want string) error {
	var m Message
	if err := c.dec.Decode(&m); err != nil {
		return fmt.Errorf("wait for %s: %w", want, err)
	}
	if m.Type != want {
		return fmt.Errorf("wait for %s: got %q %s", want, m.Type, m.Error)
	}
	return nil
}

func (c *child) runInit(p *Plan) error {
	s := p.Spec
	unix.Umask(0)
	lx := s.Linux
	if lx == nil {
		lx = &specs.Linux{}
	}
	cfg := &rootfs.Config{
		Rootfs:      p.Rootfs,
		Bundle:      p.Bundle,
		Spec:        s,
		NoPivot:     p.NoPivot,
		NewMountNS:  ns.Has(lx.Namespaces, specs.MountNamespace),
		InUserNS:    ns.Has(lx.Namespaces, specs.UserNamespace) || idmap.RunningInUserNS(),
		Cgroups:     p.Cgroups,
		IDMapTrees:  c.idmap,
		BindSources: c.bindSrcs,
	}
	cfg.Propagation, _ = rootfs.ParsePropagation(lx.RootfsPropagation)
	if cfg.NewMountNS {
		if err := rootfs.Setup(cfg); err != nil {
			return err
		}
	}
	if ns.IsNew(lx.Namespaces, specs.NetworkNamespace) {
		if err := netns.LoopbackUp(); err != nil {
			return err
		}
	}
	if err := writeSysctls(lx.Sysctl); err != nil {
		return err
	}
	if ns.Has(lx.Namespaces, specs.UTSNamespace) {
		if s.Hostname != "" {
			if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
				return fmt.Errorf("sethostname %q: %w", s.Hostname, err)
			}
		}
		if s.Domainname != "" {
			if err := unix.Setdomainname([]byte(s.Domainname)); err != nil {
				return fmt.Errorf("setdomainname %q: %w", s.Domainname, err)
			}
		}
	}
	if p.RuntimeHooks {
		if err := c.send(Message{Type: MsgHooks}); err != nil {
			return err
		}
		if err := c.await(MsgHooksDone); err != nil {
			return err
		}
	}
	if s.Hooks != nil && len(s.Hooks.CreateContainer) > 0 {
		// The parent bounds how long it waits for word from us; a hook
		// runs for as long as its own timeout (or forever without one),
		// as in runc.
		if err := c.send(Message{Type: MsgContainerHooks}); err != nil {
			return err
		}
		// runc runs them from the rootfs, and hooks rely on it (they
		// are given no path to the rootfs but the bundle's config).
		if err := unix.Chdir(p.Rootfs); err != nil {
			return fmt.Errorf("chdir to rootfs %s for createContainer hooks: %w", p.Rootfs, err)
		}
		if err := hooks.Run("createContainer", s.Hooks.CreateContainer, p.State); err != nil {
			return err
		}
	}
	if err := rootfs.EnterRoot(cfg); err != nil {
		return err
	}
	// A new session: the container can never push input into the
	// caller's terminal with TIOCSTI (bubblewrap CVE-2017-5226).
	if _, err := unix.Setsid(); err != nil {
		return fmt.Errorf("setsid: %w", err)
	}
	if p.Process.Terminal {
		if err := setupConsole(p, true); err != nil {
			return err
		}
	}
	if err := rootfs.Finalize(cfg); err != nil {
		return err
	}
	if !p.NoNewKeyring {
		joinSessionKeyring()
	}
	if lx.Personality != nil {
		if err := setPersonality(lx.Personality); err != nil {
			return err
		}
	}
	pr, err := prepare(p, int(c.conn.Fd()))
	if err != nil {
		return err
	}
	if err := c.ready(); err != nil {
		return err
	}
	if err := waitStart(p.FifoDirFd); err != nil {
		return err
	}
	if s.Hooks != nil {
		if err := hooks.Run("startContainer", s.Hooks.StartContainer, p.StartState); err != nil {
			return err
		}
	}
	return pr.exec()
}

// waitStart blocks until `start` opens the exec fifo for reading. The fifo
// is reached through the state directory's fd, which needs no /proc inside
// the container and cannot be redirected by anything in the rootfs.
func waitStart(dirFd int) error {
	fd, err := unix.Openat(dirFd, state.FifoName, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open exec fifo: %w", err)
	}
	defer unix.Close(fd)
	unix.Close(dirFd)
	if _, err := unix.Write(fd, []byte{'0'}); err != nil {
		return fmt.Errorf("write exec fifo: %w", err)
	}
	return nil
}

func (c *child) runExec(p *Plan) error {
	unix.Umask(0o022)
	if p.Process.Terminal {
		if _, err := unix.Setsid(); err != nil {
			return fmt.Errorf("setsid: %w", err)
		}
		if err := setupConsole(p, false); err != nil {
			return err
		}
	}
	pr, err := prepare(p, int(c.conn.Fd()))
	if err != nil {
		return err
	}
	if err := c.ready(); err != nil {
		return err
	}
	return pr.exec()
}

// writeSysctls writes through the host's /proc/sys while already in the
// container's namespaces: the kernel picks the network, IPC and UTS
// namespace of the writer, so the values land in the container's.
func writeSysctls(sysctls map[string]string) error {
	for k, v := range sysctls {
		rel, err := spec.SysctlPath(k)
		if err != nil {
			return fmt.Errorf("linux.sysctl: %w", err)
		}
		p := "/proc/sys/" + rel
		if err := os.WriteFile(p, []byte(v), 0); err != nil {
			return fmt.Errorf("linux.sysctl %s=%s: %w", k, v, err)
		}
	}
	return nil
}

func joinSessionKeyring() {
	// A fresh session keyring, so that containers do not share the
	// caller's keys. Kernels without keyrings, or a seccomp profile of the
	// caller's, may refuse: runc ignores that too.
	_, _ = unix.KeyctlJoinSessionKeyring("_ses")
}

func setPersonality(p *specs.LinuxPersonality) error {
	var v uintptr
	switch p.Domain {
	case specs.PerLinux:
		v = 0x0000
	case specs.PerLinux32:
		v = 0x0008
	default:
		return fmt.Errorf("linux.personality.domain %q: unknown", p.Domain)
	}
	if _, _, errno := unix.Syscall(unix.SYS_PERSONALITY, v, 0, 0); errno != 0 {
		return fmt.Errorf("personality %s: %w", p.Domain, errno)
	}
	return nil
}
