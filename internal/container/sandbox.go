package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/console"
	"github.com/hako-runtime/hako/internal/frame"
	"github.com/hako-runtime/hako/internal/linux/idmap"
	"github.com/hako-runtime/hako/internal/linux/ns"
	"github.com/hako-runtime/hako/internal/nsenter"
	"github.com/hako-runtime/hako/internal/plan"
	"github.com/hako-runtime/hako/internal/sandbox"
	"github.com/hako-runtime/hako/internal/sandbox/receipt"
)

// SandboxOpts is one `hako sandbox` run.
type SandboxOpts struct {
	Sandbox *sandbox.Sandbox
	// Terminal: stdin is a terminal; the sandbox gets a pty of its own
	// (job control inside, no TIOCSTI into the caller's terminal).
	Terminal bool
	// Receipt, when set, receives the receipt as JSON.
	Receipt io.Writer
}

// RunSandbox runs a sandbox in the foreground and returns COMMAND's exit
// status. Unlike Create it keeps no state, makes no cgroup and no exec
// fifo: everything it makes lives in the sandbox's namespaces, so nothing
// is left on the host when it ends, or when hako is killed (the sandbox's
// PID 1 gets SIGKILL with hako, and its PID namespace dies with it).
func (r *Runtime) RunSandbox(o *SandboxOpts) (int, error) {
	// PR_SET_PDEATHSIG fires when the thread that forked the child ends:
	// this goroutine stays on the thread that spawns, which never exits
	// before the process does.
	runtime.LockOSThread()
	sigs := notifyForwarded()
	if o.Terminal {
		o.Sandbox.WithTerminal()
	}
	s := o.Sandbox.Spec
	unshare, join, err := ns.Split(s.Linux.Namespaces)
	if err != nil {
		return 0, err
	}
	rpipe, wpipe, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("pipe for the receipt: %w", err)
	}
	defer rpipe.Close()
	pl, err := o.Sandbox.Plan(&plan.OCI{Rootless: os.Geteuid() != 0, HostInUserNS: idmap.RunningInUserNS()})
	if err != nil {
		wpipe.Close()
		return 0, err
	}
	r.debugPlan("sandbox", pl)
	var consoleTheirs, consoleOurs *os.File
	if o.Terminal {
		if consoleTheirs, consoleOurs, err = console.Socketpair(); err != nil {
			wpipe.Close()
			return 0, err
		}
		defer consoleOurs.Close()
		defer consoleTheirs.Close()
	}
	receiptData := make(chan []byte, 1)
	go func() {
		data, _ := io.ReadAll(rpipe)
		receiptData <- data
	}()
	so := &spawnOpts{
		req: nsenter.Request{Join: join, Unshare: unshare}, plan: pl, console: consoleTheirs,
		uidMaps: s.Linux.UIDMappings, gidMaps: s.Linux.GIDMappings,
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		sealDir: r.sealDir(), rootless: os.Geteuid() != 0, warn: r.Warn,
		receipt: wpipe,
	}
	p, err := spawn(so)
	// The child has its copy (or failed): ours must close for EOF.
	wpipe.Close()
	if err != nil {
		return 0, err
	}
	if consoleTheirs != nil {
		consoleTheirs.Close()
	}
	var relay *console.Relay
	ready := false
	for !ready {
		m, err := p.next()
		switch {
		case errors.Is(err, io.EOF):
			err = fmt.Errorf("%w: exited during setup", ErrProcess)
			fallthrough
		case err != nil:
			p.kill()
			writeReceipt(o.Receipt, <-receiptData)
			return 0, err
		case m == frame.TypeReady:
			ready = true
		default:
			p.kill()
			return 0, fmt.Errorf("%w: unexpected message %q", ErrProcess, m)
		}
	}
	p.conn.Close()
	writeReceipt(o.Receipt, <-receiptData)
	if consoleOurs != nil {
		if relay, err = console.StartRelay(consoleOurs); err != nil {
			unix.Kill(p.pid, unix.SIGKILL)
			reap(p.pid)
			return 0, err
		}
	}
	code, err := waitForward(p.pid, sigs)
	if relay != nil {
		relay.Close()
	}
	return code, err
}

func writeReceipt(w io.Writer, data []byte) {
	if w == nil || len(data) == 0 {
		return
	}
	var r receipt.Receipt
	if json.Unmarshal(data, &r) != nil {
		return
	}
	out, _ := json.MarshalIndent(r, "", "  ")
	w.Write(append(out, '\n')) //nolint:errcheck // best effort: the run's outcome does not depend on it
}
