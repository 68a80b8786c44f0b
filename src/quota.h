/* The workspace quota (quota.c): what a block may keep in its work_dir, in
 * allocated bytes and in files, measured by the supervisor (sup.c) before
 * the block, while it runs and after its tree is dead. Async-signal-safe. */
#ifndef AGENTBOX_QUOTA_H
#define AGENTBOX_QUOTA_H

#include <stdint.h>
#include "sup.h"

/* The exit code of a block stopped (or not started) by the quota: EDQUOT,
 * "Disk quota exceeded", outside 124-127 and 128+signal. */
#define AB_QUOTA_EXIT 122

typedef struct ab_quota ab_quota;

/* Measures run->quota_dir before the block and lowers run's RLIMIT_FSIZE
 * to what is left (+1 byte, so the write that crosses the quota is seen).
 * Returns 0, or -1 when over the quota or not measurable: the line is said
 * on the program's stderr and nothing is to run (*qp is then NULL). */
int ab_quota_before(ab_quota **qp, ab_sup_args *run);

/* Monotonic ms at which the next poll is due. */
int64_t ab_quota_due(const ab_quota *q);

/* A measure while the block runs: 0 within the quota (or the walk was cut
 * at deadline_ms, 0 = none), -1 over it or not measurable: kill the tree;
 * 1: the filesystem grew by what the quota had left but the directory did
 * not: call ab_quota_held with the tree (others' writes, or deleted files
 * the tree holds, which no walk sees). */
int ab_quota_poll(ab_quota *q, int64_t deadline_ms);

/* Adds what the marked processes hold in deleted files on the quota's
 * filesystem (open fds, mappings) to the last walk: 0 within, -1 over or
 * not inspectable (fail closed). */
int ab_quota_held(ab_quota *q, const pid_t *pid, const unsigned char *mark, size_t n);

/* Once the tree is dead: says the line of a failed poll (r->quota set), or
 * takes the last measure and sets r->quota when over. Frees q. */
void ab_quota_after(ab_quota *q, const ab_sup_args *a, ab_sup_report *r);

void ab_quota_free(ab_quota *q);

#endif
