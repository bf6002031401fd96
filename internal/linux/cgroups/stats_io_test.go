package cgroups

import (
	"reflect"
	"testing"
)

// Upstream's order: CFQ files exist but are empty on a blk-mq host, so the
// throttle layer's recursive counters are reported; "Total" lines and
// garbage are skipped.
func TestBlkioV1FallsBackToThrottle(t *testing.T) {
	f := newFake()
	f.files["c/blkio.sectors_recursive"] = ""
	f.files["c/blkio.io_serviced_recursive"] = ""
	f.files["c/blkio.throttle.io_serviced_recursive"] = "8:0 Read 10\n8:0 Write 2\nTotal 12\n"
	f.files["c/blkio.throttle.io_service_bytes_recursive"] = "8:0 Read 4096\n8:0 Write 8192\nbogus line here\nTotal 12288\n"
	m := &Manager{fs: f}
	s := &Stats{Hugetlb: map[string]Hugetlb{}}
	m.blkioV1(s, fakeRoot+"/c")
	want := Blkio{
		IoServicedRecursive:     []BlkioEntry{{8, 0, "Read", 10}, {8, 0, "Write", 2}},
		IoServiceBytesRecursive: []BlkioEntry{{8, 0, "Read", 4096}, {8, 0, "Write", 8192}},
	}
	if !reflect.DeepEqual(s.Blkio, want) {
		t.Errorf("blkio = %+v\nwant %+v", s.Blkio, want)
	}
}

// CFQ's counters win where they have entries; sectors has no op.
func TestBlkioV1PrefersCFQ(t *testing.T) {
	f := newFake()
	for _, n := range []string{"sectors_recursive", "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
		"io_queued_recursive", "time_recursive", "io_serviced_recursive", "io_service_bytes_recursive"} {
		f.files["c/blkio."+n] = "8:16 Read 1\n"
	}
	f.files["c/blkio.sectors_recursive"] = "8:16 77\n"
	f.files["c/blkio.throttle.io_serviced_recursive"] = "8:0 Read 10\n"
	m := &Manager{fs: f}
	s := &Stats{}
	m.blkioV1(s, fakeRoot+"/c")
	if !reflect.DeepEqual(s.Blkio.SectorsRecursive, []BlkioEntry{{8, 16, "", 77}}) || len(s.Blkio.IoQueuedRecursive) != 1 ||
		s.Blkio.IoServicedRecursive[0].Major != 8 || s.Blkio.IoServicedRecursive[0].Minor != 16 {
		t.Errorf("blkio = %+v", s.Blkio)
	}
}

func TestIoV2(t *testing.T) {
	f := newFake()
	f.files["c/io.stat"] = "259:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n8:0 rbytes=1 wbytes=2 rios=3 wios=4\n"
	m := &Manager{fs: f}
	s := &Stats{}
	m.ioV2(s, fakeRoot+"/c")
	want := Blkio{
		IoServiceBytesRecursive: []BlkioEntry{{259, 0, "Read", 4096}, {259, 0, "Write", 0}, {8, 0, "Read", 1}, {8, 0, "Write", 2}},
		IoServicedRecursive:     []BlkioEntry{{259, 0, "Read", 1}, {259, 0, "Write", 0}, {8, 0, "Read", 3}, {8, 0, "Write", 4}},
	}
	if !reflect.DeepEqual(s.Blkio, want) {
		t.Errorf("io = %+v\nwant %+v", s.Blkio, want)
	}
}

func FuzzBlkioEntries(f *testing.F) {
	f.Add("8:0 Read 10\nTotal 3\n8:16 5\n")
	f.Fuzz(func(t *testing.T, data string) {
		fs := newFake()
		fs.files["c/x"] = data
		(&Manager{fs: fs}).blkioEntries(fakeRoot+"/c", "x")
	})
}
