package initproc

import (
	"fmt"

	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/plan"
)

// addLinux13Handlers registers the steps of plan/linux13.go: the process
// attributes runc 1.5 sets on every container process. Each acts on the
// calling thread, the one locked in Main that calls execve, and each
// survives execve.
func addLinux13Handlers(hs map[plan.Op]handler) {
	hs[plan.OpScheduler] = schedulerStep
	hs[plan.OpIOPriority] = ioPriorityStep
	hs[plan.OpMemPolicy] = memPolicyStep
	hs[plan.OpCPUAffinity] = cpuAffinityStep
}

func schedulerStep(a *applier, s *plan.Step) error {
	if s.Sched == nil {
		return fmt.Errorf("process.scheduler: step without attributes")
	}
	if err := unix.SchedSetAttr(0, s.Sched, 0); err != nil {
		return fmt.Errorf("process.scheduler (%s): sched_setattr: %w", s.Value, err)
	}
	return nil
}

// ioPriorityStep sets the priority of this thread only (IOPRIO_WHO_PROCESS
// with who 0): runc says IOPRIO_WHO_PGRP, which for exec also reprioritises
// every process in runc's caller's process group; for the init (a session
// leader by then) the two are the same.
func ioPriorityStep(a *applier, s *plan.Step) error {
	const ioprioWhoProcess = 1
	if _, _, e := unix.RawSyscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, 0, uintptr(s.Flags)); e != 0 {
		return fmt.Errorf("process.ioPriority (%s): ioprio_set: %w", s.Value, e)
	}
	return nil
}

func memPolicyStep(a *applier, s *plan.Step) error {
	var mask *unix.CPUSet
	if s.Data != nil {
		mask = plan.CPUSetFromBytes(s.Data)
	}
	if err := unix.SetMemPolicy(int(s.Flags), mask); err != nil {
		return fmt.Errorf("linux.memoryPolicy (%s): set_mempolicy: %w", s.Value, err)
	}
	return nil
}

// cpuAffinityStep: nil Data is "every CPU", as runc's reset builds it (a
// mask of 64Ki ones; the kernel clamps it to the CPUs that exist and to
// the cgroup's cpuset, without forgetting the others should the cpuset
// grow later).
func cpuAffinityStep(a *applier, s *plan.Step) error {
	if s.Data == nil {
		all := make([]byte, 64*1024/8)
		for i := range all {
			all[i] = 0xff
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SCHED_SETAFFINITY, 0, uintptr(len(all)), uintptr(unsafe.Pointer(&all[0]))); e != 0 {
			return fmt.Errorf("reset CPU affinity: sched_setaffinity: %w", e)
		}
		return nil
	}
	if err := unix.SchedSetaffinity(0, plan.CPUSetFromBytes(s.Data)); err != nil {
		return fmt.Errorf("process.execCPUAffinity (%s): sched_setaffinity: %w", s.Value, err)
	}
	return nil
}

// Handles reports whether the child applies a step kind, for the test
// that keeps `features`, the validator and the applier in step.
func Handles(op plan.Op) bool { _, ok := handlers[op]; return ok }
