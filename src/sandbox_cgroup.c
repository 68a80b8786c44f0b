/* One cgroup per sandboxed run (see sandbox_cgroup.h): memory, pids and,
 * on v2, the CPU weight. Per run: a mkdir per hierarchy, a few writes, a
 * step back, a read of the OOM counter and an rmdir. Only system calls:
 * the supervisor runs it, forked from a possibly multithreaded host. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cgroup.h"
#include "sandbox_cgroup.h"
#include "sysutil.h"

static int may_make_in(int dir) {
  return faccessat(dir, ".", W_OK, AT_EACCESS) == 0 && faccessat(dir, "cgroup.procs", W_OK, AT_EACCESS) == 0;
}

static void why(ab_sbcg_where *w, const char *a, const char *b, const char *c) {
  size_t at = ab_put(w->why, 0, sizeof w->why, a);
  at = ab_put(w->why, at, sizeof w->why, b);
  ab_put(w->why, at, sizeof w->why, c);
}

static void why_uid(ab_sbcg_where *w, const char *path) {
  char uid[24];
  ab_put_num(uid, 0, sizeof uid, (unsigned long)geteuid());
  size_t at = ab_put(w->why, 0, sizeof w->why, path);
  at = ab_put(w->why, at, sizeof w->why, " is not writable by uid ");
  ab_put(w->why, at, sizeof w->why, uid);
}

/* v2: base is our cgroup if it enables memory and pids below it, else a
 * parent delegated to us (never for root: that would be a cgroup of the
 * system's, outside the host's own). */
static void find_v2(ab_sbcg_where *w, int origin, const char *path) {
  w->origin = origin;
  int base = -1;
  if (ab_cg_has_word(origin, "cgroup.subtree_control", "memory") &&
      ab_cg_has_word(origin, "cgroup.subtree_control", "pids")) {
    if (may_make_in(origin)) base = dup(origin);
    else why_uid(w, path);
  } else {
    int par = geteuid() != 0 ? openat(origin, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    struct stat st;
    if (par >= 0 && fstat(par, &st) == 0 && st.st_uid == geteuid() && may_make_in(par) &&
        ab_cg_has_word(par, "cgroup.subtree_control", "memory") && ab_cg_has_word(par, "cgroup.subtree_control", "pids"))
      base = par;
    else {
      if (par >= 0) close(par);
      why(w, "cgroup v2: ", path,
          " holds processes, so the kernel lets it enable memory and pids for no cgroup below it, and its parent "
          "is not a cgroup delegated to this uid that does");
    }
  }
  if (base < 0) return;
  w->version = 2;
  w->mem_dir = base;
  w->memory = w->pids = 1;
  w->cpu = ab_cg_has_word(base, "cgroup.subtree_control", "cpu");
}

void ab_sbcg_find(ab_sbcg_where *w) {
  memset(w, 0, sizeof *w);
  w->mem_dir = w->pids_dir = w->origin = -1;
  char path[256];
  int v2 = 0;
  int m = ab_cg_find("memory", "cgroup.procs", &v2, path, sizeof path);
  if (m < 0) {
    why(w, "no cgroup hierarchy with the memory controller is mounted (/proc/self/cgroup, /sys/fs/cgroup)", "", "");
    return;
  }
  if (v2) {
    find_v2(w, m, path);
    return;
  }
  w->version = 1;
  w->mem_dir = m;
  if (!(w->memory = may_make_in(m))) why_uid(w, path);
  int p2 = 0;
  int p = ab_cg_find("pids", "cgroup.procs", &p2, path, sizeof path);
  if (p >= 0 && p2) {
    close(p);
    p = -1;
  }
  w->pids_dir = p;
  w->pids = p >= 0 && may_make_in(p);
  if (!w->pids && w->memory) {
    if (p >= 0) why_uid(w, path);
    else why(w, "no cgroup v1 hierarchy with the pids controller is mounted", "", "");
  }
  int c2 = 0;
  int c = ab_cg_find("cpu", "cpu.shares", &c2, NULL, 0);
  w->cpu = c >= 0 && !c2 && may_make_in(c);
  if (c >= 0) close(c);
  if (!w->memory && !w->pids) w->version = 0;
}

void ab_sbcg_where_close(ab_sbcg_where *w) {
  int *fds[3] = {&w->mem_dir, &w->pids_dir, &w->origin};
  for (int i = 0; i < 3; i++) {
    if (*fds[i] >= 0) close(*fds[i]);
    *fds[i] = -1;
  }
}

/* dir/<c->name>/file = val */
static int put(const ab_sbcg *c, int dir, const char *file, const char *val) {
  char rel[96];
  ab_put(rel, ab_put(rel, ab_put(rel, 0, sizeof rel, c->name), sizeof rel, "/"), sizeof rel, file);
  return ab_cg_write(dir, rel, val);
}

static int put_num(const ab_sbcg *c, int dir, const char *file, int64_t v) {
  char num[24];
  ab_put_num(num, 0, sizeof num, (unsigned long)v);
  return put(c, dir, file, num);
}

/* mkdir dir/<name>; EEXIST is a dead supervisor's of our pid: reused */
static int make(const ab_sbcg *c, int dir) {
  return mkdirat(dir, c->name, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

int ab_sbcg_enter(ab_sbcg *c, const ab_run_opts *o) {
  memset(c, 0, sizeof *c);
  ab_sbcg_find(&c->w);
  ab_put_num(c->name, ab_put(c->name, 0, sizeof c->name, "agentbox-sb-"), sizeof c->name, (unsigned long)getpid());
  int64_t mem = o->memory_bytes > 0 ? o->memory_bytes : 0;
  int64_t nproc = o->rlimit[AB_RL_NPROC];
  ab_sbcg_where *w = &c->w;
  int e = EACCES;
  if (!w->version || !w->pids || (mem && !w->memory)) goto fail;
  if (w->version == 2) {
    int b = w->mem_dir;
    if (make(c, b) != 0) goto fail_errno;
    c->mem_made = 1;
    /* no swap: the limit is memory, as DockerExecutor's MemorySwap = Memory */
    if (mem && (put_num(c, b, "memory.max", mem) != 0 || (put(c, b, "memory.swap.max", "0") != 0 && errno != ENOENT)))
      goto fail_errno;
    if (nproc >= 0 && put_num(c, b, "pids.max", nproc) != 0) goto fail_errno;
    if (o->nice > 0 && w->cpu)
      (void)put_num(c, b, "cpu.weight", (int64_t)ab_cg_weight(o->nice, 1));
    if (put(c, b, "cgroup.procs", "0") != 0) goto fail_errno;
    c->in = 1;
  } else {
    if (mem) {
      if (make(c, w->mem_dir) != 0) goto fail_errno;
      c->mem_made = 1;
      /* memsw (memory + swap) no higher than memory: no swap; it must come
       * after memory.limit_in_bytes, which may not exceed it */
      if (put_num(c, w->mem_dir, "memory.limit_in_bytes", mem) != 0 ||
          (put_num(c, w->mem_dir, "memory.memsw.limit_in_bytes", mem) != 0 && errno != ENOENT) ||
          put(c, w->mem_dir, "cgroup.procs", "0") != 0)
        goto fail_errno;
      c->in = 1;
    }
    if (make(c, w->pids_dir) != 0) goto fail_errno;
    c->pids_made = 1;
    if ((nproc >= 0 && put_num(c, w->pids_dir, "pids.max", nproc) != 0) || put(c, w->pids_dir, "cgroup.procs", "0") != 0)
      goto fail_errno;
    c->in = 1;
  }
  c->memory = mem;
  return 1;
fail_errno:
  e = errno;
fail:
  ab_sbcg_remove(c);
  errno = e;
  return 0;
}

void ab_sbcg_step_out(ab_sbcg *c) {
  if (!c->in) return;
  if (c->w.version == 2) (void)ab_cg_write(c->w.origin, "cgroup.procs", "0");
  else {
    if (c->mem_made) (void)ab_cg_write(c->w.mem_dir, "cgroup.procs", "0");
    if (c->pids_made) (void)ab_cg_write(c->w.pids_dir, "cgroup.procs", "0");
  }
  c->in = 0;
}

/* The value after "key " in dir/<name>/file, -1 when absent. */
static long counter(const ab_sbcg *c, int dir, const char *file, const char *key) {
  char rel[96], buf[1024];
  ab_put(rel, ab_put(rel, ab_put(rel, 0, sizeof rel, c->name), sizeof rel, "/"), sizeof rel, file);
  int fd = openat(dir, rel, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  size_t kl = ab_slen(key);
  for (char *p = buf; *p;) {
    if (!*key || (strncmp(p, key, kl) == 0 && p[kl] == ' ')) return ab_parse_long(*key ? p + kl + 1 : p, NULL);
    while (*p && *p != '\n') p++;
    if (*p) p++;
  }
  return -1;
}

long ab_sbcg_oom_kills(const ab_sbcg *c) {
  if (!c->mem_made || !c->memory) return -1;
  if (c->w.version == 2) return counter(c, c->w.mem_dir, "memory.events", "oom_kill");
  long k = counter(c, c->w.mem_dir, "memory.oom_control", "oom_kill");
  /* before Linux 4.13 v1 has no oom_kill: the limit was hit at least */
  return k >= 0 ? k : counter(c, c->w.mem_dir, "memory.failcnt", "");
}

void ab_sbcg_remove(ab_sbcg *c) {
  ab_sbcg_step_out(c);
  if (c->mem_made) ab_cg_remove(c->w.mem_dir, c->name);
  if (c->pids_made) ab_cg_remove(c->w.pids_dir, c->name);
  c->mem_made = c->pids_made = 0;
  ab_sbcg_where_close(&c->w);
}

static int reap_one(const ab_dirent64 *d, void *arg) {
  int dir = *(const int *)arg;
  if (d->d_type != DT_DIR || strncmp(d->d_name, "agentbox-sb-", 12) != 0) return 0;
  const char *end;
  long pid = ab_parse_long(d->d_name + 12, &end);
  if (*end || pid <= 0 || !ab_cg_gone((pid_t)pid)) return 0;
  /* init dies with its supervisor (PDEATHSIG), and the namespace with
   * init: what is left is being torn down, or was never ours to keep */
  ab_cg_kill_members(dir, d->d_name);
  ab_cg_remove(dir, d->d_name);
  return 0;
}

void ab_sbcg_reap(void) {
  ab_sbcg_where w;
  ab_sbcg_find(&w);
  int dirs[2] = {w.memory ? w.mem_dir : -1, w.version == 1 && w.pids ? w.pids_dir : -1};
  for (int i = 0; i < 2; i++) {
    if (dirs[i] < 0) continue;
    char buf[4096];
    (void)ab_dir_each(dirs[i], buf, sizeof buf, reap_one, &dirs[i]);
  }
  ab_sbcg_where_close(&w);
}
