// libgit2, loaded on first use.
//
// slipway calls libgit2 for repository facts (HEAD, describe, status, ancestry), but most runs
// never do: a no-op `slipway build`, `validate`, `--version`. Linked at start-up, libgit2 and
// the fifteen libraries it pulls in (krb5, libcrypto, mbedtls, ssh2, ...) cost every process
// ~1.9 ms of mapping and relocation here (measured: a C program linked with -lgit2 starts in
// 2.7 ms, without it in 0.85 ms). So the `CGit2` module map links nothing, and the functions
// slipway uses are defined here, with libgit2's own prototypes from <git2.h> (a mismatch does
// not compile): the first call of any of them dlopen()s libgit2 and each resolves its symbol
// once. RTLD_LOCAL keeps libgit2's symbols out of the global scope.
//
// Add a function here when SlipwayCore starts calling it (the link fails until then).

#include <dlfcn.h>
#include <git2.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "CGit2Loader.h"

#define SLIPWAY_GIT2_SONAME "libgit2.so." LIBGIT2_SOVERSION

static void *library;
static char failure[512];
static pthread_once_t loading = PTHREAD_ONCE_INIT;

static void load(void) {
    library = dlopen(SLIPWAY_GIT2_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        const char *why = dlerror();
        snprintf(failure, sizeof failure, "%s", why ? why : "dlopen failed");
    }
}

int slipway_git2_is_loaded(void) {
    return __atomic_load_n(&library, __ATOMIC_ACQUIRE) != NULL;
}

/// The address of libgit2's `name`; a libgit2 that cannot be loaded ends the process with
/// exit status 1 and says what to install (nothing can go on without it).
static void *resolve(const char *name) {
    pthread_once(&loading, load);
    void *symbol = library ? dlsym(library, name) : NULL;
    if (!symbol) {
        const char *why = library ? dlerror() : failure;
        dprintf(2,
                "slipway: cannot use libgit2 (%s, for %s): %s\n"
                "slipway: install it (Debian: apt-get install libgit2-1.5; or ./install.sh --deps-only)\n",
                SLIPWAY_GIT2_SONAME, name, why ? why : "symbol not found");
        _exit(1);
    }
    return symbol;
}

#define SLIPWAY_GIT2(ret, name, params, args)                                     \
    ret name params {                                                             \
        static ret(*function) params;                                             \
        ret(*call) params = __atomic_load_n(&function, __ATOMIC_ACQUIRE);         \
        if (!call) {                                                              \
            call = (ret(*) params)resolve(#name);                                 \
            __atomic_store_n(&function, call, __ATOMIC_RELEASE);                  \
        }                                                                         \
        return call args;                                                         \
    }

#define SLIPWAY_GIT2_VOID(name, params, args)                                     \
    void name params {                                                            \
        static void(*function) params;                                            \
        void(*call) params = __atomic_load_n(&function, __ATOMIC_ACQUIRE);        \
        if (!call) {                                                              \
            call = (void(*) params)resolve(#name);                                \
            __atomic_store_n(&function, call, __ATOMIC_RELEASE);                  \
        }                                                                         \
        call args;                                                                \
    }

SLIPWAY_GIT2_VOID(git_commit_free, (git_commit *commit), (commit))
SLIPWAY_GIT2(int, git_commit_lookup, (git_commit **commit, git_repository *repo, const git_oid *id), (commit, repo, id))
SLIPWAY_GIT2(const char *, git_commit_message_raw, (const git_commit *commit), (commit))
SLIPWAY_GIT2(const git_oid *, git_commit_parent_id, (const git_commit *commit, unsigned int n), (commit, n))
SLIPWAY_GIT2(unsigned int, git_commit_parentcount, (const git_commit *commit), (commit))
SLIPWAY_GIT2(git_time_t, git_commit_time, (const git_commit *commit), (commit))
SLIPWAY_GIT2(int, git_commit_tree, (git_tree **tree_out, const git_commit *commit), (tree_out, commit))
SLIPWAY_GIT2_VOID(git_config_free, (git_config *cfg), (cfg))
SLIPWAY_GIT2(int, git_config_get_string, (const char **out, const git_config *cfg, const char *name), (out, cfg, name))
SLIPWAY_GIT2_VOID(git_error_clear, (void), ())
SLIPWAY_GIT2(const git_error *, git_error_last, (void), ())
SLIPWAY_GIT2(int, git_graph_descendant_of, (git_repository *repo, const git_oid *commit, const git_oid *ancestor), (repo, commit, ancestor))
SLIPWAY_GIT2(int, git_libgit2_init, (void), ())
SLIPWAY_GIT2_VOID(git_object_free, (git_object *object), (object))
SLIPWAY_GIT2(const git_oid *, git_object_id, (const git_object *obj), (obj))
SLIPWAY_GIT2(int, git_object_lookup, (git_object **object, git_repository *repo, const git_oid *id, git_object_t type), (object, repo, id, type))
SLIPWAY_GIT2(int, git_object_peel, (git_object **peeled, const git_object *object, git_object_t target_type), (peeled, object, target_type))
SLIPWAY_GIT2(int, git_object_short_id, (git_buf *out, const git_object *obj), (out, obj))
SLIPWAY_GIT2(git_object_t, git_object_type, (const git_object *obj), (obj))
SLIPWAY_GIT2(int, git_odb_exists, (git_odb *db, const git_oid *id), (db, id))
SLIPWAY_GIT2(int, git_odb_exists_prefix, (git_oid *out, git_odb *db, const git_oid *short_id, size_t len), (out, db, short_id, len))
SLIPWAY_GIT2_VOID(git_odb_free, (git_odb *db), (db))
SLIPWAY_GIT2(int, git_oid_fromstrn, (git_oid *out, const char *str, size_t length), (out, str, length))
SLIPWAY_GIT2_VOID(git_reference_free, (git_reference *ref), (ref))
SLIPWAY_GIT2_VOID(git_reference_iterator_free, (git_reference_iterator *iter), (iter))
SLIPWAY_GIT2(int, git_reference_iterator_new, (git_reference_iterator **out, git_repository *repo), (out, repo))
SLIPWAY_GIT2(int, git_reference_lookup, (git_reference **out, git_repository *repo, const char *name), (out, repo, name))
SLIPWAY_GIT2(int, git_reference_name_to_id, (git_oid *out, git_repository *repo, const char *name), (out, repo, name))
SLIPWAY_GIT2(int, git_reference_next_name, (const char **out, git_reference_iterator *iter), (out, iter))
SLIPWAY_GIT2(const char *, git_reference_symbolic_target, (const git_reference *ref), (ref))
SLIPWAY_GIT2(const git_oid *, git_reference_target, (const git_reference *ref), (ref))
SLIPWAY_GIT2(git_reference_t, git_reference_type, (const git_reference *ref), (ref))
SLIPWAY_GIT2(const char *, git_repository_commondir, (const git_repository *repo), (repo))
SLIPWAY_GIT2(int, git_repository_config_snapshot, (git_config **out, git_repository *repo), (out, repo))
SLIPWAY_GIT2_VOID(git_repository_free, (git_repository *repo), (repo))
SLIPWAY_GIT2(int, git_repository_odb, (git_odb **out, git_repository *repo), (out, repo))
SLIPWAY_GIT2(int, git_repository_open_ext, (git_repository **out, const char *path, unsigned int flags, const char *ceiling_dirs), (out, path, flags, ceiling_dirs))
SLIPWAY_GIT2(const char *, git_repository_path, (const git_repository *repo), (repo))
SLIPWAY_GIT2(const char *, git_repository_workdir, (const git_repository *repo), (repo))
SLIPWAY_GIT2(size_t, git_status_list_entrycount, (git_status_list *statuslist), (statuslist))
SLIPWAY_GIT2_VOID(git_status_list_free, (git_status_list *statuslist), (statuslist))
SLIPWAY_GIT2(int, git_status_list_new, (git_status_list **out, git_repository *repo, const git_status_options *opts), (out, repo, opts))
SLIPWAY_GIT2(int, git_status_options_init, (git_status_options *opts, unsigned int version), (opts, version))
SLIPWAY_GIT2_VOID(git_tag_free, (git_tag *tag), (tag))
SLIPWAY_GIT2(int, git_tag_lookup, (git_tag **out, git_repository *repo, const git_oid *id), (out, repo, id))
SLIPWAY_GIT2(const char *, git_tag_name, (const git_tag *tag), (tag))
SLIPWAY_GIT2(const git_signature *, git_tag_tagger, (const git_tag *tag), (tag))
SLIPWAY_GIT2(const git_oid *, git_tag_target_id, (const git_tag *tag), (tag))
SLIPWAY_GIT2(int, git_tree_entry_bypath, (git_tree_entry **out, const git_tree *root, const char *path), (out, root, path))
SLIPWAY_GIT2_VOID(git_tree_entry_free, (git_tree_entry *entry), (entry))
SLIPWAY_GIT2(const git_oid *, git_tree_entry_id, (const git_tree_entry *entry), (entry))
SLIPWAY_GIT2_VOID(git_tree_free, (git_tree *tree), (tree))
SLIPWAY_GIT2(const git_oid *, git_tree_id, (const git_tree *tree), (tree))
