// slipway-helper run: the restart helper, PID 1 of a dev container (docs/dev.md, "Restart
// helper"). It runs the container's command as a child in a process group of its own, forwards
// the signals a container gets to that group, reaps every process that ends up as its child,
// and answers restart / start / status requests on a unix socket (control.h) — what DevSpace's
// restart helper script does with a pid file, `setsid` and a `kill -9` from `devspace restart`,
// but with a graceful stop first and an answer once the new process runs.
//
// One thread, one poll(2): signals arrive through a signalfd, so nothing runs in a signal
// handler. No heap: the command is this process's own argv, the clients a fixed table.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control.h"

const char *const control_paths[CONTROL_PATH_COUNT] = {"/.slipway/control.sock", "/tmp/.slipway-control.sock"};

// MARK: - Shared by both ends

int write_all(int fd, const void *bytes, size_t size) {
    const char *p = bytes;
    while (size > 0) {
        ssize_t n = write(fd, p, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};
                int ready = poll(&pfd, 1, 1000);
                if (ready < 0 && errno == EINTR) continue;
                if (ready <= 0) return EAGAIN;
                continue;
            }
            return errno;
        }
        p += n;
        size -= (size_t)n;
    }
    return 0;
}

int control_send(int fd, const char *verb) {
    char line[32];
    int n = snprintf(line, sizeof line, "%s\n", verb);
    if (n < 0 || (size_t)n >= sizeof line) return EINVAL;
    return write_all(fd, line, (size_t)n);
}

int control_parse(const char *line, size_t length, control_answer *answer) {
    char copy[640];
    while (length > 0 && (line[length - 1] == '\n' || line[length - 1] == '\r')) length--;
    if (length >= sizeof copy) return -1;
    memcpy(copy, line, length);
    copy[length] = 0;
    memset(answer, 0, sizeof *answer);
    if (strncmp(copy, "ok ", 3) == 0) {
        answer->ok = 1;
        if (sscanf(copy + 3, "%d %u %15s", &answer->pid, &answer->restarts, answer->state) != 3) return -1;
        return 0;
    }
    if (strncmp(copy, "error ", 6) == 0) {
        char *end;
        long code = strtol(copy + 6, &end, 10);
        if (end == copy + 6 || *end != ' ') return -1;
        answer->error = (int)code;
        snprintf(answer->message, sizeof answer->message, "%s", end + 1);
        return 0;
    }
    return -1;
}

/// What PID 1 runs, from /proc/1/cmdline (arguments joined by spaces, cut at `size`).
static void pid1_command(char *out, size_t size) {
    snprintf(out, size, "unknown");
    int fd = open("/proc/1/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char raw[256];
    ssize_t n;
    do n = read(fd, raw, sizeof raw - 1);
    while (n < 0 && errno == EINTR);
    close(fd);
    if (n <= 0) return;
    while (n > 0 && raw[n - 1] == 0) n--;
    for (ssize_t i = 0; i < n; i++)
        if (raw[i] == 0) raw[i] = ' ';
    raw[n] = 0;
    snprintf(out, size, "%s", raw);
}

int control_connect(int *error, char *message, size_t size) {
    int errors[CONTROL_PATH_COUNT];
    // The socket must belong to PID 1's user (or root): /tmp is writable by anyone.
    struct stat init;
    int init_known = stat("/proc/1", &init) == 0;
    for (int i = 0; i < CONTROL_PATH_COUNT; i++) {
        struct stat st;
        if (lstat(control_paths[i], &st) != 0) {
            errors[i] = errno;
            continue;
        }
        if (!S_ISSOCK(st.st_mode) || (init_known && st.st_uid != init.st_uid && st.st_uid != 0)) {
            errors[i] = ENOENT;
            continue;
        }
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            *error = errno;
            snprintf(message, size, "cannot make a socket: %s", strerror(errno));
            return -1;
        }
        struct sockaddr_un address = {.sun_family = AF_UNIX};
        snprintf(address.sun_path, sizeof address.sun_path, "%s", control_paths[i]);
        int r;
        do r = connect(fd, (struct sockaddr *)&address, sizeof address);
        while (r < 0 && errno == EINTR);
        if (r == 0) return fd;
        errors[i] = errno;
        close(fd);
    }
    for (int i = 0; i < CONTROL_PATH_COUNT; i++) {
        if (errors[i] == EACCES || errors[i] == EPERM) {
            *error = errors[i];
            snprintf(message, size,
                     "cannot reach the restart helper's control socket %s: %s (it belongs to the user PID 1 runs "
                     "as; this process runs as uid %u: run it as that user or as root)",
                     control_paths[i], strerror(errors[i]), (unsigned)geteuid());
            return -1;
        }
    }
    char command[160];
    pid1_command(command, sizeof command);
    *error = ESRCH;
    snprintf(message, size,
             "its PID 1 is `%s`, not `/.slipway/helper run -- …` (nothing answers on %s or %s); slipway's dev "
             "mode starts the container with the restart helper as its entrypoint",
             command, control_paths[0], control_paths[1]);
    return -1;
}

int control_main(const char *verb) {
    int error = 0;
    char message[512];
    int fd = control_connect(&error, message, sizeof message);
    if (fd < 0) {
        if (error == ESRCH) {
            fprintf(stderr, "slipway-helper: this container was not started by slipway's restart helper; %s\n",
                    message);
        } else {
            fprintf(stderr, "slipway-helper: %s\n", message);
        }
        return 1;
    }
    error = control_send(fd, verb);
    if (error) {
        fprintf(stderr, "slipway-helper: cannot send the request to the restart helper: %s\n", strerror(error));
        close(fd);
        return 1;
    }
    char line[640];
    size_t used = 0;
    while (used < sizeof line && !memchr(line, '\n', used)) {
        ssize_t n = read(fd, line + used, sizeof line - used);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        used += (size_t)n;
    }
    close(fd);
    control_answer answer;
    if (used == 0 || control_parse(line, used, &answer) != 0) {
        fprintf(stderr, "slipway-helper: the restart helper closed the connection without an answer\n");
        return 1;
    }
    if (!answer.ok) {
        fprintf(stderr, "slipway-helper: %s\n", answer.message);
        return 1;
    }
    if (strcmp(verb, "status") == 0) {
        printf("pid %d, %u restarts, %s\n", answer.pid, answer.restarts, answer.state);
    } else {
        printf("%s: pid %d, %u restarts\n", strcmp(verb, "restart") == 0 ? "restarted" : "started", answer.pid,
               answer.restarts);
    }
    return 0;
}

// MARK: - PID 1

enum { ST_WAITING, ST_RUNNING, ST_RESTARTING, ST_EXITED, ST_IDLE, ST_STOPPING };
static const char *const state_names[] = {"waiting", "running", "restarting", "exited", "idle", "stopping"};

#define MAX_CLIENTS 16
typedef struct {
    int fd;  // -1: a free slot
    int waiting;  // answered when the command runs again
    size_t used;
    char line[128];
} client;

static client clients[MAX_CLIENTS];
static char **command;
static char command_text[200];
static pid_t child;  // the running command, 0 when none
static pid_t group;  // its process group, while members of it may be left
static int state;
static unsigned spawns;
static long grace_ms = 2000;
static long delay_ms = 7000;
static int64_t deadline;  // monotonic milliseconds
static int64_t restart_began;
static int killed;  // this stop sent SIGKILL
static int last_status = -1;  // the last command's wait status
static int listen_fd = -1;
static const char *socket_path;

static int64_t now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

__attribute__((format(printf, 1, 2))) static void say(const char *format, ...) {
    char line[768];
    int prefix = snprintf(line, sizeof line, "slipway-helper: ");
    va_list args;
    va_start(args, format);
    int n = vsnprintf(line + prefix, sizeof line - (size_t)prefix - 1, format, args);
    va_end(args);
    size_t length = (size_t)prefix + (n < 0 ? 0 : (size_t)n);
    if (length > sizeof line - 2) length = sizeof line - 2;
    line[length++] = '\n';
    (void)write_all(2, line, length);
}

static unsigned restarts(void) { return spawns > 0 ? spawns - 1 : 0; }

static int exit_code(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 1;
}

static void describe(int status, char *out, size_t size) {
    if (WIFSIGNALED(status)) {
        snprintf(out, size, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    } else {
        snprintf(out, size, "exited with status %d", exit_code(status));
    }
}

/// Whether any process of the command's group is left.
static int group_alive(void) {
    if (group <= 0) return 0;
    if (kill(-group, 0) == 0 || errno != ESRCH) return 1;
    group = 0;
    return 0;
}

// MARK: Clients

static void drop(client *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->waiting = 0;
    c->used = 0;
}

__attribute__((format(printf, 2, 3))) static void answer(client *c, const char *format, ...) {
    char line[640];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(line, sizeof line - 1, format, args);
    va_end(args);
    size_t length = n < 0 ? 0 : (size_t)n;
    if (length > sizeof line - 2) length = sizeof line - 2;
    line[length++] = '\n';
    (void)write_all(c->fd, line, length);  // a client that left meanwhile is no matter
    drop(c);
}

static void answer_ok(client *c) { answer(c, "ok %d %u %s", (int)child, restarts(), state_names[state]); }

/// Answers every client waiting for the command to run again.
static void answer_waiting(int error, const char *message) {
    for (int i = 0; i < MAX_CLIENTS; i++) {
        if (clients[i].fd < 0 || !clients[i].waiting) continue;
        if (error) {
            answer(&clients[i], "error %d %s", error, message);
        } else {
            answer_ok(&clients[i]);
        }
    }
}

__attribute__((noreturn)) static void finish(int code) {
    answer_waiting(ESHUTDOWN, "the container is stopping");
    for (int i = 0; i < MAX_CLIENTS; i++) drop(&clients[i]);
    if (listen_fd >= 0) {
        close(listen_fd);
        unlink(socket_path);
    }
    _exit(code);
}

// MARK: The command

/// Starts the command in a process group of its own. Returns 0, or the errno its exec failed
/// with (ENOENT: not found on PATH).
static int spawn(void) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) return errno;
    pid_t pid = fork();
    if (pid < 0) {
        int error = errno;
        close(report[0]);
        close(report[1]);
        return error;
    }
    if (pid == 0) {
        close(report[0]);
        setpgid(0, 0);
        // With a terminal, the command's group is its foreground (SIGTTOU is still blocked here).
        if (isatty(0)) tcsetpgrp(0, getpid());
        signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execvp(command[0], command);
        int error = errno;
        (void)write_all(report[1], &error, sizeof error);
        _exit(error == ENOENT ? 127 : 126);
    }
    setpgid(pid, pid);  // as the child does: no kill can come before its group exists
    close(report[1]);
    int error = 0;
    ssize_t n;
    do n = read(report[0], &error, sizeof error);
    while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof error) return error ? error : EIO;  // that child is reaped with the others
    child = pid;
    group = pid;
    spawns++;
    return 0;
}

/// Runs the command now and answers the waiting clients. `initial`: the container's own start.
static void start_command(int initial) {
    int error = spawn();
    if (error == 0) {
        state = ST_RUNNING;
        if (spawns > 1) {
            say("`%s` runs again (pid %d, restart %u, %lld ms)", command_text, (int)child, restarts(),
                (long long)(now_ms() - restart_began));
        }
        answer_waiting(0, NULL);
        return;
    }
    char message[512];
    const char *path = getenv("PATH");
    if (error == ENOENT) {
        snprintf(message, sizeof message, "cannot run `%s`: command not found (PATH=%s)", command_text,
                 path ? path : "unset");
    } else {
        snprintf(message, sizeof message, "cannot run `%s`: %s", command_text, strerror(error));
    }
    say("%s", message);
    if (initial) {
        // Nothing would ever run, so the container ends, as a shell ends with 127 (not found)
        // or 126 (not executable).
        finish(error == ENOENT ? 127 : 126);
    }
    state = ST_IDLE;
    say("waiting for a restart or start request (`/.slipway/helper restart` sends one)");
    answer_waiting(error, message);
}

/// Stops what is left of the command's group (SIGTERM, SIGKILL after the grace), then starts it.
static void stop_then_start(void) {
    restart_began = now_ms();
    if (group_alive()) {
        if (kill(-group, SIGTERM) != 0 && errno == ESRCH) group = 0;
        state = ST_RESTARTING;
        killed = 0;
        deadline = restart_began + grace_ms;
        if (group) return;
    }
    start_command(0);
}

/// After a stop's progress (a child reaped, a deadline): starts the command once its group is gone.
static void advance_restart(void) {
    if (state != ST_RESTARTING) return;
    if (child == 0 && !group_alive()) {
        start_command(0);
        return;
    }
    if (now_ms() < deadline) return;
    if (!killed) {
        say("`%s` did not stop within %ld ms of SIGTERM; sending SIGKILL", command_text, grace_ms);
        kill(-group, SIGKILL);
        killed = 1;
        deadline = now_ms() + 5000;
    } else if (child == 0) {
        say("processes of group %d are still there 5 s after SIGKILL; starting `%s` anyway", (int)group,
            command_text);
        group = 0;
        start_command(0);
    } else {
        deadline = now_ms() + 5000;  // the leader survives SIGKILL (a hung mount?): keep waiting
    }
}

static void child_exited(int status) {
    child = 0;
    last_status = status;
    char how[96];
    describe(status, how, sizeof how);
    switch (state) {
    case ST_STOPPING: finish(exit_code(status));
    case ST_RESTARTING: advance_restart(); break;
    default:
        // As DevSpace's restart helper: the container stays, and the command runs again.
        say("`%s` %s; running it again in %ld ms, as DevSpace's restart helper does (`/.slipway/helper "
            "restart` runs it now; stopping the container ends it)",
            command_text, how, delay_ms);
        state = ST_EXITED;
        deadline = now_ms() + delay_ms;
    }
}

static void reap(void) {
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0 && errno == EINTR) continue;
        if (pid <= 0) return;
        if (pid == child) child_exited(status);
    }
}

/// SIGTERM, SIGINT, SIGQUIT: the container stops. The command's group gets the signal; the
/// helper exits with the command's status once it ends.
static void terminate(int sig) {
    if (group_alive()) kill(-group, sig);
    if (child > 0) {
        if (state != ST_STOPPING) answer_waiting(ESHUTDOWN, "the container is stopping");
        state = ST_STOPPING;
        return;
    }
    finish(last_status >= 0 ? exit_code(last_status) : 128 + sig);
}

// MARK: Requests

static void request(client *c, const char *verb) {
    int restart = strcmp(verb, "restart") == 0;
    if (strcmp(verb, "status") == 0) {
        answer_ok(c);
        return;
    }
    if (!restart && strcmp(verb, "start") != 0) {
        answer(c, "error %d unknown request `%.40s` (restart, start or status)", EINVAL, verb);
        return;
    }
    switch (state) {
    case ST_STOPPING: answer(c, "error %d the container is stopping", ESHUTDOWN); return;
    case ST_WAITING:
        if (restart) {
            answer(c, "error %d `%s` has not been started yet: this helper waits for a start request (--wait-start)",
                   EAGAIN, command_text);
            return;
        }
        break;
    case ST_RUNNING:
        if (!restart) {
            answer_ok(c);
            return;
        }
        break;
    case ST_RESTARTING: c->waiting = 1; return;  // answered with the restart under way
    default: break;
    }
    c->waiting = 1;
    if (restart && child > 0) say("restarting `%s` (pid %d) on request", command_text, (int)child);
    stop_then_start();
}

static void read_client(client *c) {
    ssize_t n = read(c->fd, c->line + c->used, sizeof c->line - 1 - c->used);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) return;
        drop(c);
        return;
    }
    if (n == 0) {
        drop(c);  // gone; a restart it asked for goes on
        return;
    }
    if (c->waiting) return;  // one request per connection
    c->used += (size_t)n;
    char *newline = memchr(c->line, '\n', c->used);
    if (!newline) {
        if (c->used == sizeof c->line - 1) answer(c, "error %d a request is one short line", EINVAL);
        return;
    }
    *newline = 0;
    if (newline > c->line && newline[-1] == '\r') newline[-1] = 0;
    request(c, c->line);
}

static void accept_clients(void) {
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            return;  // EAGAIN, or out of descriptors: the others are accepted later
        }
        client *slot = NULL;
        for (int i = 0; i < MAX_CLIENTS && !slot; i++)
            if (clients[i].fd < 0) slot = &clients[i];
        struct ucred peer;
        socklen_t length = sizeof peer;
        client scratch = {.fd = fd};
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0 ||
            (peer.uid != 0 && peer.uid != geteuid())) {
            answer(&scratch, "error %d only root and uid %u may control this helper", EPERM, (unsigned)geteuid());
        } else if (!slot) {
            answer(&scratch, "error %d too many connections to the restart helper at once", EBUSY);
        } else {
            slot->fd = fd;
        }
    }
}

// MARK: The socket

/// Listens on the first control path it can. Returns the descriptor, or -1 with what went
/// wrong at each path in `problems`; exits when another helper answers there already.
static int listen_control(char *problems, size_t size) {
    size_t used = 0;
    problems[0] = 0;
    for (int i = 0; i < CONTROL_PATH_COUNT; i++) {
        const char *path = control_paths[i];
        struct sockaddr_un address = {.sun_family = AF_UNIX};
        snprintf(address.sun_path, sizeof address.sun_path, "%s", path);
        struct stat st;
        int error = 0;
        if (lstat(path, &st) == 0) {
            if (!S_ISSOCK(st.st_mode)) {
                error = EEXIST;
            } else {
                int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (probe >= 0 && connect(probe, (struct sockaddr *)&address, sizeof address) == 0) {
                    say("another restart helper already listens on %s", path);
                    _exit(1);
                }
                if (probe >= 0) close(probe);
                if (unlink(path) != 0) error = errno;  // a socket left by the container's last run
            }
        }
        int fd = -1;
        if (!error) {
            fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
            if (fd < 0) error = errno;
        }
        if (!error) {
            mode_t old = umask(0177);  // the socket is made 0600: PID 1's user and root only
            int bound = bind(fd, (struct sockaddr *)&address, sizeof address);
            if (bound != 0) error = errno;
            umask(old);
            if (!error && listen(fd, 16) != 0) {
                error = errno;
                unlink(path);
            }
        }
        if (!error) {
            socket_path = path;
            return fd;
        }
        if (fd >= 0) close(fd);
        int n = snprintf(problems + used, size - used, "%s%s: %s", used ? "; " : "", path, strerror(error));
        if (n > 0) used += (size_t)n < size - used ? (size_t)n : size - used - 1;
    }
    return -1;
}

// MARK: Main

static int usage(void) {
    fprintf(stderr,
            "usage: slipway-helper run [--wait-start] [--grace-ms N] [--restart-delay-ms N] -- COMMAND [ARG...]\n"
            "       slipway-helper restart | start | status\n"
            "The restart helper of slipway's dev mode (docs/dev.md): `run` is the dev container's PID 1 and\n"
            "runs COMMAND; `restart`, `start` and `status` ask it through its control socket.\n");
    return 64;
}

static int parse_ms(const char *text, long *out) {
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || end == text || *end || value < 0 || value > 86400000L) return -1;
    *out = value;
    return 0;
}

int run_main(int argc, char **argv) {
    int wait_start = 0;
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (strcmp(argv[i], "--wait-start") == 0) {
            wait_start = 1;
        } else if (strcmp(argv[i], "--grace-ms") == 0 && i + 1 < argc) {
            if (parse_ms(argv[++i], &grace_ms) != 0) {
                fprintf(stderr, "slipway-helper: --grace-ms takes milliseconds (0 to 86400000), not %s\n", argv[i]);
                return 64;
            }
        } else if (strcmp(argv[i], "--restart-delay-ms") == 0 && i + 1 < argc) {
            if (parse_ms(argv[++i], &delay_ms) != 0) {
                fprintf(stderr, "slipway-helper: --restart-delay-ms takes milliseconds (0 to 86400000), not %s\n",
                        argv[i]);
                return 64;
            }
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "slipway-helper: unknown option %s\n", argv[i]);
            return usage();
        } else {
            break;  // the command, without a `--`
        }
    }
    if (i >= argc) {
        fprintf(stderr, "slipway-helper: run needs a command after `--`\n");
        return usage();
    }
    command = argv + i;
    size_t used = 0;
    for (char **arg = command; *arg && used < sizeof command_text - 1; arg++) {
        int n = snprintf(command_text + used, sizeof command_text - used, "%s%s", arg == command ? "" : " ", *arg);
        if (n < 0) break;
        used += (size_t)n;
    }
    if (used >= sizeof command_text - 1) memcpy(command_text + sizeof command_text - 4, "...", 4);

    for (int c = 0; c < MAX_CLIENTS; c++) clients[c].fd = -1;
    // Not PID 1 (an exec, a test): orphans of the command are still this helper's to reap.
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    signal(SIGPIPE, SIG_IGN);
    sigset_t handled;
    sigemptyset(&handled);
    const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
    for (size_t s = 0; s < sizeof forwarded / sizeof forwarded[0]; s++) sigaddset(&handled, forwarded[s]);
    sigaddset(&handled, SIGCHLD);
    sigset_t blocked = handled;
    sigaddset(&blocked, SIGTTOU);  // so that a child may take the terminal's foreground
    if (sigprocmask(SIG_BLOCK, &blocked, NULL) != 0) {
        say("cannot block signals: %s", strerror(errno));
        return 1;
    }
    int signal_fd = signalfd(-1, &handled, SFD_NONBLOCK | SFD_CLOEXEC);
    if (signal_fd < 0) {
        say("cannot make a signalfd: %s", strerror(errno));
        return 1;
    }
    char problems[640];
    listen_fd = listen_control(problems, sizeof problems);
    if (listen_fd < 0) {
        if (wait_start) {
            say("cannot make the control socket (%s), so no start request could reach this helper", problems);
            return 1;
        }
        say("cannot make the control socket (%s); restart requests cannot reach this helper", problems);
    }

    if (wait_start) {
        state = ST_WAITING;
        say("waiting for a start request before running `%s` (slipway sends it after the initial sync; "
            "`/.slipway/helper start` sends one by hand)",
            command_text);
    } else {
        start_command(1);
    }

    for (;;) {
        struct pollfd fds[2 + MAX_CLIENTS];
        int slot_of[2 + MAX_CLIENTS];
        nfds_t count = 0;
        fds[count++] = (struct pollfd){.fd = signal_fd, .events = POLLIN};
        if (listen_fd >= 0) fds[count++] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
        for (int c = 0; c < MAX_CLIENTS; c++) {
            if (clients[c].fd < 0) continue;
            slot_of[count] = c;
            fds[count++] = (struct pollfd){.fd = clients[c].fd, .events = POLLIN};
        }
        int timeout = -1;
        if (state == ST_RESTARTING || state == ST_EXITED) {
            int64_t left = deadline - now_ms();
            if (left < 0) left = 0;
            // A stop whose leader is gone waits for the rest of its group, which need not be
            // this helper's children: look again every 10 ms.
            if (state == ST_RESTARTING && child == 0 && left > 10) left = 10;
            timeout = (int)left;
        }
        int ready = poll(fds, count, timeout);
        if (ready < 0 && errno != EINTR) {
            say("poll: %s", strerror(errno));
            finish(1);
        }
        if (ready > 0 && fds[0].revents) {
            struct signalfd_siginfo info;
            for (;;) {
                ssize_t n = read(signal_fd, &info, sizeof info);
                if (n < 0 && errno == EINTR) continue;
                if (n != (ssize_t)sizeof info) break;
                int sig = (int)info.ssi_signo;
                if (sig == SIGCHLD) {
                    reap();
                } else if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT) {
                    reap();  // a command that ended just before is not signalled in vain
                    terminate(sig);
                } else if (group_alive()) {
                    kill(-group, sig);  // SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH
                }
            }
        }
        if (ready > 0) {
            for (nfds_t f = 1; f < count; f++) {
                if (!fds[f].revents) continue;
                if (fds[f].fd == listen_fd) {
                    accept_clients();
                } else {
                    client *c = &clients[slot_of[f]];
                    if (c->fd == fds[f].fd) read_client(c);
                }
            }
        }
        advance_restart();
        if (state == ST_EXITED && now_ms() >= deadline) {
            say("running `%s` again", command_text);
            stop_then_start();
        }
    }
}
