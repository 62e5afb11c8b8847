// Package server implements the gofer side of the gofer/proto protocol: it
// serves one host directory (the container's root filesystem) to the
// Sentry over a connected AF_UNIX socket.
//
// # What it owns
//
// Server holds an O_PATH descriptor of the root directory. Each connection
// (one Serve call; several may run concurrently) has its own handle table
// mapping protocol handles (u64) to host O_PATH descriptors. Handle 0 is the
// root and is installed by the Hello exchange. The table is bounded
// (MaxHandles) and every descriptor is closed when the connection ends.
//
// # Security design
//
// Nothing outside the root may ever be reached. The server therefore never
// resolves a path of more than one component and never follows a symlink:
//
//   - every lookup is a single validated component (proto already rejects
//     '/', NUL, "." and ".."; the server checks again) resolved relative to
//     a directory descriptor with openat2(RESOLVE_BENEATH |
//     RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) and O_PATH|O_NOFOLLOW.
//     A symlink yields an O_PATH descriptor of the link itself; Walk stops
//     there and the Sentry resolves the link on its own;
//   - operations on an existing file act on its descriptor wherever the
//     kernel allows (statx/fchownat/utimensat/readlinkat/fchmodat2 with
//     AT_EMPTY_PATH, fstatfs) so a concurrent rename cannot redirect them;
//   - opening a handle for I/O re-resolves (parent directory descriptor,
//     name) with the same openat2 restrictions plus O_NOFOLLOW, and then
//     checks that the result is the same inode as the handle (ESTALE
//     otherwise). /proc/self/fd magic links are never used;
//   - operations that create or remove names (Create, Mkdir, Mknod,
//     Symlink, Link, Unlink, Rename) take a directory handle and one
//     component, and use the *at system calls without any symlink
//     following;
//   - symlinks are never opened (ELOOP); device nodes cannot be created
//     (EPERM) and existing device nodes and sockets cannot be opened;
//   - in read-only mode every mutating request, and every Open that asks
//     for write access or truncation, fails with EROFS.
//
// Because every descriptor the server holds was obtained from the root by a
// chain of single-component, beneath-only, no-symlink lookups, no handle can
// refer to a file outside the root.
package server
