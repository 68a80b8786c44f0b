/* core.http: requests on the reactor's curl multi handle (socket API), over
 * TCP, TLS or a unix socket. libcurl callbacks only append to C buffers; Lua
 * sees results through handles after step(). Connections are reused by the
 * multi handle's cache. With `demux`, the body is the Docker Engine's
 * multiplexed exec stream, split by dockerio.c as it arrives; with `sse`, a
 * text/event-stream body is framed into events by sse.c as it arrives (an
 * error status or a JSON body is kept whole instead, as without it). */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include "core.h"
#include "dockerio.h"
#include "output.h"
#include "sse.h"

#define HTTP_MT "agentbox.http"

static const char *const BODY_NAMES[] = {"body", NULL, NULL};
static const char *const DEMUX_NAMES[] = {"stdout", "stderr", "error"};

typedef struct sockw {
  ab_watch w;
  struct http_state *hs;
  struct sockw *next_dead;
  int dead;
} sockw;

typedef struct http_state {
  ab_ctx *ctx;
  CURLM *multi;
  ab_timer timer;
  sockw *dead;
} http_state;

typedef struct {
  ab_handle h;
  http_state *hs;
  CURL *easy;
  struct curl_slist *hdrs;
  ab_buf resp_hdrs;
  ab_out out;
  int done, demux, plain, streaming, too_big, sse, sse_mode, paused;
  CURLcode code;
  long status;
  ab_demux dm;
  ab_sse events;
  char errbuf[CURL_ERROR_SIZE];
} http_ud;

static void check_done(http_state *hs);

static void sock_cb_event(ab_watch *w, uint32_t ev) {
  sockw *s = w->owner;
  http_state *hs = s->hs;
  int flags = 0;
  if (s->dead) return;
  if (ev & EPOLLIN) flags |= CURL_CSELECT_IN;
  if (ev & EPOLLOUT) flags |= CURL_CSELECT_OUT;
  if (ev & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
  int running;
  curl_multi_socket_action(hs->multi, w->fd, flags, &running);
  check_done(hs);
}

static int socket_fn(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp) {
  http_state *hs = userp;
  sockw *s = socketp;
  (void)e;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      ab_watch_del(hs->ctx, &s->w);
      curl_multi_assign(hs->multi, fd, NULL);
      /* an event for it may still sit in this step's batch: free later */
      s->dead = 1;
      s->next_dead = hs->dead;
      hs->dead = s;
    }
    return 0;
  }
  if (!s) {
    s = calloc(1, sizeof *s);
    if (!s) return -1;
    s->w.fd = fd;
    s->w.cb = sock_cb_event;
    s->w.owner = s;
    s->hs = hs;
    curl_multi_assign(hs->multi, fd, s);
  }
  uint32_t ev = 0;
  if (what & CURL_POLL_IN) ev |= EPOLLIN;
  if (what & CURL_POLL_OUT) ev |= EPOLLOUT;
  ab_watch_set(hs->ctx, &s->w, ev);
  return 0;
}

static void timer_fire(ab_timer *t) {
  http_state *hs = t->owner;
  int running;
  curl_multi_socket_action(hs->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(hs);
}

static int timer_fn(CURLM *m, long timeout_ms, void *userp) {
  http_state *hs = userp;
  (void)m;
  if (timeout_ms < 0) ab_timer_stop(hs->ctx, &hs->timer);
  else ab_timer_start(hs->ctx, &hs->timer, ab_now_ms() + timeout_ms);
  return 0;
}

static void free_dead(ab_ctx *c) {
  http_state *hs = c->http;
  while (hs && hs->dead) {
    sockw *s = hs->dead;
    hs->dead = s->next_dead;
    free(s);
  }
}

static void http_free(ab_ctx *c) {
  http_state *hs = c->http;
  if (!hs) return;
  ab_timer_stop(c, &hs->timer);
  curl_multi_cleanup(hs->multi);   /* calls socket_fn REMOVE for what is left */
  free_dead(c);
  free(hs);
  c->http = NULL;
}

static http_state *state(lua_State *L) {
  ab_ctx *c = ab_ctx_get(L);
  if (c->http) return c->http;
  CURLM *multi = curl_multi_init();
  if (!multi) luaL_error(L, "agentbox: curl_multi_init failed");
  http_state *hs = calloc(1, sizeof *hs);
  if (!hs) {
    curl_multi_cleanup(multi);
    luaL_error(L, "agentbox: out of memory");
    return NULL;
  }
  hs->ctx = c;
  hs->multi = multi;
  hs->timer.heap_idx = -1;
  hs->timer.cb = timer_fire;
  hs->timer.owner = hs;
  curl_multi_setopt(hs->multi, CURLMOPT_SOCKETFUNCTION, socket_fn);
  curl_multi_setopt(hs->multi, CURLMOPT_SOCKETDATA, hs);
  curl_multi_setopt(hs->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
  curl_multi_setopt(hs->multi, CURLMOPT_TIMERDATA, hs);
  c->http = hs;
  c->http_free = http_free;
  c->http_after_step = free_dead;
  return hs;
}

static void finish(http_ud *u, CURLcode code) {
  if (u->done) return;
  u->done = 1;
  u->code = code;
  curl_easy_getinfo(u->easy, CURLINFO_RESPONSE_CODE, &u->status);
  curl_multi_remove_handle(u->hs->multi, u->easy);
  curl_easy_cleanup(u->easy);
  u->easy = NULL;
  curl_slist_free_all(u->hdrs);
  u->hdrs = NULL;
  ab_notify(&u->h);
}

static void check_done(http_state *hs) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(hs->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    http_ud *u = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&u);
    if (u) finish(u, m->data.result);
  }
}

/* Events only from a successful event stream: an error status or a JSON
 * body (a server that ignored the request to stream) is a whole body. */
static void choose_sse(http_ud *u) {
  long code = 0;
  char *ctype = NULL;
  u->sse_mode = -1;
  curl_easy_getinfo(u->easy, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_getinfo(u->easy, CURLINFO_CONTENT_TYPE, &ctype);
  if (code >= 300 || (ctype && strstr(ctype, "json"))) return;
  u->sse_mode = 1;
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *ud) {
  http_ud *u = ud;
  size_t n = size * nmemb;
  if (u->sse && !u->sse_mode) choose_sse(u);
  if (u->sse_mode == 1) {
    /* backpressure: a reader behind by a whole body's worth stops the
     * transfer (curl delivers these bytes again on unpause) */
    if (ab_sse_full(&u->events)) {
      u->paused = 1;
      return CURL_WRITEFUNC_PAUSE;
    }
    if (ab_sse_feed(&u->events, p, n)) ab_notify(&u->h);
    return u->events.bad ? 0 : n;
  }
  if (u->demux && !u->plain) {
    long code = 0;
    curl_easy_getinfo(u->easy, CURLINFO_RESPONSE_CODE, &code);
    /* an error answer (404 no such exec, 409 not running) is JSON, not frames */
    if (code >= 300) u->plain = 1;
  }
  if (u->demux && !u->plain) {
    if (ab_demux_feed(&u->dm, &u->out, p, n)) ab_notify(&u->h);
    return u->dm.bad ? 0 : n;
  }
  size_t before = u->out.dropped;
  if (ab_out_keep(&u->out, 0, p, n)) ab_notify(&u->h);
  if (u->out.dropped > before && !u->streaming) {
    u->too_big = 1;
    return 0;          /* a whole-body response past max_body is an error */
  }
  return n;
}

static size_t header_cb(char *p, size_t size, size_t nmemb, void *ud) {
  http_ud *u = ud;
  size_t n = size * nmemb;
  if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) u->resp_hdrs.len = 0;   /* a new response (after 100) */
  if (ab_buf_add(&u->resp_hdrs, p, n)) return 0;
  return n;
}

static void add_header(lua_State *L, http_ud *u, const char *line) {
  struct curl_slist *l = curl_slist_append(u->hdrs, line);
  if (!l) luaL_error(L, "agentbox: out of memory");
  u->hdrs = l;
}

#define SETOPT(opt, val) do { if (curl_easy_setopt(e, opt, val) != CURLE_OK) return luaL_error(L, "http: cannot set %s", #opt); } while (0)

/* core.http{ method, url, headers, body, unix_socket, connect_timeout,
 *            timeout, http_version, stream, demux, sse, max_event, max_body,
 *            verify, cainfo, sslcert, sslkey } -> request handle */
static int l_http(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  http_state *hs = state(L);
  const char *url = ab_opt_string(L, 1, "url", NULL);
  if (!url) return luaL_error(L, "http: 'url' is required");
  const char *method = ab_opt_string(L, 1, "method", "GET");
  const char *unix_socket = ab_opt_string(L, 1, "unix_socket", NULL);
  const char *version = ab_opt_string(L, 1, "http_version", "1.1");
  const char *cainfo = ab_opt_string(L, 1, "cainfo", NULL);
  const char *sslcert = ab_opt_string(L, 1, "sslcert", NULL);
  const char *sslkey = ab_opt_string(L, 1, "sslkey", NULL);
  double connect_timeout = ab_opt_number(L, 1, "connect_timeout", 30);
  double timeout = ab_opt_number(L, 1, "timeout", 0);
  double max_body = ab_opt_number(L, 1, "max_body", 64.0 * 1024 * 1024);
  double max_event = ab_opt_number(L, 1, "max_event", 1024.0 * 1024);
  if (connect_timeout < 0 || timeout < 0 || max_body < 0 || max_event < 1)
    return luaL_error(L, "http: timeouts and max_body must be >= 0, max_event >= 1");
  lua_getfield(L, 1, "verify");
  int verify = lua_isnil(L, -1) || lua_toboolean(L, -1);
  lua_getfield(L, 1, "stream");
  int streaming = lua_toboolean(L, -1);
  lua_getfield(L, 1, "demux");
  int dmx = lua_toboolean(L, -1);
  lua_getfield(L, 1, "sse");
  int sse = lua_toboolean(L, -1);
  lua_pop(L, 4);
  if (sse && (dmx || streaming)) return luaL_error(L, "http: sse excludes stream and demux");
  size_t blen = 0;
  const char *body = NULL;
  int bty = lua_getfield(L, 1, "body");
  if (bty == LUA_TSTRING) body = lua_tolstring(L, -1, &blen);
  else if (bty != LUA_TNIL) return luaL_error(L, "http: 'body' must be a string");
  lua_pop(L, 1);
  long hv;
  if (strcmp(version, "1.1") == 0) hv = CURL_HTTP_VERSION_1_1;
  else if (strcmp(version, "2") == 0) hv = CURL_HTTP_VERSION_2TLS;
  else return luaL_error(L, "http: http_version must be \"1.1\" or \"2\"");

  http_ud *u = lua_newuserdatauv(L, sizeof *u, 1);
  memset(u, 0, sizeof *u);
  ab_handle_init(L, &u->h, HTTP_MT);
  u->hs = hs;
  u->demux = dmx;
  u->sse = sse;
  u->streaming = streaming || dmx;
  ab_out_init(&u->out, (size_t)max_body, u->streaming, dmx ? DEMUX_NAMES : BODY_NAMES);
  /* unread events may wait up to a whole body's worth */
  ab_sse_init(&u->events, (size_t)max_event, (size_t)max_body > (size_t)max_event ? (size_t)max_body : (size_t)max_event);
  u->done = 1;   /* until added to the multi handle, close has nothing to undo */
  CURL *e = u->easy = curl_easy_init();
  if (!e) return luaL_error(L, "agentbox: curl_easy_init failed");

  int hty = lua_getfield(L, 1, "headers");
  if (hty == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -2) == LUA_TNUMBER && lua_type(L, -1) == LUA_TSTRING) {
        add_header(L, u, lua_tostring(L, -1));
      } else if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
        lua_pushfstring(L, "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1));
        add_header(L, u, lua_tostring(L, -1));
        lua_pop(L, 1);
      } else {
        return luaL_error(L, "http: headers must be \"Name: value\" strings or name = value pairs");
      }
      lua_pop(L, 1);
    }
  } else if (hty != LUA_TNIL) return luaL_error(L, "http: 'headers' must be a table");
  lua_pop(L, 1);
  add_header(L, u, "Expect:");   /* no 100-continue round trip on uploads */

  SETOPT(CURLOPT_URL, url);
  SETOPT(CURLOPT_PRIVATE, (char *)u);
  SETOPT(CURLOPT_NOSIGNAL, 1L);
  SETOPT(CURLOPT_HTTPHEADER, u->hdrs);
  SETOPT(CURLOPT_WRITEFUNCTION, write_cb);
  SETOPT(CURLOPT_WRITEDATA, u);
  SETOPT(CURLOPT_HEADERFUNCTION, header_cb);
  SETOPT(CURLOPT_HEADERDATA, u);
  SETOPT(CURLOPT_ERRORBUFFER, u->errbuf);
  SETOPT(CURLOPT_HTTP_VERSION, hv);
  SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long)(connect_timeout * 1000));
  SETOPT(CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
  SETOPT(CURLOPT_SSL_VERIFYPEER, (long)verify);
  SETOPT(CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
  SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
  if (unix_socket) SETOPT(CURLOPT_UNIX_SOCKET_PATH, unix_socket);
  if (cainfo) SETOPT(CURLOPT_CAINFO, cainfo);
  if (sslcert) SETOPT(CURLOPT_SSLCERT, sslcert);
  if (sslkey) SETOPT(CURLOPT_SSLKEY, sslkey);
  if (strcmp(method, "GET") == 0) SETOPT(CURLOPT_HTTPGET, 1L);
  else if (strcmp(method, "HEAD") == 0) SETOPT(CURLOPT_NOBODY, 1L);
  else SETOPT(CURLOPT_CUSTOMREQUEST, method);
  if (body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
    SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    SETOPT(CURLOPT_COPYPOSTFIELDS, body ? body : "");
  }
  if (curl_multi_add_handle(hs->multi, e) != CURLM_OK) return luaL_error(L, "http: curl_multi_add_handle failed");
  u->done = 0;
  return 1;
}

static http_ud *check_req(lua_State *L) {
  return (http_ud *)ab_handle_check(L, 1, HTTP_MT);
}

static int r_close(lua_State *L) {
  http_ud *u = luaL_checkudata(L, 1, HTTP_MT);
  if (u->h.closed) return 0;
  if (u->easy) {
    if (!u->done) curl_multi_remove_handle(u->hs->multi, u->easy);
    curl_easy_cleanup(u->easy);
    u->easy = NULL;
  }
  curl_slist_free_all(u->hdrs);
  u->hdrs = NULL;
  u->done = 1;
  ab_handle_forget(L, &u->h);
  ab_out_free(&u->out);
  ab_sse_free(&u->events);
  ab_buf_free(&u->resp_hdrs);
  return 0;
}

static int r_done(lua_State *L) {
  lua_pushboolean(L, check_req(L)->done);
  return 1;
}

static int r_ready(lua_State *L) {
  http_ud *u = check_req(L);
  lua_pushboolean(L, u->done || ab_out_pending(&u->out) || ab_sse_pending(&u->events));
  return 1;
}

/* read() -> { name1, data1, ... } | fail: chunks of a streamed body, or
 * with sse, whole events as { type1, data1, ... } */
static int r_read(lua_State *L) {
  http_ud *u = check_req(L);
  if (u->sse) {
    ab_sse_push(L, &u->events);
    if (u->paused && u->easy && !u->done) {
      u->paused = 0;
      curl_easy_pause(u->easy, CURLPAUSE_CONT);   /* may feed the queue again at once */
    }
  } else ab_out_push_chunks(L, &u->out);
  return 1;
}

static void push_headers(lua_State *L, const ab_buf *b) {
  lua_newtable(L);
  const char *p = b->p, *end = b->p + b->len;
  while (p && p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *le = eol ? eol : end;
    const char *colon = memchr(p, ':', (size_t)(le - p));
    if (colon && colon > p) {
      luaL_Buffer nb;
      luaL_buffinit(L, &nb);
      for (const char *q = p; q < colon; q++) luaL_addchar(&nb, (char)((*q >= 'A' && *q <= 'Z') ? *q + 32 : *q));
      luaL_pushresult(&nb);
      const char *v = colon + 1, *ve = le;
      while (v < ve && (*v == ' ' || *v == '\t')) v++;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ')) ve--;
      lua_pushlstring(L, v, (size_t)(ve - v));
      lua_rawset(L, -3);
    }
    p = eol ? eol + 1 : end;
  }
}

/* doc/errors.md's code for a failed transfer */
static const char *error_code(const http_ud *u) {
  if (u->too_big || u->dm.bad || u->events.bad) return "protocol";
  switch (u->code) {
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_CONNECT:
    return "unreachable";
  case CURLE_OPERATION_TIMEDOUT:
    return "timeout";
  default:
    return "transport";
  }
}

/* result() -> { status, headers, body } | nil, message, code, curl_code
 * (code from doc/errors.md; nil, "running", "running" until done) */
static int r_result(lua_State *L) {
  http_ud *u = check_req(L);
  if (!u->done) {
    luaL_pushfail(L);
    lua_pushliteral(L, "running");
    lua_pushliteral(L, "running");
    return 3;
  }
  if (u->code != CURLE_OK && !(u->demux && u->code == CURLE_PARTIAL_FILE)) {
    luaL_pushfail(L);
    if (u->too_big)
      lua_pushfstring(L, "response body larger than max_body (%d bytes)", (int)u->out.max);
    else if (u->events.bad)
      ab_sse_push_error(L, &u->events);
    else if (u->dm.bad)
      lua_pushliteral(L, "protocol error: unknown frame type in the multiplexed stream");
    else
      lua_pushstring(L, u->errbuf[0] ? u->errbuf : curl_easy_strerror(u->code));
    lua_pushstring(L, error_code(u));
    lua_pushinteger(L, (lua_Integer)u->code);
    return 4;
  }
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, u->status);
  lua_setfield(L, -2, "status");
  push_headers(L, &u->resp_hdrs);
  lua_setfield(L, -2, "headers");
  lua_pushboolean(L, u->sse_mode == 1);
  lua_setfield(L, -2, "events");    /* the body was read as events, not kept */
  if (u->demux && !u->plain) {
    ab_out_set_fields(L, &u->out);
  } else {
    lua_pushlstring(L, u->out.merged.p ? u->out.merged.p : "", u->out.merged.len);
    lua_setfield(L, -2, "body");
    lua_pushinteger(L, (lua_Integer)u->out.dropped);
    lua_setfield(L, -2, "dropped");
  }
  return 1;
}

void ab_open_http(lua_State *L) {
  static const luaL_Reg m[] = {
    {"close", r_close}, {"done", r_done}, {"ready", r_ready},
    {"read", r_read}, {"result", r_result}, {NULL, NULL}};
  curl_global_init(CURL_GLOBAL_DEFAULT);
  ab_handle_register(L, HTTP_MT, m);
  lua_pushcfunction(L, l_http);
  lua_setfield(L, -2, "http");
}
