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
#endif
