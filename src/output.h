/* Captured output shared by processes and HTTP streams: kept bytes up to a
 * cap (the rest counted and dropped), merged in arrival order and per stream,
 * plus chunk records for streaming readers. */
#ifndef AGENTBOX_OUTPUT_H
#define AGENTBOX_OUTPUT_H

#include "core.h"

#define AB_OUT_STREAMS 3

typedef struct {
  ab_buf merged, per[AB_OUT_STREAMS], chunks;
  size_t max, dropped;
  int stream;                       /* record chunks for read() */
  const char *const *names;         /* stream names, e.g. "stdout" */
} ab_out;

void ab_out_init(ab_out *o, size_t max, int stream, const char *const *names);
void ab_out_free(ab_out *o);
/* Returns 1 when a reader has something new. */
int ab_out_keep(ab_out *o, int s, const char *data, size_t n);
int ab_out_pending(const ab_out *o);
/* Pushes { name1, data1, name2, data2, ... } or fail when nothing is new. */
void ab_out_push_chunks(lua_State *L, ab_out *o);
/* Sets output, <name> per stream and dropped in the table on top. */
void ab_out_set_fields(lua_State *L, const ab_out *o);

#endif
