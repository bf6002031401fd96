// Package spec owns hako's view of an OCI bundle's config.json: decoding it,
// deciding whether a configuration can be used to create a container, and
// producing the default configuration that `hako spec` writes.
//
// Decoding follows runc: unknown fields are ignored so that configs written
// for newer runtime-spec versions still load. Validation is stricter than the
// runtime-spec (which leaves most checks to the runtime) and mirrors runc's
// libcontainer/configs/validate and specconv rules, so that a config rejected
// by runc is rejected here before any host state is touched. Checks that need
// the final host state (does a namespace path exist, is a cgroup controller
// enabled) are left to the packages that act on them.
//
// Every validation error is a single line naming the JSON field path, so
// that the CLI can print it as is, and wraps ErrInvalid.
package spec
