/* Growing memory: ab_buf (bytes appended, as output and request bodies
 * arrive) and ab_grow (the reactor's arrays: timer heap, ready list). */
#include <stdlib.h>
#include <string.h>
#include "core.h"

int ab_buf_add(ab_buf *b, const char *s, size_t n) {
  if (n == 0) return 0;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  return 0;
}

void ab_buf_free(ab_buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

int ab_grow(void **arr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t n = *cap ? *cap * 2 : 16;
  while (n < need) n *= 2;
  void *p = realloc(*arr, n * elem);
  if (!p) return -1;
  *arr = p;
  *cap = n;
  return 0;
}
