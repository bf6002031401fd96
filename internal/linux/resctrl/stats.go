package resctrl

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Stats is `events --stats`' intel_rdt, runc 1.5's fields (types/events.go):
// the resources' read-only limits, the default group's and the container's
// schema lines, its whole schemata, and the monitoring counters per L3
// domain where the kernel counts them.
type Stats struct {
	L3CacheInfo       *L3CacheInfo        `json:"l3_cache_info,omitempty"`
	L3CacheSchemaRoot string              `json:"l3_cache_schema_root,omitempty"`
	L3CacheSchema     string              `json:"l3_cache_schema,omitempty"`
	MemBwInfo         *MemBwInfo          `json:"mem_bw_info,omitempty"`
	MemBwSchemaRoot   string              `json:"mem_bw_schema_root,omitempty"`
	MemBwSchema       string              `json:"mem_bw_schema,omitempty"`
	Schemata          []string            `json:"schemata,omitempty"`
	MBMStats          *[]MBMNumaNodeStats `json:"mbm_stats,omitempty"`
	CMTStats          *[]CMTNumaNodeStats `json:"cmt_stats,omitempty"`
}

// L3CacheInfo is info/L3.
type L3CacheInfo struct {
	CbmMask    string `json:"cbm_mask,omitempty"`
	MinCbmBits uint64 `json:"min_cbm_bits,omitempty"`
	NumClosids uint64 `json:"num_closids,omitempty"`
}

// MemBwInfo is info/MB.
type MemBwInfo struct {
	BandwidthGran uint64 `json:"bandwidth_gran,omitempty"`
	DelayLinear   uint64 `json:"delay_linear,omitempty"`
	MinBandwidth  uint64 `json:"min_bandwidth,omitempty"`
	NumClosids    uint64 `json:"num_closids,omitempty"`
}

// MBMNumaNodeStats is one mon_data domain's memory bandwidth counters.
type MBMNumaNodeStats struct {
	MBMTotalBytes uint64 `json:"mbm_total_bytes"`
	MBMLocalBytes uint64 `json:"mbm_local_bytes"`
}

// CMTNumaNodeStats is one mon_data domain's cache occupancy.
type CMTNumaNodeStats struct {
	LLCOccupancy uint64 `json:"llc_occupancy"`
}

// Stats reads the group's figures from the resctrl mount at root. The
// counters come from the container's monitoring group, or else from its
// CLOS group, which others may share (runc reads the same).
func (g *Group) Stats(root string) (*Stats, error) {
	s := &Stats{}
	rootLines, err := lines(filepath.Join(root, "schemata"))
	if err != nil {
		return nil, err
	}
	if s.Schemata, err = lines(filepath.Join(g.Path, "schemata")); err != nil {
		return nil, err
	}
	pick := func(ls []string, res string) string {
		for _, l := range ls {
			if strings.HasPrefix(strings.TrimSpace(l), res+":") {
				return strings.TrimSpace(l)
			}
		}
		return ""
	}
	f := Probe(root)
	if f.CAT {
		info := filepath.Join(root, "info", "L3")
		i := &L3CacheInfo{}
		if i.CbmMask, err = readString(info, "cbm_mask"); err != nil {
			return nil, err
		}
		if i.MinCbmBits, err = readUint(info, "min_cbm_bits"); err != nil {
			return nil, err
		}
		if i.NumClosids, err = readUint(info, "num_closids"); err != nil {
			return nil, err
		}
		s.L3CacheInfo, s.L3CacheSchemaRoot, s.L3CacheSchema = i, pick(rootLines, "L3"), pick(s.Schemata, "L3")
	}
	if f.MBA {
		info := filepath.Join(root, "info", "MB")
		i := &MemBwInfo{}
		for _, v := range []struct {
			name string
			dst  *uint64
		}{{"bandwidth_gran", &i.BandwidthGran}, {"delay_linear", &i.DelayLinear}, {"min_bandwidth", &i.MinBandwidth}, {"num_closids", &i.NumClosids}} {
			if *v.dst, err = readUint(info, v.name); err != nil {
				return nil, err
			}
		}
		s.MemBwInfo, s.MemBwSchemaRoot, s.MemBwSchema = i, pick(rootLines, "MB"), pick(s.Schemata, "MB")
	}
	if !f.Monitoring {
		return s, nil
	}
	mon, err := lines(filepath.Join(root, "info", "L3_MON", "mon_features"))
	if err != nil {
		return nil, err
	}
	has := map[string]bool{}
	for _, m := range mon {
		has[strings.TrimSpace(m)] = true
	}
	mbm, cmt := has["mbm_total_bytes"] || has["mbm_local_bytes"], has["llc_occupancy"]
	if !mbm && !cmt {
		return s, nil
	}
	dir := g.MonPath
	if dir == "" {
		dir = g.Path
	}
	domains, err := os.ReadDir(filepath.Join(dir, "mon_data"))
	if err != nil {
		return nil, err
	}
	var mbms []MBMNumaNodeStats
	var cmts []CMTNumaNodeStats
	for _, d := range domains {
		if !d.IsDir() {
			continue
		}
		p := filepath.Join(dir, "mon_data", d.Name())
		if mbm {
			var n MBMNumaNodeStats
			if has["mbm_total_bytes"] {
				if n.MBMTotalBytes, err = readUint(p, "mbm_total_bytes"); err != nil {
					return nil, err
				}
			}
			if has["mbm_local_bytes"] {
				if n.MBMLocalBytes, err = readUint(p, "mbm_local_bytes"); err != nil {
					return nil, err
				}
			}
			mbms = append(mbms, n)
		}
		if cmt {
			var n CMTNumaNodeStats
			if n.LLCOccupancy, err = readUint(p, "llc_occupancy"); err != nil {
				return nil, err
			}
			cmts = append(cmts, n)
		}
	}
	if mbm {
		s.MBMStats = &mbms
	}
	if cmt {
		s.CMTStats = &cmts
	}
	return s, nil
}

func lines(p string) ([]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

func readString(dir, name string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, name))
	return strings.TrimSpace(string(data)), err
}

func readUint(dir, name string) (uint64, error) {
	s, err := readString(dir, name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a number", filepath.Join(dir, name), s)
	}
	return n, nil
}
