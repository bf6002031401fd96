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
// a container with the systemd driver is being handled. (The libraries'
// own package initialisation, about 0.07 ms and 5 KB in every hako
// process, is measured in bench_test.go's TestSystemdInitCost notes.)
package systemd
