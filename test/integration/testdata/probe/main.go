// Command probe prints, one "key=value" a line, the per-process attributes
// the parity tests read back from inside a container: the scheduler
// (sched_getattr), the I/O priority (ioprio_get), the NUMA memory policy
// (get_mempolicy), the personality, the CPU affinity and the umask. It is
// built static (CGO_ENABLED=0) and copied into the test's rootfs.
package main

import (
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	var attr unix.SchedAttr
	if a, err := unix.SchedGetAttr(0, 0); err == nil {
		attr = *a
		fmt.Printf("sched_policy=%d\nsched_nice=%d\nsched_priority=%d\nsched_flags=%d\n", attr.Policy, attr.Nice, attr.Priority, attr.Flags)
	} else {
		fmt.Printf("sched_error=%v\n", err)
	}
	const ioprioWhoProcess = 1
	if v, _, e := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, 0, 0); e == 0 {
		fmt.Printf("ioprio_class=%d\nioprio_level=%d\n", v>>13, v&0x1fff)
	} else {
		fmt.Printf("ioprio_error=%v\n", e)
	}
	var mode int32
	var mask [16]uint64
	if _, _, e := unix.Syscall6(unix.SYS_GET_MEMPOLICY, uintptr(unsafe.Pointer(&mode)), uintptr(unsafe.Pointer(&mask[0])), 1024, 0, 0, 0); e == 0 {
		fmt.Printf("mempolicy_mode=%d\nmempolicy_nodes=%#x\n", mode, mask[0])
	} else {
		fmt.Printf("mempolicy_error=%v\n", e)
	}
	if p, _, e := unix.Syscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0); e == 0 {
		fmt.Printf("personality=%#x\n", p)
	}
	old := unix.Umask(0)
	fmt.Printf("umask=%04o\n", old)
	status, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
			fmt.Printf("cpus=%s\n", strings.TrimSpace(v))
		}
	}
}
