/* Both ends of the block server's stream protocol (streamproto.h). */
#include <string.h>
#include "streamproto.h"

void ab_sf_put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

uint32_t ab_sf_get32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

void ab_sf_put64(unsigned char *p, uint64_t v) {
  ab_sf_put32(p, (uint32_t)(v >> 32));
  ab_sf_put32(p + 4, (uint32_t)v);
}

uint64_t ab_sf_get64(const unsigned char *p) {
  return ((uint64_t)ab_sf_get32(p) << 32) | ab_sf_get32(p + 4);
}

void ab_sf_put_hdr(unsigned char h[AB_SF_HDR], int kind, int stream, uint32_t id, uint32_t len) {
  h[0] = 'a';
  h[1] = 'b';
  h[2] = (unsigned char)kind;
  h[3] = (unsigned char)stream;
  ab_sf_put32(h + 4, id);
  ab_sf_put32(h + 8, len);
}

int ab_sf_feed(ab_sf_reader *r, const unsigned char *p, size_t n,
               int (*cb)(void *ud, const ab_sf_hdr *h, const unsigned char *body), void *ud) {
  while (n > 0 && !r->bad) {
    if (!r->in_body) {
      size_t k = AB_SF_HDR - r->got;
      if (k > n) k = n;
      memcpy(r->h + r->got, p, k);
      r->got += k;
      p += k;
      n -= k;
      if (r->got < AB_SF_HDR) break;
      r->cur.kind = r->h[2];
      r->cur.stream = r->h[3];
      r->cur.id = ab_sf_get32(r->h + 4);
      r->cur.len = ab_sf_get32(r->h + 8);
      long max = r->h[0] == 'a' && r->h[1] == 'b' ? r->maxlen(r->cur.kind, r->cur.stream) : -1;
      if (max < 0 || r->cur.len > (unsigned long)max || r->cur.len > r->cap) {
        r->bad = 1;
        break;
      }
      r->got = 0;
      r->in_body = 1;
    }
    size_t k = r->cur.len - r->got;
    if (k > n) k = n;
    memcpy(r->body + r->got, p, k);
    r->got += k;
    p += k;
    n -= k;
    if (r->got < r->cur.len) break;
    r->got = 0;
    r->in_body = 0;
    if (cb(ud, &r->cur, r->body)) r->bad = 1;
  }
  return r->bad ? -1 : 0;
}

void ab_sf_result_encode(unsigned char out[AB_SF_RESULT_LEN], const ab_sf_result *r) {
  const int32_t f[10] = {r->exit_code, r->signal, r->timed_out, r->cancelled, r->oom,
                         r->quota, r->strays, r->spawn_errno, r->no_report, 0};
  for (int i = 0; i < 10; i++) ab_sf_put32(out + 4 * i, (uint32_t)f[i]);
  ab_sf_put64(out + 40, (uint64_t)r->dropped);
}

static int flag(int32_t v) { return v == 0 || v == 1; }

int ab_sf_result_decode(const unsigned char *p, size_t n, ab_sf_result *r) {
  if (n != AB_SF_RESULT_LEN) return -1;
  int32_t f[10];
  for (int i = 0; i < 10; i++) f[i] = (int32_t)ab_sf_get32(p + 4 * i);
  memset(r, 0, sizeof *r);
  r->exit_code = f[0];
  r->signal = f[1];
  r->timed_out = f[2];
  r->cancelled = f[3];
  r->oom = f[4];
  r->quota = f[5];
  r->strays = f[6];
  r->spawn_errno = f[7];
  r->no_report = f[8];
  uint64_t d = ab_sf_get64(p + 40);
  if (d > ((uint64_t)1 << 62)) return -1;
  r->dropped = (int64_t)d;
  if (r->exit_code < -1 || r->exit_code > 255 || r->signal < 0 || r->signal > 64) return -1;
  if ((r->exit_code >= 0) == (r->signal > 0) && !(r->exit_code == -1 && r->signal == 0)) return -1;
  if (!flag(r->timed_out) || !flag(r->cancelled) || !flag(r->oom) || !flag(r->quota) || !flag(r->strays) ||
      !flag(r->no_report) || f[9] != 0)
    return -1;
  if (r->spawn_errno < 0 || r->spawn_errno > 4095) return -1;
  return 0;
}
