/* spec/landlock_spec.lua's check of the spawn protocol's Landlock paths
 * (src/spawnproto.c, both ends): a request round-trips through a real
 * SOCK_SEQPACKET pair, and the server's decoder refuses requests whose
 * counts or modes are out of bounds or that carry fewer strings than they
 * say. Prints "<case> <result>" lines. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "spawnproto.h"

static char buf[AB_SPAWN_MAX_MSG + 1];

/* send a, receive it, let edit change the request, decode: 0 or -1 */
static int trip(const ab_sup_args *a, void (*edit)(ab_spawn_req *rq, size_t *n), ab_sup_args *out, char ***vec) {
  int sv[2], fds[AB_SPAWN_NFDS], got[AB_SPAWN_NFDS], nfds;
  if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) != 0) return -9;
  for (int i = 0; i < AB_SPAWN_NFDS; i++) fds[i] = 0;
  int s = ab_proto_send_spawn(sv[0], 1, a, fds);
  if (s != 0) { close(sv[0]); close(sv[1]); return s == -2 ? -2 : -9; }
  ab_spawn_req rq;
  ssize_t n = ab_proto_recv(sv[1], buf, &rq, got, &nfds);
  for (int i = 0; i < nfds; i++) close(got[i]);
  close(sv[0]);
  close(sv[1]);
  size_t len = (size_t)n;
  if (edit) edit(&rq, &len);
  return ab_proto_decode(buf, len, &rq, out, vec);
}

static void too_many(ab_spawn_req *rq, size_t *n) { (void)n; rq->o.landlock_nread = AB_LANDLOCK_MAX_PATHS + 1; }
/* on a request with the most paths: the environment's string counted as a
 * 65th path, so every string the counts name is there */
static void one_more(ab_spawn_req *rq, size_t *n) { (void)n; rq->envc--; rq->o.landlock_nread++; }
static void negative(ab_spawn_req *rq, size_t *n) { (void)n; rq->o.landlock_nwrite = -1; }
static void sum_over(ab_spawn_req *rq, size_t *n) { (void)n; rq->o.landlock_nread = 40; rq->o.landlock_nwrite = 40; }
static void missing(ab_spawn_req *rq, size_t *n) { (void)n; rq->o.landlock_nwrite += 1; }
static void bad_profile(ab_spawn_req *rq, size_t *n) { (void)n; rq->o.seccomp = 3; }
static void bad_mode(ab_spawn_req *rq, size_t *n) { (void)n; rq->o.landlock = 3; }
static void paths_off(ab_spawn_req *rq, size_t *n) { (void)n; rq->o.landlock = 0; }

int main(void) {
  char *argv[] = {"/bin/true", NULL}, *envp[] = {"PATH=/bin", NULL};
  char *paths[AB_LANDLOCK_MAX_PATHS + 1];
  char names[AB_LANDLOCK_MAX_PATHS + 1][32];
  for (int i = 0; i <= AB_LANDLOCK_MAX_PATHS; i++) {
    snprintf(names[i], sizeof names[i], "/path-%d", i);
    paths[i] = names[i];
  }
  ab_sup_args a;
  memset(&a, 0, sizeof a);
  a.argv = argv;
  a.envp = envp;
  a.landlock_paths = paths;
  a.o.landlock = AB_LANDLOCK_REQUIRED;
  a.o.seccomp = 2;
  a.o.landlock_nread = 2;
  a.o.landlock_nwrite = 1;
  ab_sup_args out;
  char **vec;
  int rc = trip(&a, NULL, &out, &vec);
  printf("roundtrip %d %d %d %d %s %s %s %s %s\n", rc, out.o.landlock, out.o.landlock_nread, out.o.landlock_nwrite,
         out.landlock_paths[0], out.landlock_paths[1], out.landlock_paths[2], out.argv[0], out.envp[0]);
  free(vec);
  struct { const char *name; void (*edit)(ab_spawn_req *, size_t *); } cases[] = {
    {"too_many", too_many}, {"negative", negative}, {"sum_over", sum_over}, {"missing", missing},
{"bad_profile", bad_profile}, {"bad_mode", bad_mode}, {"paths_off", paths_off}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    vec = NULL;
    printf("%s %d\n", cases[i].name, trip(&a, cases[i].edit, &out, &vec));
    free(vec);
  }
  /* the sender refuses more paths than the bound: nothing is sent */
  a.o.landlock_nread = AB_LANDLOCK_MAX_PATHS;
  a.o.landlock_nwrite = 1;
  printf("send_too_many %d\n", trip(&a, NULL, &out, &vec));
  a.o.landlock_nwrite = 0;
  vec = NULL;
  rc = trip(&a, NULL, &out, &vec);
  printf("send_max %d %d %s\n", rc, out.o.landlock_nread, rc == 0 ? out.landlock_paths[63] : "-");
  free(vec);
  vec = NULL;
  printf("one_more %d\n", trip(&a, one_more, &out, &vec));
  free(vec);
  return 0;
}
