/* See sse.h. Lines end in CRLF, LF or CR (a CR at the end of one chunk and
 * an LF at the start of the next are one line end); a blank line ends an
 * event; "data:" lines are joined with "\n"; comments (":...") and the
 * fields id and retry are ignored: a reply is read once, never resumed. */
#include <string.h>
#include "sse.h"

/* a queued event: this header, then its type and data bytes */
typedef struct { size_t tlen, dlen; } rec;

void ab_sse_init(ab_sse *s, size_t max_event, size_t max_queue) {
  memset(s, 0, sizeof *s);
  s->max_event = max_event;
  s->max_queue = max_queue;
}

void ab_sse_free(ab_sse *s) {
  ab_buf_free(&s->line);
  ab_buf_free(&s->data);
  ab_buf_free(&s->type);
  ab_buf_free(&s->queue);
}

static int fail(ab_sse *s, int why) {
  s->bad = why;
  ab_sse_free(s);
  return 0;
}

static int dispatch(ab_sse *s) {
  int queued = 0;
  if (s->has_data) {
    size_t dlen = s->data.len ? s->data.len - 1 : 0;   /* the last "\n" is not data */
    rec r = {s->type.len, dlen};
    if (ab_buf_add(&s->queue, (const char *)&r, sizeof r) ||
        (r.tlen && ab_buf_add(&s->queue, s->type.p, r.tlen)) ||
        (r.dlen && ab_buf_add(&s->queue, s->data.p, r.dlen)))
      return fail(s, AB_SSE_NOMEM);
    queued = 1;
  }
  s->data.len = s->type.len = 0;
  s->has_data = 0;
  return queued;
}

/* one whole line (without its end); returns 1 when an event was queued */
static int line(ab_sse *s, const char *p, size_t n) {
  if (!s->started) {
    s->started = 1;
    if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) { p += 3; n -= 3; }   /* a BOM may open the stream */
  }
  if (n == 0) return dispatch(s);
  if (p[0] == ':') return 0;
  const char *colon = memchr(p, ':', n);
  size_t flen = colon ? (size_t)(colon - p) : n;
  const char *v = colon ? colon + 1 : p + n;
  size_t vlen = (size_t)(p + n - v);
  if (vlen && *v == ' ') { v++; vlen--; }
  if (flen == 4 && memcmp(p, "data", 4) == 0) {
    if (s->data.len + vlen + 1 > s->max_event) return fail(s, AB_SSE_TOO_BIG);
    if (ab_buf_add(&s->data, v, vlen) || ab_buf_add(&s->data, "\n", 1)) return fail(s, AB_SSE_NOMEM);
    s->has_data = 1;
  } else if (flen == 5 && memcmp(p, "event", 5) == 0) {
    s->type.len = 0;
    if (vlen > s->max_event) return fail(s, AB_SSE_TOO_BIG);
    if (ab_buf_add(&s->type, v, vlen)) return fail(s, AB_SSE_NOMEM);
  }
  return 0;
}

int ab_sse_feed(ab_sse *s, const char *p, size_t n) {
  int queued = 0;
  while (n && !s->bad) {
    if (s->last_cr) {
      s->last_cr = 0;
      if (*p == '\n') { p++; n--; continue; }
    }
    size_t i = 0;
    while (i < n && p[i] != '\n' && p[i] != '\r') i++;
    /* a line is bounded whether or not it ends in this chunk */
    if (s->line.len + i + s->data.len > s->max_event) {
      fail(s, AB_SSE_TOO_BIG);
      break;
    }
    if (i == n) {
      if (ab_buf_add(&s->line, p, n)) fail(s, AB_SSE_NOMEM);
      break;
    }
    if (s->line.len) {
      if (ab_buf_add(&s->line, p, i)) {
        fail(s, AB_SSE_NOMEM);
        break;
      }
      size_t len = s->line.len;
      s->line.len = 0;      /* line() copies what it keeps: the buffer is free again */
      queued |= line(s, s->line.p, len);
    } else {
      queued |= line(s, p, i);
    }
    s->last_cr = p[i] == '\r';
    p += i + 1;
    n -= i + 1;
  }
  return queued;
}

int ab_sse_pending(const ab_sse *s) {
  return s->queue.len > s->head;
}

int ab_sse_full(const ab_sse *s) {
  return s->queue.len - s->head >= s->max_queue;
}

void ab_sse_push(lua_State *L, ab_sse *s) {
  if (s->queue.len == s->head) {
    luaL_pushfail(L);
    return;
  }
  lua_newtable(L);
  int k = 0;
  size_t off = s->head;
  while (off < s->queue.len && off - s->head < AB_SSE_READ) {
    rec r;
    memcpy(&r, s->queue.p + off, sizeof r);
    off += sizeof r;
    if (r.tlen) lua_pushlstring(L, s->queue.p + off, r.tlen);
    else lua_pushliteral(L, "message");
    lua_rawseti(L, -2, ++k);
    lua_pushlstring(L, s->queue.p + off + r.tlen, r.dlen);
    lua_rawseti(L, -2, ++k);
    off += r.tlen + r.dlen;
  }
  s->head = off;
  if (s->head == s->queue.len) {
    s->head = s->queue.len = 0;
  } else if (s->head > s->queue.len / 2) {
    /* compact: what is read never makes the buffer grow */
    memmove(s->queue.p, s->queue.p + s->head, s->queue.len - s->head);
    s->queue.len -= s->head;
    s->head = 0;
  }
}

void ab_sse_push_error(lua_State *L, const ab_sse *s) {
  switch (s->bad) {
  case AB_SSE_TOO_BIG:
    lua_pushfstring(L, "protocol error: a server-sent event larger than max_event (%d bytes)", (int)s->max_event);
    break;
  default:
    lua_pushliteral(L, "out of memory reading server-sent events");
  }
}
