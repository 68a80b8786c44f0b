/* conn:run(opts) -> run: one block on a stream block server (attach.c),
 * with core.spawn's handle shape: read() chunks, ready(), done(),
 * result(), kill(), close(). opts are core.spawn's (argv, cwd, stdin (at
 * most AB_SF_MAX_STDIN), timeout, grace, max_output, stream, quota; the server imposes its own uid,
 * environment and seccomp); they become the spawn server's message
 * (spawnproto.c), sent in a SPAWN frame. The host keeps its own
 * deadline (deadline.h's host_ms) and its own output cap: nothing the
 * server says is believed beyond what the frames' checks allow. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <time.h>
#include "attach.h"
#include "output.h"
#include "spawnproto.h"
#include "spawnreq.h"

static const char *const STREAM_NAMES[] = {"stdout", "stderr", NULL};

typedef struct ab_attach_run {
  ab_handle h;
  ab_attach *conn;             /* NULL once its frames are no longer awaited */
  uint32_t id;
  ab_out out;
  ab_sf_result res;
  int done, have_res, killed, overdue;
  char why[600];               /* a run that ended without a believable result */
  struct timespec t0, t1;
  ab_timer deadline;
} run_ud;

static void detach(run_ud *r) {
  if (r->conn && r->conn->run == r) r->conn->run = NULL;
  r->conn = NULL;
}

static void finish(run_ud *r) {
  if (r->done) return;
  r->done = 1;
  detach(r);
  ab_timer_stop(r->h.ctx, &r->deadline);
  clock_gettime(CLOCK_MONOTONIC, &r->t1);
  ab_notify(&r->h);
}

void ab_attachrun_lost(run_ud *r, const char *why) {
  if (r->done) return;
  snprintf(r->why, sizeof r->why, "%s", why);
  finish(r);
}

void ab_attachrun_frame(run_ud *r, const ab_sf_hdr *h, const unsigned char *body) {
  if (r->done || h->id != r->id) return;
  if (h->kind == AB_SF_OUT) {
    if (ab_out_keep(&r->out, h->stream - 1, (const char *)body, h->len)) ab_notify(&r->h);
    return;
  }
  if (h->kind != AB_SF_RESULT) return;
  ab_attach *conn = r->conn;
  if (ab_sf_result_decode(body, h->len, &r->res) != 0) {
    /* the server is not to be believed any more: nor its connection */
    snprintf(r->why, sizeof r->why, "the block server sent a malformed result record");
    finish(r);
    if (conn) ab_attach_fail(conn, "the block server sent a malformed result record");
    return;
  }
  r->have_res = 1;
  r->out.dropped += (size_t)r->res.dropped;
  finish(r);
}

static void overdue(ab_timer *t) {
  run_ud *r = t->owner;
  r->overdue = 1;
  if (r->conn) ab_attach_send(r->conn, AB_SF_KILL, r->id, NULL, 0);
  snprintf(r->why, sizeof r->why, "the block server did not report by the block's deadline (timeout + grace + %d s)",
           AB_DEADLINE_MARGIN_MS / 1000);
  finish(r);
}

typedef struct {
  ab_attach *conn;
  size_t len;
  double max_output;
  int stream;
  int64_t host_ms;
} encoded;

/* lua_call'd: opts at 1, the encoded at 2 (a light userdata). core.spawn's
 * parser, so the options mean what they mean there; its misuse raises. */
static int encode(lua_State *L) {
  encoded *e = lua_touserdata(L, 2);
  ab_spawn_call c;
  ab_spawn_parse(L, &c);
  if (c.server || c.sup) return luaL_error(L, "run: 'server' and 'sup' are not options of a block server's run");
  if (c.in && c.inlen > AB_SF_MAX_STDIN) return luaL_error(L, "run: stdin is larger than %d bytes", AB_SF_MAX_STDIN);
  size_t inlen = c.in ? c.inlen : 0;
  ab_sf_put32(e->conn->msg + 8, (uint32_t)inlen);
  if (inlen) memcpy(e->conn->msg + AB_SF_SPAWN_HDR, c.in, inlen);
  if (ab_proto_encode((char *)e->conn->msg + AB_SF_SPAWN_HDR + inlen, &e->len, 0, &c.a) != 0)
    return luaL_error(L, "run: the request is larger than %d bytes", AB_SPAWN_MAX_MSG);
  e->len += AB_SF_SPAWN_HDR + inlen;
  e->max_output = c.max_output;
  e->stream = c.stream;
  e->host_ms = ab_deadline_budget(c.a.o.timeout_ms, c.a.o.grace_ms).host_ms;
  return 0;
}

int ab_attachrun_new(lua_State *L) {
  ab_attach *conn = (ab_attach *)ab_handle_check(L, 1, ATTACH_MT);
  luaL_checktype(L, 2, LUA_TTABLE);
  if (!ab_attach_alive(conn) || conn->run || conn->busy_id) {
    luaL_pushfail(L);
    lua_pushstring(L, !ab_attach_alive(conn) ? conn->why : "the block server is still running an earlier block");
    lua_pushliteral(L, "spawn");
    return 3;
  }
  encoded e;
  memset(&e, 0, sizeof e);
  e.conn = conn;
  lua_pushcfunction(L, encode);
  lua_pushvalue(L, 2);
  lua_pushlightuserdata(L, &e);
  lua_call(L, 2, 0);
  if (e.max_output < 0) e.max_output = 0;
  run_ud *r = lua_newuserdatauv(L, sizeof *r, 2);
  memset(r, 0, sizeof *r);
  ab_handle_init(L, &r->h, ATTACH_RUN_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 2);   /* the connection lives as long as its runs */
  ab_out_init(&r->out, (size_t)e.max_output, e.stream, STREAM_NAMES);
  r->deadline.heap_idx = -1;
  r->deadline.cb = overdue;
  r->deadline.owner = r;
  r->conn = conn;
  r->id = conn->next_id++;
  if (conn->next_id == 0) conn->next_id = 1;
  conn->run = r;
  conn->busy_id = r->id;
  clock_gettime(CLOCK_MONOTONIC, &r->t0);
  /* the server caps what it sends at max_output; the host caps what it keeps */
  ab_sf_put64(conn->msg, (uint64_t)e.max_output);
  ab_attach_send(conn, AB_SF_SPAWN, r->id, conn->msg, e.len);
  if (e.host_ms > 0) ab_timer_start(r->h.ctx, &r->deadline, ab_now_ms() + e.host_ms);
  return 1;
}

static run_ud *check(lua_State *L) { return (run_ud *)ab_handle_check(L, 1, ATTACH_RUN_MT); }

static int r_read(lua_State *L) {
  ab_out_push_chunks(L, &check(L)->out);
  return 1;
}

static int r_done(lua_State *L) {
  lua_pushboolean(L, check(L)->done);
  return 1;
}

static int r_ready(lua_State *L) {
  run_ud *r = check(L);
  lua_pushboolean(L, r->done || ab_out_pending(&r->out));
  return 1;
}

static int r_kill(lua_State *L) {
  run_ud *r = check(L);
  if (!r->done && r->conn) {
    r->killed = 1;
    ab_attach_send(r->conn, AB_SF_KILL, r->id, NULL, 0);
  }
  return 0;
}

static void set_bool(lua_State *L, const char *k, int v) {
  lua_pushboolean(L, v);
  lua_setfield(L, -2, k);
}

static int r_result(lua_State *L) {
  run_ud *r = check(L);
  if (!r->done) {
    luaL_pushfail(L);
    return 1;
  }
  const ab_sf_result *s = &r->res;
  int ok = r->have_res;
  lua_createtable(L, 0, 12);
  if (ok && s->exit_code >= 0) {
    lua_pushinteger(L, s->exit_code);
    lua_setfield(L, -2, "exit_code");
  } else if (ok && s->signal > 0) {
    lua_pushinteger(L, s->signal);
    lua_setfield(L, -2, "signal");
  } else if (ok && s->spawn_errno) {
    lua_pushinteger(L, 127);
    lua_setfield(L, -2, "exit_code");
  }
  set_bool(L, "timed_out", (ok && s->timed_out) || r->overdue);
  set_bool(L, "cancelled", r->killed || (ok && s->cancelled));
  set_bool(L, "oom", ok && s->oom);
  set_bool(L, "quota_exceeded", ok && s->quota);
  set_bool(L, "strays", ok && s->strays);
  ab_out_set_fields(L, &r->out);
  double wall = (double)(r->t1.tv_sec - r->t0.tv_sec) + (double)(r->t1.tv_nsec - r->t0.tv_nsec) / 1e9;
  lua_pushnumber(L, wall);
  lua_setfield(L, -2, "wall");
  if (!ok) {
    lua_pushstring(L, r->why[0] ? r->why : "the block server gave no result");
    lua_setfield(L, -2, "error");
  } else if (s->no_report) {
    lua_pushliteral(L, "the supervisor process died without a report (killed?); the block server's spawn server "
                       "killed every process it left");
    lua_setfield(L, -2, "error");
  } else if (s->cancelled && !r->killed) {
    lua_pushliteral(L, "the run was cancelled from outside: its supervisor got a signal");
    lua_setfield(L, -2, "error");
  } else if (s->spawn_errno) {
    lua_pushfstring(L, "the block server could not start the block: %s", strerror(s->spawn_errno));
    lua_setfield(L, -2, "spawn_error");
  }
  return 1;
}

static int r_close(lua_State *L) {
  run_ud *r = luaL_checkudata(L, 1, ATTACH_RUN_MT);
  if (r->h.closed) return 0;
  /* still running: the server cancels it; the connection stays busy until
   * its result comes */
  if (!r->done && r->conn) ab_attach_send(r->conn, AB_SF_KILL, r->id, NULL, 0);
  detach(r);
  ab_timer_stop(r->h.ctx, &r->deadline);
  ab_out_free(&r->out);
  r->done = 1;
  ab_handle_forget(L, &r->h);
  return 0;
}

void ab_open_attachrun(lua_State *L) {
  static const luaL_Reg m[] = {{"close", r_close}, {"read", r_read}, {"done", r_done}, {"ready", r_ready},
                               {"kill", r_kill}, {"result", r_result}, {NULL, NULL}};
  ab_handle_register(L, ATTACH_RUN_MT, m);
}
