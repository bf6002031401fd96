package rootfs

// Reading mounts as another process sees them, for `hako inspect`: its
// mountinfo with the propagation fields decoded (seed 003: a new mount
// namespace leaks while / is shared), and, where the kernel has
// statmount(2) with STATMOUNT_MNT_UIDMAP (6.15+), each mount's idmap,
// which mountinfo only hints at with the "idmapped" option.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Propagation is a mount's propagation as mountinfo's optional fields say.
type Propagation struct {
	Type          string `json:"type"` // shared, slave, shared,slave, private, unbindable
	PeerGroup     int    `json:"peer_group,omitempty"`
	Master        int    `json:"master,omitempty"`
	PropagateFrom int    `json:"propagate_from,omitempty"`
}

// ParsePropagation decodes mountinfo's optional fields ("shared:1 master:2").
func ParsePropagationFields(optional string) Propagation {
	var p Propagation
	var kinds []string
	for _, f := range strings.Fields(optional) {
		k, v, _ := strings.Cut(f, ":")
		n, _ := strconv.Atoi(v)
		switch k {
		case "shared":
			p.PeerGroup = n
			kinds = append(kinds, "shared")
		case "master":
			p.Master = n
			kinds = append(kinds, "slave")
		case "propagate_from":
			p.PropagateFrom = n
		case "unbindable":
			kinds = append(kinds, "unbindable")
		}
	}
	if len(kinds) == 0 {
		kinds = []string{"private"}
	}
	p.Type = strings.Join(kinds, ",")
	return p
}

// MountsOf returns pid's mount table as it sees it.
func MountsOf(pid int) ([]*mountinfo.Info, error) {
	return mountinfo.PidMountInfo(pid)
}

// ErrNoStatmount is returned where the kernel lacks statmount(2) or its
// idmap fields.
var ErrNoStatmount = errors.New("statmount with STATMOUNT_MNT_UIDMAP unavailable (Linux 6.15+)")

const (
	sysStatmount          = 457
	nsGetMntnsID          = 0x8008b705 // _IOR(0xb7, 0x5, __u64)
	statmountMntBasic     = 0x2
	statmountMntUIDMap    = 0x2000
	statmountMntGIDMap    = 0x4000
	statmountSupportedMsk = 0x1000
	mntIDReqSizeVer1      = 32
)

// IDMap is a mount's idmap as statmount reports it to the caller.
type IDMap struct {
	UID []string `json:"uid_map"`
	GID []string `json:"gid_map"`
}

// MountIDMap reads the idmap of the mount at mountpoint in pid's mount
// namespace with statmount(2). It returns nil, nil for a mount without one.
func MountIDMap(pid int, mountpoint string) (*IDMap, error) {
	var stx unix.Statx_t
	p := fmt.Sprintf("/proc/%d/root%s", pid, mountpoint)
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT, unix.STATX_MNT_ID_UNIQUE, &stx); err != nil {
		return nil, fmt.Errorf("statx %s: %w", p, err)
	}
	if stx.Mask&unix.STATX_MNT_ID_UNIQUE == 0 {
		return nil, ErrNoStatmount
	}
	nsfd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(nsfd)
	var nsid uint64
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(nsfd), nsGetMntnsID, uintptr(unsafe.Pointer(&nsid))); e != 0 {
		return nil, fmt.Errorf("NS_GET_MNTNS_ID: %w", e)
	}
	req := struct {
		Size, Spare uint32
		MntID       uint64
		Param       uint64
		MntNsID     uint64
	}{Size: mntIDReqSizeVer1, MntID: stx.Mnt_id, Param: statmountSupportedMsk | statmountMntUIDMap | statmountMntGIDMap, MntNsID: nsid}
	buf := make([]byte, 64<<10)
	_, _, e := unix.Syscall6(sysStatmount, uintptr(unsafe.Pointer(&req)), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0, 0)
	if e == unix.ENOSYS {
		return nil, ErrNoStatmount
	}
	if e != 0 {
		return nil, fmt.Errorf("statmount: %w", e)
	}
	le := binary.LittleEndian
	mask := le.Uint64(buf[8:])
	supported := le.Uint64(buf[144:])
	if supported&statmountMntUIDMap == 0 {
		return nil, ErrNoStatmount
	}
	// struct statmount: 168 bytes of fields, __u64 __spare2[43], then str[].
	const strOff = 512
	strs := func(numOff, offOff int) []string {
		n := int(le.Uint32(buf[numOff:]))
		off := strOff + int(le.Uint32(buf[offOff:]))
		var out []string
		for i := 0; i < n && off < len(buf); i++ {
			end := bytes.IndexByte(buf[off:], 0)
			if end < 0 {
				break
			}
			out = append(out, string(buf[off:off+end]))
			off += end + 1
		}
		return out
	}
	m := &IDMap{}
	if mask&statmountMntUIDMap != 0 {
		m.UID = strs(152, 156)
	}
	if mask&statmountMntGIDMap != 0 {
		m.GID = strs(160, 164)
	}
	if len(m.UID) == 0 && len(m.GID) == 0 {
		return nil, nil
	}
	return m, nil
}
