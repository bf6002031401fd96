package console

import (
	"io"
	"os"
	"os/signal"
	"sync"

	cconsole "github.com/containerd/console"
	"golang.org/x/sys/unix"
)

// Relay connects a container's pty master to this process's stdio, for
// `run` and `exec` with a terminal in the foreground and no console socket:
// stdin in raw mode, the window size followed on SIGWINCH.
type Relay struct {
	master  *os.File
	current cconsole.Console
	done    chan struct{}
	wg      sync.WaitGroup
}

// Socketpair returns the end to give the container process as its console
// socket, and ours to receive the master from.
func Socketpair() (theirs, ours *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[1]), "console-theirs"), os.NewFile(uintptr(fds[0]), "console-ours"), nil
}

// StartRelay receives the master from sock and starts copying.
func StartRelay(sock *os.File) (*Relay, error) {
	master, err := RecvFd(sock)
	if err != nil {
		return nil, err
	}
	r := &Relay{master: master, done: make(chan struct{})}
	if c, err := cconsole.ConsoleFromFile(os.Stdin); err == nil {
		r.current = c
		_ = c.SetRaw()
		r.resize()
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, unix.SIGWINCH)
		go func() {
			for {
				select {
				case <-winch:
					r.resize()
				case <-r.done:
					signal.Stop(winch)
					return
				}
			}
		}()
	}
	go io.Copy(master, os.Stdin) //nolint:errcheck // ends with the process
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		io.Copy(os.Stdout, master) //nolint:errcheck // EIO when the pty closes
	}()
	return r, nil
}

func (r *Relay) resize() {
	if r.current == nil {
		return
	}
	if ws, err := r.current.Size(); err == nil {
		_ = unix.IoctlSetWinsize(int(r.master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: ws.Height, Col: ws.Width})
	}
}

// Close waits for the output to drain and restores the terminal.
func (r *Relay) Close() {
	r.wg.Wait()
	close(r.done)
	if r.current != nil {
		_ = r.current.Reset()
	}
	r.master.Close()
}
