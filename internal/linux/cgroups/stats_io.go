package cgroups

import (
	"path/filepath"
	"strconv"
	"strings"
)

// Block I/O and hugetlb stats, ported from opencontainers/cgroups v0.1.1
// (fs/blkio.go GetStats and getBlkioStat, fs2/io.go statIo, fs/hugetlb.go
// and fs2/hugetlb.go), which runc 1.5 reports through `events --stats`.

// Blkio is runc's types.Blkio: one list per counter, per device.
type Blkio struct {
	IoServiceBytesRecursive []BlkioEntry `json:"ioServiceBytesRecursive,omitempty"`
	IoServicedRecursive     []BlkioEntry `json:"ioServicedRecursive,omitempty"`
	IoQueuedRecursive       []BlkioEntry `json:"ioQueueRecursive,omitempty"`
	IoServiceTimeRecursive  []BlkioEntry `json:"ioServiceTimeRecursive,omitempty"`
	IoWaitTimeRecursive     []BlkioEntry `json:"ioWaitTimeRecursive,omitempty"`
	IoMergedRecursive       []BlkioEntry `json:"ioMergedRecursive,omitempty"`
	IoTimeRecursive         []BlkioEntry `json:"ioTimeRecursive,omitempty"`
	SectorsRecursive        []BlkioEntry `json:"sectorsRecursive,omitempty"`
}

// BlkioEntry is one device's counter, for one operation where it has one.
type BlkioEntry struct {
	Major uint64 `json:"major,omitempty"`
	Minor uint64 `json:"minor,omitempty"`
	Op    string `json:"op,omitempty"`
	Value uint64 `json:"value,omitempty"`
}

type blkioFile struct {
	name string
	dst  func(*Blkio) *[]BlkioEntry
}

// blkioGroups are the v1 file sets in upstream's order of preference: BFQ
// with debug counters, BFQ, CFQ, the throttle layer's recursive counters,
// then its per-cgroup ones. The first set whose first file has entries
// wins; the throttle files exist wherever blkio is mounted.
var blkioGroups = func() [][]blkioFile {
	f := func(name string, dst func(*Blkio) *[]BlkioEntry) blkioFile { return blkioFile{name, dst} }
	sectors := func(b *Blkio) *[]BlkioEntry { return &b.SectorsRecursive }
	svcTime := func(b *Blkio) *[]BlkioEntry { return &b.IoServiceTimeRecursive }
	wait := func(b *Blkio) *[]BlkioEntry { return &b.IoWaitTimeRecursive }
	merged := func(b *Blkio) *[]BlkioEntry { return &b.IoMergedRecursive }
	queued := func(b *Blkio) *[]BlkioEntry { return &b.IoQueuedRecursive }
	tm := func(b *Blkio) *[]BlkioEntry { return &b.IoTimeRecursive }
	serviced := func(b *Blkio) *[]BlkioEntry { return &b.IoServicedRecursive }
	bytes := func(b *Blkio) *[]BlkioEntry { return &b.IoServiceBytesRecursive }
	full := func(prefix string) []blkioFile {
		return []blkioFile{
			f(prefix+"sectors_recursive", sectors), f(prefix+"io_service_time_recursive", svcTime),
			f(prefix+"io_wait_time_recursive", wait), f(prefix+"io_merged_recursive", merged),
			f(prefix+"io_queued_recursive", queued), f(prefix+"time_recursive", tm),
			f(prefix+"io_serviced_recursive", serviced), f(prefix+"io_service_bytes_recursive", bytes),
		}
	}
	return [][]blkioFile{
		full("blkio.bfq."),
		{f("blkio.bfq.io_serviced_recursive", serviced), f("blkio.bfq.io_service_bytes_recursive", bytes)},
		full("blkio."),
		{f("blkio.throttle.io_serviced_recursive", serviced), f("blkio.throttle.io_service_bytes_recursive", bytes)},
		{f("blkio.throttle.io_serviced", serviced), f("blkio.throttle.io_service_bytes", bytes)},
	}
}()

func (m *Manager) blkioV1(s *Stats, dir string) {
	for _, group := range blkioGroups {
		for i, bf := range group {
			entries := m.blkioEntries(dir, bf.name)
			if entries == nil {
				if i == 0 {
					break // this scheduler's files are absent or empty: try the next set
				}
				return
			}
			*bf.dst(&s.Blkio) = entries
			if i == len(group)-1 {
				return
			}
		}
	}
}

// blkioEntries parses "MAJ:MIN [Op] VALUE" lines, skipping the "Total"
// line; nil where the file is missing or has no entries.
func (m *Manager) blkioEntries(dir, file string) []BlkioEntry {
	data, err := m.fs.read(dir, file)
	if err != nil {
		return nil
	}
	var out []BlkioEntry
	for _, line := range strings.Split(data, "\n") {
		f := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == ':' })
		if len(f) < 3 {
			continue
		}
		major, err1 := strconv.ParseUint(f[0], 10, 64)
		minor, err2 := strconv.ParseUint(f[1], 10, 64)
		e := BlkioEntry{Major: major, Minor: minor}
		val := f[2]
		if len(f) == 4 {
			e.Op, val = f[2], f[3]
		}
		v, err3 := strconv.ParseUint(val, 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		e.Value = v
		out = append(out, e)
	}
	return out
}

// ioV2 maps io.stat's rbytes/wbytes/rios/wios to v1's tables, as upstream.
func (m *Manager) ioV2(s *Stats, dir string) {
	data, err := m.fs.read(dir, "io.stat")
	if err != nil {
		return
	}
	for _, line := range strings.Split(data, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		majS, minS, ok := strings.Cut(f[0], ":")
		major, err1 := strconv.ParseUint(majS, 10, 64)
		minor, err2 := strconv.ParseUint(minS, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			continue
		}
		for _, kv := range f[1:] {
			k, vs, _ := strings.Cut(kv, "=")
			v, err := strconv.ParseUint(vs, 10, 64)
			if err != nil {
				continue
			}
			e := BlkioEntry{Major: major, Minor: minor, Value: v}
			switch k {
			case "rbytes":
				e.Op = "Read"
				s.Blkio.IoServiceBytesRecursive = append(s.Blkio.IoServiceBytesRecursive, e)
			case "wbytes":
				e.Op = "Write"
				s.Blkio.IoServiceBytesRecursive = append(s.Blkio.IoServiceBytesRecursive, e)
			case "rios":
				e.Op = "Read"
				s.Blkio.IoServicedRecursive = append(s.Blkio.IoServicedRecursive, e)
			case "wios":
				e.Op = "Write"
				s.Blkio.IoServicedRecursive = append(s.Blkio.IoServicedRecursive, e)
			}
		}
	}
}

// hugetlbSizes are the page sizes that dir has counters for, named as the
// files name them ("2MB").
func (m *Manager) hugetlbSizes(dir, suffix string) []string {
	matches, _ := filepath.Glob(filepath.Join(dir, "hugetlb.*"+suffix))
	var sizes []string
	for _, f := range matches {
		size := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "hugetlb."), suffix)
		if !strings.Contains(size, ".") { // not the .rsvd twin
			sizes = append(sizes, size)
		}
	}
	return sizes
}

// rsvd is the name of a size's counters: upstream reports the
// reservation-aware ".rsvd" ones where the kernel has them (5.7+), which
// also count pages reserved by mmap and not yet faulted in.
func (m *Manager) rsvd(dir, size, file string) string {
	if _, err := m.fs.read(dir, "hugetlb."+size+".rsvd."+file); err == nil {
		return "hugetlb." + size + ".rsvd." + file
	}
	return "hugetlb." + size + "." + file
}

func (m *Manager) hugetlbV1(s *Stats, d string) {
	for _, size := range m.hugetlbSizes(d, ".usage_in_bytes") {
		s.Hugetlb[size] = Hugetlb{
			Usage:   m.u(d, m.rsvd(d, size, "usage_in_bytes")),
			Max:     m.u(d, m.rsvd(d, size, "max_usage_in_bytes")),
			Failcnt: m.u(d, m.rsvd(d, size, "failcnt")),
		}
	}
}

// hugetlbV2 has no peak counter: cgroup2's hugetlb.<size>.max is the
// limit, not a maximum usage, so max stays unset, as upstream leaves it.
func (m *Manager) hugetlbV2(s *Stats, d string) {
	for _, size := range m.hugetlbSizes(d, ".current") {
		s.Hugetlb[size] = Hugetlb{
			Usage:   m.u(d, m.rsvd(d, size, "current")),
			Failcnt: m.kv(d, "hugetlb."+size+".events")["max"],
		}
	}
}
