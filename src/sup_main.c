/* agentbox-sup: the supervisor as a static program, for the sandbox
 * container (slim images have no procps and the Engine API cannot kill an
 * exec). Usage: agentbox-sup [-t timeout_ms] [-g grace_ms]
 *   [--quota-dir DIR [--quota-bytes N] [--quota-files N]] -- prog args...
 * The program gets this process's stdin/stdout/stderr and environment.
 * Exit status mirrors the program (128+signal when killed), 124 on timeout,
 * 122 when DIR went over its quota (quota.c; a line on stderr says so);
 * an out-of-memory kill is also said on stderr.
 * `agentbox-sup --server FD` is the host's spawn server (spawnsrv.c). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "sup.h"

extern char **environ;
int ab_spawn_server(int sock);

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--server") == 0) return ab_spawn_server(atoi(argv[2]));
  ab_sup_args a;
  memset(&a, 0, sizeof a);
  a.grace_ms = 500;
  for (int i = 0; i < AB_RL_N; i++) a.rlimit[i] = -1;
  int i = 1;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) { i++; break; }
    if (i + 1 >= argc) break;
    if (strcmp(argv[i], "-t") == 0) a.timeout_ms = atoll(argv[++i]);
    else if (strcmp(argv[i], "-g") == 0) a.grace_ms = atoll(argv[++i]);
    else if (strcmp(argv[i], "--quota-dir") == 0) a.quota_dir = argv[++i];
    else if (strcmp(argv[i], "--quota-bytes") == 0) a.quota_bytes = atoll(argv[++i]);
    else if (strcmp(argv[i], "--quota-files") == 0) a.quota_files = atoll(argv[++i]);
    else break;
  }
  if (i >= argc) {
    fprintf(stderr, "usage: agentbox-sup [-t timeout_ms] [-g grace_ms] [--quota-dir DIR [--quota-bytes N]"
                    " [--quota-files N]] -- program [args...]\n");
    return 125;
  }
  a.argv = argv + i;
  a.envp = environ;
  a.path = getenv("PATH");
  a.fd_in = 0;
  a.fd_out = 1;
  a.fd_err = 2;
  /* descriptors the caller left open must not reach the code */
  if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
    for (int fd = 3; fd < 4096; fd++) close(fd);
  ab_sup_report r;
  ab_supervise(&a, &r);
  int code = ab_sup_exit_code(&r);
  if (r.oom && !r.timed_out && code >= 128)
    fprintf(stderr, "\nagentbox: the program was killed: out of memory (the container's memory limit)\n");
  return code;
}
