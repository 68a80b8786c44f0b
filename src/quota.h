/* The workspace quota (quota.c): what a block may keep in its work_dir,
 * in allocated bytes and in files, measured by the supervisor before the
 * block, while it runs and after its tree is dead. Async-signal-safe: it
 * runs in the supervisor (sup.c). */
#ifndef AGENTBOX_QUOTA_H
#define AGENTBOX_QUOTA_H

#include <stdint.h>

/* The exit code of a block stopped (or not started) by the quota: EDQUOT,
 * "Disk quota exceeded", outside 124-127 and 128+signal. */
#define AB_QUOTA_EXIT 122

typedef struct ab_quota ab_quota;

enum { AB_QUOTA_BEFORE, AB_QUOTA_DURING, AB_QUOTA_AFTER };

/* Measures dir before the block (max_bytes, max_files <= 0: that one is
 * unlimited). Returns 0 when within the quota, -1 when over it or when it
 * cannot be measured. *qp is NULL only when no memory could be mapped
 * (then -1). */
int ab_quota_begin(ab_quota **qp, const char *dir, int64_t max_bytes, int64_t max_files);

/* The RLIMIT_FSIZE that stops one file just past the byte quota, so a
 * single big write ends there and the next measure sees it; -1: none. */
int64_t ab_quota_fsize(const ab_quota *q);

/* Monotonic ms at which the next measure is due. */
int64_t ab_quota_due(const ab_quota *q);

/* A measure while the block runs. 0: within the quota (or the walk was cut
 * at deadline_ms, 0 = none), -1: over it or not measurable. */
int ab_quota_poll(ab_quota *q, int64_t deadline_ms);

/* The last measure, once the tree is dead: 0 within, -1 over. */
int ab_quota_end(ab_quota *q);

/* Writes the one line saying why the last measure failed; phase is
 * AB_QUOTA_BEFORE (nothing ran), _DURING (the tree was killed) or _AFTER. */
void ab_quota_say(const ab_quota *q, int fd, int phase);

void ab_quota_free(ab_quota *q);

#endif
