/* agentbox-sup: the supervisor as a static program, for the sandbox
 * container (slim images have no procps and the Engine API cannot kill an
 * exec). Usage: agentbox-sup -u uid:gid [-t timeout_ms] [-g grace_ms] [--quota-dir DIR [--quota-bytes N]
 *   [--quota-files N]] -- prog args...
 * It runs as root with only CAP_KILL, CAP_SETUID and CAP_SETGID; the
 * program runs as uid:gid (numeric, neither 0) under our seccomp filter,
 * and every process of uid is killed before and after it. Without -u the
 * program keeps this process's uid, which must not be 0.
 * The program gets this process's stdin/stdout/stderr and environment.
 * Exit status mirrors the program (128+signal when killed), 124 on timeout,
 * 122 when DIR went over its quota (quota.c; a line on stderr says so);
 * an out-of-memory kill is also said on stderr.
 * `agentbox-sup --server FD` is the host's spawn server (spawnsrv.c);
 * `agentbox-sup --listen PATH -u uid:gid [--owner UID]` is a warm container's block
 * server (blocksrv.c); `agentbox-sup --stream -u uid:gid` is one that
 * speaks on its stdin and stdout (blockstream.c), for remote daemons;
 * `agentbox-sup --preload-client NAME GRACE_MS FILE` a python block's
 * client of the preloaded template (preloadcl.c). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "seccomp.h"
#include "sup.h"
#include "sysutil.h"

extern char **environ;

/* "uid:gid", decimal, both in 1..2^32-2: no names (there is no NSS in
 * here), no signs, no spelling of 0. */
static int parse_ids(const char *s, ab_sup_args *a) {
  unsigned long long v[2] = {0, 0};
  for (int i = 0; i < 2; i++) {
    const char *d = s;
    while (*s >= '0' && *s <= '9' && v[i] < 0xffffffffull) v[i] = v[i] * 10 + (unsigned)(*s++ - '0');
    if (s == d || v[i] == 0 || v[i] >= 0xffffffffull) return -1;
    if (*s != (i == 0 ? ':' : 0)) return -1;
    s++;
  }
  a->uid = (uid_t)v[0];
  a->gid = (gid_t)v[1];
  a->drop = 1;
  a->sweep = 1;
  return 0;
}
int ab_spawn_server(int sock, const ab_sup_args *force);
int ab_block_server(const char *path, const ab_sup_args *force, long owner);
int ab_block_stream(const ab_sup_args *force);
int ab_preload_client(const char *name, const char *grace_ms, const char *path);

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--server") == 0) return ab_spawn_server(atoi(argv[2]), NULL);
  if (argc == 5 && strcmp(argv[1], "--preload-client") == 0) return ab_preload_client(argv[2], argv[3], argv[4]);
  ab_sup_args a;
  memset(&a, 0, sizeof a);
  ab_run_opts_init(&a.o);
  if ((argc == 5 || argc == 7) && strcmp(argv[1], "--listen") == 0 && strcmp(argv[3], "-u") == 0) {
    if (parse_ids(argv[4], &a) != 0) {
      fprintf(stderr, "agentbox-sup: -u wants a numeric uid:gid, neither of them 0 (got '%s')\n", argv[4]);
      return 125;
    }
    long owner = 0;
    if (argc == 7) {
      char *end = NULL;
      owner = strcmp(argv[5], "--owner") == 0 ? strtol(argv[6], &end, 10) : -1;
      if (owner <= 0 || owner >= 0xffffffffL || !end || *end) {
        fprintf(stderr, "agentbox-sup: --listen PATH -u uid:gid [--owner UID]: UID must be a non-zero number\n");
        return 125;
      }
    }
    a.envp = environ;
    a.path = getenv("PATH");
    return ab_block_server(argv[2], &a, owner);
  }
  if (argc == 4 && strcmp(argv[1], "--stream") == 0 && strcmp(argv[2], "-u") == 0) {
    if (parse_ids(argv[3], &a) != 0) {
      fprintf(stderr, "agentbox-sup: -u wants a numeric uid:gid, neither of them 0 (got '%s')\n", argv[3]);
      return 125;
    }
    a.envp = environ;
    a.path = getenv("PATH");
    return ab_block_stream(&a);
  }
  int i = 1;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) { i++; break; }
    if (i + 1 >= argc) break;
    if (strcmp(argv[i], "-u") == 0) {
      if (parse_ids(argv[++i], &a) != 0) {
        fprintf(stderr, "agentbox-sup: -u wants a numeric uid:gid, neither of them 0 (got '%s')\n", argv[i]);
        return 125;
      }
    } else if (strcmp(argv[i], "-t") == 0) a.o.timeout_ms = atoll(argv[++i]);
    else if (strcmp(argv[i], "-g") == 0) a.o.grace_ms = atoll(argv[++i]);
    else if (strcmp(argv[i], "--quota-dir") == 0) a.quota_dir = argv[++i];
    else if (strcmp(argv[i], "--quota-bytes") == 0) a.o.quota_bytes = atoll(argv[++i]);
    else if (strcmp(argv[i], "--quota-files") == 0) a.o.quota_files = atoll(argv[++i]);
    else break;
  }
  if (i >= argc) {
    fprintf(stderr, "usage: agentbox-sup [-u uid:gid] [-t timeout_ms] [-g grace_ms] [--quota-dir DIR [--quota-bytes N]"
                    " [--quota-files N]] -- program [args...]\n");
    return 125;
  }
  if (!a.drop && (geteuid() == 0 || getuid() == 0)) {
    fprintf(stderr, "agentbox-sup: refusing to run a program as root: pass -u uid:gid\n");
    return 125;
  }
  a.o.seccomp = AB_SECCOMP_DEFAULT;
  a.argv = argv + i;
  a.envp = environ;
  a.path = getenv("PATH");
  a.fd_in = 0;
  a.fd_out = 1;
  a.fd_err = 2;
  /* descriptors the caller left open must not reach the code */
  ab_close_all_but(3, NULL, 0);
  ab_sup_report r;
  ab_supervise(&a, &r);
  int code = ab_sup_exit_code(&r);
  if (r.strays)
    fprintf(stderr, "\nagentbox: processes of the sandbox user outlived the block and could not be killed\n");
  if (r.oom && !r.timed_out && code >= 128)
    fprintf(stderr, "\nagentbox: the program was killed: out of memory (the container's memory limit)\n");
  return code;
}
