// Package initproc is the Go side of a process hako starts inside a
// container: the container's first process until it execs the user's
// program, or a process `exec` adds.
//
// It starts after nsexec.c has joined the cgroups and namespaces, so every
// thread of this Go runtime is already inside them. It receives one frame
// (internal/frame) holding a plan (internal/plan) that the parent compiled,
// with the fds its steps name, and applies the steps in order: it never
// reads config.json and decides nothing the plan has decided.
package initproc
