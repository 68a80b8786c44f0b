/* core.docker_attach{ url =, unix_socket =, cainfo =, sslcert =, sslkey =,
 * verify =, connect_timeout = } -> conn: the hijacked connection of POST
 * /containers/{id}/attach (url is the whole request URL), over which the
 * host talks to a warm container's stream block server (blockstream.c).
 * libcurl connects (TCP, TLS or a unix socket) on the context's multi
 * handle with CURLOPT_CONNECT_ONLY; then the request, the daemon's 101 or
 * 200 answer and the raw stream go through curl_easy_send/curl_easy_recv
 * on the reactor (a watch on a dup of curl's socket), never blocking.
 * The daemon's stream is demultiplexed (dockerio.c); the container's stdout
 * carries streamproto.h frames, checked as they come; its stderr is kept
 * (its last bytes) to explain a failure. Anything malformed makes the
 * connection dead, and the run in flight fails with why.
 *   conn:ping()    ask the server for its HELLO
 *   conn:hello()   true once it answered
 *   conn:alive()   false once the stream is unusable; conn:error() says why
 *   conn:ready()   hello or dead (task.wait); conn:done() dead
 *   conn:run(opts) one run (attachrun.c)
 *   conn:close()   (also __gc, __close) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#include "attach.h"

enum { A_CONNECTING, A_HEADERS, A_OPEN, A_DEAD };
#define MAX_HEADERS 16384
#define READ_BUDGET (1 << 20)   /* per event: a flooding peer must not hold the reactor */

int ab_attach_alive(const ab_attach *a) { return a->state != A_DEAD; }

static void unwatch(ab_attach *a) {
  ab_watch_del(a->h.ctx, &a->w);
  if (a->w.fd >= 0) close(a->w.fd);
  a->w.fd = -1;
  ab_timer_stop(a->h.ctx, &a->more);
  ab_timer_stop(a->h.ctx, &a->hello_timer);
}

void ab_attach_fail(ab_attach *a, const char *fmt, ...) {
  if (a->state == A_DEAD) return;
  a->state = A_DEAD;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(a->why, sizeof a->why, fmt, ap);
  va_end(ap);
  if (a->ndiag > 0) {
    size_t n = strlen(a->why);
    snprintf(a->why + n, sizeof a->why - n, " (the server said: %.*s)", (int)a->ndiag, a->diag);
  }
  unwatch(a);
  struct ab_attach_run *r = a->run;
  a->run = NULL;
  if (r) ab_attachrun_lost(r, a->why);
  ab_notify(&a->h);
}

static void flush(ab_attach *a) {
  if (a->state != A_HEADERS && a->state != A_OPEN) return;
  /* frames wait for the daemon's answer: it may drop what came with the
   * request before it hijacked the connection */
  size_t limit = a->state == A_HEADERS ? a->req_end : a->wq.len;
  while (a->wq_off < limit) {
    size_t n = 0;
    CURLcode c = curl_easy_send(a->easy, a->wq.p + a->wq_off, limit - a->wq_off, &n);
    if (c == CURLE_AGAIN) break;
    if (c != CURLE_OK) return ab_attach_fail(a, "sending to the Docker daemon failed: %s", curl_easy_strerror(c));
    a->wq_off += n;
  }
  if (a->wq_off == a->wq.len) a->wq.len = a->wq_off = a->req_end = 0;
  ab_watch_set(a->h.ctx, &a->w, EPOLLIN | (a->wq_off < limit ? EPOLLOUT : 0));
}

void ab_attach_send(ab_attach *a, int kind, uint32_t id, const unsigned char *p, size_t n) {
  if (a->state == A_DEAD) return;
  unsigned char h[AB_SF_HDR];
  ab_sf_put_hdr(h, kind, 0, id, (uint32_t)n);
  if (ab_buf_add(&a->wq, (const char *)h, sizeof h) || (n && ab_buf_add(&a->wq, (const char *)p, n)))
    return ab_attach_fail(a, "out of memory");
  flush(a);
}

static long server_maxlen(int kind, int stream) {
  if (kind == AB_SF_HELLO && stream == 0) return 4;
  if (kind == AB_SF_OUT && (stream == 1 || stream == 2)) return AB_SF_MAX_OUT;
  if (kind == AB_SF_RESULT && stream == 0) return AB_SF_RESULT_LEN;
  return -1;
}

static int on_frame(void *ud, const ab_sf_hdr *h, const unsigned char *body) {
  ab_attach *a = ud;
  if (h->kind == AB_SF_HELLO) {
    if (h->len != 4 || ab_sf_get32(body) != AB_SF_VERSION) return 1;
    if (!a->hello) ab_notify(&a->h);
    a->hello = 1;
    ab_timer_stop(a->h.ctx, &a->hello_timer);
    return 0;
  }
  if (h->kind == AB_SF_RESULT && h->id == a->busy_id) a->busy_id = 0;
  /* frames of a run given up (closed) are checked, then dropped */
  if (a->run) ab_attachrun_frame(a->run, h, body);
  return a->state == A_DEAD;
}

static int on_stream(void *ud, int type, const char *p, size_t n) {
  ab_attach *a = ud;
  if (a->state == A_DEAD) return 0;
  if (type == 0) {
    if (ab_sf_feed(&a->rd, (const unsigned char *)p, n, on_frame, a) != 0 && a->state != A_DEAD)
      ab_attach_fail(a, "the block server sent a malformed frame");
    return 0;
  }
  /* its stderr: the last bytes, printable */
  for (size_t i = 0; i < n; i++) {
    if (a->ndiag == sizeof a->diag) {
      memmove(a->diag, a->diag + 1, sizeof a->diag - 1);
      a->ndiag--;
    }
    unsigned char c = (unsigned char)p[i];
    a->diag[a->ndiag++] = (char)(c >= 32 && c < 127 ? c : ' ');
  }
  return 0;
}

/* The daemon's answer: "HTTP/1.1 101 UPGRADED" (or 200) then the stream. */
static void headers(ab_attach *a, const char *p, size_t n) {
  size_t old = a->hdr.len;
  /* kept NUL-terminated for sscanf */
  if (ab_buf_add(&a->hdr, p, n) || ab_buf_add(&a->hdr, "", 1)) return ab_attach_fail(a, "out of memory");
  a->hdr.len--;
  const char *end = memmem(a->hdr.p, a->hdr.len, "\r\n\r\n", 4);
  if (!end) {
    if (a->hdr.len > MAX_HEADERS) ab_attach_fail(a, "the Docker daemon's answer to attach is not HTTP");
    return;
  }
  size_t hlen = (size_t)(end - a->hdr.p) + 4;
  int status = 0;
  if (sscanf(a->hdr.p, "HTTP/1.%*1d %3d", &status) != 1) status = 0;
  if (status != 101 && status != 200) {
    size_t line = strcspn(a->hdr.p, "\r\n");
    size_t body = a->hdr.len - hlen;
    return ab_attach_fail(a, "the Docker daemon refused to attach: %.*s %.*s", (int)(line < 100 ? line : 100),
                          a->hdr.p, (int)(body < 300 ? body : 300), end + 4);
  }
  a->state = A_OPEN;
  flush(a);
  size_t rest_off = hlen - old;   /* where the stream starts in p */
  if (n > rest_off) ab_demux_each(&a->dm, p + rest_off, n - rest_off, on_stream, a);
  ab_buf_free(&a->hdr);
}

static void receive(ab_attach *a) {
  char buf[16384];
  size_t total = 0;
  while (a->state == A_HEADERS || a->state == A_OPEN) {
    if (total >= READ_BUDGET) {
      ab_timer_start(a->h.ctx, &a->more, ab_now_ms());
      return;
    }
    size_t n = 0;
    CURLcode c = curl_easy_recv(a->easy, buf, sizeof buf, &n);
    if (c == CURLE_AGAIN) return;
    if (c != CURLE_OK) return ab_attach_fail(a, "the attach stream broke: %s", curl_easy_strerror(c));
    if (n == 0)
      return ab_attach_fail(a, "the attach stream ended: the block server or its container stopped");
    total += n;
    if (a->state == A_HEADERS) headers(a, buf, n);
    else ab_demux_each(&a->dm, buf, n, on_stream, a);
    if (a->dm.bad) ab_attach_fail(a, "the Docker daemon's stream has an unknown frame type");
  }
}

static void on_event(ab_watch *w, uint32_t ev) {
  ab_attach *a = w->owner;
  if (ev & EPOLLOUT) flush(a);
  if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) receive(a);
}

static void hello_late(ab_timer *t) {
  ab_attach *a = t->owner;
  if (!a->hello) ab_attach_fail(a, "the block server did not answer in time");
}

static void on_more(ab_timer *t) { receive(t->owner); }

/* connected (TLS done): the request goes first */
static void connected(ab_curl_job *j, CURLcode code) {
  ab_attach *a = (ab_attach *)((char *)j - offsetof(ab_attach, job));
  if (a->state != A_CONNECTING) return;
  if (code != CURLE_OK)
    return ab_attach_fail(a, "cannot reach the Docker daemon: %s", a->errbuf[0] ? a->errbuf : curl_easy_strerror(code));
  curl_socket_t fd = CURL_SOCKET_BAD;
  if (curl_easy_getinfo(a->easy, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK || fd == CURL_SOCKET_BAD)
    return ab_attach_fail(a, "no socket after connecting to the Docker daemon");
  a->w.fd = fcntl(fd, F_DUPFD_CLOEXEC, 10);
  if (a->w.fd < 0) return ab_attach_fail(a, "dup: %s", strerror(errno));
  a->state = A_HEADERS;
  flush(a);
}

static int fail_ret(lua_State *L, const char *msg) {
  luaL_pushfail(L);
  lua_pushstring(L, msg);
  lua_pushliteral(L, "unreachable");
  return 3;
}

#define SETOPT(opt, val) do { if (curl_easy_setopt(e, opt, val) != CURLE_OK) return luaL_error(L, "docker_attach: cannot set %s", #opt); } while (0)

static int l_attach(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *url = ab_opt_string(L, 1, "url", NULL);
  if (!url) return luaL_error(L, "docker_attach: 'url' is required");
  const char *sock = ab_opt_string(L, 1, "unix_socket", NULL);
  const char *cainfo = ab_opt_string(L, 1, "cainfo", NULL);
  const char *sslcert = ab_opt_string(L, 1, "sslcert", NULL);
  const char *sslkey = ab_opt_string(L, 1, "sslkey", NULL);
  double ct = ab_opt_number(L, 1, "connect_timeout", 30);
  lua_getfield(L, 1, "verify");
  int verify = lua_isnil(L, -1) || lua_toboolean(L, -1);
  lua_pop(L, 1);
  const char *scheme_end = strstr(url, "://");
  const char *path = scheme_end ? strchr(scheme_end + 3, '/') : NULL;
  if (!path) return luaL_error(L, "docker_attach: 'url' must be scheme://host/path");
  CURLM *multi = ab_http_multi(L);
  ab_attach *a = lua_newuserdatauv(L, sizeof *a, 1);
  memset(a, 0, sizeof *a);
  a->w.fd = -1;
  a->state = A_DEAD;   /* until it is on the multi handle, close has nothing to undo */
  ab_handle_init(L, &a->h, ATTACH_MT);
  a->w.cb = on_event;
  a->w.owner = a;
  a->more.heap_idx = -1;
  a->more.cb = on_more;
  a->more.owner = a;
  a->hello_timer.heap_idx = -1;
  a->hello_timer.cb = hello_late;
  a->hello_timer.owner = a;
  a->job.done = connected;
  a->multi = multi;
  a->next_id = 1;
  a->rd.maxlen = server_maxlen;
  a->rd.cap = AB_SF_MAX_OUT;
  a->body = malloc(AB_SF_MAX_OUT);
  a->rd.body = a->body;
  a->msg = malloc(AB_SF_SPAWN_HDR + AB_SF_MAX_STDIN + 65536);
  char req[2048];
  int rn = snprintf(req, sizeof req, "POST %s HTTP/1.1\r\nHost: docker\r\nUser-Agent: agentbox\r\n"
                    "Content-Length: 0\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n", path);
  if (!a->body || !a->msg || rn < 0 || (size_t)rn >= sizeof req || ab_buf_add(&a->wq, req, (size_t)rn))
    return fail_ret(L, "docker_attach: out of memory or URL too long");
  a->req_end = (size_t)rn;
  CURL *e = a->easy = curl_easy_init();
  if (!e) return luaL_error(L, "agentbox: curl_easy_init failed");
  SETOPT(CURLOPT_URL, url);
  SETOPT(CURLOPT_CONNECT_ONLY, 1L);
  SETOPT(CURLOPT_PRIVATE, (char *)&a->job);
  SETOPT(CURLOPT_NOSIGNAL, 1L);
  SETOPT(CURLOPT_ERRORBUFFER, a->errbuf);
  SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long)(ct * 1000));
  SETOPT(CURLOPT_SSL_VERIFYPEER, (long)verify);
  SETOPT(CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
  SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
  if (sock) SETOPT(CURLOPT_UNIX_SOCKET_PATH, sock);
  if (cainfo) SETOPT(CURLOPT_CAINFO, cainfo);
  if (sslcert) SETOPT(CURLOPT_SSLCERT, sslcert);
  if (sslkey) SETOPT(CURLOPT_SSLKEY, sslkey);
  if (curl_multi_add_handle(multi, e) != CURLM_OK) return luaL_error(L, "docker_attach: curl_multi_add_handle failed");
  a->state = A_CONNECTING;
  return 1;
}

static ab_attach *check(lua_State *L) { return (ab_attach *)ab_handle_check(L, 1, ATTACH_MT); }

/* conn:ping(seconds): no HELLO by then makes the connection dead */
static int c_ping(lua_State *L) {
  ab_attach *a = check(L);
  double secs = luaL_optnumber(L, 2, 0);
  ab_attach_send(a, AB_SF_PING, 0, NULL, 0);
  if (secs > 0 && !a->hello) ab_timer_start(a->h.ctx, &a->hello_timer, ab_now_ms() + (int64_t)(secs * 1000));
  return 0;
}

static int c_hello(lua_State *L) {
  lua_pushboolean(L, check(L)->hello);
  return 1;
}

static int c_alive(lua_State *L) {
  lua_pushboolean(L, ab_attach_alive(check(L)));
  return 1;
}

static int c_error(lua_State *L) {
  ab_attach *a = check(L);
  if (a->state == A_DEAD) lua_pushstring(L, a->why);
  else lua_pushnil(L);
  return 1;
}

static int c_ready(lua_State *L) {
  ab_attach *a = check(L);
  lua_pushboolean(L, a->hello || a->state == A_DEAD);
  return 1;
}

static int c_done(lua_State *L) {
  lua_pushboolean(L, check(L)->state == A_DEAD);
  return 1;
}

static int c_close(lua_State *L) {
  ab_attach *a = luaL_checkudata(L, 1, ATTACH_MT);
  if (a->h.closed) return 0;
  ab_attach_fail(a, "the connection to the block server was closed");
  unwatch(a);
  if (a->easy) {
    curl_multi_remove_handle(a->multi, a->easy);   /* a connect-only connection closes with it */
    curl_easy_cleanup(a->easy);
    a->easy = NULL;
  }
  ab_buf_free(&a->wq);
  ab_buf_free(&a->hdr);
  free(a->body);
  free(a->msg);
  a->body = a->msg = NULL;
  ab_handle_forget(L, &a->h);
  return 0;
}

void ab_open_attach(lua_State *L) {
  static const luaL_Reg m[] = {{"close", c_close}, {"ping", c_ping}, {"hello", c_hello}, {"alive", c_alive},
                               {"error", c_error}, {"ready", c_ready}, {"done", c_done},
                               {"run", ab_attachrun_new}, {NULL, NULL}};
  ab_handle_register(L, ATTACH_MT, m);
  lua_pushcfunction(L, l_attach);
  lua_setfield(L, -2, "docker_attach");
}
