/* A warm container's block server reached through the Engine API's attach
 * stream (attach.c: the hijacked connection; attachrun.c: one run on it).
 * The server speaks streamproto.h on the container's stdin and stdout. */
#ifndef AGENTBOX_ATTACH_H
#define AGENTBOX_ATTACH_H

#include <curl/curl.h>
#include "core.h"
#include "dockerio.h"
#include "httpjob.h"
#include "streamproto.h"

#define ATTACH_MT "agentbox.attach"
#define ATTACH_RUN_MT "agentbox.attachrun"

struct ab_attach_run;

typedef struct ab_attach {
  ab_handle h;
  ab_curl_job job;
  CURL *easy;
  CURLM *multi;
  int state;                   /* attach.c: connecting, headers, open, dead */
  ab_watch w;                  /* a dup of curl's socket: curl may drop its own watch */
  ab_timer hello_timer;        /* conn:ping(seconds) */
  ab_timer more;               /* a read budget was spent: read on at the next step */
  ab_buf wq;                   /* bytes to send (the request, then frames) */
  size_t wq_off, req_end;      /* req_end: the HTTP request's end in wq, until answered */
  ab_buf hdr;                  /* the daemon's answer to the attach request */
  ab_demux dm;                 /* the Engine's multiplexed stream (dockerio.c) */
  ab_sf_reader rd;             /* streamproto.h frames in its stdout */
  unsigned char *body;         /* rd's payload buffer */
  char diag[512];              /* the server's stderr, its last bytes */
  size_t ndiag;
  char why[512];               /* why it is dead */
  char errbuf[CURL_ERROR_SIZE];
  int hello;
  uint32_t next_id, busy_id;   /* busy_id: a run whose result has not come (0: none) */
  struct ab_attach_run *run;   /* the run whose frames are awaited */
  unsigned char *msg;          /* scratch for a SPAWN frame */
} ab_attach;

/* attach.c */
int ab_attach_alive(const ab_attach *a);
void ab_attach_send(ab_attach *a, int kind, uint32_t id, const unsigned char *p, size_t n);
/* the stream is unusable: why (printf), the run in flight fails with it */
void ab_attach_fail(ab_attach *a, const char *fmt, ...);

/* attachrun.c: frames for the run, the connection's end, conn:run */
void ab_attachrun_frame(struct ab_attach_run *r, const ab_sf_hdr *h, const unsigned char *body);
void ab_attachrun_lost(struct ab_attach_run *r, const char *why);
int ab_attachrun_new(lua_State *L);   /* conn:run(opts) */

#endif
