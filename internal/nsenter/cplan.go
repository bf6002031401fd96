package nsenter

// #include <stdlib.h>
// #include "cinit.h"
// #include "nsframe.h"
import "C"

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/linux/rootfs"
	"github.com/hako-runtime/hako/internal/linux/security"
	"github.com/hako-runtime/hako/internal/plan"
	"github.com/hako-runtime/hako/internal/state"
)

// An exec's plan is short and made of process attributes only (umask,
// working directory, rlimits, capabilities, ids, seccomp, the lookup and
// the execve), and the process that applies it lives for a few hundred
// microseconds. Starting a Go runtime there cost ~1 ms of an exec's ~5,
// and decoding the plan's JSON ~0.3 more: nsexec.c applies such a plan
// itself, from the compact form EncodeCPlan writes, and execs without ever
// entering Go. What it applies is what the Go handlers apply, step for
// step, error text for error text; a plan with any step it does not know
// goes to Go as before (EncodeCPlan says so), so nothing is ever skipped.
//
// A container init's plan of the kinds config.json compiles to goes the
// same way: its Go runtime's start (and its sysmon's wake-ups) was ~1 ms
// of every create, the same again in CPU on a busy host. Its mount steps
// (cinit.c) do what the rootfs package does when it succeeds, and when one
// fails or meets a path only pathrs-lite's slower walk resolves, the
// process hands that step to Go (CResumed) with what the steps before it
// left (the plan's fds, the rootfs's fd), and the Go handler runs it again
// and the rest after it: a failure is always told in the Go side's words,
// with the kernel's error explained from inside the container.

// C plan step kinds: nsframe.h's HAKO_C_*. A test holds them equal.
const (
	cUmask      = C.HAKO_C_UMASK
	cCloseFds   = C.HAKO_C_CLOSE_FDS
	cCwd        = C.HAKO_C_CWD
	cNoNewPrivs = C.HAKO_C_NO_NEW_PRIVS
	cAffinity   = C.HAKO_C_AFFINITY
	cRlimit     = C.HAKO_C_RLIMIT
	cBounding   = C.HAKO_C_BOUNDING
	cUser       = C.HAKO_C_USER
	cCaps       = C.HAKO_C_CAPS
	cCwdAsUser  = C.HAKO_C_CWD_AS_USER
	cLookup     = C.HAKO_C_LOOKUP
	cSeccomp    = C.HAKO_C_SECCOMP
	cReady      = C.HAKO_C_READY
	cExec       = C.HAKO_C_EXEC

	cPropagation = C.HAKO_C_PROPAGATION
	cBindRoot    = C.HAKO_C_BIND_ROOT
	cMount       = C.HAKO_C_MOUNT
	cDev         = C.HAKO_C_DEV
	cLoopback    = C.HAKO_C_LOOPBACK
	cHostname    = C.HAKO_C_HOSTNAME
	cDomainname  = C.HAKO_C_DOMAINNAME
	cSysctl      = C.HAKO_C_SYSCTL
	cPivotRoot   = C.HAKO_C_PIVOT_ROOT
	cSetsid      = C.HAKO_C_SETSID
	cDir         = C.HAKO_C_DIR
	cMask        = C.HAKO_C_MASK
	cReadonly    = C.HAKO_C_READONLY
	cRemountRO   = C.HAKO_C_REMOUNT_RO
	cKeyring     = C.HAKO_C_KEYRING
	cWaitStart   = C.HAKO_C_WAIT_START

	cMountFS       = C.HAKO_CMOUNT_FS
	cMountBind     = C.HAKO_CMOUNT_BIND
	cMountIDMap    = C.HAKO_CMOUNT_IDMAP
	cMountCgroupV1 = C.HAKO_CMOUNT_CGROUP_V1

	cFlagTimings = C.HAKO_C_FLAG_TIMINGS
)

// maxCPlan is nsexec.c's limit on an ns-c-plan payload; a larger plan (an
// enormous environment) goes to Go.
const maxCPlan = C.HAKO_C_MAX_PLAN

type cw struct{ b []byte }

func (w *cw) u8(v uint8)   { w.b = append(w.b, v) }
func (w *cw) u32(v uint32) { w.b = binary.LittleEndian.AppendUint32(w.b, v) }
func (w *cw) u64(v uint64) { w.b = binary.LittleEndian.AppendUint64(w.b, v) }
func (w *cw) str(s string) { w.u32(uint32(len(s))); w.b = append(w.b, s...) }
func (w *cw) strs(ss []string) {
	w.u32(uint32(len(ss)))
	for _, s := range ss {
		w.str(s)
	}
}

// EnvTestBailAt, in the environment of the hako that encodes a plan, makes
// its C steps hand the step of that number to Go unapplied: for the tests
// that hold the hand-over equal to a plan applied in one piece.
const EnvTestBailAt = "_HAKO_TEST_C_BAIL_AT"

// EnvTestNoCPlan, in the same environment, leaves every plan to Go: for
// the tests that hold each defence the two sides have (the CVE tests) to
// both.
const EnvTestNoCPlan = "_HAKO_TEST_NO_C_PLAN"

// EncodeCPlan writes a plan for nsexec.c: an exec's, or a container
// init's. ok is false when the plan has a step or a detail that only the Go
// handlers apply: a terminal, hooks, an LSM label, a scheduler or I/O
// priority or memory policy, a seccomp filter with notify rules, a reaper,
// bwrap's and the sandbox's own steps, a tmpfs copied up.
func EncodeCPlan(p *plan.Plan) (b []byte, ok bool) {
	if p.Kind != plan.KindExec && p.Kind != plan.KindInit || os.Getenv(EnvTestNoCPlan) != "" {
		return nil, false
	}
	last, names, err := security.KernelCaps()
	if err != nil {
		return nil, false // the Go handlers report it
	}
	w := &cw{}
	var flags uint32
	if p.Timings {
		flags |= cFlagTimings
	}
	w.u32(flags)
	w.u32(uint32(len(p.Steps)))
	w.u32(uint32(last))
	w.u32(uint32(len(names)))
	for _, n := range names {
		w.str(n)
	}
	// What Go goes on with where a mount step is handed to it.
	var wire []byte
	if p.Kind == plan.KindInit {
		wire = plan.Encode(p)
	}
	w.u32(uint32(len(wire)))
	w.b = append(w.b, wire...)
	bailAt, _ := strconv.Atoi(os.Getenv(EnvTestBailAt))
	w.u32(uint32(bailAt))
	// The cgroups a cgroup mount shows, as the bind-root step gives
	// them; rooted: between the rootfs's bind and the root change, when
	// the mount steps resolve from its fd.
	var cgroups []rootfs.CgroupMount
	rooted := false
	for i := range p.Steps {
		s := &p.Steps[i]
		body := &cw{}
		var op uint8
		switch s.Op {
		case plan.OpUmask:
			op = cUmask
			body.u32(s.Mode)
		case plan.OpCloseFds:
			op = cCloseFds
			body.u32(uint32(s.Flags))
			fds, err := s.KeepFds()
			if err != nil {
				return nil, false // the Go handler reports it
			}
			for _, fd := range fds {
				if fd < 0 {
					return nil, false
				}
				body.u32(uint32(fd))
			}
		case plan.OpCwd:
			if s.Value != "" {
				return nil, false // bwrap's "try"
			}
			op = cCwd
			body.str(s.Path)
		case plan.OpCwdAsUser:
			op = cCwdAsUser
			body.str(s.Path)
		case plan.OpNoNewPrivs:
			op = cNoNewPrivs
		case plan.OpCPUAffinity:
			op = cAffinity
			body.str(s.Value)
			body.b = append(body.b, s.Data...)
		case plan.OpRlimit:
			r := s.Rlimit
			if r == nil {
				return nil, false
			}
			op = cRlimit
			body.u32(uint32(r.Resource))
			body.u64(r.Soft)
			body.u64(r.Hard)
			body.str(r.Name)
		case plan.OpBounding:
			m, err := security.MasksOf(s.Caps)
			if err != nil {
				return nil, false // the Go handler reports it, with its step
			}
			op = cBounding
			body.u64(m.Bounding)
		case plan.OpUser:
			u := s.User
			if u == nil {
				return nil, false
			}
			op = cUser
			body.u32(u.UID)
			body.u32(u.GID)
			if s.Value == plan.UserNoSetgroups {
				body.u32(0)
			} else {
				body.u32(1)
			}
			body.u32(uint32(len(u.AdditionalGids)))
			for _, g := range u.AdditionalGids {
				body.u32(g)
			}
		case plan.OpCaps:
			m, err := security.MasksOf(s.Caps)
			if err != nil {
				return nil, false
			}
			if m.Effective&^m.Permitted != 0 {
				// ApplyCaps's error names them; the Go side says it.
				return nil, false
			}
			op = cCaps
			body.u64(m.Effective)
			body.u64(m.Permitted)
			body.u64(m.Inheritable)
			body.u64(m.Ambient)
		case plan.OpLookup:
			e := s.Exec
			if e == nil || e.Exact || e.Reaper || e.ForwardSignals || len(e.Args) == 0 || !plainQuoted(e.Args[0]) {
				return nil, false
			}
			op = cLookup
			body.u32(e.UID)
			body.str(e.Argv0)
			body.u32(uint32(len(e.Args)))
			for _, a := range e.Args {
				body.str(a)
			}
			body.u32(uint32(len(e.Env)))
			for _, v := range e.Env {
				body.str(v)
			}
		case plan.OpSeccomp:
			if s.Seccomp == nil {
				return nil, false
			}
			insns, flags, ok := s.Seccomp.Prog()
			if !ok {
				return nil, false
			}
			op = cSeccomp
			body.u64(uint64(flags))
			for _, in := range insns {
				body.b = append(body.b, unsafe.Slice((*byte)(unsafe.Pointer(&in)), unsafe.Sizeof(in))...)
			}
		case plan.OpReady:
			op = cReady
		case plan.OpExec:
			op = cExec
		case plan.OpPropagation:
			op = cPropagation
			body.u64(s.Flags)
			body.str(s.Path)
		case plan.OpBindRoot:
			op = cBindRoot
			body.str(s.Path)
			cgroups, rooted = s.Cgroups, true
		case plan.OpMount:
			if !rooted || s.Mount == nil || !encodeMount(body, s, cgroups) {
				return nil, false
			}
			op = cMount
		case plan.OpDev:
			if !rooted || !encodeDevs(body, s) {
				return nil, false
			}
			op = cDev
		case plan.OpLoopback:
			op = cLoopback
		case plan.OpHostname:
			op = cHostname
			body.str(s.Value)
		case plan.OpDomainname:
			op = cDomainname
			body.str(s.Value)
		case plan.OpSysctl:
			op = cSysctl
			body.str("/proc/sys/" + s.Path)
			body.str(s.Value)
		case plan.OpPivotRoot:
			op = cPivotRoot
			body.str(s.Path)
			rooted = false
		case plan.OpSetsid:
			op = cSetsid
		case plan.OpDir:
			op = cDir
			// initproc.mkdirStep's mode: the permission bits and
			// the sticky one.
			body.u32(s.Mode & (0o777 | unix.S_ISVTX))
			body.str(filepath.Clean("/" + s.Path))
		case plan.OpMask:
			op = cMask
			body.str(s.Path)
			// What a path listed twice is known by (Masker.Mask).
			body.str(filepath.Clean(s.Path))
		case plan.OpReadonly:
			op = cReadonly
			body.str(s.Path)
		case plan.OpRemountRO:
			op = cRemountRO
			body.str(s.Path)
		case plan.OpKeyring:
			op = cKeyring
		case plan.OpWaitStart:
			op = cWaitStart
			body.u32(uint32(p.Fds.FifoDir))
			body.str(state.FifoName)
		default:
			return nil, false
		}
		w.u8(op)
		w.u32(uint32(i + 1))
		w.str(string(s.Op))
		w.u32(uint32(len(body.b)))
		w.b = append(w.b, body.b...)
	}
	if len(w.b) > maxCPlan {
		return nil, false
	}
	return w.b, true
}

// encodeMount writes a mount step as cinit.c's hako_cmount, or says it
// cannot: a tmpfs copied up, an idmapped mount without the tree the parent
// made, idmap options on anything else.
func encodeMount(w *cw, s *plan.Step, cgroups []rootfs.CgroupMount) bool {
	m := *s.Mount
	o := m.Options
	if o.CopyUp || o.IDMap || o.RIDMap {
		return false
	}
	kind := uint8(cMountFS)
	data := o.Data
	var cgs []rootfs.CgroupMount
	switch m.Kind {
	case rootfs.KindIDMap:
		if s.FD < 0 {
			return false
		}
		kind = cMountIDMap
	case rootfs.KindBind:
		kind = cMountBind
	case rootfs.KindCgroup:
		if len(cgroups) == 1 && cgroups[0].Dir == "" {
			// cgroup2: a bind of the container's one directory.
			kind = cMountBind
			m.Source, o.Recursive = cgroups[0].HostPath, false
		} else {
			kind, cgs = cMountCgroupV1, cgroups
		}
	default:
		// mounter.fs's additions for bwrap's and the sandbox's tmpfs.
		data = data[:len(data):len(data)]
		if m.Size > 0 {
			data = append(data, fmt.Sprintf("size=%d", m.Size))
		}
		if m.Perms != nil {
			data = append(data, fmt.Sprintf("mode=%04o", *m.Perms))
		}
	}
	fd := int32(s.FD)
	if m.Kind == rootfs.KindCgroup {
		// mounter.cgroup binds by path; no cgroup step has an fd.
		fd = -1
	}
	w.u32(uint32(fd))
	w.u8(kind)
	w.str(m.Type)
	w.str(m.Source)
	w.str(filepath.Clean("/" + m.Destination))
	w.u8(b2u(o.Recursive))
	w.u64(o.Attr)
	w.u64(o.AttrClr)
	w.u64(o.RAttr)
	w.u64(o.RAttrClr)
	w.u64(uint64(o.Propagation))
	w.strs(o.SbFlags)
	w.strs(data)
	w.u32(uint32(len(cgs)))
	for _, c := range cgs {
		w.str(c.Dir)
		w.str(c.HostPath)
		w.strs(c.Symlinks)
	}
	return true
}

// encodeDevs writes a dev step's nodes with rootfs.makeDevice's defaults
// filled in; a type it does not know, or a relative path, stays Go's to
// refuse.
func encodeDevs(w *cw, s *plan.Step) bool {
	w.u8(b2u(s.InUserNS))
	w.u32(uint32(len(s.Devices)))
	for _, d := range s.Devices {
		var typ uint32
		switch d.Type {
		case "c", "u":
			typ = unix.S_IFCHR
		case "b":
			typ = unix.S_IFBLK
		case "p":
			typ = unix.S_IFIFO
		default:
			return false
		}
		if !filepath.IsAbs(d.Path) {
			return false
		}
		mode := uint32(0o666)
		if d.FileMode != nil {
			mode = uint32(*d.FileMode & os.ModePerm)
		}
		var uid, gid uint32
		if d.UID != nil {
			uid = *d.UID
		}
		if d.GID != nil {
			gid = *d.GID
		}
		w.str(filepath.Clean(d.Path))
		w.u32(typ)
		w.u32(mode)
		w.u32(uid)
		w.u32(gid)
		w.u64(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))
	}
	return true
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// CResume is where nsexec.c handed an init's plan to Go: the step to go on
// at (0 for the first), the plan, its fds (-1 for those a step took), and
// the rootfs's fd while it is open (else -1).
type CResume struct {
	Step int
	Plan *plan.Plan
	Fds  []int
	Root int
}

// CResumed reports whether this process is an init whose plan nsexec.c
// began and handed to Go.
func CResumed() (*CResume, bool, error) {
	if C.hako_cplan_resume < 0 {
		return nil, false, nil
	}
	r := &CResume{Step: int(C.hako_cplan_resume), Root: int(C.hako_cplan_root)}
	fds := unsafe.Slice(C.hako_cplan_fds, int(C.hako_cplan_nfds))
	for _, fd := range fds {
		r.Fds = append(r.Fds, int(fd))
	}
	p, err := plan.Decode(C.GoBytes(unsafe.Pointer(C.hako_cplan_wire), C.int(C.hako_cplan_wire_len)))
	if err != nil {
		return r, true, err
	}
	if r.Step >= len(p.Steps) {
		return r, true, fmt.Errorf("handed step %d of a plan of %d", r.Step+1, len(p.Steps))
	}
	r.Plan = p
	return r, true, nil
}

// plainQuoted reports whether %q quotes s by wrapping it in double quotes
// alone, as cplan.c does in its lookup errors.
func plainQuoted(s string) bool {
	for _, c := range []byte(s) {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// cClean is cplan.c's port of filepath.Clean, for the test that holds the
// two equal.
func cClean(p string) string {
	cs := C.CString(p)
	defer C.free(unsafe.Pointer(cs))
	out := C.hako_clean(cs)
	defer C.free(unsafe.Pointer(out))
	return C.GoString(out)
}

// CError is the text of an ns-c-error frame: the message the Go handler
// would have returned for the same failure, errno spelt as Go spells it.
func CError(p []byte) string {
	if len(p) < 4 {
		return fmt.Sprintf("malformed c-plan error report %q", p)
	}
	errno := unix.Errno(binary.LittleEndian.Uint32(p))
	msg, suffix, _ := strings.Cut(string(p[4:]), "\x00")
	if errno != 0 {
		msg += ": " + errno.Error()
	}
	return msg + suffix
}
