#!/usr/bin/env bash
# install.sh — set up a Debian machine for slipway and run the main job.
#
# One command, safe to rerun: Debian packages (apt-get update only when one is missing),
# `swift build -c release --static-swift-stdlib --product slipway` (and `--product slipway-pause`, the
# static program of `--local` pods' infra containers, and `--product slipway-helper`, the static
# program sync runs inside containers), all three into PREFIX/bin, a Docker engine that
# answers (started here with `dockerd --bridge=none` when nothing else runs one), the
# offline base image `slipway/busybox:latest`, then `slipway build` in the example and
# `slipway deploy` of examples/deploy (its containers left running on 127.0.0.1:8081).
set -euo pipefail

readonly PACKAGES=(
    git pkg-config libgit2-dev libyaml-dev libinotifytools0-dev inotify-tools
    docker.io docker-registry buildah busybox-static python3-venv ca-certificates
)
readonly BASE_IMAGE=slipway/busybox:latest
readonly ENGINE_WAIT_SECONDS=30
# Networking rule: no bridge and no iptables rules; containers use --network none/host.
readonly DOCKERD_FLAGS=(--bridge=none --iptables=false --ip6tables=false)

usage() {
    cat <<'EOF'
Usage: ./install.sh [options]

Sets up this machine for slipway and runs the main job: installs the Debian packages
slipway needs, builds it (swift build -c release --static-swift-stdlib --product slipway, and
--product slipway-pause for `--local` pods and --product slipway-helper for sync), installs
the three binaries into PREFIX/bin,
makes sure a Docker engine answers, creates the offline base image slipway/busybox:latest
runs `slipway build` in the example, and deploys examples/deploy (an app and a sidecar
as local containers; the app answers on http://127.0.0.1:8081/). Safe to rerun.

Options:
  --prefix DIR     install the binaries into DIR/bin (default: /usr/local)
  --example DIR    run `slipway build` in DIR (default: examples/quickstart;
                   also settable with SLIPWAY_EXAMPLE=DIR)
  --deps-only      only the Debian packages, the engine and the base image
  --no-engine      do not start a Docker engine
  --uninstall      remove the binaries from PREFIX/bin and stop a dockerd that install.sh
                   started; Debian packages are left installed
  --hooks          also install slipway's git hooks into the repository of the current
                   directory (slipway hooks install; with --uninstall: slipway hooks uninstall)
  -h, --help       show this help

Environment:
  SLIPWAY_EXAMPLE         same as --example
  SLIPWAY_STORAGE_DRIVER  storage driver for a dockerd started here (default: dockerd's
                          choice, falling back to vfs when that one does not work)
  SLIPWAY_SCRATCH_PATH    swift build --scratch-path (default: .build)

A dockerd started here logs to /var/log/slipway-dockerd.log (as root; otherwise
${XDG_STATE_HOME:-~/.local/state}/slipway/dockerd.log) with its pid file beside the log.
EOF
}

say() { printf 'install.sh: %s\n' "$*"; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }
die() {
    printf 'install.sh: error: %s\n' "$1" >&2
    shift
    local line
    for line in "$@"; do printf '  %s\n' "$line" >&2; done
    exit 1
}
usage_error() {
    printf 'install.sh: %s\n' "$1" >&2
    printf 'Usage: ./install.sh [--prefix DIR] [--example DIR] [--deps-only] [--no-engine] [--uninstall] [--hooks] [-h|--help]\n' >&2
    exit 64
}

SUMMARY=()
done_step() { SUMMARY+=("$*"); }

now_us() { local t=${EPOCHREALTIME//[!0-9]/}; printf '%s' "$((10#$t))"; }
START_US=$(now_us)

# ---------------------------------------------------------------------------------------
# Options

ORIGINAL_PWD=$PWD
PREFIX=/usr/local
MODE=all            # all | deps | uninstall
START_ENGINE=1
EXAMPLE=${SLIPWAY_EXAMPLE:-}
EXAMPLE_EXPLICIT=0
[[ -n $EXAMPLE ]] && EXAMPLE_EXPLICIT=1
HOOKS=0

set_mode() {
    if [[ $MODE != all && $MODE != "$1" ]]; then
        usage_error "--deps-only and --uninstall cannot be combined"
    fi
    MODE=$1
}

while (($#)); do
    case $1 in
        --prefix)
            if (($# < 2)) || [[ -z $2 ]]; then usage_error "--prefix needs a directory"; fi
            PREFIX=$2
            shift 2
            ;;
        --prefix=?*) PREFIX=${1#--prefix=}; shift ;;
        --example)
            if (($# < 2)) || [[ -z $2 ]]; then usage_error "--example needs a directory"; fi
            EXAMPLE=$2
            EXAMPLE_EXPLICIT=1
            shift 2
            ;;
        --example=?*) EXAMPLE=${1#--example=}; EXAMPLE_EXPLICIT=1; shift ;;
        --deps-only) set_mode deps; shift ;;
        --uninstall) set_mode uninstall; shift ;;
        --no-engine) START_ENGINE=0; shift ;;
        --hooks) HOOKS=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage_error "unknown option: $1" ;;
    esac
done

[[ $PREFIX == /* ]] || PREFIX=$ORIGINAL_PWD/$PREFIX

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
cd "$ROOT"

# ---------------------------------------------------------------------------------------
# Privileges and state paths

if [[ $(id -u) -eq 0 ]]; then
    IS_ROOT=1
    SUDO=()
    LOG_FILE=/var/log/slipway-dockerd.log
    PID_FILE=/var/log/slipway-dockerd.pid
    DRIVER_FILE=/var/log/slipway-dockerd.storage-driver
    LOCK_FILE=/run/lock/slipway-install.lock
    [[ -d /run/lock ]] || LOCK_FILE=/var/log/slipway-install.lock
else
    IS_ROOT=0
    SUDO=()
    command -v sudo >/dev/null 2>&1 && SUDO=(sudo)
    state_dir=${XDG_STATE_HOME:-$HOME/.local/state}/slipway
    LOG_FILE=$state_dir/dockerd.log
    PID_FILE=$state_dir/dockerd.pid
    DRIVER_FILE=$state_dir/dockerd.storage-driver
    LOCK_FILE=$state_dir/install.lock
fi
DOCKER=(docker)

as_root() {
    if ((IS_ROOT)); then
        "$@"
    elif ((${#SUDO[@]})); then
        "${SUDO[@]}" "$@"
    else
        die "this step needs root and sudo is not installed: $*" "rerun install.sh as root"
    fi
}

# One install.sh at a time: two concurrent runs would each start a dockerd.
mkdir -p "$(dirname "$LOCK_FILE")"
exec 9>>"$LOCK_FILE"
if ! flock -n 9; then
    say "another install.sh is running; waiting for it (lock: $LOCK_FILE)"
    flock -w 900 9 || die "another install.sh still holds $LOCK_FILE after 15 minutes"
fi

TEMP_DIRS=()
cleanup() {
    local dir
    for dir in ${TEMP_DIRS[@]+"${TEMP_DIRS[@]}"}; do rm -rf -- "$dir"; done
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------
# Debian packages

package_installed() {
    [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) == ii* ]]
}

ensure_packages() {
    if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        die "no dpkg/apt-get here: install.sh supports Debian 12 (bookworm) and its derivatives" \
            "packages needed: ${PACKAGES[*]}"
    fi
    local missing=() package
    for package in "${PACKAGES[@]}"; do
        package_installed "$package" || missing+=("$package")
    done
    if ((${#missing[@]} == 0)); then
        done_step "Debian packages: all ${#PACKAGES[@]} already installed"
        return
    fi
    say "installing Debian packages: ${missing[*]}"
    # A fresh machine has empty package lists, so update before the first install. Recommends
    # stay on: docker.io's (apparmor, cgroupfs-mount) matter on kernels with AppArmor.
    local apt_env=(env DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 NEEDRESTART_MODE=l)
    # fd 9 (the install lock) is closed for apt: a service a postinst starts would hold it.
    as_root "${apt_env[@]}" apt-get update -q 9>&-
    as_root "${apt_env[@]}" apt-get install -y -q \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" 9>&-
    for package in "${missing[@]}"; do
        package_installed "$package" || die "apt-get did not install $package"
    done
    done_step "Debian packages: installed ${missing[*]}"
}

# ---------------------------------------------------------------------------------------
# Docker engine

engine_answers() { "${DOCKER[@]}" info --format '{{.ServerVersion}}' >/dev/null 2>&1; }

systemd_runs() {
    [[ -d /run/systemd/system ]] && [[ $(cat /proc/1/comm 2>/dev/null) == systemd ]] &&
        command -v systemctl >/dev/null 2>&1 && systemctl --version >/dev/null 2>&1
}

# A live process (a killed child of an exited shell can linger as a zombie).
is_alive() {
    local stat
    [[ -n ${1:-} ]] && stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != [ZX] ]]
}

is_dockerd() { is_alive "${1:-}" && [[ $(cat "/proc/$1/comm" 2>/dev/null) == dockerd ]]; }

# The pid of a dockerd that install.sh started and that still runs, or nothing.
own_dockerd_pid() {
    local pid
    pid=$(cat "$PID_FILE" 2>/dev/null) || return 0
    if is_dockerd "$pid"; then printf '%s' "$pid"; fi
}

write_pid_file() {
    printf '%s\n' "$1" >"$PID_FILE.tmp.$$"
    mv -f "$PID_FILE.tmp.$$" "$PID_FILE"
}

# Waits until the engine answers; gives up early when PID (if given) has exited.
wait_for_engine() {
    local pid=${1:-} deadline=$(($(now_us) + ENGINE_WAIT_SECONDS * 1000000))
    while (($(now_us) < deadline)); do
        engine_answers && return 0
        if [[ -n $pid ]] && ! is_alive "$pid"; then
            engine_answers && return 0
            return 1
        fi
        sleep 0.2
    done
    engine_answers
}

log_tail() {
    if [[ -r $LOG_FILE ]]; then
        tail -n "${1:-20}" "$LOG_FILE"
    else
        printf '(no log at %s)\n' "$LOG_FILE"
    fi
}

# dockerd needs cgroups; the machines without an init system that mounts them get cgroup2.
ensure_cgroups() {
    ((IS_ROOT)) || return 0
    mountpoint -q /sys/fs/cgroup && return 0
    say "/sys/fs/cgroup is not mounted; mounting cgroups for dockerd"
    if command -v cgroupfs-mount >/dev/null 2>&1; then
        cgroupfs-mount || true
    fi
    mountpoint -q /sys/fs/cgroup || mount -t cgroup2 cgroup2 /sys/fs/cgroup ||
        warn "could not mount cgroups; dockerd may refuse to start"
    done_step "mounted cgroups on /sys/fs/cgroup"
}

# After a dockerd was killed (kill -9), dockerd refuses to start while its pid file names a
# process that still exists (the killed one lingers as a zombie until reaped), and it
# reuses the containerd of its pid file even while that one is dying.
clear_stale_daemon_files() {
    local pid
    pid=$(cat /var/run/docker.pid 2>/dev/null || true)
    if [[ -n $pid ]] && ! is_dockerd "$pid"; then
        rm -f /var/run/docker.pid
    fi
    local containerd_pid_file=/var/run/docker/containerd/containerd.pid
    pid=$(cat "$containerd_pid_file" 2>/dev/null || true)
    [[ -n $pid ]] || return 0
    if is_alive "$pid"; then
        local stat parent
        stat=$(cat "/proc/$pid/stat" 2>/dev/null || true)
        stat=${stat##*) }
        read -r _ parent _ <<<"$stat"
        is_dockerd "$parent" && return 0
        # An orphan of a killed dockerd: it gets SIGKILL from the kernel; give it time.
        local deadline=$(($(now_us) + 3 * 1000000))
        while is_alive "$pid" && (($(now_us) < deadline)); do sleep 0.1; done
        is_alive "$pid" && return 0
    fi
    rm -f "$containerd_pid_file"
}

# A long-lived daemon must not keep any descriptor it inherited: the install lock (fd 9),
# or a pipe of whatever ran install.sh (a CI runner waits for those to close).
close_inherited_fds() {
    local entry fd fds=()
    for entry in /proc/self/fd/*; do
        fd=${entry##*/}
        if [[ $fd =~ ^[0-9]+$ ]] && ((fd > 2)); then fds+=("$fd"); fi
    done
    for fd in ${fds[@]+"${fds[@]}"}; do
        eval "exec $fd>&-" 2>/dev/null || true
    done
}

# Starts dockerd in its own session, detached from our stdin/stdout/stderr and from every
# other inherited descriptor, and waits for it. Returns 1 with the log in place when it fails.
launch_dockerd() {
    local driver=$1 flags=("${DOCKERD_FLAGS[@]}")
    if ((!IS_ROOT && ${#SUDO[@]} == 0)); then
        die "no Docker engine answers, and starting dockerd needs root (sudo is not installed)" \
            "rerun install.sh as root, or start an engine yourself and rerun"
    fi
    [[ -n $driver ]] && flags+=(--storage-driver "$driver")
    mkdir -p "$(dirname "$LOG_FILE")"
    [[ -f $LOG_FILE ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
    ensure_cgroups
    ((IS_ROOT)) && clear_stale_daemon_files
    say "starting dockerd ${flags[*]} (log: $LOG_FILE)"
    local launcher=()
    ((IS_ROOT)) || launcher=("${SUDO[@]}")
    (
        close_inherited_fds
        exec ${launcher[@]+"${launcher[@]}"} setsid dockerd "${flags[@]}"
    ) </dev/null >"$LOG_FILE" 2>&1 &
    local pid=$!
    write_pid_file "$pid"
    if ! wait_for_engine "$pid"; then
        return 1
    fi
    # Without job control setsid execs dockerd in place; through sudo the pid is sudo's.
    if ! is_dockerd "$pid"; then
        local daemon_pid
        daemon_pid=$(cat /var/run/docker.pid 2>/dev/null || true)
        is_dockerd "$daemon_pid" && pid=$daemon_pid
    fi
    write_pid_file "$pid"
    return 0
}

stop_own_dockerd() {
    local pid
    pid=$(own_dockerd_pid)
    [[ -n $pid ]] || return 0
    as_root kill -TERM "$pid" 2>/dev/null || true
    local deadline=$(($(now_us) + 30 * 1000000))
    while is_dockerd "$pid" && (($(now_us) < deadline)); do sleep 0.2; done
    if is_dockerd "$pid"; then
        warn "dockerd (pid $pid) did not stop within 30 s"
        return 1
    fi
    rm -f "$PID_FILE"
    return 0
}

looks_like_storage_failure() {
    grep -Eiq 'graphdriver|storage.driver|driver not supported|overlay|fuse' <<<"$1"
}

current_driver() { "${DOCKER[@]}" info --format '{{.Driver}}' 2>/dev/null || true; }

# Starts a dockerd of our own; if its storage driver cannot start, retries once with vfs.
start_own_dockerd() {
    local driver=${SLIPWAY_STORAGE_DRIVER:-}
    [[ -n $driver ]] || driver=$(cat "$DRIVER_FILE" 2>/dev/null || true)
    if launch_dockerd "$driver"; then
        return 0
    fi
    local pid
    pid=$(own_dockerd_pid)
    local log
    log=$(log_tail 40)
    if [[ -z $pid && $driver != vfs ]] && looks_like_storage_failure "$log"; then
        warn "dockerd could not start its storage driver${driver:+ $driver}; retrying with --storage-driver vfs"
        if launch_dockerd vfs; then
            printf 'vfs\n' >"$DRIVER_FILE"
                done_step "storage driver ${driver:-(dockerd default)} does not work here: fell back to vfs (remembered in $DRIVER_FILE)"
            return 0
        fi
    fi
    if [[ -n $pid ]]; then stop_own_dockerd || true; fi
    local lines=()
    mapfile -t lines < <(log_tail 20)
    die "dockerd exited or did not answer within ${ENGINE_WAIT_SECONDS} s; last lines of $LOG_FILE:" "${lines[@]}"
}

ENGINE_OK=0

ensure_engine() {
    if engine_answers; then
        ENGINE_OK=1
        local how="already answers"
        [[ -n $(own_dockerd_pid) ]] && how="already answers (dockerd pid $(own_dockerd_pid), started earlier by install.sh)"
        done_step "Docker engine: $how"
        return
    fi
    if ((!IS_ROOT)) && ((${#SUDO[@]})) && "${SUDO[@]}" docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; then
        DOCKER=("${SUDO[@]}" docker)
        ENGINE_OK=1
        done_step "Docker engine: answers through sudo only (add yourself to the docker group: sudo usermod -aG docker $USER)"
        return
    fi
    if ((!START_ENGINE)); then
        done_step "Docker engine: none answers and --no-engine was given; none started"
        return
    fi
    command -v dockerd >/dev/null 2>&1 || die "dockerd is not installed (Debian package docker.io)"

    local pid
    pid=$(own_dockerd_pid)
    if [[ -n $pid ]]; then
        say "dockerd (pid $pid, started earlier by install.sh) does not answer yet; waiting"
        if wait_for_engine "$pid"; then
            ENGINE_OK=1
            done_step "Docker engine: dockerd pid $pid (started earlier by install.sh) answers"
            return
        fi
        warn "dockerd pid $pid does not answer; restarting it"
        stop_own_dockerd || die "could not stop dockerd pid $pid; see $LOG_FILE"
    fi

    if systemd_runs; then
        say "starting docker.service through systemd"
        as_root systemctl start docker 9>&-
        wait_for_engine ||
            die "docker.service did not answer within ${ENGINE_WAIT_SECONDS} s" \
                "see: systemctl status docker; journalctl -u docker"
        ENGINE_OK=1
        done_step "Docker engine: started docker.service (systemd)"
        return
    fi

    start_own_dockerd
    ENGINE_OK=1
    done_step "Docker engine: started dockerd ${DOCKERD_FLAGS[*]}, storage driver $(current_driver), pid $(cat "$PID_FILE"), log $LOG_FILE"
}

# The newer docker CLI must be able to talk to the older daemon (it negotiates the API).
check_engine_versions() {
    local versions
    versions=$("${DOCKER[@]}" version --format 'client {{.Client.Version}} (API {{.Client.APIVersion}}), server {{.Server.Version}} (API {{.Server.APIVersion}})' 2>&1) ||
        die "docker version fails against this engine:" "$versions"
    done_step "docker version: $versions"
}

# ---------------------------------------------------------------------------------------
# Offline base image: busybox-static as a root filesystem, imported with docker import.

import_base_image() {
    local busybox=/bin/busybox
    [[ -x $busybox ]] || die "$busybox is missing (Debian package busybox-static)"
    local version
    version=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || printf unknown)
    local rootfs
    rootfs=$(mktemp -d "${TMPDIR:-/tmp}/slipway-rootfs.XXXXXX")
    TEMP_DIRS+=("$rootfs")
    mkdir -p "$rootfs"/{bin,dev,etc,proc,sys,tmp,root,var/tmp,usr}
    chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
    chmod 0700 "$rootfs/root"
    cp "$busybox" "$rootfs/bin/busybox"
    chmod 0755 "$rootfs/bin/busybox"
    local applet
    while IFS= read -r applet; do
        [[ -n $applet && $applet != busybox && $applet != */* ]] || continue
        ln -s busybox "$rootfs/bin/$applet"
    done < <("$busybox" --list)
    # Merged /usr, so `#!/usr/bin/env sh` and /sbin paths resolve.
    ln -s ../bin "$rootfs/usr/bin"
    ln -s ../bin "$rootfs/usr/sbin"
    ln -s bin "$rootfs/sbin"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
    say "importing $BASE_IMAGE (busybox-static $version)"
    tar --sort=name --mtime=@0 --numeric-owner --owner=0 --group=0 -C "$rootfs" -cf - . |
        "${DOCKER[@]}" import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["/bin/sh"]' \
            --message "slipway offline base image: busybox-static $version" \
            - "$BASE_IMAGE" >/dev/null
    done_step "base image: imported $BASE_IMAGE (busybox-static $version)"
}

# Prints the output of a throwaway container; returns its status.
smoke_test() {
    "${DOCKER[@]}" run --rm --network none "$BASE_IMAGE" echo ok 2>&1
}

ensure_base_image() {
    if "${DOCKER[@]}" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        done_step "base image: $BASE_IMAGE already present"
    else
        import_base_image
    fi
    local output
    if output=$(smoke_test) && [[ $output == ok ]]; then
        done_step "verified: docker run --rm --network none $BASE_IMAGE echo ok"
        return
    fi
    # overlay2 (or fuse-overlayfs) can initialise and still fail to mount a container's
    # root filesystem; vfs always works. Only switch a dockerd that install.sh runs.
    local pid driver
    pid=$(own_dockerd_pid)
    driver=$(current_driver)
    if [[ -n $pid && $driver != vfs ]] && looks_like_storage_failure "$output"; then
        warn "containers fail with storage driver $driver; restarting dockerd with --storage-driver vfs"
        stop_own_dockerd || die "could not stop dockerd pid $pid"
        launch_dockerd vfs || {
            local lines=()
            mapfile -t lines < <(log_tail 20)
            die "dockerd with vfs did not answer; last lines of $LOG_FILE:" "${lines[@]}"
        }
        printf 'vfs\n' >"$DRIVER_FILE"
        done_step "storage driver $driver cannot run containers here: restarted dockerd with vfs (remembered in $DRIVER_FILE)"
        "${DOCKER[@]}" image inspect "$BASE_IMAGE" >/dev/null 2>&1 || import_base_image
        if output=$(smoke_test) && [[ $output == ok ]]; then
            done_step "verified: docker run --rm --network none $BASE_IMAGE echo ok"
            return
        fi
    fi
    local lines=()
    mapfile -t lines <<<"$output"
    die "docker run --rm --network none $BASE_IMAGE echo ok did not print ok:" "${lines[@]}"
}

engine_and_image() {
    ensure_engine
    if ((ENGINE_OK)); then
        check_engine_versions
        ensure_base_image
    else
        done_step "base image: skipped (no engine)"
    fi
}

# ---------------------------------------------------------------------------------------
# Build and install

ensure_swift() {
    if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
        PATH=/opt/swift/usr/bin:$PATH
    fi
    command -v swift >/dev/null 2>&1 ||
        die "swift is not on PATH and not in /opt/swift/usr/bin" "install the Swift 6.3 toolchain first"
}

BINARY=""
PAUSE_BINARY=""
HELPER_BINARY=""
build_slipway() {
    ensure_swift
    local scratch=()
    [[ -n ${SLIPWAY_SCRATCH_PATH:-} ]] && scratch=(--scratch-path "$SLIPWAY_SCRATCH_PATH")
    # The Swift runtime and Foundation linked in statically: the binary starts in about
    # 18 ms instead of 32 ms, which every hook and no-op build pays. Only the product: the
    # test-support target imports Testing, which has no static build.
    say "building: swift build -c release --static-swift-stdlib --product slipway ${scratch[*]}"
    swift build -c release --static-swift-stdlib --product slipway ${scratch[@]+"${scratch[@]}"}
    local bin_path
    bin_path=$(swift build -c release --static-swift-stdlib ${scratch[@]+"${scratch[@]}"} --show-bin-path)
    BINARY=$bin_path/slipway
    [[ -x $BINARY ]] || die "swift build finished but $BINARY does not exist"
    # The infra container of `--local` pods runs this static program (a C target).
    say "building: swift build -c release --static-swift-stdlib --product slipway-pause ${scratch[*]}"
    swift build -c release --static-swift-stdlib --product slipway-pause ${scratch[@]+"${scratch[@]}"}
    PAUSE_BINARY=$bin_path/slipway-pause
    [[ -x $PAUSE_BINARY ]] || die "swift build finished but $PAUSE_BINARY does not exist"
    # Sync copies this static program into containers (/.slipway/helper) and talks to it.
    say "building: swift build -c release --static-swift-stdlib --product slipway-helper ${scratch[*]}"
    swift build -c release --static-swift-stdlib --product slipway-helper ${scratch[@]+"${scratch[@]}"}
    HELPER_BINARY=$bin_path/slipway-helper
    [[ -x $HELPER_BINARY ]] || die "swift build finished but $HELPER_BINARY does not exist"
    done_step "built $BINARY, $PAUSE_BINARY and $HELPER_BINARY"
}

install_binary() {
    local dest_dir=$PREFIX/bin
    local run=()
    mkdir -p "$dest_dir" 2>/dev/null || as_root mkdir -p "$dest_dir"
    [[ -w $dest_dir ]] || run=("${SUDO[@]}")
    ((${#run[@]})) || [[ -w $dest_dir ]] || die "$dest_dir is not writable; rerun as root or choose --prefix"
    local source name dest temp
    # slipway looks for slipway-pause and slipway-helper beside itself.
    for source in "$PAUSE_BINARY" "$HELPER_BINARY" "$BINARY"; do
        name=${source##*/}
        dest=$dest_dir/$name
        if [[ -x $dest ]] && cmp -s "$source" "$dest"; then
            done_step "installed: $dest already up to date"
            continue
        fi
        temp="$dest_dir/.$name.install.$$"
        ${run[@]+"${run[@]}"} install -m 0755 "$source" "$temp"
        ${run[@]+"${run[@]}"} mv -f "$temp" "$dest" || {
            ${run[@]+"${run[@]}"} rm -f "$temp"
            die "could not move $temp to $dest"
        }
        done_step "installed: $dest"
    done
}

# An explicit example is resolved against the caller's directory, then the repository.
EXAMPLE_DIR=""
resolve_example() {
    ((EXAMPLE_EXPLICIT)) || return 0
    local dir=$EXAMPLE
    if [[ $dir != /* ]]; then
        if [[ -d $ORIGINAL_PWD/$dir ]]; then dir=$ORIGINAL_PWD/$dir; else dir=$ROOT/$dir; fi
    fi
    [[ -f $dir/devspace.yaml ]] || die "--example $EXAMPLE: no devspace.yaml in $dir"
    EXAMPLE_DIR=$dir
}

run_example() {
    local dir
    if ((EXAMPLE_EXPLICIT)); then
        dir=$EXAMPLE_DIR
    else
        dir=$ROOT/examples/quickstart
        if [[ ! -f $dir/devspace.yaml ]]; then
            done_step "example: examples/quickstart/devspace.yaml does not exist yet (it comes in a later issue): skipped slipway build"
            return
        fi
    fi
    if ((!ENGINE_OK)); then
        done_step "example: no Docker engine answers: skipped slipway build in $dir"
        return
    fi
    say "running: slipway build (in $dir)"
    (cd "$dir" && "$PREFIX/bin/slipway" build) || die "slipway build failed in $dir"
    done_step "example: slipway build in $dir succeeded"
}

# The deploy example: both images built and their containers running on this machine.
readonly DEPLOY_PORT=8081
deploy_example() {
    local dir=$ROOT/examples/deploy
    if ((EXAMPLE_EXPLICIT)) || ((!ENGINE_OK)) || [[ ! -f $dir/devspace.yaml ]]; then
        return
    fi
    say "running: slipway deploy (in $dir)"
    (cd "$dir" && "$PREFIX/bin/slipway" deploy) || die "slipway deploy failed in $dir" \
        "its containers: docker ps --all --filter label=dev.slipway.project=deploy-example"
    local page="" i
    for ((i = 0; i < 50; i++)); do
        # bash's /dev/tcp: no curl needed.
        page=$( (exec 3<>"/dev/tcp/127.0.0.1/$DEPLOY_PORT" && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3) 2>/dev/null || true)
        [[ $page == *deploy-example* ]] && break
        sleep 0.2
    done
    [[ $page == *deploy-example* ]] || die "the deployed example does not answer on http://127.0.0.1:$DEPLOY_PORT/" \
        "is the port taken by something else? docker logs deploy-example-web-app"
    done_step "example: examples/deploy is deployed and answers on http://127.0.0.1:$DEPLOY_PORT/"
    done_step "look at it: curl http://127.0.0.1:$DEPLOY_PORT/; docker ps --filter label=dev.slipway.project=deploy-example"
    done_step "remove it: cd examples/deploy && slipway purge"
}

# ---------------------------------------------------------------------------------------
# Uninstall

uninstall() {
    local dest
    for dest in "$PREFIX/bin/slipway" "$PREFIX/bin/slipway-pause" "$PREFIX/bin/slipway-helper"; do
        if [[ -e $dest || -L $dest ]]; then
            if [[ -w $PREFIX/bin ]]; then rm -f "$dest"; else as_root rm -f "$dest"; fi
            done_step "removed $dest"
        else
            done_step "$dest was not installed"
        fi
    done
    local pid
    pid=$(own_dockerd_pid)
    if [[ -n $pid ]]; then
        if stop_own_dockerd; then
            done_step "stopped dockerd pid $pid (started by install.sh)"
        else
            done_step "dockerd pid $pid (started by install.sh) did not stop within 30 s"
        fi
    else
        rm -f "$PID_FILE"
        done_step "no dockerd started by install.sh is running"
    fi
    done_step "left alone: Debian packages (${PACKAGES[*]}), image $BASE_IMAGE, /var/lib/docker"
}

# ---------------------------------------------------------------------------------------

# --hooks: the repository of the directory install.sh was started from (docs/hooks.md).
install_hooks() {
    say "running: slipway hooks install (in $ORIGINAL_PWD)"
    (cd "$ORIGINAL_PWD" && "$PREFIX/bin/slipway" hooks install) ||
        die "slipway hooks install failed in $ORIGINAL_PWD" "run install.sh --hooks from inside the project's repository"
    done_step "git hooks: installed in the repository of $ORIGINAL_PWD (slipway hooks status shows them)"
}

uninstall_hooks() {
    if [[ ! -x $PREFIX/bin/slipway ]]; then
        done_step "git hooks: $PREFIX/bin/slipway is not installed, so the hooks were left alone"
        return
    fi
    (cd "$ORIGINAL_PWD" && "$PREFIX/bin/slipway" hooks uninstall) ||
        die "slipway hooks uninstall failed in $ORIGINAL_PWD"
    done_step "git hooks: removed from the repository of $ORIGINAL_PWD"
}

case $MODE in
    uninstall)
        if ((HOOKS)); then uninstall_hooks; fi
        uninstall
        ;;
    deps)
        if ((HOOKS)); then done_step "git hooks: --deps-only builds no binary, so --hooks did nothing"; fi
        ensure_packages
        engine_and_image
        ;;
    all)
        resolve_example
        ensure_packages
        build_slipway
        install_binary
        if ((HOOKS)); then install_hooks; fi
        engine_and_image
        run_example
        deploy_example
        ;;
esac

elapsed_ms=$((($(now_us) - START_US) / 1000))
say "summary ($(printf '%d.%01d' $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100))) s):"
for line in "${SUMMARY[@]}"; do printf '  - %s\n' "$line"; done
