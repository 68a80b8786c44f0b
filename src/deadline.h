/* The deadline budget of one block, named once. Every party that bounds a
 * run derives its moment from here:
 *   the supervisor (sup.c) TERMs the tree at term_ms, KILLs at kill_ms and
 *     keeps killing for at most giveup_ms (unkillable processes of another
 *     uid), then reports;
 *   the host (proc.c's deadline timer, DockerExecutor's exec stream through
 *     core.deadline_budget) ends the run at host_ms whatever the supervisor
 *     does, so a stopped or killed supervisor cannot hang it.
 * giveup_ms is half the margin, so a working supervisor always reports
 * before the host gives up on it. Times are ms from the start of the
 * program; 0 = no deadline (timeout 0). Header-only: the static
 * agentbox-sup and core.so share it. */
#ifndef AGENTBOX_DEADLINE_H
#define AGENTBOX_DEADLINE_H

#include <stdint.h>

/* How long past timeout + grace the host waits for the supervisor's report. */
#define AB_DEADLINE_MARGIN_MS 3000

typedef struct {
  int64_t timeout_ms, grace_ms;
  int64_t term_ms;     /* the supervisor's deadline: SIGTERM to the tree */
  int64_t kill_ms;     /* term + grace: SIGKILL */
  int64_t giveup_ms;   /* how long the kill loop may last (a duration) */
  int64_t host_ms;     /* kill + margin: the host's own deadline */
} ab_deadline;

static inline ab_deadline ab_deadline_budget(int64_t timeout_ms, int64_t grace_ms) {
  ab_deadline d;
  if (grace_ms < 0) grace_ms = 0;
  d.timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
  d.grace_ms = grace_ms;
  d.giveup_ms = AB_DEADLINE_MARGIN_MS / 2;
  d.term_ms = d.timeout_ms;
  d.kill_ms = d.timeout_ms ? d.term_ms + grace_ms : 0;
  d.host_ms = d.timeout_ms ? d.kill_ms + AB_DEADLINE_MARGIN_MS : 0;
  return d;
}

/* Seconds (as Lua and the executors give them) to the budget's ms. */
static inline int64_t ab_deadline_ms(double seconds) {
  return (int64_t)(seconds * 1000.0 + 0.5);
}

#endif
