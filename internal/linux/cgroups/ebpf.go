package cgroups

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// bpfInsn is struct bpf_insn.
type bpfInsn struct {
	code uint8
	regs uint8 // dst in the low nibble, src in the high nibble
	off  int16
	imm  int32
}

const (
	bpfJEQ = 0x10 // BPF_JEQ is classic-BPF only in x/sys; same value in eBPF
	r0     = 0
	r1     = 1
	r2     = 2
	r3     = 3
	r4     = 4
	r5     = 5
)

func ldxW(dst, src uint8, off int16) bpfInsn {
	return bpfInsn{code: unix.BPF_LDX | unix.BPF_MEM | unix.BPF_W, regs: src<<4 | dst, off: off}
}

func alu32Imm(op uint8, dst uint8, imm int32) bpfInsn {
	return bpfInsn{code: unix.BPF_ALU | op | unix.BPF_K, regs: dst, imm: imm}
}

func movReg32(dst, src uint8) bpfInsn {
	return bpfInsn{code: unix.BPF_ALU | unix.BPF_MOV | unix.BPF_X, regs: src<<4 | dst}
}

func jmpImm(op uint8, dst uint8, imm int32, off int16) bpfInsn {
	return bpfInsn{code: unix.BPF_JMP | op | unix.BPF_K, regs: dst, off: off, imm: imm}
}

func jmpReg(op uint8, dst, src uint8, off int16) bpfInsn {
	return bpfInsn{code: unix.BPF_JMP | op | unix.BPF_X, regs: src<<4 | dst, off: off}
}

func exit() bpfInsn { return bpfInsn{code: unix.BPF_JMP | unix.BPF_EXIT} }

func boolImm(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// program compiles the state into a BPF_PROG_TYPE_CGROUP_DEVICE program
// with the v1 controller's checks: on an allowlist the request must be
// covered by one exception; on a denylist any overlap with one denies.
func (s *devState) program() ([]bpfInsn, error) {
	// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
	// with the device type in the low and the access in the high 16 bits.
	p := []bpfInsn{
		ldxW(r2, r1, 0), alu32Imm(unix.BPF_AND, r2, 0xffff),
		ldxW(r3, r1, 0), alu32Imm(unix.BPF_RSH, r3, 16),
		ldxW(r4, r1, 4),
		ldxW(r5, r1, 8),
	}
	for _, e := range s.exceptions {
		block, err := s.exceptionBlock(e)
		if err != nil {
			return nil, err
		}
		p = append(p, block...)
	}
	return append(p, alu32Imm(unix.BPF_MOV, r0, boolImm(s.defaultAllow)), exit()), nil
}

// exceptionBlock emits one rule; every conditional jump skips to the end of
// the block, so offsets are computed once its length is known.
func (s *devState) exceptionBlock(e devException) ([]bpfInsn, error) {
	var typ int32
	switch e.typ {
	case charDevice:
		typ = unix.BPF_DEVCG_DEV_CHAR
	case blockDevice:
		typ = unix.BPF_DEVCG_DEV_BLOCK
	default:
		return nil, fmt.Errorf("device rule %q: invalid type", e.cgroupString())
	}
	if e.major > math.MaxUint32 || e.minor > math.MaxUint32 {
		return nil, fmt.Errorf("device rule %q: number out of range", e.cgroupString())
	}
	var access int32
	for _, c := range e.perms {
		switch c {
		case 'r':
			access |= unix.BPF_DEVCG_ACC_READ
		case 'w':
			access |= unix.BPF_DEVCG_ACC_WRITE
		case 'm':
			access |= unix.BPF_DEVCG_ACC_MKNOD
		}
	}
	const all = unix.BPF_DEVCG_ACC_READ | unix.BPF_DEVCG_ACC_WRITE | unix.BPF_DEVCG_ACC_MKNOD

	type cond struct {
		insn  bpfInsn
		jumps bool
	}
	conds := []cond{{jmpImm(unix.BPF_JNE, r2, typ, 0), true}}
	if e.major >= 0 {
		conds = append(conds, cond{jmpImm(unix.BPF_JNE, r4, int32(uint32(e.major)), 0), true})
	}
	if e.minor >= 0 {
		conds = append(conds, cond{jmpImm(unix.BPF_JNE, r5, int32(uint32(e.minor)), 0), true})
	}
	if access != all {
		conds = append(conds, cond{movReg32(r1, r3), false}, cond{alu32Imm(unix.BPF_AND, r1, access), false})
		if s.defaultAllow {
			conds = append(conds, cond{jmpImm(bpfJEQ, r1, 0, 0), true})
		} else {
			conds = append(conds, cond{jmpReg(unix.BPF_JNE, r1, r3, 0), true})
		}
	}
	tail := []bpfInsn{alu32Imm(unix.BPF_MOV, r0, boolImm(!s.defaultAllow)), exit()}
	out := make([]bpfInsn, 0, len(conds)+len(tail))
	for i, c := range conds {
		if c.jumps {
			c.insn.off = int16(len(conds) - i - 1 + len(tail))
		}
		out = append(out, c.insn)
	}
	return append(out, tail...), nil
}

func bpf(cmd uintptr, attr unsafe.Pointer, size uintptr) (uintptr, error) {
	fd, _, errno := unix.Syscall(unix.SYS_BPF, cmd, uintptr(attr), size)
	if errno != 0 {
		return 0, errno
	}
	return fd, nil
}

// attachDeviceFilter loads insns and makes it the cgroup's only device
// program. The new one is attached before old ones are detached, so the
// cgroup is never without a filter.
func attachDeviceFilter(dirPath string, insns []bpfInsn) error {
	dirFD, err := unix.Open(dirPath, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("device filter: open %s: %w", dirPath, err)
	}
	defer unix.Close(dirFD)

	old, err := queryDevicePrograms(dirFD)
	if err != nil {
		return fmt.Errorf("device filter: query %s: %w", dirPath, err)
	}
	defer func() {
		for _, fd := range old {
			unix.Close(fd)
		}
	}()

	license := []byte("Apache\x00")
	load := struct {
		progType, insnCnt uint32
		insns, license    uint64
		logLevel, logSize uint32
		logBuf            uint64
	}{
		progType: unix.BPF_PROG_TYPE_CGROUP_DEVICE,
		insnCnt:  uint32(len(insns)),
		insns:    uint64(uintptr(unsafe.Pointer(&insns[0]))),
		license:  uint64(uintptr(unsafe.Pointer(&license[0]))),
	}
	progFD, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&load), unsafe.Sizeof(load))
	runtime.KeepAlive(insns)
	runtime.KeepAlive(license)
	if err != nil {
		return fmt.Errorf("device filter: load program: %w", err)
	}
	defer unix.Close(int(progFD))

	attach := struct{ targetFD, attachFD, attachType, flags uint32 }{
		uint32(dirFD), uint32(progFD), unix.BPF_CGROUP_DEVICE, unix.BPF_F_ALLOW_MULTI,
	}
	if _, err := bpf(unix.BPF_PROG_ATTACH, unsafe.Pointer(&attach), unsafe.Sizeof(attach)); err != nil {
		return fmt.Errorf("device filter: attach to %s: %w", dirPath, err)
	}
	var errs []error
	for _, fd := range old {
		detach := struct{ targetFD, attachFD, attachType uint32 }{uint32(dirFD), uint32(fd), unix.BPF_CGROUP_DEVICE}
		if _, err := bpf(unix.BPF_PROG_DETACH, unsafe.Pointer(&detach), unsafe.Sizeof(detach)); err != nil {
			errs = append(errs, fmt.Errorf("device filter: detach old program from %s: %w", dirPath, err))
		}
	}
	return errors.Join(errs...)
}

// queryDevicePrograms returns fds for the device programs attached directly
// to the cgroup (not inherited ones).
func queryDevicePrograms(dirFD int) ([]int, error) {
	ids := make([]uint32, 64)
	q := struct {
		targetFD, attachType, queryFlags, attachFlags uint32
		progIDs                                       uint64
		progCnt                                       uint32
		_                                             uint32
	}{targetFD: uint32(dirFD), attachType: unix.BPF_CGROUP_DEVICE, progIDs: uint64(uintptr(unsafe.Pointer(&ids[0]))), progCnt: uint32(len(ids))}
	_, err := bpf(unix.BPF_PROG_QUERY, unsafe.Pointer(&q), unsafe.Sizeof(q))
	runtime.KeepAlive(ids)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, id := range ids[:q.progCnt] {
		get := struct{ id, nextID, openFlags uint32 }{id: id}
		fd, err := bpf(unix.BPF_PROG_GET_FD_BY_ID, unsafe.Pointer(&get), unsafe.Sizeof(get))
		if err != nil {
			for _, f := range fds {
				unix.Close(f)
			}
			return nil, fmt.Errorf("program %d: %w", id, err)
		}
		fds = append(fds, int(fd))
	}
	return fds, nil
}
