/* System helpers for the supervisor's side (sup*.c, quota*.c, cgroup.c,
 * spawnsrv.c; the host links them too): only system calls, no malloc or
 * stdio, so they are async-signal-safe and fit the static agentbox-sup. */
#ifndef AGENTBOX_SYSUTIL_H
#define AGENTBOX_SYSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <sys/types.h>

/* CLOCK_MONOTONIC in ms: the clock of every deadline (the host's timers
 * read the same one, reactor.c's ab_now_ms). */
int64_t ab_mono_ms(void);

/* The signals a supervisor, a spare and a sandbox's init block and wait
 * for: SIGCHLD, and SIGTERM, SIGHUP, SIGINT (a cancel). */
void ab_wait_sigset(sigset_t *set);

size_t ab_slen(const char *s);

/* Decimal digits at s (no sign); *end (if given) is the first other char. */
long ab_parse_long(const char *s, const char **end);

/* One getdents64 record (the kernel's layout; libc has no declaration). */
typedef struct {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
} ab_dirent64;

/* getdents64 into buf: bytes read, 0 at the end, -1 with errno. */
long ab_getdents(int fd, void *buf, size_t size);

/* Calls fn for each entry of the directory fd (from its current offset,
 * "." and ".." included) read through buf. Returns 0 at the end, fn's
 * value when it is not 0 (the walk stops), -1 when listing fails. */
int ab_dir_each(int fd, char *buf, size_t size, int (*fn)(const ab_dirent64 *d, void *arg), void *arg);

/* Close every descriptor from lo up but those in keep[0..n): close_range
 * where the kernel has it, else close() up to 4095. */
void ab_close_all_but(int lo, const int *keep, int n);

/* The value of PATH in a NULL-terminated environment, or NULL. */
const char *ab_env_path(char *const *envp);

/* The PATH a program is searched in when its environment has none. */
#define AB_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

/* The PATH search of execvp and `which`, one candidate at a time: writes
 * the next "<dir>/<prog>" of the search path into full (an empty entry is
 * ".") and advances *cursor (start it at the PATH value). Returns 1 with a
 * candidate, 0 when none is left; a candidate longer than size is skipped. */
int ab_path_next(const char **cursor, const char *prog, char *full, size_t size);

/* Read /proc/<pid>/<file> (one read, NUL-terminated) into buf: its length,
 * or -1. */
ssize_t ab_proc_read(pid_t pid, const char *file, char *buf, size_t size);

/* The state field of a /proc/<pid>/stat text (after the last ')', since
 * comm may hold one), or NULL. */
const char *ab_proc_stat_state(const char *stat);

/* "/proc/<pid>" into buf (at least 24 bytes). */
void ab_proc_dir(pid_t pid, char *buf);

/* Append s (a decimal v) to d at at, NUL-terminated, truncated within cap;
 * returns the new length: path building without snprintf's truncation
 * warnings (cgroup.c, sandbox_cgroup.c). */
size_t ab_put(char *d, size_t at, size_t cap, const char *s);
size_t ab_put_num(char *d, size_t at, size_t cap, unsigned long v);

#endif
