package nsenter

// #include <stdlib.h>
// #include "nsframe.h"
import "C"

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/linux/security"
	"github.com/hako-runtime/hako/internal/plan"
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

// EncodeCPlan writes an exec's plan for nsexec.c. ok is false when the plan
// has a step or a detail that only the Go handlers apply: a terminal, an
// LSM label, a scheduler or I/O priority or memory policy, a seccomp filter
// with notify rules, a reaper, bwrap's exact environment.
func EncodeCPlan(p *plan.Plan) (b []byte, ok bool) {
	if p.Kind != plan.KindExec {
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
