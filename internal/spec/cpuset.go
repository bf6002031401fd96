package spec

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// CPUSet parses a list such as "0-3,5" (process.execCPUAffinity,
// linux.memoryPolicy.nodes) the way runc 1.5's configs.ToCPUSet does, so
// that the same strings are accepted and refused: spaces around elements
// and empty elements are allowed, a value beyond the set's 1024 bits or an
// empty result is not. "" gives nil (not set).
func CPUSet(str string) (*unix.CPUSet, error) {
	if str == "" {
		return nil, nil
	}
	s := new(unix.CPUSet)
	// (*CPUSet).Set silently drops values past its size: refuse them.
	maxCPU := uint64(unsafe.Sizeof(*s) * 8)
	toInt := func(v string) (int, error) {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("invalid number %q", v)
		}
		if n >= maxCPU {
			return 0, fmt.Errorf("values larger than %d are not supported", maxCPU-1)
		}
		return int(n), nil
	}
	for r := range strings.SplitSeq(str, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		if r0, r1, found := strings.Cut(r, "-"); found {
			lo, err := toInt(r0)
			if err != nil {
				return nil, err
			}
			hi, err := toInt(r1)
			if err != nil {
				return nil, err
			}
			if lo > hi {
				return nil, errors.New("invalid range: " + r)
			}
			for i := lo; i <= hi; i++ {
				s.Set(i)
			}
			continue
		}
		v, err := toInt(r)
		if err != nil {
			return nil, err
		}
		s.Set(v)
	}
	if s.Count() == 0 {
		return nil, fmt.Errorf("no members found in set %q", str)
	}
	return s, nil
}

// checkCPUAffinity validates process.execCPUAffinity as runc's
// ConvertCPUAffinity does, naming the field ("abc" is refused, not
// dropped).
func checkCPUAffinity(a *specs.CPUAffinity) error {
	if a == nil {
		return nil
	}
	if _, err := CPUSet(a.Initial); err != nil {
		return fieldErr("process.execCPUAffinity.initial", "%q: %v", a.Initial, err)
	}
	if _, err := CPUSet(a.Final); err != nil {
		return fieldErr("process.execCPUAffinity.final", "%q: %v", a.Final, err)
	}
	return nil
}
