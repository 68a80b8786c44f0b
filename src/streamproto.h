/* The block server's stream protocol (agentbox-sup --stream, blockstream.c,
 * and the host's attach.c / attachrun.c): frames on the container's stdin
 * (host to server) and stdout (server to host), for daemons the host
 * reaches only through the Engine API (a remote DOCKER_HOST), where no
 * descriptor can be passed. Both ends are this file.
 *
 * A frame is a 12-byte header, then len bytes:
 *   'a' 'b' kind stream | id (be32) | len (be32)
 * Host to server: PING (answered by HELLO), SPAWN (payload: max_output as
 * be64, the program's stdin as be32 length and bytes, then one spawn
 * server message, spawnproto.h, sent on as it is to the server's own spawn
 * server), KILL (cancel run id).
 * Server to host: HELLO (be32 version), OUT (stream 1 stdout / 2 stderr,
 * at most AB_SF_MAX_OUT bytes of a run's output, as it comes), RESULT
 * (ab_sf_result, once per run, last).
 * The host trusts nothing the server sends: every header is checked (magic,
 * kind, stream, size for its kind) and the result's fields are range
 * checked (ab_sf_result_decode). */
#ifndef AGENTBOX_STREAMPROTO_H
#define AGENTBOX_STREAMPROTO_H

#include <stddef.h>
#include <stdint.h>

#define AB_SF_HDR 12
#define AB_SF_VERSION 1
#define AB_SF_MAX_OUT 65536
#define AB_SF_RESULT_LEN 48
#define AB_SF_MAX_STDIN (1 << 20)
#define AB_SF_SPAWN_HDR 12         /* max_output, stdin length */
enum { AB_SF_PING = 'P', AB_SF_SPAWN = 'S', AB_SF_KILL = 'K', AB_SF_HELLO = 'H', AB_SF_OUT = 'O', AB_SF_RESULT = 'R' };

typedef struct {
  int kind, stream;
  uint32_t id, len;
} ab_sf_hdr;

/* One run's end, as the server reports it. */
typedef struct {
  int32_t exit_code;    /* 0..255, -1: none (killed by a signal, or never started) */
  int32_t signal;       /* 1..64 when killed by a signal, else 0 */
  int32_t timed_out, cancelled, oom, quota, strays;   /* 0 or 1 */
  int32_t spawn_errno;  /* 0, or why the program did not start (1..4095) */
  int32_t no_report;    /* 1: the supervisor died without a report */
  int32_t pad;
  int64_t dropped;      /* output bytes the server dropped past max_output */
} ab_sf_result;

void ab_sf_put_hdr(unsigned char h[AB_SF_HDR], int kind, int stream, uint32_t id, uint32_t len);
void ab_sf_put32(unsigned char *p, uint32_t v);
uint32_t ab_sf_get32(const unsigned char *p);
void ab_sf_put64(unsigned char *p, uint64_t v);
uint64_t ab_sf_get64(const unsigned char *p);

/* An incremental frame reader: bytes in any chunking, one callback per
 * whole frame. maxlen(kind, stream) is the largest payload accepted for a
 * header (-1: not a frame this end accepts). */
typedef struct {
  unsigned char h[AB_SF_HDR];
  size_t got;            /* header bytes, then payload bytes */
  int in_body;
  ab_sf_hdr cur;
  unsigned char *body;   /* cap bytes, the caller's */
  size_t cap;
  long (*maxlen)(int kind, int stream);
  int bad;               /* a malformed header: the stream is unusable */
} ab_sf_reader;

/* Feeds n bytes; cb returns nonzero to stop (the reader is then bad).
 * Returns 0, or -1 once the stream is bad. */
int ab_sf_feed(ab_sf_reader *r, const unsigned char *p, size_t n,
               int (*cb)(void *ud, const ab_sf_hdr *h, const unsigned char *body), void *ud);

void ab_sf_result_encode(unsigned char out[AB_SF_RESULT_LEN], const ab_sf_result *r);
/* 0, or -1 when a field is out of its range (the record is not believed) */
int ab_sf_result_decode(const unsigned char *p, size_t n, ab_sf_result *r);

#endif
