// faultshim: an LD_PRELOAD library that makes the Nth write or sync of an LMDB data file
// fail, for SessionStore's I/O fault tests (Tests/IntegrationTests).
//
// The integration tests compile it at run time (clang or cc, -shared -fPIC) and start
// the crash child with LD_PRELOAD pointing at the result. It only ever touches file
// descriptors opened on a path ending in "/data.mdb"; every other call passes through.
//
// Calls are sorted into three classes, after how LMDB 0.9 uses the two descriptors it
// opens on data.mdb:
//   data-write  pwrite/pwrite64/pwritev/write/writev on the read-write descriptor
//               (dirty pages of a commit);
//   meta-write  the same calls on the descriptor opened with O_DSYNC (the meta page that
//               makes a commit visible);
//   sync        fdatasync/fsync/msync/sync_file_range on either descriptor.
//
// Nothing is counted until the process calls faultshim_arm() (the child looks it up with
// dlsym once the store is open and warm), which reads the configuration from the
// environment:
//   FAULTSHIM_CLASS   data-write | meta-write | sync
//   FAULTSHIM_NTH     which call of that class, counted from the arming, fails (>= 1)
//   FAULTSHIM_ERRNO   EIO (default) | ENOSPC | EDQUOT | EFBIG or a number
//   FAULTSHIM_STICKY  1: every later call of the class fails too, until faultshim_disarm()
// A failed call does nothing and returns -1 with errno set. Each injection prints one
// line "fault <class> <call> #<n> errno=<name>" to standard output, so the parent test
// sees it in order with the child's own lines.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "shim.h"

enum { KIND_NONE = 0, KIND_DATA = 1, KIND_META = 2 };
enum { CLASS_DATA_WRITE = 0, CLASS_META_WRITE = 1, CLASS_SYNC = 2, CLASS_COUNT = 3 };
static const char *class_names[CLASS_COUNT] = { "data-write", "meta-write", "sync" };

#define MAX_FD 4096
static volatile unsigned char fd_kinds[MAX_FD];
// The mmap'd ranges of data.mdb are not tracked: msync faults apply to any msync call
// while armed, which only LMDB's MDB_WRITEMAP mode (unused by SessionStore) makes.

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int armed = 0;
static int target_class = -1;
static long target_nth = 0;
static int target_errno = EIO;
static int sticky = 0;
static long counts[CLASS_COUNT];
static long injected = 0;

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_close)(int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static int (*real_fdatasync)(int);
static int (*real_fsync)(int);
static int (*real_msync)(void *, size_t, int);
static int (*real_sync_file_range)(int, off_t, off_t, unsigned int);

static const char *errno_name(int code) {
    switch (code) {
    case EIO: return "EIO";
    case ENOSPC: return "ENOSPC";
    case EDQUOT: return "EDQUOT";
    case EFBIG: return "EFBIG";
    default: return "errno";
    }
}

static int ends_with_data_mdb(const char *path) {
    if (!path) return 0;
    size_t length = strlen(path);
    const char *suffix = "/data.mdb";
    size_t suffix_length = strlen(suffix);
    if (length == strlen("data.mdb") && strcmp(path, "data.mdb") == 0) return 1;
    return length >= suffix_length && strcmp(path + length - suffix_length, suffix) == 0;
}

static void note_open(int fd, const char *path, int flags) {
    if (fd < 0 || fd >= MAX_FD) return;
    if (ends_with_data_mdb(path)) {
        fd_kinds[fd] = (flags & O_DSYNC) ? KIND_META : KIND_DATA;
    } else {
        fd_kinds[fd] = KIND_NONE;
    }
}

static int kind_of(int fd) {
    return (fd >= 0 && fd < MAX_FD) ? fd_kinds[fd] : KIND_NONE;
}

/// Counts one call of `cls` and returns the errno to fail it with, or 0 to let it run.
static int should_fail(int cls, const char *call) {
    int code = 0;
    long nth = 0;
    pthread_mutex_lock(&lock);
    if (armed && cls == target_class) {
        counts[cls] += 1;
        nth = counts[cls];
        if (nth == target_nth || (sticky && nth > target_nth)) {
            code = target_errno;
            injected += 1;
        }
    }
    pthread_mutex_unlock(&lock);
    if (code) {
        char line[160];
        snprintf(line, sizeof line, "fault %s %s #%ld errno=%s\n", class_names[cls], call, nth, errno_name(code));
        say(line);
    }
    return code;
}

static int write_class(int fd) {
    int kind = kind_of(fd);
    if (kind == KIND_DATA) return CLASS_DATA_WRITE;
    if (kind == KIND_META) return CLASS_META_WRITE;
    return -1;
}

static int parse_errno(const char *text) {
    if (!text || !*text) return EIO;
    if (strcmp(text, "EIO") == 0) return EIO;
    if (strcmp(text, "ENOSPC") == 0) return ENOSPC;
    if (strcmp(text, "EDQUOT") == 0) return EDQUOT;
    if (strcmp(text, "EFBIG") == 0) return EFBIG;
    int value = atoi(text);
    return value > 0 ? value : EIO;
}

/// Starts counting calls and failing the configured one. Returns 0, or -1 when the
/// environment does not name a valid class and call number.
int faultshim_arm(void) {
    const char *cls = getenv("FAULTSHIM_CLASS");
    const char *nth = getenv("FAULTSHIM_NTH");
    int parsed_class = -1;
    for (int i = 0; i < CLASS_COUNT; i++) {
        if (cls && strcmp(cls, class_names[i]) == 0) parsed_class = i;
    }
    long parsed_nth = nth ? atol(nth) : 0;
    if (parsed_class < 0 || parsed_nth < 1) return -1;
    pthread_mutex_lock(&lock);
    target_class = parsed_class;
    target_nth = parsed_nth;
    target_errno = parse_errno(getenv("FAULTSHIM_ERRNO"));
    const char *sticky_text = getenv("FAULTSHIM_STICKY");
    sticky = sticky_text && strcmp(sticky_text, "1") == 0;
    for (int i = 0; i < CLASS_COUNT; i++) counts[i] = 0;
    armed = 1;
    pthread_mutex_unlock(&lock);
    return 0;
}

/// Stops failing calls (the disk "recovered"). Returns how many faults were injected.
long faultshim_disarm(void) {
    pthread_mutex_lock(&lock);
    armed = 0;
    long total = injected;
    pthread_mutex_unlock(&lock);
    return total;
}

/// How many calls of each class were counted since arming (for diagnostics).
long faultshim_count(int cls) {
    if (cls < 0 || cls >= CLASS_COUNT) return -1;
    pthread_mutex_lock(&lock);
    long value = counts[cls];
    pthread_mutex_unlock(&lock);
    return value;
}

int open(const char *path, int flags, ...) {
    RESOLVE(open);
    va_list arguments;
    va_start(arguments, flags);
    mode_t mode = mode_argument(flags, arguments);
    va_end(arguments);
    int fd = real_open(path, flags, mode);
    note_open(fd, path, flags);
    return fd;
}

int open64(const char *path, int flags, ...) {
    RESOLVE(open64);
    va_list arguments;
    va_start(arguments, flags);
    mode_t mode = mode_argument(flags, arguments);
    va_end(arguments);
    int fd = real_open64(path, flags, mode);
    note_open(fd, path, flags);
    return fd;
}

int openat(int directory, const char *path, int flags, ...) {
    RESOLVE(openat);
    va_list arguments;
    va_start(arguments, flags);
    mode_t mode = mode_argument(flags, arguments);
    va_end(arguments);
    int fd = real_openat(directory, path, flags, mode);
    note_open(fd, path, flags);
    return fd;
}

int close(int fd) {
    RESOLVE(close);
    if (fd >= 0 && fd < MAX_FD) fd_kinds[fd] = KIND_NONE;
    return real_close(fd);
}

ssize_t write(int fd, const void *buffer, size_t count) {
    RESOLVE(write);
    int cls = write_class(fd);
    if (cls >= 0) {
        int code = should_fail(cls, "write");
        if (code) { errno = code; return -1; }
    }
    return real_write(fd, buffer, count);
}

ssize_t pwrite(int fd, const void *buffer, size_t count, off_t offset) {
    RESOLVE(pwrite);
    int cls = write_class(fd);
    if (cls >= 0) {
        int code = should_fail(cls, "pwrite");
        if (code) { errno = code; return -1; }
    }
    return real_pwrite(fd, buffer, count, offset);
}

ssize_t pwrite64(int fd, const void *buffer, size_t count, off_t offset) {
    RESOLVE(pwrite64);
    int cls = write_class(fd);
    if (cls >= 0) {
        int code = should_fail(cls, "pwrite64");
        if (code) { errno = code; return -1; }
    }
    return real_pwrite64(fd, buffer, count, offset);
}

ssize_t writev(int fd, const struct iovec *vectors, int count) {
    RESOLVE(writev);
    int cls = write_class(fd);
    if (cls >= 0) {
        int code = should_fail(cls, "writev");
        if (code) { errno = code; return -1; }
    }
    return real_writev(fd, vectors, count);
}

ssize_t pwritev(int fd, const struct iovec *vectors, int count, off_t offset) {
    RESOLVE(pwritev);
    int cls = write_class(fd);
    if (cls >= 0) {
        int code = should_fail(cls, "pwritev");
        if (code) { errno = code; return -1; }
    }
    return real_pwritev(fd, vectors, count, offset);
}

int fdatasync(int fd) {
    RESOLVE(fdatasync);
    if (kind_of(fd) != KIND_NONE) {
        int code = should_fail(CLASS_SYNC, "fdatasync");
        if (code) { errno = code; return -1; }
    }
    return real_fdatasync(fd);
}

int fsync(int fd) {
    RESOLVE(fsync);
    if (kind_of(fd) != KIND_NONE) {
        int code = should_fail(CLASS_SYNC, "fsync");
        if (code) { errno = code; return -1; }
    }
    return real_fsync(fd);
}

int msync(void *address, size_t length, int flags) {
    RESOLVE(msync);
    int code = should_fail(CLASS_SYNC, "msync");
    if (code) { errno = code; return -1; }
    return real_msync(address, length, flags);
}

int sync_file_range(int fd, off_t offset, off_t count, unsigned int flags) {
    RESOLVE(sync_file_range);
    if (kind_of(fd) != KIND_NONE) {
        int code = should_fail(CLASS_SYNC, "sync_file_range");
        if (code) { errno = code; return -1; }
    }
    return real_sync_file_range(fd, offset, count, flags);
}
