// Package systemd is the systemd side of hako's systemd cgroup driver: it
// names the container's unit from linux.cgroupsPath, maps the spec's
// resources to unit properties, and starts, updates and stops the unit
// through systemd's D-Bus API (github.com/coreos/go-systemd/v22/dbus over
// github.com/godbus/dbus/v5, as runc).
//
// It follows runc's driver (github.com/opencontainers/cgroups v0.1.1,
// package systemd: common.go, v1.go, v2.go, user.go, devices/systemd.go;
// runc 1.4's specconv for the path and the annotations): the same unit
// names, default slices, properties, systemd version gates and job
// handling. Like runc, a unit's properties are only half of a container's
// limits: the cgroups package then writes every resource to the cgroup's
// files (the cgroupfs code), so limits systemd cannot express are applied
// too and a container's limits do not depend on the driver.
//
// Only the parent side uses this package, and only under --systemd-cgroup:
// nothing here connects to a bus, reads a file or starts a process unless
// a container with the systemd driver is being handled, and pause, ps,
// events and stats of such a container do not connect either. What every
// hako process (the container's own included, since it is the same static
// binary) does pay is the package initialisation of the libraries and of
// what they import (net, net/netip, dnsmessage, log, crypto/sha1, godbus).
// Measured with GODEBUG=inittrace=1 on `hako state`: 0.027 ms, 6 KB and 69
// allocations on top of hako's 0.3 ms, 39 KB and 335 (the binary grows by
// 1.5 MB, which untouched pages do not cost). Those packages are only
// linked, never initialised further: no resolver config is read and no
// socket opened.
//
// Build with -tags netgo,osusergo: the libraries import net and os/user,
// whose cgo variants would link glibc's NSS into the static binary.
package systemd
