#ifndef SLIPWAY_CLINUX_SHIM_H
#define SLIPWAY_CLINUX_SHIM_H
// Linux calls that Swift's Glibc module leaves out (they need _GNU_SOURCE, or a header it does
// not include), declared here without including any system header (a system header included
// here would take its declarations away from the Glibc module). The agent's socket loop
// accepts connections non-blocking and close-on-exec in one call (no window in which a job
// started by another thread inherits one) and is woken through an eventfd.
//
// Flags: SOCK_NONBLOCK / SOCK_CLOEXEC for accept4 (the Glibc module has them), and for
// eventfd EFD_NONBLOCK / EFD_CLOEXEC, which Linux defines as O_NONBLOCK / O_CLOEXEC.
struct sockaddr;
extern int accept4(int fd, struct sockaddr *address, unsigned int *length, int flags);
extern int eventfd(unsigned int initial, int flags);

// glibc's spawn.h defines POSIX_SPAWN_SETSID (a new session for the child) only under
// _GNU_SOURCE; its value is fixed by glibc's ABI (since 2.26).
#define SLIPWAY_POSIX_SPAWN_SETSID 0x80

// struct ucred (sys/socket.h, _GNU_SOURCE only): what getsockopt(SO_PEERCRED) fills in for a
// unix socket's peer. Same layout as the kernel's.
struct slipway_ucred {
    int pid;
    unsigned int uid;
    unsigned int gid;
};

// malloc.h's malloc_trim (the Glibc module does not include malloc.h): gives the memory free()d
// in glibc's arenas back to the system. size_t is unsigned long on Linux's 64-bit ABIs.
extern int malloc_trim(unsigned long pad);
#endif
