// Package doctor probes what this host and user can do for containers:
// each check creates the namespace, writes the map or makes the mount it
// is about, in a short-lived child process, rather than guessing from
// config files, and says ok, warn or fail with the reason and the fix.
// The reasons come from internal/explain where the kernel refused.
package doctor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/explain"
)

// Status of one check.
type Status string

// The three answers.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Check is one probe's result.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Options for Run.
type Options struct {
	Rootless bool   // check for an unprivileged user (the default when not root)
	Root     string // hako's --root, whose filesystem idmapped mounts are probed on
	Path     string // another path to probe idmapped mounts on
}

// Report is every check in order.
type Report struct {
	User     string  `json:"user"`
	Rootless bool    `json:"rootless"`
	Checks   []Check `json:"checks"`
	Failed   int     `json:"failed"`
	Warned   int     `json:"warned"`
}

type prober struct {
	o      Options
	checks []Check
}

func (p *prober) add(name string, s Status, detail, fix string) {
	p.checks = append(p.checks, Check{name, s, detail, fix})
}

// Run runs every check.
func Run(o Options) *Report {
	if os.Geteuid() != 0 {
		o.Rootless = true
	}
	p := &prober{o: o}
	p.kernel()
	p.namespaces()
	p.userns()
	if o.Rootless {
		p.subids()
	}
	p.uidmapTools()
	p.overlay()
	p.idmapped("--root", o.Root)
	if o.Path != "" {
		p.idmapped("--path", o.Path)
	}
	p.cgroups()
	p.systemd()
	p.capabilities()
	p.seccomp()
	p.syscalls()
	p.lsm()
	p.procMount()
	p.propagation()
	r := &Report{User: fmt.Sprintf("uid %d", os.Geteuid()), Rootless: o.Rootless, Checks: p.checks}
	for _, c := range r.Checks {
		switch c.Status {
		case Fail:
			r.Failed++
		case Warn:
			r.Warned++
		}
	}
	return r
}

// JSON writes the report.
func (r *Report) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Text writes the report for people.
func (r *Report) Text(w io.Writer) {
	mode := "root"
	if r.Rootless {
		mode = "rootless"
	}
	fmt.Fprintf(w, "hako doctor (%s, %s)\n", r.User, mode)
	for _, c := range r.Checks {
		fmt.Fprintf(w, "%-4s %-26s %s\n", c.Status, c.Name, c.Detail)
		if c.Fix != "" && c.Status != OK {
			fmt.Fprintf(w, "     %-26s fix: %s\n", "", c.Fix)
		}
	}
	fmt.Fprintf(w, "%d failed, %d warnings\n", r.Failed, r.Warned)
}

// explainErr renders an error with the explain table's cause, if any.
func explainErr(op explain.Op, err error) (string, string) {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return err.Error() + ": " + strings.TrimSpace(string(ee.Stderr)), ""
		}
		return err.Error(), ""
	}
	if x, ok := explain.Lookup(op, errno, explain.Gather()); ok {
		return fmt.Sprintf("%s: %v (%s)", op, errno, x.Cause), x.Fix
	}
	return fmt.Sprintf("%s: %v", op, errno), ""
}
