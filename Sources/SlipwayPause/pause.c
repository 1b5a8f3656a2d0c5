// slipway-pause: the program of a --local pod's infra container (image slipway/pause:<digest>).
// It holds the pod's network and IPC namespaces for the pod's containers and does nothing
// else: it waits for a signal, and exits 0 on SIGTERM or SIGINT (as PID 1 in a container a
// signal without a handler would be ignored, and `docker stop` would wait for its timeout).
//
// It is linked statically (`-static-executable`): the image holds this one file and nothing
// else. swiftc links every program with its runtime registration (swiftrt.o); this program has
// no Swift code, so the two hooks below satisfy that registration and keep the Swift runtime
// out of the binary (about 700 KB instead of 7 MB).
#include <signal.h>
#include <unistd.h>

static void stop(int sig) {
    (void)sig;
    _exit(0);
}

int main(void) {
    struct sigaction action = {0};
    action.sa_handler = stop;
    sigaction(SIGTERM, &action, 0);
    sigaction(SIGINT, &action, 0);
    for (;;) pause();
}

void swift_addNewDSOImage(const void *header) { (void)header; }
int _swift_backtrace_isThunkFunction(const char *name) {
    (void)name;
    return 0;
}
