// What the LD_PRELOAD shims of this folder (faultshim.c, powerloss.c) share: finding the
// real libc functions, the mode argument of an interposed open, and a line to standard
// output that takes no lock and allocates nothing (safe inside any interposed call).
#ifndef SESSIONSTORE_SHIM_H
#define SESSIONSTORE_SHIM_H

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

/// Looks `real_<name>` up once, the next definition after this shim's.
#define RESOLVE(name) do { if (!real_##name) real_##name = dlsym(RTLD_NEXT, #name); } while (0)

/// Writes `text` to standard output with the raw system call, retrying short writes.
static void say(const char *text) {
    size_t length = strlen(text);
    while (length > 0) {
        ssize_t n = syscall(SYS_write, 1, text, length);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        text += n;
        length -= (size_t)n;
    }
}

/// The mode argument of open/openat, present only when the flags create a file.
static mode_t mode_argument(int flags, va_list arguments) {
    if ((flags & O_CREAT) || (flags & __O_TMPFILE) == __O_TMPFILE) return (mode_t)va_arg(arguments, int);
    return 0;
}

#endif
