package container

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/linux/security"
	"github.com/hako-runtime/hako/internal/state"
)

// compileSeccomp compiles linux.seccomp through a cache in the --root
// directory, keyed by the profile and the running kernel: engines give
// nearly every container the same profile, and libseccomp takes ~14 ms on
// this machine for Docker's ~300-syscall one. The cache lives in hako's own
// root-owned directory, which only hako writes.
func (r *Runtime) compileSeccomp(sc *specs.LinuxSeccomp) (*security.Seccomp, error) {
	if sc == nil {
		return nil, nil
	}
	profile, err := json.Marshal(sc)
	if err != nil {
		return nil, err
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	h := sha256.New()
	h.Write(profile)
	h.Write(uts.Release[:])
	path := filepath.Join(r.Store.Root, "@seccomp-cache", hex.EncodeToString(h.Sum(nil))+".json")
	if data, err := os.ReadFile(path); err == nil {
		var f security.Seccomp
		if json.Unmarshal(data, &f) == nil {
			return &f, nil
		}
	}
	f, err := security.BuildSeccomp(sc)
	if err != nil || f == nil {
		return f, err
	}
	if data, err := json.Marshal(f); err == nil {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err == nil {
			// A cache that cannot be written only costs time.
			_ = state.WriteAtomic(path, data, 0o600)
		}
	} else {
		return nil, fmt.Errorf("encode seccomp filter: %w", err)
	}
	return f, nil
}
