/* Server-sent events (text/event-stream, the WHATWG framing): bytes in as
 * they arrive, whole events out. Each event is bounded (a server that never
 * ends one is an error, not a growing buffer); events wait in a queue that
 * read() drains; the reader of a full queue stops taking bytes (http.c
 * pauses the transfer) until it is drained. */
#ifndef AGENTBOX_SSE_H
#define AGENTBOX_SSE_H

#include "core.h"

enum { AB_SSE_OK, AB_SSE_TOO_BIG, AB_SSE_NOMEM };

typedef struct {
  ab_buf line, data, type, queue;
  size_t head;                      /* the queue's first unread byte */
  size_t max_event, max_queue;
  int last_cr, started, has_data, bad;
} ab_sse;

void ab_sse_init(ab_sse *s, size_t max_event, size_t max_queue);
void ab_sse_free(ab_sse *s);
/* Feeds bytes; returns 1 when an event was queued. On a broken bound, s->bad
 * is set and everything after is ignored. */
int ab_sse_feed(ab_sse *s, const char *p, size_t n);
int ab_sse_pending(const ab_sse *s);
int ab_sse_full(const ab_sse *s);
/* Pushes { type1, data1, type2, data2, ... } (type "message" unless the
 * event named one) and takes them off the queue, or fail when it is empty.
 * About AB_SSE_READ bytes at a time (at least one event), so one call
 * stays short whatever the queue holds. */
#define AB_SSE_READ (64 * 1024)
void ab_sse_push(lua_State *L, ab_sse *s);
/* Pushes why the stream was refused (s->bad != AB_SSE_OK). */
void ab_sse_push_error(lua_State *L, const ab_sse *s);

#endif
