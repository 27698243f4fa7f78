/* fsutil.c — atomic writes, whole-file reads, mkdir -p (see fsutil.h for the crash-safety contract). */
#include "io/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct moec_atomic_file {
    int fd;
    int failed;     /* a write failed: commit must not rename a partial file */
    char *path;     /* final name */
    char *tmp;      /* PATH.tmp.<pid> */
};

/* fsync the directory holding path, so that a rename into it is durable. */
static moec_status fsync_parent_dir(const char *path) {
    size_t n = strlen(path);
    char *dir = malloc(n + 2);
    if (!dir) return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory syncing directory of %s", path);
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == dir) dir[1] = '\0'; /* "/file" lives in "/" */
    else *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        moec_status s = MOEC_ERR(MOEC_ERR_IO, "cannot open directory %s to sync it: %s", dir, strerror(errno));
        free(dir);
        return s;
    }
    /* Some file systems (e.g. certain network mounts) refuse fsync on a directory with EINVAL; the rename has
     * still happened, so only real I/O errors are reported. */
    if (fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP) {
        moec_status s = MOEC_ERR(MOEC_ERR_IO, "fsync of directory %s failed: %s", dir, strerror(errno));
        close(fd);
        free(dir);
        return s;
    }
    close(fd);
    free(dir);
    return MOEC_OK;
}

moec_status moec_atomic_open(moec_atomic_file **out, const char *path) {
    *out = NULL;
    if (!path || !*path) return MOEC_ERR(MOEC_ERR_ARG, "atomic write: empty path");
    moec_atomic_file *f = calloc(1, sizeof *f);
    size_t n = strlen(path);
    size_t tn = n + 32;
    if (f) f->path = malloc(n + 1);
    if (f && f->path) f->tmp = malloc(tn);
    if (!f || !f->path || !f->tmp) {
        if (f) { free(f->path); free(f->tmp); free(f); }
        return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory opening %s for writing", path);
    }
    memcpy(f->path, path, n + 1);
    snprintf(f->tmp, tn, "%s.tmp.%ld", path, (long)getpid());
    /* O_TRUNC rather than O_EXCL: a stale temporary left by a crashed process with the same pid is garbage. */
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (f->fd < 0) {
        moec_status s = MOEC_ERR(MOEC_ERR_IO, "cannot create %s: %s", f->tmp, strerror(errno));
        free(f->path); free(f->tmp); free(f);
        return s;
    }
    *out = f;
    return MOEC_OK;
}

moec_status moec_atomic_write(moec_atomic_file *f, const void *data, size_t n) {
    if (f->failed) return MOEC_ERR(MOEC_ERR_IO, "write to %s after an earlier failure", f->tmp);
    const char *p = data;
    while (n > 0) {
        /* write() may transfer less than asked (signals, >2 GiB requests on Linux); loop until done. */
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t w = write(f->fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            f->failed = 1;
            return MOEC_ERR(MOEC_ERR_IO, "write to %s failed: %s", f->tmp, strerror(errno));
        }
        if (w == 0) {
            f->failed = 1;
            return MOEC_ERR(MOEC_ERR_IO, "write to %s made no progress", f->tmp);
        }
        p += w;
        n -= (size_t)w;
    }
    return MOEC_OK;
}

static void atomic_free(moec_atomic_file *f) {
    free(f->path);
    free(f->tmp);
    free(f);
}

void moec_atomic_abort(moec_atomic_file *f) {
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    unlink(f->tmp);
    atomic_free(f);
}

moec_status moec_atomic_commit(moec_atomic_file *f) {
    moec_status s = MOEC_OK;
    if (f->failed) s = MOEC_ERR(MOEC_ERR_IO, "not replacing %s: an earlier write to %s failed", f->path, f->tmp);
    /* fsync before rename: otherwise a crash can leave the new name pointing at an empty or partial file. */
    else if (fsync(f->fd) != 0) s = MOEC_ERR(MOEC_ERR_IO, "fsync of %s failed: %s", f->tmp, strerror(errno));
    /* The data is on disk: drop a large file's now-clean pages from the page cache. They were cached as 4 KB
     * pages by the writes; read back through a mapping with huge-page advice (moec_st_open) they come back as
     * 2 MB pages, which decoding streams faster. Advice only. */
    struct stat st;
    if (s == MOEC_OK && fstat(f->fd, &st) == 0 && st.st_size >= ((off_t)8 << 20))
        (void)posix_fadvise(f->fd, 0, 0, POSIX_FADV_DONTNEED);
    int fd = f->fd;
    f->fd = -1;
    if (close(fd) != 0 && s == MOEC_OK) s = MOEC_ERR(MOEC_ERR_IO, "close of %s failed: %s", f->tmp, strerror(errno));
    if (s == MOEC_OK && rename(f->tmp, f->path) != 0)
        s = MOEC_ERR(MOEC_ERR_IO, "cannot rename %s to %s: %s", f->tmp, f->path, strerror(errno));
    if (s != MOEC_OK) {
        moec_atomic_abort(f);
        return s;
    }
    s = fsync_parent_dir(f->path);
    atomic_free(f);
    return s;
}

moec_status moec_write_file_atomic(const char *path, const void *data, size_t n) {
    moec_atomic_file *f;
    MOEC_TRY(moec_atomic_open(&f, path));
    moec_status s = moec_atomic_write(f, data, n);
    if (s != MOEC_OK) {
        moec_atomic_abort(f);
        return s;
    }
    return moec_atomic_commit(f);
}

moec_status moec_read_file(const char *path, char **data, size_t *n, size_t max_bytes) {
    *data = NULL;
    *n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return MOEC_ERR(MOEC_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        moec_status s = MOEC_ERR(MOEC_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
        close(fd);
        return s;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return MOEC_ERR(MOEC_ERR_IO, "%s is not a regular file", path);
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > (uint64_t)max_bytes) {
        close(fd);
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s is %lld bytes, more than the %zu allowed for this kind of file", path,
                        (long long)st.st_size, max_bytes);
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return MOEC_ERR(MOEC_ERR_NOMEM, "cannot allocate %zu bytes to read %s", size + 1, path);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            moec_status s = r < 0 ? MOEC_ERR(MOEC_ERR_IO, "read of %s failed: %s", path, strerror(errno))
                                  : MOEC_ERR(MOEC_ERR_IO, "%s shrank while being read (%zu of %zu bytes)", path, got, size);
            free(buf);
            close(fd);
            return s;
        }
        got += (size_t)r;
    }
    close(fd);
    buf[size] = '\0';
    *data = buf;
    *n = size;
    return MOEC_OK;
}

moec_status moec_mkdir_p(const char *path) {
    if (!path || !*path) return MOEC_ERR(MOEC_ERR_ARG, "mkdir: empty path");
    size_t n = strlen(path);
    char *p = malloc(n + 1);
    if (!p) return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory creating directory %s", path);
    memcpy(p, path, n + 1);
    /* Create each prefix ending at a '/', then the whole path; EEXIST is fine if it is a directory. */
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0') continue;
        char saved = p[i];
        p[i] = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            moec_status s = MOEC_ERR(MOEC_ERR_IO, "cannot create directory %s: %s", p, strerror(errno));
            free(p);
            return s;
        }
        p[i] = saved;
    }
    struct stat st;
    moec_status s = MOEC_OK;
    if (stat(path, &st) != 0) s = MOEC_ERR(MOEC_ERR_IO, "cannot create directory %s: %s", path, strerror(errno));
    else if (!S_ISDIR(st.st_mode)) s = MOEC_ERR(MOEC_ERR_IO, "%s exists and is not a directory", path);
    free(p);
    return s;
}

int moec_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

char *moec_path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

void moec_remove_staging_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char *p = moec_path_join(dir, e->d_name);
            if (p) unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

moec_status moec_copy_file(const char *from, const char *to, size_t max_bytes) {
    char *data;
    size_t n;
    MOEC_TRY(moec_read_file(from, &data, &n, max_bytes));
    moec_status st = moec_write_file_atomic(to, data, n);
    free(data);
    return st;
}

void moec_sync_parent_dir(const char *path) {
    char *dir = strdup(path);
    if (!dir) return;
    char *slash = strrchr(dir, '/');
    const char *name = ".";
    if (slash == dir) name = "/";
    else if (slash) *slash = '\0', name = dir;
    int fd = open(name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}
