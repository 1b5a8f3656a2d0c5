// The restart helper's control channel (run.c): `slipway-helper run` as PID 1 of a dev container
// listens on a unix socket; `serve` (RESTART, START) and `slipway-helper restart|start|status`
// talk to it. One request per connection, one line each way (docs/dev.md, "Restart helper"):
//
//   request:  "restart\n" | "start\n" | "status\n"
//   answer:   "ok PID RESTARTS STATE\n" | "error ERRNO MESSAGE\n"
//
// The format is plain text on purpose: a helper replaced on disk by a newer build keeps running
// as PID 1 with its old inode, so both sides of this socket can be different builds.
#ifndef SLIPWAY_HELPER_CONTROL_H
#define SLIPWAY_HELPER_CONTROL_H

#include <stddef.h>

#define CONTROL_PATH_COUNT 2
/// Where PID 1 makes its socket: the first it can, in this order (/.slipway is root's 0755
/// directory, so a helper running as another user falls back to /tmp).
extern const char *const control_paths[CONTROL_PATH_COUNT];

typedef struct {
    int ok;
    int pid;
    unsigned restarts;
    char state[16];
    int error;
    char message[512];
} control_answer;

/// Connects to PID 1's control socket. Returns the descriptor, or -1 with `*error` and a
/// sentence in `message` (ESRCH: no restart helper listens in this container — the message
/// says what PID 1 is instead).
int control_connect(int *error, char *message, size_t size);

/// Sends one request line ("restart", "start" or "status"). Returns 0 or an errno.
int control_send(int fd, const char *verb);

/// Parses one answer line (without or with its newline). Returns 0, or -1 when it is not one.
int control_parse(const char *line, size_t length, control_answer *answer);

/// Writes all of `bytes`, through EINTR, partial writes and (for a non-blocking descriptor)
/// EAGAIN for up to a second. Returns 0 or an errno.
int write_all(int fd, const void *bytes, size_t size);

/// `slipway-helper run …` (argv[0] is "run").
int run_main(int argc, char **argv);

/// `slipway-helper restart|start|status`: one request through the control socket.
int control_main(const char *verb);

#endif
