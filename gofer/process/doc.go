// Package process runs the gofer as its own confined process: the sandbox
// side starts it with Spawn, and `runsc gofer` runs Main.
//
// # Sandbox side
//
// Spawn makes one AF_UNIX SOCK_STREAM socketpair per mount, hands the child
// ends to a new `runsc gofer` process as fds 3, 4, ... and returns the
// parent ends as *proto.Conn, in mount order. The gofer has stdin and
// stdout on /dev/null (it must never write to the application's streams),
// gets SIGKILL when the thread that started it dies (Pdeathsig), and exits
// once every connection reached EOF.
//
// # Gofer side
//
// Main confines the process before it reads a single request. Credentials,
// namespaces and the root directory are per thread on Linux, and the Go
// runtime is multi-threaded before main runs, so the steps that must hold
// for every thread happen in two stages:
//
// Stage 1, on one locked thread: unshare(CLONE_NEWNS), make "/"
// recursively private, create the new root (an empty, read-only tmpfs made
// with fsopen/fsmount, attached nowhere), clone each mount source with
// open_tree(OPEN_TREE_CLONE) (read-only mounts get MOUNT_ATTR_RDONLY from
// the kernel, on top of the server's own EROFS checks), shrink the
// capability bounding set to what serving needs plus CAP_SYS_CHROOT, clear
// the inheritable and ambient sets, set no_new_privs, and re-execute
// /proc/self/exe. execve makes the new image single-threaded with the
// locked thread's namespace and credentials, so every thread of stage 2
// inherits them.
//
// Stage 2: check the inherited descriptors, wrap the sockets, close every
// descriptor it did not expect, chroot into the tmpfs (the root directory
// is shared by all threads through CLONE_FS), drop CAP_SYS_CHROOT where
// the runtime allows it, install the seccomp filter on all threads
// (SECCOMP_FILTER_FLAG_TSYNC) and serve each connection with
// gofer/server. From then on host files are reached only through the
// mount descriptors, and every lookup below them is the server's
// one-component, beneath-only, no-symlink openat2.
//
// Without the privilege to unshare (EPERM), Main fails unless
// Config.AllowUnconfined is set; then it skips stage 1 and the chroot but
// still closes stray descriptors, sets no_new_privs and installs the
// seccomp filter.
package process
