// powerloss: an LD_PRELOAD library that records, outside the store, everything a power
// cut could still undo, so that SessionStore's power-loss tests (Tests/IntegrationTests)
// can undo it after the process is killed. A sibling of faultshim.c, compiled the same way.
//
// A SIGKILL loses nothing the process wrote: the page cache keeps it. A power cut loses
// every write the disk was not told to keep. This shim journals, before each write of a
// store file goes ahead, the bytes it overwrites, and after each successful sync which
// writes that sync covered; a restorer (Tests/IntegrationTests/Support/PowerLoss.swift)
// reads the journal after the kill and rolls unsynced writes back in one of the shapes a
// real disk may leave behind.
//
// Environment:
//   POWERLOSS_STORE     the store directory (need not exist yet). Files in it and the
//                       directory itself are tracked; nothing else is.
//   POWERLOSS_JOURNAL   a directory outside the store; the journal is <dir>/<pid>.journal,
//                       opened O_APPEND, written with one plain write(2) per record.
//   POWERLOSS_KILL_AT   N >= 1: SIGKILL this process at the start of journal event N,
//                       before it touches anything (to hit every step of a store's creation),
//                       after printing "power-kill <N> <event> <CLOCK_MONOTONIC ns>".
//   POWERLOSS_SAY_SYNCS 1: print "power-sync <file> <CLOCK_MONOTONIC ns>" on standard
//                       output after every successful sync of a tracked file, in order
//                       with the process's own lines.
//   POWERLOSS_STRIP_DSYNC 1: open tracked files without O_DSYNC/O_SYNC (a test-only way
//                       to make LMDB's meta page write unsynced; the journal then treats
//                       those writes as unsynced, as the disk would).
//
// What is tracked, and why:
// - data.mdb content: every pwrite/pwrite64/write/writev/pwritev (with the file offset for
//   the offset-less calls) journals the old bytes of the range it covers that lay inside
//   the file, and the file size before it (bytes past the end were a hole). ftruncate
//   journals the size before it and the bytes a shrink cuts off.
// - syncs: fdatasync and fsync of any descriptor of the file, and msync of a mapping of
//   it (found through /proc/self/maps), make every write journaled before the sync began
//   durable ("sync" record, written after the sync returned). A write on a descriptor
//   opened with O_DSYNC or O_SYNC (LMDB's meta page descriptor in durable mode) is durable
//   once it returned ("dsync-done" record). sync_file_range is not counted: it promises
//   nothing about the disk's cache or the file's metadata.
// - directory entries: mkdir of the store directory and the creation (open with O_CREAT)
//   of a file in it are journaled before they happen, when the name did not exist; such an
//   entry is durable once its parent directory is fsynced (a "dirsync" record, begun
//   after the creation). An fsync of the file itself does not count for its name.
// - lock.mdb's content is not tracked: LMDB writes it through a shared mapping, not write
//   calls, and rebuilds it (reader table, last transaction id from data.mdb's meta pages)
//   whenever a process opens the environment while no other process holds it, which is
//   always the case after a power cut. Its directory entry is tracked like any other.
//
// Record layout (host byte order): the header below, then `extra` bytes (a path, or the
// old bytes). A record cut short by the kill is ignored by the reader: the event it
// announces never started.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

enum {
    REC_FILE = 1,       // a tracked file first seen: file id, size; path follows
    REC_CREATE = 2,     // a name about to be created in a tracked directory; path follows
    REC_MKDIR = 3,      // the store directory about to be created; path follows
    REC_DIRSYNC = 4,    // a directory synced; seq = the event number the sync began at; path follows
    REC_WRITE = 5,      // a write about to happen: file, offset, length, size before; old bytes follow
    REC_DSYNC_DONE = 6, // the write `seq` on an O_DSYNC descriptor returned
    REC_SYNC = 7,       // a file synced; seq = the event number the sync began at; size = its size then
    REC_TRUNCATE = 8,   // an ftruncate about to happen: size before, length = new size; cut bytes follow
};

struct record {
    uint32_t magic;
    uint32_t type;
    uint32_t file;
    uint32_t reserved;
    uint64_t seq;
    uint64_t offset;
    uint64_t length;
    uint64_t size;
    uint64_t extra;
    uint64_t nanoseconds;
};
#define RECORD_MAGIC 0x504c4a31u /* "PLJ1" */

#define MAX_FD 4096
#define MAX_FILES 16
struct tracked_file {
    dev_t device;
    ino_t inode;
    int reader;          // our own read-only descriptor, for the old bytes
    int content;         // 1: journal its writes (data.mdb)
    char path[PATH_MAX];
};
static struct tracked_file files[MAX_FILES];
static int file_count = 0;
static int fd_files[MAX_FD];            // file id + 1, or 0
static unsigned char fd_dsync[MAX_FD];

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int active = 0;
static int journal = -1;
static char store_path[PATH_MAX];       // resolved
static char store_parent[PATH_MAX];     // resolved
static uint64_t next_seq = 1;
static uint64_t kill_at = 0;
static int say_syncs = 0;
static int strip_dsync = 0;

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_close)(int);
static int (*real_mkdir)(const char *, mode_t);
static int (*real_mkdirat)(int, const char *, mode_t);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_fdatasync)(int);
static int (*real_fsync)(int);
static int (*real_msync)(void *, size_t, int);

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void die(const char *what) {
    char line[PATH_MAX + 64];
    snprintf(line, sizeof line, "power-journal-failed %s errno=%d\n", what, errno);
    say(line);
    _exit(97);
}

/// Writes all of `data` to the journal with plain write(2) calls (one, unless the kernel
/// returns short); the journal is what the restorer trusts, so a failure ends the process.
static void journal_bytes(const void *data, size_t length) {
    const char *bytes = data;
    while (length > 0) {
        ssize_t n = syscall(SYS_write, journal, bytes, length);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) die("write");
        bytes += n;
        length -= (size_t)n;
    }
}

/// Appends one record and its payload as a single write.
static void append(struct record *header, const void *payload, size_t length) {
    header->magic = RECORD_MAGIC;
    header->extra = length;
    header->nanoseconds = now_ns();
    if (length == 0) { journal_bytes(header, sizeof *header); return; }
    char stack[8192];
    char *buffer = sizeof *header + length <= sizeof stack ? stack : malloc(sizeof *header + length);
    if (!buffer) die("malloc");
    memcpy(buffer, header, sizeof *header);
    memcpy(buffer + sizeof *header, payload, length);
    journal_bytes(buffer, sizeof *header + length);
    if (buffer != stack) free(buffer);
}

/// Takes the next event number, first killing the process if it is the one to die at.
/// Call with `lock` held.
static uint64_t take_event(const char *what) {
    uint64_t seq = next_seq++;
    if (kill_at && seq == kill_at) {
        char line[160];
        snprintf(line, sizeof line, "power-kill %llu %s %llu\n", (unsigned long long)seq, what, (unsigned long long)now_ns());
        say(line);
        kill(getpid(), SIGKILL);
        for (;;) pause();
    }
    return seq;
}

static void resolve_store(const char *given) {
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", given);
    size_t length = strlen(copy);
    while (length > 1 && copy[length - 1] == '/') copy[--length] = 0;
    char *slash = strrchr(copy, '/');
    char parent[PATH_MAX];
    const char *name;
    if (!slash) { snprintf(parent, sizeof parent, "."); name = copy; }
    else if (slash == copy) { snprintf(parent, sizeof parent, "/"); name = copy + 1; }
    else { *slash = 0; snprintf(parent, sizeof parent, "%s", copy); name = slash + 1; }
    char resolved[PATH_MAX];
    if (!realpath(parent, resolved)) die("realpath of the store's parent");
    snprintf(store_parent, sizeof store_parent, "%s", resolved);
    snprintf(store_path, sizeof store_path, "%s%s%s", resolved, strcmp(resolved, "/") == 0 ? "" : "/", name);
}

static void initialize(void) {
    RESOLVE(open);
    const char *store = getenv("POWERLOSS_STORE");
    const char *directory = getenv("POWERLOSS_JOURNAL");
    if (!store || !*store || !directory || !*directory) return;
    resolve_store(store);
    char name[PATH_MAX];
    snprintf(name, sizeof name, "%s/%d.journal", directory, (int)getpid());
    journal = real_open(name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_TRUNC, 0600);
    if (journal < 0) die("open of the journal");
    const char *at = getenv("POWERLOSS_KILL_AT");
    kill_at = at ? strtoull(at, NULL, 10) : 0;
    const char *syncs = getenv("POWERLOSS_SAY_SYNCS");
    say_syncs = syncs && strcmp(syncs, "1") == 0;
    const char *strip = getenv("POWERLOSS_STRIP_DSYNC");
    strip_dsync = strip && strcmp(strip, "1") == 0;
    active = 1;
}

static int ready(void) {
    pthread_once(&once, initialize);
    return active;
}

/// Opens the journal as the library loads, so that it exists before the process can touch
/// the store (a process killed before this made no change the journal could miss).
__attribute__((constructor)) static void load(void) {
    ready();
}

/// The absolute path of `name` opened relative to `directory` (AT_FDCWD or a descriptor).
static int absolute(int directory, const char *name, char *out) {
    if (!name) return 0;
    if (name[0] == '/') { snprintf(out, PATH_MAX, "%s", name); return 1; }
    char base[PATH_MAX];
    if (directory == AT_FDCWD) {
        if (!getcwd(base, sizeof base)) return 0;
    } else {
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", directory);
        ssize_t n = readlink(link, base, sizeof base - 1);
        if (n < 0) return 0;
        base[n] = 0;
    }
    snprintf(out, PATH_MAX, "%s/%s", base, name);
    return 1;
}

/// Whether `path` (absolute, possibly unresolved in its last component) names an entry
/// directly inside `directory`; the parent part is resolved.
static int is_inside(const char *path, const char *directory) {
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    char *slash = strrchr(copy, '/');
    if (!slash || slash[1] == 0) return 0;
    *slash = 0;
    char resolved[PATH_MAX];
    if (!realpath(copy[0] ? copy : "/", resolved)) return 0;
    return strcmp(resolved, directory) == 0;
}

static int descriptor_path(int fd, char *out) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, PATH_MAX - 1);
    if (n < 0) return 0;
    out[n] = 0;
    return 1;
}

/// Journals the creation of `path` if it does not exist yet and lies in the store.
/// Returns whether it journaled one. Call with `lock` held.
static void note_creation_intent(int directory, const char *name, int flags) {
    if (!(flags & O_CREAT)) return;
    char path[PATH_MAX];
    if (!absolute(directory, name, path) || !is_inside(path, store_path)) return;
    struct stat info;
    if (lstat(path, &info) == 0) return;
    char resolved_path[PATH_MAX];
    const char *last = strrchr(path, '/') + 1;
    snprintf(resolved_path, sizeof resolved_path, "%s/%s", store_path, last);
    struct record r = {0};
    r.type = REC_CREATE;
    r.seq = take_event("create");
    append(&r, resolved_path, strlen(resolved_path));
}

/// Starts tracking `fd` if it is a regular file in the store. Call with `lock` held.
static void note_open(int fd, int flags) {
    if (fd < 0 || fd >= MAX_FD) return;
    fd_files[fd] = 0;
    fd_dsync[fd] = 0;
    char path[PATH_MAX];
    if (!descriptor_path(fd, path) || !is_inside(path, store_path)) return;
    struct stat info;
    if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) return;
    int id = -1;
    for (int i = 0; i < file_count; i++) {
        if (files[i].device == info.st_dev && files[i].inode == info.st_ino) id = i;
    }
    if (id < 0) {
        if (file_count == MAX_FILES) die("too many tracked files");
        id = file_count++;
        struct tracked_file *file = &files[id];
        file->device = info.st_dev;
        file->inode = info.st_ino;
        snprintf(file->path, sizeof file->path, "%s", path);
        const char *last = strrchr(path, '/') + 1;
        file->content = strcmp(last, "data.mdb") == 0;
        file->reader = file->content ? real_open(path, O_RDONLY | O_CLOEXEC) : -1;
        if (file->content && file->reader < 0) die("open of a reader");
        struct record r = {0};
        r.type = REC_FILE;
        r.file = (uint32_t)id;
        r.size = (uint64_t)info.st_size;
        r.offset = file->content;
        append(&r, path, strlen(path));
    }
    fd_files[fd] = id + 1;
    fd_dsync[fd] = (flags & (O_DSYNC | O_SYNC)) != 0;
}

static struct tracked_file *content_file(int fd, int *id) {
    if (fd < 0 || fd >= MAX_FD || fd_files[fd] == 0) return NULL;
    *id = fd_files[fd] - 1;
    return files[*id].content ? &files[*id] : NULL;
}

/// Journals a write of `length` bytes at `offset` (-1: the descriptor's offset) and
/// returns its event number; the caller holds `lock` until the write returned.
static uint64_t note_write(int fd, struct tracked_file *file, int id, off_t offset, size_t length) {
    if (offset < 0) {
        int flags = fcntl(fd, F_GETFL);
        struct stat info;
        if ((flags & O_APPEND) && fstat(fd, &info) == 0) offset = info.st_size;
        else offset = lseek(fd, 0, SEEK_CUR);
        if (offset < 0) die("lseek");
    }
    struct stat info;
    if (fstat(file->reader, &info) != 0) die("fstat");
    uint64_t size = (uint64_t)info.st_size;
    uint64_t saved = 0;
    if ((uint64_t)offset < size) {
        saved = size - (uint64_t)offset;
        if (saved > length) saved = length;
    }
    char *old = saved ? malloc(saved) : NULL;
    if (saved && !old) die("malloc");
    size_t done = 0;
    while (done < saved) {
        ssize_t n = pread(file->reader, old + done, saved - done, offset + (off_t)done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) die("pread of old bytes");
        done += (size_t)n;
    }
    struct record r = {0};
    r.type = REC_WRITE;
    r.file = (uint32_t)id;
    r.seq = take_event("write");
    r.offset = (uint64_t)offset;
    r.length = length;
    r.size = size;
    append(&r, old, saved);
    free(old);
    return r.seq;
}

static void note_dsync_done(int fd, int id, uint64_t seq, ssize_t result) {
    if (result < 0 || !fd_dsync[fd]) return;
    struct record r = {0};
    r.type = REC_DSYNC_DONE;
    r.file = (uint32_t)id;
    r.seq = seq;
    append(&r, NULL, 0);
}

static size_t vector_length(const struct iovec *vectors, int count) {
    size_t total = 0;
    for (int i = 0; i < count; i++) total += vectors[i].iov_len;
    return total;
}

// MARK: - Opening and creating

static int adjusted_flags(int directory, const char *name, int flags) {
    if (!strip_dsync) return flags;
    char path[PATH_MAX];
    if (!absolute(directory, name, path) || !is_inside(path, store_path)) return flags;
    return flags & ~(O_DSYNC | O_SYNC);
}

#define OPEN_BODY(call, directory)                                               \
    if (!ready()) return call;                                                   \
    pthread_mutex_lock(&lock);                                                   \
    flags = adjusted_flags(directory, path, flags);                              \
    note_creation_intent(directory, path, flags);                                \
    int fd = call;                                                               \
    int saved_errno = errno;                                                     \
    if (fd >= 0) note_open(fd, flags);                                           \
    pthread_mutex_unlock(&lock);                                                 \
    errno = saved_errno;                                                         \
    return fd;

int open(const char *path, int flags, ...) {
    RESOLVE(open);
    va_list arguments;
    va_start(arguments, flags);
    mode_t mode = mode_argument(flags, arguments);
    va_end(arguments);
    OPEN_BODY(real_open(path, flags, mode), AT_FDCWD)
}

int open64(const char *path, int flags, ...) {
    RESOLVE(open64);
    va_list arguments;
    va_start(arguments, flags);
    mode_t mode = mode_argument(flags, arguments);
    va_end(arguments);
    OPEN_BODY(real_open64(path, flags, mode), AT_FDCWD)
}

int openat(int directory, const char *path, int flags, ...) {
    RESOLVE(openat);
    va_list arguments;
    va_start(arguments, flags);
    mode_t mode = mode_argument(flags, arguments);
    va_end(arguments);
    OPEN_BODY(real_openat(directory, path, flags, mode), directory)
}

int openat64(int directory, const char *path, int flags, ...) {
    RESOLVE(openat64);
    va_list arguments;
    va_start(arguments, flags);
    mode_t mode = mode_argument(flags, arguments);
    va_end(arguments);
    OPEN_BODY(real_openat64(directory, path, flags, mode), directory)
}

int close(int fd) {
    RESOLVE(close);
    if (fd >= 0 && fd < MAX_FD) {
        pthread_mutex_lock(&lock);
        fd_files[fd] = 0;
        fd_dsync[fd] = 0;
        pthread_mutex_unlock(&lock);
    }
    return real_close(fd);
}

static void note_mkdir(int directory, const char *name) {
    char path[PATH_MAX];
    if (!absolute(directory, name, path)) return;
    char trimmed[PATH_MAX];
    snprintf(trimmed, sizeof trimmed, "%s", path);
    size_t length = strlen(trimmed);
    while (length > 1 && trimmed[length - 1] == '/') trimmed[--length] = 0;
    if (!is_inside(trimmed, store_parent)) return;
    const char *last = strrchr(trimmed, '/') + 1;
    char resolved[PATH_MAX];
    snprintf(resolved, sizeof resolved, "%s%s%s", store_parent, strcmp(store_parent, "/") == 0 ? "" : "/", last);
    if (strcmp(resolved, store_path) != 0) return;
    struct stat info;
    if (lstat(resolved, &info) == 0) return;
    struct record r = {0};
    r.type = REC_MKDIR;
    r.seq = take_event("mkdir");
    append(&r, resolved, strlen(resolved));
}

int mkdir(const char *path, mode_t mode) {
    RESOLVE(mkdir);
    if (!ready()) return real_mkdir(path, mode);
    pthread_mutex_lock(&lock);
    note_mkdir(AT_FDCWD, path);
    int result = real_mkdir(path, mode);
    int saved_errno = errno;
    pthread_mutex_unlock(&lock);
    errno = saved_errno;
    return result;
}

int mkdirat(int directory, const char *path, mode_t mode) {
    RESOLVE(mkdirat);
    if (!ready()) return real_mkdirat(directory, path, mode);
    pthread_mutex_lock(&lock);
    note_mkdir(directory, path);
    int result = real_mkdirat(directory, path, mode);
    int saved_errno = errno;
    pthread_mutex_unlock(&lock);
    errno = saved_errno;
    return result;
}

// MARK: - Writing

#define WRITE_BODY(call, offset, length)                                         \
    int id;                                                                      \
    struct tracked_file *file;                                                   \
    if (!ready()) return call;                                                   \
    pthread_mutex_lock(&lock);                                                   \
    file = content_file(fd, &id);                                                \
    if (!file) { pthread_mutex_unlock(&lock); return call; }                     \
    uint64_t seq = note_write(fd, file, id, offset, length);                     \
    ssize_t result = call;                                                       \
    int saved_errno = errno;                                                     \
    note_dsync_done(fd, id, seq, result);                                        \
    pthread_mutex_unlock(&lock);                                                 \
    errno = saved_errno;                                                         \
    return result;

ssize_t write(int fd, const void *buffer, size_t count) {
    RESOLVE(write);
    WRITE_BODY(real_write(fd, buffer, count), -1, count)
}

ssize_t pwrite(int fd, const void *buffer, size_t count, off_t offset) {
    RESOLVE(pwrite);
    WRITE_BODY(real_pwrite(fd, buffer, count, offset), offset, count)
}

ssize_t pwrite64(int fd, const void *buffer, size_t count, off_t offset) {
    RESOLVE(pwrite64);
    WRITE_BODY(real_pwrite64(fd, buffer, count, offset), offset, count)
}

ssize_t writev(int fd, const struct iovec *vectors, int count) {
    RESOLVE(writev);
    WRITE_BODY(real_writev(fd, vectors, count), -1, vector_length(vectors, count))
}

ssize_t pwritev(int fd, const struct iovec *vectors, int count, off_t offset) {
    RESOLVE(pwritev);
    WRITE_BODY(real_pwritev(fd, vectors, count, offset), offset, vector_length(vectors, count))
}

int ftruncate(int fd, off_t length) {
    RESOLVE(ftruncate);
    int id;
    struct tracked_file *file;
    if (!ready()) return real_ftruncate(fd, length);
    pthread_mutex_lock(&lock);
    file = content_file(fd, &id);
    if (file) {
        struct stat info;
        if (fstat(file->reader, &info) != 0) die("fstat");
        uint64_t size = (uint64_t)info.st_size;
        uint64_t cut = size > (uint64_t)length ? size - (uint64_t)length : 0;
        char *old = cut ? malloc(cut) : NULL;
        if (cut && !old) die("malloc");
        if (cut && pread(file->reader, old, cut, length) != (ssize_t)cut) die("pread of cut bytes");
        struct record r = {0};
        r.type = REC_TRUNCATE;
        r.file = (uint32_t)id;
        r.seq = take_event("truncate");
        r.size = size;
        r.length = (uint64_t)length;
        append(&r, old, cut);
        free(old);
    }
    int result = real_ftruncate(fd, length);
    int saved_errno = errno;
    pthread_mutex_unlock(&lock);
    errno = saved_errno;
    return result;
}

// MARK: - Syncing

/// Begins a sync of tracked file `id` (or, with `directory`, of that directory): takes its
/// event number and notes the file's size. Call with `lock` held.
static uint64_t sync_begin(int id, const char *name, uint64_t *size) {
    uint64_t begin = take_event(name);
    *size = 0;
    if (id >= 0 && files[id].content) {
        struct stat info;
        if (fstat(files[id].reader, &info) != 0) die("fstat");
        *size = (uint64_t)info.st_size;
    }
    return begin;
}

/// Journals a successful sync begun at event `begin`. Call without `lock`.
static void sync_done(int id, const char *directory, uint64_t begin, uint64_t size) {
    pthread_mutex_lock(&lock);
    struct record r = {0};
    r.seq = begin;
    if (directory) {
        r.type = REC_DIRSYNC;
        append(&r, directory, strlen(directory));
    } else {
        r.type = REC_SYNC;
        r.file = (uint32_t)id;
        r.size = size;
        append(&r, NULL, 0);
    }
    pthread_mutex_unlock(&lock);
    if (say_syncs && !directory) {
        char line[PATH_MAX + 64];
        const char *last = strrchr(files[id].path, '/') + 1;
        snprintf(line, sizeof line, "power-sync %s %llu\n", last, (unsigned long long)now_ns());
        say(line);
    }
}

/// Syncs `fd` through `call`, journaling which writes the sync covered once it succeeded.
static int synced(int fd, int (*call)(int), const char *name) {
    if (!ready()) return call(fd);
    pthread_mutex_lock(&lock);
    int id = (fd >= 0 && fd < MAX_FD) ? fd_files[fd] - 1 : -1;
    char directory[PATH_MAX];
    int is_directory = 0;
    if (id < 0) {
        struct stat info;
        if (fstat(fd, &info) == 0 && S_ISDIR(info.st_mode) && descriptor_path(fd, directory)
            && (strcmp(directory, store_path) == 0 || strcmp(directory, store_parent) == 0)) {
            is_directory = 1;
        }
    }
    if (id < 0 && !is_directory) {
        pthread_mutex_unlock(&lock);
        return call(fd);
    }
    uint64_t size;
    uint64_t begin = sync_begin(id, name, &size);
    pthread_mutex_unlock(&lock);
    int result = call(fd);
    int saved_errno = errno;
    if (result == 0) sync_done(id, is_directory ? directory : NULL, begin, size);
    errno = saved_errno;
    return result;
}

int fdatasync(int fd) {
    RESOLVE(fdatasync);
    return synced(fd, real_fdatasync, "fdatasync");
}

int fsync(int fd) {
    RESOLVE(fsync);
    return synced(fd, real_fsync, "fsync");
}

/// The tracked file mapped at `address`, from /proc/self/maps, or -1. Call without `lock`
/// (reading the maps opens a file).
static int mapped_file(void *address) {
    FILE *maps = fopen("/proc/self/maps", "re");
    if (!maps) return -1;
    char line[PATH_MAX + 128];
    char path[PATH_MAX] = "";
    uintptr_t target = (uintptr_t)address;
    while (fgets(line, sizeof line, maps)) {
        unsigned long start, end;
        int offset = 0;
        if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &start, &end, &offset) < 2 || offset == 0) continue;
        if (target < start || target >= end) continue;
        snprintf(path, sizeof path, "%s", line + offset);
        path[strcspn(path, "\n")] = 0;
        break;
    }
    fclose(maps);
    int found = -1;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < file_count; i++) {
        if (path[0] && strcmp(files[i].path, path) == 0) found = i;
    }
    pthread_mutex_unlock(&lock);
    return found;
}

int msync(void *address, size_t length, int flags) {
    RESOLVE(msync);
    if (!ready() || !(flags & MS_SYNC)) return real_msync(address, length, flags);
    int id = mapped_file(address);
    if (id < 0) return real_msync(address, length, flags);
    pthread_mutex_lock(&lock);
    uint64_t size;
    uint64_t begin = sync_begin(id, "msync", &size);
    pthread_mutex_unlock(&lock);
    int result = real_msync(address, length, flags);
    int saved_errno = errno;
    if (result == 0) sync_done(id, NULL, begin, size);
    errno = saved_errno;
    return result;
}
