// slipway-helper: the program slipway copies into a container (as /.slipway/helper) to sync a
// tree there. slipway runs it once per container and root (`/.slipway/helper serve`, a
// long-lived exec as the container's user) and talks to it over stdin and stdout in the framed
// binary protocol of docs/sync-protocol.md: writes streamed in chunks to a temp file renamed
// over the real name, directories, symlinks, renames, removes, mode changes — each after
// checking what the path holds —, a manifest of the tree with SHA-256 on request, downloads
// in chunks, and an inotify watch of the tree reported in batches.
//
// Every path from slipway is relative to the root and is resolved one component at a time
// with openat(O_NOFOLLOW): a symlink in the tree is never followed, so nothing outside the root
// is ever written, read or removed. Nothing is held whole in memory (at most one 1 MiB frame).
// While idle the program blocks in poll(2): no timer, no CPU.
//
// It is linked statically (`-static-executable`) so that it runs in any image, a `FROM
// scratch` one included, as root or any uid. As for slipway-pause, the two hooks at the end
// satisfy swiftc's runtime registration and keep the Swift runtime out of the binary.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "control.h"
#include "sha256.h"

#define PROTOCOL_VERSION 3u
#define HEADER_SIZE 9
#define MAX_PAYLOAD (1u << 20)
#define CHUNK_SIZE (256u << 10)
#define FLUSH_AT (256u << 10)
#define MAX_PATH 4096
#define MAX_DEPTH 512
#define TEMP_PREFIX ".slipway-tmp-"
// Entries of the table of what this helper applied (see `record`) before it starts over.
#define ECHO_TABLE_LIMIT 65536

// Requests (slipway → helper).
enum {
    REQ_HELLO = 0x01,
    REQ_WRITE = 0x02,
    REQ_DATA = 0x03,
    REQ_END = 0x04,
    REQ_ABORT = 0x05,
    REQ_MKDIR = 0x06,
    REQ_SYMLINK = 0x07,
    REQ_RENAME = 0x08,
    REQ_REMOVE = 0x09,
    REQ_CHMOD = 0x0A,
    REQ_HASH_PATHS = 0x0B,
    REQ_MANIFEST = 0x0C,
    REQ_DOWNLOAD = 0x0D,
    REQ_WATCH = 0x0E,
    REQ_UNWATCH = 0x0F,
    REQ_ENTRIES = 0x10,
    REQ_RESTART = 0x11,
    REQ_START = 0x12,
};

// Answers (helper → slipway).
enum {
    ANS_HELLO = 0x81,
    ANS_APPLIED = 0x82,
    ANS_CONFLICT = 0x83,
    ANS_FAILED = 0x84,
    ANS_ENTRY = 0x85,
    ANS_DATA = 0x86,
    ANS_END = 0x87,
    ANS_CHANGES = 0x88,
    ANS_UNKNOWN = 0x89,
    ANS_NOTE = 0x8A,
    ANS_WATCHING = 0x8B,
    ANS_PROCESS = 0x8C,
    ANS_FATAL = 0xFF,
};

enum { KIND_FILE = 1, KIND_DIRECTORY = 2, KIND_SYMLINK = 3 };
enum { EXPECT_ANYTHING = 0, EXPECT_ABSENT = 1, EXPECT_FILE = 2 };

enum { HELLO_CHOWN = 1, HELLO_FSYNC = 2, HELLO_CREATE_ROOT = 4 };

static void fatal(const char *format, ...) __attribute__((noreturn, format(printf, 1, 2)));

// MARK: - Output

static uint8_t *out_buf;
static size_t out_len, out_cap;
static size_t frame_start;

static void out_reserve(size_t more) {
    if (out_len + more <= out_cap) return;
    size_t cap = out_cap ? out_cap : (64u << 10);
    while (cap < out_len + more) cap *= 2;
    uint8_t *grown = realloc(out_buf, cap);
    if (!grown) {
        // Nothing can be said any more: the answer itself needs memory.
        _exit(3);
    }
    out_buf = grown;
    out_cap = cap;
}

static void put_bytes(const void *bytes, size_t size) {
    out_reserve(size);
    memcpy(out_buf + out_len, bytes, size);
    out_len += size;
}

static void put_u8(uint8_t value) { put_bytes(&value, 1); }

static void put_u32(uint32_t value) {
    uint8_t b[4] = {(uint8_t)(value >> 24), (uint8_t)(value >> 16), (uint8_t)(value >> 8), (uint8_t)value};
    put_bytes(b, 4);
}

static void put_u64(uint64_t value) {
    put_u32((uint32_t)(value >> 32));
    put_u32((uint32_t)value);
}

static void begin_frame(uint8_t type, uint32_t id) {
    frame_start = out_len;
    put_u8(type);
    put_u32(id);
    put_u32(0);
}

static void end_frame(void) {
    size_t length = out_len - frame_start - HEADER_SIZE;
    uint8_t *p = out_buf + frame_start + 5;
    p[0] = (uint8_t)(length >> 24);
    p[1] = (uint8_t)(length >> 16);
    p[2] = (uint8_t)(length >> 8);
    p[3] = (uint8_t)length;
}

static void flush_output(void) {
    size_t done = 0;
    while (done < out_len) {
        ssize_t n = write(1, out_buf + done, out_len - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            _exit(0);  // slipway is gone.
        }
        done += (size_t)n;
    }
    out_len = 0;
}

static void maybe_flush(void) {
    if (out_len >= FLUSH_AT) flush_output();
}

/// A frame whose payload is an errno and a message (FAILED, NOTE).
static void send_error_frame(uint8_t type, uint32_t id, int error, const char *format, va_list args) {
    char message[1024];
    vsnprintf(message, sizeof message, format, args);
    begin_frame(type, id);
    put_u32((uint32_t)error);
    put_bytes(message, strlen(message));
    end_frame();
}

__attribute__((format(printf, 3, 4))) static void send_failed(uint32_t id, int error, const char *format, ...) {
    va_list args;
    va_start(args, format);
    send_error_frame(ANS_FAILED, id, error, format, args);
    va_end(args);
}

__attribute__((format(printf, 3, 4))) static void send_note(uint32_t id, int error, const char *format, ...) {
    va_list args;
    va_start(args, format);
    send_error_frame(ANS_NOTE, id, error, format, args);
    va_end(args);
}

// MARK: - A string map (open addressing, linear probing, backward-shift removal)

typedef struct {
    uint8_t present;  // 0: recorded as absent
    uint8_t kind;
    uint32_t mode;
    uint64_t size;
    int64_t mtime;
    uint64_t inode;
} path_state;

typedef struct {
    char *key;  // NUL-terminated copy; NULL for a free slot
    size_t length;
    path_state value;
} map_slot;

typedef struct {
    map_slot *slots;
    size_t capacity;  // a power of two, or 0
    size_t count;
} path_map;

static uint64_t hash_bytes(const char *bytes, size_t length) {
    uint64_t hash = 1469598103934665603ull;
    for (size_t i = 0; i < length; i++) {
        hash ^= (uint8_t)bytes[i];
        hash *= 1099511628211ull;
    }
    return hash;
}

static map_slot *map_find(path_map *map, const char *key, size_t length) {
    if (map->count == 0) return NULL;
    size_t mask = map->capacity - 1;
    for (size_t i = hash_bytes(key, length) & mask;; i = (i + 1) & mask) {
        map_slot *slot = &map->slots[i];
        if (!slot->key) return NULL;
        if (slot->length == length && memcmp(slot->key, key, length) == 0) return slot;
    }
}

static void map_grow(path_map *map);

static map_slot *map_put(path_map *map, const char *key, size_t length) {
    if ((map->count + 1) * 2 > map->capacity) map_grow(map);
    size_t mask = map->capacity - 1;
    for (size_t i = hash_bytes(key, length) & mask;; i = (i + 1) & mask) {
        map_slot *slot = &map->slots[i];
        if (slot->key && slot->length == length && memcmp(slot->key, key, length) == 0) return slot;
        if (!slot->key) {
            slot->key = malloc(length + 1);
            if (!slot->key) fatal("out of memory");
            memcpy(slot->key, key, length);
            slot->key[length] = 0;
            slot->length = length;
            memset(&slot->value, 0, sizeof slot->value);
            map->count++;
            return slot;
        }
    }
}

static void map_grow(path_map *map) {
    size_t old_capacity = map->capacity;
    map_slot *old = map->slots;
    map->capacity = old_capacity ? old_capacity * 2 : 64;
    map->slots = calloc(map->capacity, sizeof(map_slot));
    if (!map->slots) fatal("out of memory");
    map->count = 0;
    for (size_t i = 0; i < old_capacity; i++) {
        if (!old[i].key) continue;
        size_t mask = map->capacity - 1;
        size_t j = hash_bytes(old[i].key, old[i].length) & mask;
        while (map->slots[j].key) j = (j + 1) & mask;
        map->slots[j] = old[i];
        map->count++;
    }
    free(old);
}

static void map_remove(path_map *map, map_slot *slot) {
    size_t mask = map->capacity - 1;
    size_t hole = (size_t)(slot - map->slots);
    free(slot->key);
    slot->key = NULL;
    map->count--;
    // Shift back the entries of the run after the hole that may sit in it.
    for (size_t i = (hole + 1) & mask; map->slots[i].key; i = (i + 1) & mask) {
        size_t home = hash_bytes(map->slots[i].key, map->slots[i].length) & mask;
        int movable = hole <= i ? (home <= hole || home > i) : (home <= hole && home > i);
        if (movable) {
            map->slots[hole] = map->slots[i];
            map->slots[i].key = NULL;
            hole = i;
        }
    }
}

static void map_clear(path_map *map) {
    for (size_t i = 0; i < map->capacity; i++) {
        free(map->slots[i].key);
        map->slots[i].key = NULL;
    }
    map->count = 0;
}

// MARK: - State

static int root_fd = -1;  // O_PATH descriptor of the root
static char root_path[MAX_PATH + 1];
static int chown_to_owner;
static uid_t owner_uid;
static gid_t owner_gid;
static int sync_files;  // fsync before rename
static int proc_available = 1;

/// The paths a MANIFEST request hashes (from its HASH_PATHS frames).
static path_map hash_paths;
static uint32_t hash_paths_id;

// MARK: - Input parsing

typedef struct {
    const uint8_t *p;
    size_t left;
    int bad;
} reader;

static uint8_t get_u8(reader *r) {
    if (r->left < 1) {
        r->bad = 1;
        return 0;
    }
    r->left--;
    return *r->p++;
}

static uint32_t get_u32(reader *r) {
    if (r->left < 4) {
        r->bad = 1;
        r->left = 0;
        return 0;
    }
    uint32_t value = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
    r->p += 4;
    r->left -= 4;
    return value;
}

static uint64_t get_u64(reader *r) {
    uint64_t high = get_u32(r);
    return high << 32 | get_u32(r);
}

/// `length` bytes, or NULL (and `bad`) when fewer are left.
static const uint8_t *get_bytes(reader *r, size_t length) {
    if (r->left < length) {
        r->bad = 1;
        r->left = 0;
        return NULL;
    }
    const uint8_t *bytes = r->p;
    r->p += length;
    r->left -= length;
    return bytes;
}

typedef struct {
    uint8_t kind;
    uint64_t size;
    int64_t mtime;
} expectation;

static expectation get_expectation(reader *r) {
    expectation e;
    e.kind = get_u8(r);
    e.size = get_u64(r);
    e.mtime = (int64_t)get_u64(r);
    if (e.kind > EXPECT_FILE) r->bad = 1;
    return e;
}

// MARK: - Paths

/// Whether `path` follows SyncPath.isValid: not empty, not absolute, no empty, `.` or `..`
/// component, no NUL; at most MAX_PATH bytes.
static int path_is_valid(const uint8_t *path, size_t length) {
    if (length == 0 || length > MAX_PATH || path[0] == '/') return 0;
    if (memchr(path, 0, length)) return 0;
    size_t start = 0;
    for (size_t i = 0; i <= length; i++) {
        if (i < length && path[i] != '/') continue;
        size_t n = i - start;
        if (n == 0) return 0;
        if (n == 1 && path[start] == '.') return 0;
        if (n == 2 && path[start] == '.' && path[start + 1] == '.') return 0;
        start = i + 1;
    }
    return 1;
}

/// Opens `path`'s parent directory inside the root one component at a time, never following a
/// symlink (a component that is a symlink or not a directory fails with ENOTDIR). Returns an
/// O_PATH descriptor and points `*name` at the last component (copied into `scratch`, which
/// holds MAX_PATH + 1 bytes); -1 with errno on failure (EINVAL for an invalid path).
static int openat2_usable = 1;

static int resolve_parent(const uint8_t *path, size_t length, char *scratch, const char **name) {
    if (!path_is_valid(path, length)) {
        errno = EINVAL;
        return -1;
    }
    memcpy(scratch, path, length);
    scratch[length] = 0;
#ifdef SYS_openat2
    char *last = strrchr(scratch, '/');
    if (last && openat2_usable) {
        // The same walk in one system call: every component a directory below the root, no
        // symlink followed (ELOOP, reported as ENOTDIR as below). A kernel or a seccomp profile
        // without openat2 makes it walk component by component from then on.
        *last = 0;
        struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                               .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
        int fd = (int)syscall(SYS_openat2, root_fd, scratch, &how, sizeof how);
        int saved = errno;
        *last = '/';
        if (fd >= 0) {
            *name = last + 1;
            return fd;
        }
        if (saved == ENOSYS || saved == EPERM || saved == EINVAL || saved == E2BIG) {
            openat2_usable = 0;
        } else if (saved != EAGAIN) {  // EAGAIN: a rename raced the walk; walk by hand this time
            errno = saved == ELOOP || saved == EXDEV ? ENOTDIR : saved;
            return -1;
        }
    }
#endif
    int fd = dup(root_fd);
    if (fd < 0) return -1;
    char *component = scratch;
    for (;;) {
        char *slash = strchr(component, '/');
        if (!slash) break;
        *slash = 0;
        int next = openat(fd, component, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int saved = errno;
        close(fd);
        if (next < 0) {
            errno = saved == ELOOP ? ENOTDIR : saved;
            return -1;
        }
        struct stat st;
        if (fstat(next, &st) != 0 || !S_ISDIR(st.st_mode)) {
            close(next);
            errno = ENOTDIR;
            return -1;
        }
        fd = next;
        *slash = '/';
        component = slash + 1;
    }
    *name = component;
    return fd;
}

static const char *describe_resolve_error(int error) {
    switch (error) {
    case EINVAL: return "not a valid relative path";
    case ENOTDIR: return "a parent is not a directory inside the root (or is a symlink, which is never followed)";
    default: return strerror(error);
    }
}

static uint8_t kind_of(mode_t mode) {
    if (S_ISREG(mode)) return KIND_FILE;
    if (S_ISDIR(mode)) return KIND_DIRECTORY;
    if (S_ISLNK(mode)) return KIND_SYMLINK;
    return 0;
}

static int64_t mtime_of(const struct stat *st) {
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static int is_temp_name(const char *name) { return strncmp(name, TEMP_PREFIX, sizeof TEMP_PREFIX - 1) == 0; }

/// Appends an entry: kind, size, mtime, mode, uid, gid, hash flag and hash, path, link target.
static void put_entry(const char *path, size_t path_length, const struct stat *st, const char *link,
                      size_t link_length, const uint8_t *digest) {
    put_u8(kind_of(st->st_mode));
    put_u64(S_ISDIR(st->st_mode) ? 0 : (uint64_t)st->st_size);
    put_u64((uint64_t)mtime_of(st));
    put_u32((uint32_t)(st->st_mode & 07777));
    put_u32((uint32_t)st->st_uid);
    put_u32((uint32_t)st->st_gid);
    put_u8(digest ? 1 : 0);
    if (digest) put_bytes(digest, 32);
    put_u32((uint32_t)path_length);
    put_bytes(path, path_length);
    put_u32((uint32_t)link_length);
    if (link_length) put_bytes(link, link_length);
}

/// Appends what `name` in `dir` holds: 1 and an entry, or 0 when nothing is there.
static void put_optional_entry_at(int dir, const char *name, const char *path, size_t path_length) {
    struct stat st;
    if (dir < 0 || fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !kind_of(st.st_mode)) {
        put_u8(0);
        return;
    }
    char link[MAX_PATH + 1];
    ssize_t link_length = 0;
    if (S_ISLNK(st.st_mode)) {
        link_length = readlinkat(dir, name, link, MAX_PATH);
        if (link_length < 0) link_length = 0;
    }
    put_u8(1);
    put_entry(path, path_length, &st, link, (size_t)link_length, NULL);
}

// MARK: - What this helper applied (so that the watch does not report its own work back)

static path_map applied;
static int watching;

static void state_of(const struct stat *st, path_state *state) {
    state->present = 1;
    state->kind = kind_of(st->st_mode);
    state->mode = (uint32_t)(st->st_mode & 07777);
    state->size = S_ISREG(st->st_mode) ? (uint64_t)st->st_size : 0;
    state->mtime = S_ISREG(st->st_mode) ? mtime_of(st) : 0;
    state->inode = (uint64_t)st->st_ino;
}

/// Records what `name` in `dir` now holds as this helper's doing (while a watch runs).
static void record(const char *path, size_t length, int dir, const char *name) {
    if (!watching) return;
    if (applied.count >= ECHO_TABLE_LIMIT) map_clear(&applied);
    map_slot *slot = map_put(&applied, path, length);
    struct stat st;
    if (dir >= 0 && fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        state_of(&st, &slot->value);
    } else {
        memset(&slot->value, 0, sizeof slot->value);
    }
}

// MARK: - Expectations

static int expectation_holds(const expectation *e, int exists, const struct stat *st) {
    switch (e->kind) {
    case EXPECT_ANYTHING: return 1;
    case EXPECT_ABSENT: return !exists;
    default:
        return exists && S_ISREG(st->st_mode) && (uint64_t)st->st_size == e->size && mtime_of(st) == e->mtime;
    }
}

static void send_conflict(uint32_t id, int dir, const char *name, const char *path, size_t length) {
    begin_frame(ANS_CONFLICT, id);
    put_optional_entry_at(dir, name, path, length);
    end_frame();
}

static void send_applied(uint32_t id, int dir, const char *name, const char *path, size_t length) {
    begin_frame(ANS_APPLIED, id);
    put_optional_entry_at(dir, name, path, length);
    end_frame();
    record(path, length, dir, name);
}

// MARK: - Write

static struct {
    int active;
    uint32_t id;
    int dir;  // parent, or -1 when resolving failed
    char name[MAX_PATH + 1];
    char temp[64];
    char path[MAX_PATH + 1];
    size_t path_length;
    int fd;
    int in_place;
    uint32_t mode;
    int64_t mtime;
    expectation expect;
    uint64_t received;
    int conflict;
    int error;
    char message[1024];
} w;

static unsigned temp_counter;

/// Gives up the temp file (or the in-place descriptor) of the current write.
static void write_discard(void) {
    if (w.fd >= 0) {
        close(w.fd);
        w.fd = -1;
        if (!w.in_place && w.dir >= 0) unlinkat(w.dir, w.temp, 0);
    }
}

__attribute__((format(printf, 2, 3))) static void write_fail(int error, const char *format, ...) {
    if (w.error || w.conflict) return;
    w.error = error ? error : EIO;
    va_list args;
    va_start(args, format);
    vsnprintf(w.message, sizeof w.message, format, args);
    va_end(args);
    write_discard();
}

static void write_begin(uint32_t id, reader *r) {
    if (w.active) fatal("a WRITE (id %u) began before the previous one (id %u) ended", id, w.id);
    memset(&w, 0, sizeof w);
    w.active = 1;
    w.id = id;
    w.fd = -1;
    w.dir = -1;
    w.mode = get_u32(r) & 07777;
    w.mtime = (int64_t)get_u64(r);
    w.expect = get_expectation(r);
    const uint8_t *path = r->p;
    size_t length = r->left;
    if (r->bad) fatal("a WRITE frame is too short");
    w.path_length = length < MAX_PATH ? length : MAX_PATH;
    memcpy(w.path, path, w.path_length);
    w.path[w.path_length] = 0;

    const char *name;
    char scratch[MAX_PATH + 1];
    w.dir = resolve_parent(path, length, scratch, &name);
    if (w.dir < 0) {
        write_fail(errno, "cannot write %s: %s", w.path, describe_resolve_error(errno));
        return;
    }
    strcpy(w.name, name);
    struct stat st;
    int exists = fstatat(w.dir, w.name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (!exists && errno != ENOENT) {
        write_fail(errno, "cannot write %s: %s", w.path, strerror(errno));
        return;
    }
    if (!expectation_holds(&w.expect, exists, &st)) {
        w.conflict = 1;
        return;
    }
    if (exists && S_ISDIR(st.st_mode)) {
        write_fail(EISDIR, "cannot write %s: a directory is there", w.path);
        return;
    }
    snprintf(w.temp, sizeof w.temp, TEMP_PREFIX "%d-%u", (int)getpid(), ++temp_counter);
    w.fd = openat(w.dir, w.temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (w.fd >= 0) return;
    int error = errno;
    if ((error == EACCES || error == EPERM) && exists && S_ISREG(st.st_mode)) {
        // The directory is not writable; the file may be: write it in place.
        w.fd = openat(w.dir, w.name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
        if (w.fd >= 0) {
            w.in_place = 1;
            return;
        }
        error = errno;
    }
    write_fail(error, "cannot write %s: %s", w.path, strerror(error));
}

static void write_data(uint32_t id, const uint8_t *bytes, size_t length) {
    if (!w.active || w.id != id) fatal("DATA for id %u, which has no WRITE open", id);
    w.received += length;
    if (w.fd < 0) return;
    size_t done = 0;
    while (done < length) {
        ssize_t n = write(w.fd, bytes + done, length - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            write_fail(errno, "cannot write %s: %s", w.path, strerror(errno));
            return;
        }
        done += (size_t)n;
    }
}

static void write_end(uint32_t id, reader *r) {
    if (!w.active || w.id != id) fatal("END for id %u, which has no WRITE open", id);
    uint64_t total = get_u64(r);
    if (r->bad) fatal("an END frame is too short");
    if (total != w.received) write_fail(EIO, "cannot write %s: %llu bytes were announced, %llu received", w.path,
                                        (unsigned long long)total, (unsigned long long)w.received);
    if (!w.error && !w.conflict && !w.in_place && w.expect.kind != EXPECT_ANYTHING) {
        // What the path holds is checked again just before the rename.
        struct stat st;
        int exists = fstatat(w.dir, w.name, &st, AT_SYMLINK_NOFOLLOW) == 0;
        if (!expectation_holds(&w.expect, exists, &st)) {
            w.conflict = 1;
            write_discard();
        }
    }
    if (!w.error && !w.conflict) {
        if (w.in_place) {
            if (ftruncate(w.fd, (off_t)w.received) != 0) write_fail(errno, "cannot write %s: %s", w.path, strerror(errno));
        } else if (chown_to_owner && fchown(w.fd, owner_uid, owner_gid) != 0) {
            write_fail(errno, "cannot give %s to %u:%u: %s", w.path, owner_uid, owner_gid, strerror(errno));
        }
    }
    if (!w.error && !w.conflict) {
        // In place, the file may not be this user's: its mode and time then stay as they are.
        if (fchmod(w.fd, w.mode) != 0 && !w.in_place)
            write_fail(errno, "cannot set the mode of %s: %s", w.path, strerror(errno));
    }
    if (!w.error && !w.conflict && sync_files && fsync(w.fd) != 0)
        write_fail(errno, "cannot write %s: fsync: %s", w.path, strerror(errno));
    if (!w.error && !w.conflict) {
        struct timespec times[2] = {{.tv_sec = 0, .tv_nsec = UTIME_OMIT},
                                    {.tv_sec = w.mtime / 1000000000, .tv_nsec = w.mtime % 1000000000}};
        if (times[1].tv_nsec < 0) {
            times[1].tv_sec -= 1;
            times[1].tv_nsec += 1000000000;
        }
        if (futimens(w.fd, times) != 0 && !w.in_place)
            write_fail(errno, "cannot set the modification time of %s: %s", w.path, strerror(errno));
    }
    if (!w.error && !w.conflict) {
        if (close(w.fd) != 0) {
            w.fd = -1;
            if (!w.in_place) unlinkat(w.dir, w.temp, 0);
            write_fail(errno, "cannot write %s: %s", w.path, strerror(errno));
        }
        w.fd = -1;
    }
    if (!w.error && !w.conflict && !w.in_place && renameat(w.dir, w.temp, w.dir, w.name) != 0) {
        int error = errno;
        unlinkat(w.dir, w.temp, 0);
        write_fail(error, "cannot write %s: rename: %s", w.path, strerror(error));
    }
    if (w.error) {
        begin_frame(ANS_FAILED, w.id);
        put_u32((uint32_t)w.error);
        put_bytes(w.message, strlen(w.message));
        end_frame();
    } else if (w.conflict) {
        send_conflict(w.id, w.dir, w.name, w.path, w.path_length);
    } else {
        send_applied(w.id, w.dir, w.name, w.path, w.path_length);
    }
    if (w.dir >= 0) close(w.dir);
    w.active = 0;
}

static void write_abort(uint32_t id, reader *r) {
    if (!w.active || w.id != id) fatal("ABORT for id %u, which has no WRITE open", id);
    uint32_t error = get_u32(r);
    w.conflict = 0;
    w.error = 0;
    write_fail((int)error, "%.*s", (int)r->left, (const char *)r->p);
    begin_frame(ANS_FAILED, w.id);
    put_u32((uint32_t)w.error);
    put_bytes(w.message, strlen(w.message));
    end_frame();
    if (w.dir >= 0) close(w.dir);
    w.active = 0;
}

// MARK: - Directories, symlinks, renames, removes, modes

static void do_mkdir(uint32_t id, reader *r) {
    uint32_t mode = get_u32(r) & 07777;
    if (r->bad) fatal("a MKDIR frame is too short");
    const char *name;
    char scratch[MAX_PATH + 1];
    const char *path = (const char *)r->p;
    size_t length = r->left;
    int dir = resolve_parent(r->p, length, scratch, &name);
    if (dir < 0) {
        send_failed(id, errno, "cannot make the directory %.*s: %s", (int)length, path, describe_resolve_error(errno));
        return;
    }
    if (mkdirat(dir, name, mode & 0777) == 0) {
        int fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int error = 0;
        if (fd < 0) {
            error = errno;
        } else {
            if (chown_to_owner && fchown(fd, owner_uid, owner_gid) != 0) error = errno;
            if (!error && fchmod(fd, mode) != 0) error = errno;
            close(fd);
        }
        if (error) {
            send_failed(id, error, "cannot set up the directory %.*s: %s", (int)length, path, strerror(error));
        } else {
            send_applied(id, dir, name, path, length);
        }
    } else if (errno == EEXIST) {
        struct stat st;
        if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
            send_applied(id, dir, name, path, length);
        } else {
            send_failed(id, EEXIST, "cannot make the directory %.*s: something else is there", (int)length, path);
        }
    } else {
        send_failed(id, errno, "cannot make the directory %.*s: %s", (int)length, path, strerror(errno));
    }
    close(dir);
}

static void do_symlink(uint32_t id, reader *r) {
    uint32_t path_length = get_u32(r);
    const uint8_t *path = get_bytes(r, path_length);
    const uint8_t *target = r->p;
    size_t target_length = r->left;
    if (r->bad) fatal("a SYMLINK frame is too short");
    const char *shown = (const char *)path;
    if (target_length == 0 || target_length > MAX_PATH || memchr(target, 0, target_length)) {
        send_failed(id, EINVAL, "cannot make the symlink %.*s: its target is empty, too long or holds a NUL byte",
                    (int)path_length, shown);
        return;
    }
    char target_text[MAX_PATH + 1];
    memcpy(target_text, target, target_length);
    target_text[target_length] = 0;
    const char *name;
    char scratch[MAX_PATH + 1];
    int dir = resolve_parent(path, path_length, scratch, &name);
    if (dir < 0) {
        send_failed(id, errno, "cannot make the symlink %.*s: %s", (int)path_length, shown,
                    describe_resolve_error(errno));
        return;
    }
    char temp[64];
    snprintf(temp, sizeof temp, TEMP_PREFIX "%d-%u", (int)getpid(), ++temp_counter);
    int error = 0;
    if (symlinkat(target_text, dir, temp) != 0) {
        error = errno;
    } else {
        if (chown_to_owner && fchownat(dir, temp, owner_uid, owner_gid, AT_SYMLINK_NOFOLLOW) != 0) error = errno;
        if (!error && renameat(dir, temp, dir, name) != 0) error = errno;
        if (error) unlinkat(dir, temp, 0);
    }
    if (error) {
        send_failed(id, error, "cannot make the symlink %.*s: %s", (int)path_length, shown, strerror(error));
    } else {
        send_applied(id, dir, name, shown, path_length);
    }
    close(dir);
}

static void do_rename(uint32_t id, reader *r) {
    uint32_t from_length = get_u32(r);
    const uint8_t *from = get_bytes(r, from_length);
    const uint8_t *to = r->p;
    size_t to_length = r->left;
    if (r->bad) fatal("a RENAME frame is too short");
    const char *from_name, *to_name;
    char from_scratch[MAX_PATH + 1], to_scratch[MAX_PATH + 1];
    int from_dir = resolve_parent(from, from_length, from_scratch, &from_name);
    if (from_dir < 0) {
        send_failed(id, errno, "cannot rename %.*s: %s", (int)from_length, (const char *)from,
                    describe_resolve_error(errno));
        return;
    }
    int to_dir = resolve_parent(to, to_length, to_scratch, &to_name);
    if (to_dir < 0) {
        send_failed(id, errno, "cannot rename %.*s to %.*s: %s", (int)from_length, (const char *)from, (int)to_length,
                    (const char *)to, describe_resolve_error(errno));
        close(from_dir);
        return;
    }
    if (renameat(from_dir, from_name, to_dir, to_name) != 0) {
        send_failed(id, errno, "cannot rename %.*s to %.*s: %s", (int)from_length, (const char *)from, (int)to_length,
                    (const char *)to, strerror(errno));
    } else {
        record((const char *)from, from_length, from_dir, from_name);
        send_applied(id, to_dir, to_name, (const char *)to, to_length);
    }
    close(from_dir);
    close(to_dir);
}

/// Removes `name` in `dir` and, for a directory, everything in it; never follows a symlink.
static int remove_at(int dir, const char *name, int depth) {
    struct stat st;
    if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlinkat(dir, name, 0) == 0 || errno == ENOENT ? 0 : -1;
    if (depth > MAX_DEPTH) {
        errno = ELOOP;
        return -1;
    }
    for (int pass = 0; pass < 3; pass++) {
        int fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) return -1;
        DIR *listing = fdopendir(fd);
        if (!listing) {
            close(fd);
            return -1;
        }
        struct dirent *entry;
        while ((entry = readdir(listing))) {
            if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
            if (remove_at(dirfd(listing), entry->d_name, depth + 1) != 0) {
                int saved = errno;
                closedir(listing);
                errno = saved;
                return -1;
            }
        }
        closedir(listing);
        if (unlinkat(dir, name, AT_REMOVEDIR) == 0 || errno == ENOENT) return 0;
        if (errno != ENOTEMPTY && errno != EEXIST) return -1;
    }
    return -1;
}

static void do_remove(uint32_t id, reader *r) {
    expectation expect = get_expectation(r);
    if (r->bad) fatal("a REMOVE frame is too short");
    const char *path = (const char *)r->p;
    size_t length = r->left;
    const char *name;
    char scratch[MAX_PATH + 1];
    int dir = resolve_parent(r->p, length, scratch, &name);
    if (dir < 0) {
        if (errno == ENOENT && expect.kind != EXPECT_FILE) {
            // The parent is gone, so is the path.
            begin_frame(ANS_APPLIED, id);
            put_u8(0);
            end_frame();
            return;
        }
        send_failed(id, errno, "cannot remove %.*s: %s", (int)length, path, describe_resolve_error(errno));
        return;
    }
    struct stat st;
    int exists = fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (!exists && errno != ENOENT) {
        send_failed(id, errno, "cannot remove %.*s: %s", (int)length, path, strerror(errno));
    } else if (!expectation_holds(&expect, exists, &st)) {
        send_conflict(id, dir, name, path, length);
    } else if (remove_at(dir, name, 0) != 0) {
        send_failed(id, errno, "cannot remove %.*s: %s", (int)length, path, strerror(errno));
    } else {
        send_applied(id, dir, name, path, length);
    }
    close(dir);
}

static void do_chmod(uint32_t id, reader *r) {
    uint32_t mode = get_u32(r) & 07777;
    if (r->bad) fatal("a CHMOD frame is too short");
    const char *path = (const char *)r->p;
    size_t length = r->left;
    const char *name;
    char scratch[MAX_PATH + 1];
    int dir = resolve_parent(r->p, length, scratch, &name);
    if (dir < 0) {
        send_failed(id, errno, "cannot change the mode of %.*s: %s", (int)length, path, describe_resolve_error(errno));
        return;
    }
    // An O_PATH descriptor of the entry itself pins it: the mode is set on that inode (through
    // /proc/self/fd), never on what a symlink swapped in meanwhile would point to.
    int fd = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        send_failed(id, errno, "cannot change the mode of %.*s: %s", (int)length, path, strerror(errno));
    } else if (S_ISLNK(st.st_mode)) {
        send_failed(id, ELOOP, "cannot change the mode of %.*s: it is a symlink", (int)length, path);
    } else {
        char proc_path[64];
        snprintf(proc_path, sizeof proc_path, "/proc/self/fd/%d", fd);
        int result = proc_available ? chmod(proc_path, mode) : -1;
        if (result != 0 && (!proc_available || errno == ENOENT)) {
            proc_available = 0;
            result = fchmodat(dir, name, mode, 0);
        }
        if (result != 0) {
            send_failed(id, errno, "cannot change the mode of %.*s: %s", (int)length, path, strerror(errno));
        } else {
            send_applied(id, dir, name, path, length);
        }
    }
    if (fd >= 0) close(fd);
    close(dir);
}

// MARK: - Tree walks (manifest, watch)

typedef struct walker walker;
struct walker {
    /// Called for each entry; returns whether to descend into a directory.
    int (*visit)(walker *self, int dir, const char *name, const char *path, size_t length, const struct stat *st);
    /// Called with a directory's open descriptor before it is listed (the watch adds its watch).
    void (*opened)(walker *self, int fd, const char *path, size_t length);
    /// Called when a directory cannot be opened or listed.
    void (*problem)(walker *self, const char *path, size_t length, int error);
    uint32_t id;
    uint64_t count;
    int hash_all;
    int report;  // watch: report what the listing finds
    int failed;  // watch: an error ended the walk
};

/// Lists the directory `fd` (taken over and closed) whose path is `path[0..length]` ("" for the
/// root), then each subdirectory the visitor asks for, depth first.
static void walk(walker *self, int fd, char *path, size_t length, int depth) {
    if (self->opened) self->opened(self, fd, path, length);
    if (self->failed) {
        close(fd);
        return;
    }
    DIR *listing = fdopendir(fd);
    if (!listing) {
        if (self->problem) self->problem(self, path, length, errno);
        close(fd);
        return;
    }
    struct dirent *entry;
    errno = 0;
    while ((entry = readdir(listing))) {
        const char *name = entry->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || is_temp_name(name)) continue;
        size_t name_length = strlen(name);
        size_t child_length = length ? length + 1 + name_length : name_length;
        if (child_length > MAX_PATH) {
            if (self->problem) self->problem(self, path, length, ENAMETOOLONG);
            continue;
        }
        char *child = path + (length ? length + 1 : 0);
        if (length) path[length] = '/';
        memcpy(child, name, name_length + 1);
        struct stat st;
        if (fstatat(dirfd(listing), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno != ENOENT && self->problem) self->problem(self, path, child_length, errno);
        } else if (self->visit(self, dirfd(listing), name, path, child_length, &st) && S_ISDIR(st.st_mode)) {
            if (depth >= MAX_DEPTH) {
                if (self->problem) self->problem(self, path, child_length, ELOOP);
            } else {
                int sub = openat(dirfd(listing), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub < 0) {
                    if (errno != ENOENT && self->problem) self->problem(self, path, child_length, errno);
                } else {
                    walk(self, sub, path, child_length, depth + 1);
                }
            }
        }
        path[length] = 0;
        if (self->failed) break;
        errno = 0;
    }
    closedir(listing);
}

// MARK: - Manifest

static int hash_file(int dir, const char *name, int follow, uint8_t digest[32], int *error) {
    int fd = openat(dir, name, O_RDONLY | (follow ? 0 : O_NOFOLLOW) | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        *error = errno;
        return 0;
    }
    static uint8_t buffer[CHUNK_SIZE];
    sha256_context context;
    sha256_init(&context);
    for (;;) {
        ssize_t n = read(fd, buffer, sizeof buffer);
        if (n < 0) {
            if (errno == EINTR) continue;
            *error = errno;
            close(fd);
            return 0;
        }
        if (n == 0) break;
        sha256_update(&context, buffer, (size_t)n);
    }
    close(fd);
    sha256_final(&context, digest);
    return 1;
}

static int manifest_visit(walker *self, int dir, const char *name, const char *path, size_t length,
                          const struct stat *st) {
    if (!kind_of(st->st_mode)) {
        send_note(self->id, 0, "%s is neither a file, a directory nor a symlink: left out", path);
        return 0;
    }
    char link[MAX_PATH + 1];
    ssize_t link_length = 0;
    if (S_ISLNK(st->st_mode)) {
        link_length = readlinkat(dir, name, link, MAX_PATH);
        if (link_length < 0) link_length = 0;
    }
    uint8_t digest[32];
    int hashed = 0;
    if (S_ISREG(st->st_mode) && (self->hash_all || map_find(&hash_paths, path, length))) {
        int error = 0;
        hashed = hash_file(dir, name, 0, digest, &error);
        if (!hashed) send_note(self->id, error, "cannot hash %s: %s", path, strerror(error));
    }
    begin_frame(ANS_ENTRY, self->id);
    put_entry(path, length, st, link, (size_t)link_length, hashed ? digest : NULL);
    end_frame();
    self->count++;
    maybe_flush();
    return 1;
}

static void manifest_problem(walker *self, const char *path, size_t length, int error) {
    send_note(self->id, error, "cannot list %.*s: %s", (int)length, length ? path : ".", strerror(error));
}

static void do_manifest(uint32_t id, reader *r) {
    uint32_t flags = get_u32(r);
    if (r->bad) fatal("a MANIFEST frame is too short");
    if (hash_paths.count && hash_paths_id != id) map_clear(&hash_paths);
    walker self = {.visit = manifest_visit, .problem = manifest_problem, .id = id, .hash_all = flags & 1};
    int fd = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        send_failed(id, errno, "cannot list the root %s: %s", root_path, strerror(errno));
    } else {
        char path[MAX_PATH + 2] = "";
        walk(&self, fd, path, 0, 0);
        begin_frame(ANS_END, id);
        put_u64(self.count);
        end_frame();
    }
    map_clear(&hash_paths);
}

/// ENTRIES: the entries at the given paths that exist (a path with nothing there, or under a
/// parent that is not a directory, is left out), each directory with everything below it when
/// flag 1 is set. Paths are resolved as every other request resolves them (no symlink followed);
/// an invalid one gets a NOTE. Answers as MANIFEST does: ENTRY…, NOTE…, END (count).
static void do_entries(uint32_t id, reader *r) {
    uint32_t flags = get_u32(r);
    if (r->bad) fatal("an ENTRIES frame is too short");
    if (hash_paths.count && hash_paths_id != id) map_clear(&hash_paths);
    walker self = {.visit = manifest_visit, .problem = manifest_problem, .id = id};
    const uint8_t *p = r->p;
    size_t left = r->left;
    while (left > 0) {
        const uint8_t *end = memchr(p, 0, left);
        size_t length = end ? (size_t)(end - p) : left;
        const uint8_t *path = p;
        p += length + (end ? 1 : 0);
        left -= length + (end ? 1 : 0);
        if (length == 0) continue;
        char scratch[MAX_PATH + 1];
        const char *name;
        int dir = resolve_parent(path, length, scratch, &name);
        if (dir < 0) {
            if (errno != ENOENT && errno != ENOTDIR)
                send_note(id, errno, "cannot look at %.*s: %s", (int)length, (const char *)path,
                          describe_resolve_error(errno));
            continue;
        }
        struct stat st;
        if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno != ENOENT && errno != ENOTDIR)
                send_note(id, errno, "cannot look at %.*s: %s", (int)length, (const char *)path, strerror(errno));
            close(dir);
            continue;
        }
        char full[MAX_PATH + 2];
        memcpy(full, path, length);
        full[length] = 0;
        if (self.visit(&self, dir, name, full, length, &st) && S_ISDIR(st.st_mode) && (flags & 1)) {
            int depth = 1;
            for (size_t i = 0; i < length; i++) depth += full[i] == '/';
            int sub = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                if (errno != ENOENT) manifest_problem(&self, full, length, errno);
            } else if (depth >= MAX_DEPTH) {
                manifest_problem(&self, full, length, ELOOP);
                close(sub);
            } else {
                walk(&self, sub, full, length, depth);
            }
        }
        close(dir);
    }
    begin_frame(ANS_END, id);
    put_u64(self.count);
    end_frame();
    map_clear(&hash_paths);
}

static void add_hash_paths(uint32_t id, reader *r) {
    if (hash_paths.count && hash_paths_id != id) map_clear(&hash_paths);
    hash_paths_id = id;
    const uint8_t *p = r->p;
    size_t left = r->left;
    while (left > 0) {
        const uint8_t *end = memchr(p, 0, left);
        size_t n = end ? (size_t)(end - p) : left;
        if (n > 0) map_put(&hash_paths, (const char *)p, n);
        p += n + (end ? 1 : 0);
        left -= n + (end ? 1 : 0);
    }
}

// MARK: - Download

static void do_download(uint32_t id, reader *r) {
    const char *path = (const char *)r->p;
    size_t length = r->left;
    const char *name;
    char scratch[MAX_PATH + 1];
    int dir = resolve_parent(r->p, length, scratch, &name);
    if (dir < 0) {
        send_failed(id, errno, "cannot read %.*s: %s", (int)length, path, describe_resolve_error(errno));
        return;
    }
    int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat before;
    if (fd < 0 || fstat(fd, &before) != 0) {
        int error = errno == ELOOP ? ELOOP : errno;
        send_failed(id, error, "cannot read %.*s: %s", (int)length, path,
                    error == ELOOP ? "it is a symlink" : strerror(error));
        if (fd >= 0) close(fd);
        close(dir);
        return;
    }
    close(dir);
    if (!S_ISREG(before.st_mode)) {
        send_failed(id, S_ISDIR(before.st_mode) ? EISDIR : EINVAL, "cannot read %.*s: not a regular file", (int)length,
                    path);
        close(fd);
        return;
    }
    begin_frame(ANS_ENTRY, id);
    put_entry(path, length, &before, NULL, 0, NULL);
    end_frame();
    uint64_t sent = 0;
    for (;;) {
        out_reserve(HEADER_SIZE + CHUNK_SIZE);
        begin_frame(ANS_DATA, id);
        ssize_t n;
        do {
            n = read(fd, out_buf + out_len, CHUNK_SIZE);
        } while (n < 0 && errno == EINTR);
        if (n <= 0) {
            out_len = frame_start;  // drop the empty frame
            if (n < 0) {
                send_failed(id, errno, "cannot read %.*s: %s", (int)length, path, strerror(errno));
                close(fd);
                return;
            }
            break;
        }
        out_len += (size_t)n;
        end_frame();
        sent += (uint64_t)n;
        maybe_flush();
    }
    struct stat after;
    int changed = fstat(fd, &after) != 0 || after.st_size != before.st_size || mtime_of(&after) != mtime_of(&before) ||
                  sent != (uint64_t)before.st_size;
    close(fd);
    if (changed) {
        send_failed(id, EAGAIN, "cannot read %.*s: it changed while it was read", (int)length, path);
    } else {
        begin_frame(ANS_END, id);
        put_u64(sent);
        end_frame();
    }
}

// MARK: - Watch

static int inotify_fd = -1;
static uint32_t watch_id;
static int root_watch = -1;
static char **watch_paths;  // by watch descriptor: the directory's path ("" for the root)
static size_t watch_capacity;
static path_map batch;
static int batch_unknown;

#define WATCH_MASK                                                                                                   \
    (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | \
     IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)

static void set_watch_path(int wd, const char *path, size_t length) {
    if (wd < 0) return;
    if ((size_t)wd >= watch_capacity) {
        size_t capacity = watch_capacity ? watch_capacity : 256;
        while (capacity <= (size_t)wd) capacity *= 2;
        char **grown = realloc(watch_paths, capacity * sizeof(char *));
        if (!grown) fatal("out of memory");
        memset(grown + watch_capacity, 0, (capacity - watch_capacity) * sizeof(char *));
        watch_paths = grown;
        watch_capacity = capacity;
    }
    free(watch_paths[wd]);
    watch_paths[wd] = malloc(length + 1);
    if (!watch_paths[wd]) fatal("out of memory");
    memcpy(watch_paths[wd], path, length);
    watch_paths[wd][length] = 0;
}

/// Adds the watch of the directory open as `fd`: through /proc/self/fd, so that exactly that
/// directory is watched (no path is resolved again); else by its path under the root.
static int add_watch_fd(int fd, const char *path, size_t length) {
    char where[MAX_PATH * 2 + 64];
    int wd = -1;
    if (proc_available) {
        snprintf(where, sizeof where, "/proc/self/fd/%d", fd);
        wd = inotify_add_watch(inotify_fd, where, WATCH_MASK);
        if (wd < 0 && errno == ENOENT) proc_available = 0;
    }
    if (wd < 0 && !proc_available) {
        snprintf(where, sizeof where, "%s/%.*s", root_path, (int)length, path);
        wd = inotify_add_watch(inotify_fd, where, WATCH_MASK | IN_DONT_FOLLOW);
    }
    if (wd >= 0) set_watch_path(wd, path, length);
    return wd;
}

static void watch_opened(walker *self, int fd, const char *path, size_t length) {
    int wd = add_watch_fd(fd, path, length);
    if (wd >= 0) {
        if (length == 0) root_watch = wd;
        return;
    }
    int error = errno;
    if (error == ENOSPC || error == ENOMEM) {
        send_note(self->id, error,
                  "cannot watch %.*s: the inotify watch limit is reached; raise it with `sysctl -w "
                  "fs.inotify.max_user_watches=524288` on the host",
                  (int)length, length ? path : ".");
    } else {
        send_note(self->id, error, "cannot watch %.*s: %s", (int)length, length ? path : ".", strerror(error));
    }
    self->failed = 1;
}

static void watch_problem(walker *self, const char *path, size_t length, int error) {
    send_note(self->id, error, "cannot list %.*s to watch it: %s", (int)length, length ? path : ".", strerror(error));
}

static int watch_visit(walker *self, int dir, const char *name, const char *path, size_t length,
                       const struct stat *st) {
    (void)dir;
    (void)name;
    (void)st;
    if (self->report) map_put(&batch, path, length);
    return 1;
}

static void forget_watches_under(const char *path, size_t length) {
    for (size_t wd = 0; wd < watch_capacity; wd++) {
        char *p = watch_paths[wd];
        if (!p) continue;
        size_t n = strlen(p);
        if (n >= length && memcmp(p, path, length) == 0 && (n == length || p[length] == '/')) {
            inotify_rm_watch(inotify_fd, (int)wd);
            free(p);
            watch_paths[wd] = NULL;
        }
    }
}

static void stop_watch(void) {
    if (inotify_fd >= 0) close(inotify_fd);
    inotify_fd = -1;
    root_watch = -1;
    for (size_t wd = 0; wd < watch_capacity; wd++) {
        free(watch_paths[wd]);
        watch_paths[wd] = NULL;
    }
    watching = 0;
    map_clear(&applied);
    map_clear(&batch);
    batch_unknown = 0;
}

/// Watches the whole tree (again): a watch already there is kept. Returns 0 when a watch
/// could not be added.
static int watch_tree(uint32_t id) {
    int fd = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return 0;
    walker self = {.visit = watch_visit, .opened = watch_opened, .problem = watch_problem, .id = id};
    char path[MAX_PATH + 2] = "";
    walk(&self, fd, path, 0, 0);
    return !self.failed;
}

static void do_watch(uint32_t id) {
    stop_watch();
    inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (inotify_fd < 0) {
        send_failed(id, errno, "cannot watch %s: inotify_init1: %s%s", root_path, strerror(errno),
                    errno == EMFILE ? " (raise fs.inotify.max_user_instances on the host)" : "");
        return;
    }
    watch_id = id;
    if (!watch_tree(id)) {
        send_failed(id, ENOSPC, "cannot watch every directory under %s (the notes before say which)", root_path);
        stop_watch();
        return;
    }
    watching = 1;
    begin_frame(ANS_WATCHING, id);
    end_frame();
}

/// Whether the change at `path` is this helper's own doing: what the path holds is what the
/// helper left there (or the path is gone under something it removed).
static int is_echo(const char *path, size_t length) {
    if (applied.count == 0) return 0;
    struct stat st;
    const char *name;
    char scratch[MAX_PATH + 1];
    int dir = resolve_parent((const uint8_t *)path, length, scratch, &name);
    int exists = dir >= 0 && fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (dir >= 0) close(dir);
    map_slot *slot = map_find(&applied, path, length);
    if (slot) {
        path_state now;
        if (exists) state_of(&st, &now);
        int same = exists ? slot->value.present && slot->value.kind == now.kind && slot->value.inode == now.inode &&
                                slot->value.mode == now.mode && slot->value.size == now.size &&
                                slot->value.mtime == now.mtime
                          : !slot->value.present;
        if (!same) map_remove(&applied, slot);
        return same;
    }
    if (exists) return 0;
    // Gone: under a directory this helper removed or renamed away?
    for (size_t i = length; i > 0; i--) {
        if (path[i - 1] != '/') continue;
        map_slot *parent = map_find(&applied, path, i - 1);
        if (parent) return !parent->value.present;
    }
    return 0;
}

static void handle_event(const struct inotify_event *event) {
    if (event->mask & IN_Q_OVERFLOW) {
        batch_unknown = 1;
        return;
    }
    if (event->wd < 0 || (size_t)event->wd >= watch_capacity || !watch_paths[event->wd]) return;
    const char *dir_path = watch_paths[event->wd];
    size_t dir_length = strlen(dir_path);
    if (event->mask & IN_IGNORED) {
        if (event->wd == root_watch) batch_unknown = 1;
        free(watch_paths[event->wd]);
        watch_paths[event->wd] = NULL;
        return;
    }
    if (event->len == 0 || event->name[0] == 0) {
        // The watched directory itself.
        if (event->wd == root_watch) {
            if (event->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) batch_unknown = 1;
        } else if (event->mask & IN_ATTRIB) {
            map_put(&batch, dir_path, dir_length);
        }
        return;
    }
    const char *name = event->name;
    if (is_temp_name(name)) return;
    char path[MAX_PATH + 2];
    size_t name_length = strlen(name);
    size_t length = dir_length ? dir_length + 1 + name_length : name_length;
    if (length > MAX_PATH) return;
    if (dir_length) {
        memcpy(path, dir_path, dir_length);
        path[dir_length] = '/';
        memcpy(path + dir_length + 1, name, name_length + 1);
    } else {
        memcpy(path, name, name_length + 1);
    }
    if ((event->mask & IN_ISDIR) && (event->mask & (IN_MOVED_FROM | IN_DELETE))) forget_watches_under(path, length);
    map_put(&batch, path, length);
    if ((event->mask & IN_ISDIR) && (event->mask & (IN_CREATE | IN_MOVED_TO))) {
        // A new directory: watched first, then listed, so nothing made in it meanwhile is missed.
        const char *leaf;
        char scratch[MAX_PATH + 1];
        int parent = resolve_parent((const uint8_t *)path, length, scratch, &leaf);
        if (parent < 0) return;
        int fd = openat(parent, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(parent);
        if (fd < 0) return;
        walker self = {.visit = watch_visit, .opened = watch_opened, .problem = watch_problem, .id = watch_id};
        // What this helper made or moved there itself is not reported back.
        self.report = !is_echo(path, length);
        char walk_path[MAX_PATH + 2];
        memcpy(walk_path, path, length + 1);
        walk(&self, fd, walk_path, length, 0);
        if (self.failed) batch_unknown = 1;
    }
}

static void drain_watch(void) {
    static uint8_t buffer[64 << 10] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(inotify_fd, buffer, sizeof buffer);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            send_note(watch_id, errno, "cannot read the watch's events: %s", strerror(errno));
            batch_unknown = 1;
            break;
        }
        for (ssize_t offset = 0; offset < n;) {
            const struct inotify_event *event = (const struct inotify_event *)(buffer + offset);
            handle_event(event);
            offset += (ssize_t)(sizeof(struct inotify_event) + event->len);
        }
    }
    if (batch_unknown) {
        // Directories made while events were lost are watched now; their content is in the
        // rescan slipway makes of an "unknown" batch.
        watch_tree(watch_id);
    }
    int open = 0;
    for (size_t i = 0; i < batch.capacity; i++) {
        map_slot *slot = &batch.slots[i];
        if (!slot->key || (!batch_unknown && is_echo(slot->key, slot->length))) continue;
        if (open && out_len - frame_start + slot->length + 1 > (64u << 10)) {
            end_frame();
            open = 0;
        }
        if (!open) {
            begin_frame(ANS_CHANGES, watch_id);
            open = 1;
        }
        put_bytes(slot->key, slot->length + 1);
    }
    if (open) end_frame();
    map_clear(&batch);
    if (batch_unknown) {
        begin_frame(ANS_UNKNOWN, watch_id);
        end_frame();
        batch_unknown = 0;
    }
}

// MARK: - Hello

static void self_digest(uint8_t digest[32]) {
    int error = 0;
    if (!hash_file(AT_FDCWD, "/proc/self/exe", 1, digest, &error)) memset(digest, 0, 32);
}

/// Makes `path` and its missing parents (mkdir -p), given to the owner when one is set.
static int make_directories(char *path) {
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != 0) continue;
        char saved = *p;
        *p = 0;
        if (mkdir(path, 0755) == 0) {
            if (chown_to_owner && chown(path, owner_uid, owner_gid) != 0) {
                *p = saved;
                return -1;
            }
        } else if (errno != EEXIST) {
            *p = saved;
            return -1;
        }
        *p = saved;
        if (saved == 0) return 0;
    }
}

static void do_hello(reader *r) {
    uint32_t version = get_u32(r);
    uint32_t flags = get_u32(r);
    uint32_t uid = get_u32(r);
    uint32_t gid = get_u32(r);
    const uint8_t *root = r->p;
    size_t root_length = r->left;
    if (r->bad) fatal("a HELLO frame is too short");
    uint8_t digest[32];
    self_digest(digest);
    int error = 0;
    char message[1024] = "";
    chown_to_owner = (flags & HELLO_CHOWN) && geteuid() == 0;
    owner_uid = uid;
    owner_gid = gid;
    sync_files = flags & HELLO_FSYNC;
    if (version != PROTOCOL_VERSION) {
        error = EPROTO;
        snprintf(message, sizeof message, "this helper speaks protocol %u, not %u", PROTOCOL_VERSION, version);
    } else if (root_length == 0 || root_length > MAX_PATH || root[0] != '/' || memchr(root, 0, root_length)) {
        error = EINVAL;
        snprintf(message, sizeof message, "the root must be an absolute path");
    } else {
        memcpy(root_path, root, root_length);
        root_path[root_length] = 0;
        root_fd = open(root_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root_fd < 0 && errno == ENOENT && (flags & HELLO_CREATE_ROOT)) {
            char copy[MAX_PATH + 1];
            strcpy(copy, root_path);
            if (make_directories(copy) == 0) root_fd = open(root_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        }
        if (root_fd < 0) {
            error = errno;
            snprintf(message, sizeof message, "cannot open the root %s: %s", root_path, strerror(error));
        }
    }
    begin_frame(ANS_HELLO, 0);
    put_u32(PROTOCOL_VERSION);
    put_u32((uint32_t)geteuid());
    put_u32((uint32_t)getegid());
    put_bytes(digest, 32);
    put_u32((uint32_t)error);
    put_bytes(message, strlen(message));
    end_frame();
    if (error) {
        flush_output();
        exit(1);
    }
}

// MARK: - Restart and start (through PID 1's control socket)

// RESTART and START are carried out by the restart helper (`slipway-helper run`, PID 1 of a dev
// container; run.c): this process connects to its control socket, sends the request and answers
// when PID 1 does — after the command runs again, which takes the grace period for a command
// that ignores SIGTERM. Meanwhile the other requests go on: the answer comes out of order.
#define MAX_CONTROL_CALLS 8

typedef struct {
    int fd;  // -1: a free slot
    uint32_t id;
    size_t used;
    char line[640];
} control_call;

static control_call control_calls[MAX_CONTROL_CALLS];

static void do_control(uint32_t id, const char *verb) {
    control_call *slot = NULL;
    for (int i = 0; i < MAX_CONTROL_CALLS && !slot; i++)
        if (control_calls[i].fd < 0) slot = &control_calls[i];
    if (!slot) {
        send_failed(id, EBUSY, "%d restart or start requests wait already", MAX_CONTROL_CALLS);
        return;
    }
    int error = 0;
    char message[512];
    int fd = control_connect(&error, message, sizeof message);
    if (fd < 0) {
        send_failed(id, error, "%s", message);
        return;
    }
    error = control_send(fd, verb);
    if (error) {
        close(fd);
        send_failed(id, error, "cannot send the %s request to the restart helper: %s", verb, strerror(error));
        return;
    }
    slot->fd = fd;
    slot->id = id;
    slot->used = 0;
}

static void control_done(control_call *call) {
    close(call->fd);
    call->fd = -1;
}

static void read_control(control_call *call) {
    ssize_t n = read(call->fd, call->line + call->used, sizeof call->line - call->used);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n > 0) {
        call->used += (size_t)n;
        if (!memchr(call->line, '\n', call->used) && call->used < sizeof call->line) return;
    }
    control_answer answer;
    if (call->used == 0 || control_parse(call->line, call->used, &answer) != 0) {
        send_failed(call->id, EPIPE, "the restart helper closed its control connection without an answer");
    } else if (!answer.ok) {
        send_failed(call->id, answer.error, "%s", answer.message);
    } else {
        begin_frame(ANS_PROCESS, call->id);
        put_u32((uint32_t)answer.pid);
        put_u32(answer.restarts);
        end_frame();
    }
    control_done(call);
}

// MARK: - Main loop

static void fatal(const char *format, ...) {
    char message[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    if (w.active) write_discard();
    begin_frame(ANS_FATAL, 0);
    put_bytes(message, strlen(message));
    end_frame();
    flush_output();
    fprintf(stderr, "slipway-helper: %s\n", message);
    exit(2);
}

static int said_hello;

static void dispatch(uint8_t type, uint32_t id, const uint8_t *payload, uint32_t length) {
    reader r = {payload, length, 0};
    if (!said_hello && type != REQ_HELLO) fatal("the first request must be HELLO, not 0x%02x", type);
    switch (type) {
    case REQ_HELLO:
        if (said_hello) fatal("a second HELLO");
        do_hello(&r);
        said_hello = 1;
        break;
    case REQ_WRITE: write_begin(id, &r); break;
    case REQ_DATA: write_data(id, payload, length); break;
    case REQ_END: write_end(id, &r); break;
    case REQ_ABORT: write_abort(id, &r); break;
    case REQ_MKDIR: do_mkdir(id, &r); break;
    case REQ_SYMLINK: do_symlink(id, &r); break;
    case REQ_RENAME: do_rename(id, &r); break;
    case REQ_REMOVE: do_remove(id, &r); break;
    case REQ_CHMOD: do_chmod(id, &r); break;
    case REQ_HASH_PATHS: add_hash_paths(id, &r); break;
    case REQ_MANIFEST: do_manifest(id, &r); break;
    case REQ_ENTRIES: do_entries(id, &r); break;
    case REQ_DOWNLOAD: do_download(id, &r); break;
    case REQ_WATCH: do_watch(id); break;
    case REQ_UNWATCH:
        if (watching && id == watch_id) stop_watch();
        break;
    case REQ_RESTART: do_control(id, "restart"); break;
    case REQ_START: do_control(id, "start"); break;
    default: fatal("unknown request type 0x%02x", type);
    }
    maybe_flush();
}

static int serve(void) {
    signal(SIGPIPE, SIG_IGN);
    umask(0);
    size_t capacity = MAX_PAYLOAD + HEADER_SIZE + CHUNK_SIZE;
    uint8_t *input = malloc(capacity);
    if (!input) return 3;
    size_t used = 0;
    for (int i = 0; i < MAX_CONTROL_CALLS; i++) control_calls[i].fd = -1;
    for (;;) {
        flush_output();
        struct pollfd fds[2 + MAX_CONTROL_CALLS] = {{.fd = 0, .events = POLLIN}, {.fd = inotify_fd, .events = POLLIN}};
        int calls[2 + MAX_CONTROL_CALLS];
        int count = 2;
        for (int i = 0; i < MAX_CONTROL_CALLS; i++) {
            if (control_calls[i].fd < 0) continue;
            calls[count] = i;
            fds[count++] = (struct pollfd){.fd = control_calls[i].fd, .events = POLLIN};
        }
        if (poll(fds, (nfds_t)count, -1) < 0) {
            if (errno == EINTR) continue;
            return 3;
        }
        for (int f = 2; f < count; f++) {
            if (fds[f].revents) read_control(&control_calls[calls[f]]);
        }
        if (fds[0].revents) {
            ssize_t n = read(0, input + used, capacity - used);
            if (n < 0) {
                if (errno == EINTR || errno == EAGAIN) continue;
                break;
            }
            if (n == 0) break;  // slipway closed the channel
            used += (size_t)n;
            size_t offset = 0;
            while (used - offset >= HEADER_SIZE) {
                const uint8_t *h = input + offset;
                uint32_t id = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | h[4];
                uint32_t length = (uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 | h[8];
                if (length > MAX_PAYLOAD) fatal("a frame of %u bytes (at most %u)", length, MAX_PAYLOAD);
                if (used - offset < HEADER_SIZE + (size_t)length) break;
                dispatch(h[0], id, h + HEADER_SIZE, length);
                offset += HEADER_SIZE + length;
            }
            memmove(input, input + offset, used - offset);
            used -= offset;
        }
        if (inotify_fd >= 0 && fds[1].revents) drain_watch();
    }
    if (w.active) write_discard();
    flush_output();
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "serve") == 0) return serve();
    if (argc >= 2 && strcmp(argv[1], "run") == 0) return run_main(argc - 1, argv + 1);
    if (argc == 2 && (strcmp(argv[1], "restart") == 0 || strcmp(argv[1], "start") == 0 ||
                      strcmp(argv[1], "status") == 0)) {
        return control_main(argv[1]);
    }
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("slipway-helper protocol %u\n", PROTOCOL_VERSION);
        return 0;
    }
    fprintf(stderr,
            "usage: %s serve\n"
            "       %s run [--wait-start] [--grace-ms N] [--restart-delay-ms N] -- COMMAND [ARG...]\n"
            "       %s restart | start | status\n"
            "slipway's sync helper: slipway runs it in a container and speaks a framed protocol on\n"
            "its stdin and stdout (docs/sync-protocol.md); it is not meant to be run by hand.\n"
            "`run` is the restart helper of slipway's dev mode, the dev container's PID 1; `restart`,\n"
            "`start` and `status` ask it through its control socket (docs/dev.md).\n",
            argc > 0 ? argv[0] : "slipway-helper", argc > 0 ? argv[0] : "slipway-helper",
            argc > 0 ? argv[0] : "slipway-helper");
    return 64;
}

void swift_addNewDSOImage(const void *header) { (void)header; }
int _swift_backtrace_isThunkFunction(const char *name) {
    (void)name;
    return 0;
}
