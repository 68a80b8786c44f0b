/* A curl easy handle on the context's multi handle (http.c) that is not a
 * core.http request: its CURLOPT_PRIVATE is an ab_curl_job, whose done
 * runs when the multi handle reports the transfer finished (for
 * CURLOPT_CONNECT_ONLY: connected, TLS included). attach.c is the other
 * user. */
#ifndef AGENTBOX_HTTPJOB_H
#define AGENTBOX_HTTPJOB_H

#include <curl/curl.h>
#include "core.h"

typedef struct ab_curl_job {
  void (*done)(struct ab_curl_job *j, CURLcode code);
} ab_curl_job;

/* The context's multi handle, made on first use (raises on failure). */
CURLM *ab_http_multi(lua_State *L);

#endif
