/* System helpers shared by the supervisor's files (see sysutil.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "sysutil.h"

int64_t ab_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t ab_slen(const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

long ab_parse_long(const char *s, const char **end) {
  long v = 0;
  while (*s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0');
  if (end) *end = s;
  return v;
}

long ab_getdents(int fd, void *buf, size_t size) {
  return syscall(SYS_getdents64, fd, buf, size);
}

int ab_dir_each(int fd, char *buf, size_t size, int (*fn)(const ab_dirent64 *d, void *arg), void *arg) {
  for (;;) {
    long n = ab_getdents(fd, buf, size);
    if (n == 0) return 0;
    if (n < 0) return -1;
    for (long off = 0; off < n;) {
      const ab_dirent64 *d = (const ab_dirent64 *)(buf + off);
      off += d->d_reclen;
      int rc = fn(d, arg);
      if (rc) return rc;
    }
  }
}

void ab_close_all_but(int lo, const int *keep, int n) {
  for (;;) {
    int next = -1;
    for (int i = 0; i < n; i++)
      if (keep[i] >= lo && (next < 0 || keep[i] < next)) next = keep[i];
    int hi = next < 0 ? -1 : next - 1;
#ifdef SYS_close_range
    if (hi < 0) { if (syscall(SYS_close_range, (unsigned)lo, ~0u, 0u) == 0) return; hi = 4095; }
    else if (hi >= lo && syscall(SYS_close_range, (unsigned)lo, (unsigned)hi, 0u) == 0) hi = lo - 1;
#else
    if (hi < 0) hi = 4095;
#endif
    for (int fd = lo; fd <= hi; fd++) close(fd);
    if (next < 0) return;
    lo = next + 1;
  }
}

const char *ab_env_path(char *const *envp) {
  const char *path = NULL;
  for (char *const *e = envp; *e; e++)
    if (strncmp(*e, "PATH=", 5) == 0) path = *e + 5;   /* the last one, as the supervisor always took */
  return path;
}

int ab_path_next(const char **cursor, const char *prog, char *full, size_t size) {
  size_t pl = ab_slen(prog);
  while (*cursor) {
    const char *p = *cursor;
    const char *e = strchr(p, ':');
    size_t dl = e ? (size_t)(e - p) : ab_slen(p);
    *cursor = e ? e + 1 : NULL;
    if (dl + pl + 2 >= size) continue;
    size_t k = 0;
    if (dl == 0) full[k++] = '.';
    else { memcpy(full, p, dl); k = dl; }
    full[k++] = '/';
    memcpy(full + k, prog, pl + 1);
    return 1;
  }
  return 0;
}

void ab_proc_dir(pid_t pid, char *buf) {
  char num[16];
  int k = 0;
  memcpy(buf, "/proc/", 6);
  do { num[k++] = (char)('0' + pid % 10); pid /= 10; } while (pid);
  size_t p = 6;
  while (k) buf[p++] = num[--k];
  buf[p] = 0;
}

ssize_t ab_proc_read(pid_t pid, const char *file, char *buf, size_t size) {
  char path[48];
  ab_proc_dir(pid, path);
  size_t p = ab_slen(path);
  path[p++] = '/';
  for (size_t i = 0; file[i] && p + 1 < sizeof path; i++) path[p++] = file[i];
  path[p] = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, size - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  return n;
}

const char *ab_proc_stat_state(const char *stat) {
  const char *rp = NULL;      /* comm may hold ')': use the last one */
  for (const char *q = stat; *q; q++) if (*q == ')') rp = q;
  return rp && rp[1] == ' ' && rp[2] ? rp + 2 : NULL;
}

size_t ab_put(char *d, size_t at, size_t cap, const char *s) {
  while (*s && at + 1 < cap) d[at++] = *s++;
  d[at] = 0;
  return at;
}

size_t ab_put_num(char *d, size_t at, size_t cap, unsigned long v) {
  char num[24];
  int k = 0;
  do { num[k++] = (char)('0' + v % 10); v /= 10; } while (v);
  while (k && at + 1 < cap) d[at++] = num[--k];
  d[at] = 0;
  return at;
}

void ab_wait_sigset(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGCHLD);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGHUP);
  sigaddset(set, SIGINT);
}
