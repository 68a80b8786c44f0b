/* Docker Engine byte formats: the multiplexed exec stream and ustar. */
#ifndef AGENTBOX_DOCKERIO_H
#define AGENTBOX_DOCKERIO_H

#include "output.h"

typedef struct {
  unsigned char fh[8];
  size_t fh_got, frame_left;
  int frame_type, bad;
} ab_demux;

/* Feed stream bytes; payloads go to out (stream 0 stdout, 1 stderr,
 * 2 daemon error). Returns 1 when out has new chunks; sets d->bad on an
 * unknown frame type. */
int ab_demux_feed(ab_demux *d, ab_out *out, const char *p, size_t n);
/* The same, each payload piece to cb(ud, stream, p, n) (stream as above);
 * returns the OR of cb's results. */
int ab_demux_each(ab_demux *d, const char *p, size_t n, int (*cb)(void *ud, int type, const char *p, size_t n),
                  void *ud);

#endif
