/* C11 tests of libevqueue through include/evqueue.h. Built and run by
 * tests/c/run.sh: linked dynamically and statically, with
 * -Wall -Wextra -Werror -fsanitize=address,undefined. Exits non-zero on the
 * first failed check. */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include "evqueue.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int checks;

#define CHECK(cond)                                                          \
  do {                                                                       \
    checks++;                                                                \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__, \
              __LINE__, #cond, evq_last_error());                            \
      exit(1);                                                               \
    }                                                                        \
  } while (0)

#define CHECK_STATUS(call, expected)                                          \
  do {                                                                        \
    evq_status got_ = (call);                                                 \
    checks++;                                                                 \
    if (got_ != (expected)) {                                                 \
      fprintf(stderr, "%s:%d: %s returned %d (%s), expected %s (last error: %s)\n", \
              __FILE__, __LINE__, #call, (int)got_, evq_status_str((int)got_), \
              #expected, evq_last_error());                                   \
      exit(1);                                                                \
    }                                                                         \
  } while (0)

#define PROP(k, v) {(k), strlen(k), (v), strlen(v)}

static evq_event make_event(const char *name, const evq_property *props, size_t n) {
  evq_event e;
  memset(&e, 0, sizeof e);
  e.name = name;
  e.name_len = strlen(name);
  e.properties = props;
  e.property_count = n;
  return e;
}

static int text_is(const char *p, size_t len, const char *want) {
  return len == strlen(want) && memcmp(p, want, len) == 0;
}

static evq_queue *new_queue(size_t capacity, size_t workers, uint32_t overflow) {
  evq_config c = evq_config_default();
  c.capacity = capacity;
  c.workers = workers;
  c.overflow = overflow;
  evq_queue *q = NULL;
  CHECK_STATUS(evq_new(&c, &q), EVQ_OK);
  CHECK(q != NULL);
  return q;
}

static uint64_t pushed(const evq_queue *q) {
  evq_queue_stats s;
  CHECK_STATUS(evq_stats(q, &s), EVQ_OK);
  return s.pushed;
}

/* ------------------------------------------------------------------ */

static void test_version_and_status(void) {
  CHECK(strcmp(evq_version(), EVQ_VERSION_STRING) == 0);
  for (int s = EVQ_OK; s <= EVQ_MALFORMED; s++) CHECK(strlen(evq_status_str(s)) > 0);
  CHECK(strcmp(evq_status_str(-1), "unknown status") == 0);
  CHECK(strcmp(evq_status_str(EVQ_MALFORMED + 1), "unknown status") == 0);
}

static void test_config(void) {
  evq_config d = evq_config_default();
  CHECK(d.capacity == 65536 && d.slot_bytes == 256 && d.workers == 8);
  CHECK(d.overflow == EVQ_OVERFLOW_OVERWRITE && d.claim_batch == 32);
  CHECK(d.worker_nice == 5 && d.lag == EVQ_LAG_HEADROOM);

  evq_queue *q = (evq_queue *)&d; /* must be overwritten with NULL */
  evq_config bad = d;
  bad.capacity = 1000; /* not a power of two */
  CHECK_STATUS(evq_new(&bad, &q), EVQ_INVALID_CONFIG);
  CHECK(q == NULL);
  CHECK(strstr(evq_last_error(), "1000") != NULL);
  bad = d; bad.slot_bytes = 100; /* not a multiple of 8 */
  CHECK_STATUS(evq_new(&bad, &q), EVQ_INVALID_CONFIG);
  bad = d; bad.workers = 0;
  CHECK_STATUS(evq_new(&bad, &q), EVQ_INVALID_CONFIG);
  bad = d; bad.workers = 100000;
  CHECK_STATUS(evq_new(&bad, &q), EVQ_INVALID_CONFIG);
  bad = d; bad.overflow = 7;
  CHECK_STATUS(evq_new(&bad, &q), EVQ_INVALID_CONFIG);
  CHECK(strstr(evq_last_error(), "overflow 7") != NULL);
  bad = d; bad.worker_nice = 40; /* nice values span 40 levels */
  CHECK_STATUS(evq_new(&bad, &q), EVQ_INVALID_CONFIG);
  CHECK(strstr(evq_last_error(), "worker nice 40") != NULL);
  bad = d; bad.worker_nice = 300; /* beyond a byte: refused, not wrapped */
  CHECK_STATUS(evq_new(&bad, &q), EVQ_INVALID_CONFIG);
  CHECK(q == NULL);
  bad = d; bad.lag = 3;
  CHECK_STATUS(evq_new(&bad, &q), EVQ_INVALID_CONFIG);
  CHECK(q == NULL);
  CHECK(strstr(evq_last_error(), "lag 3") != NULL);
  bad = d; bad.claim_batch = 0;
  CHECK_STATUS(evq_new(&bad, &q), EVQ_INVALID_CONFIG);
  bad = d; bad.claim_batch = 5000;
  CHECK_STATUS(evq_new(&bad, &q), EVQ_INVALID_CONFIG);
  CHECK(q == NULL);
  CHECK_STATUS(evq_new(&d, NULL), EVQ_NULL_POINTER);

  /* NULL config: the defaults. */
  CHECK_STATUS(evq_new(NULL, &q), EVQ_OK);
  evq_queue_stats s;
  CHECK_STATUS(evq_stats(q, &s), EVQ_OK);
  CHECK(s.capacity == 65536 && s.workers == 8);
  evq_free(q);
  evq_free(NULL);
  evq_subscriber_free(NULL);
}

/* ------------------------------------------------------------------ */
/* Four threads push at once; handlers by name and catch-all. */

#define THREADS 4
#define PER_THREAD 20000

struct counters {
  atomic_ulong kills;
  atomic_ulong any;
  atomic_ulong bad_props;
  atomic_ulong per_thread[THREADS];
};

static int on_kill(const evq_event *e, void *user) {
  struct counters *c = user;
  /* properties: shard=<digit>, weapon=bow */
  if (e->property_count != 2 || !text_is(e->properties[0].key, e->properties[0].key_len, "shard") ||
      e->properties[0].value_len != 1 ||
      !text_is(e->properties[1].value, e->properties[1].value_len, "bow")) {
    atomic_fetch_add(&c->bad_props, 1);
    return 1;
  }
  int shard = e->properties[0].value[0] - '0';
  if (shard < 0 || shard >= THREADS) return 2;
  atomic_fetch_add(&c->per_thread[shard], 1);
  atomic_fetch_add(&c->kills, 1);
  return 0;
}

static int on_any_count(const evq_event *e, void *user) {
  (void)e;
  atomic_fetch_add(&((struct counters *)user)->any, 1);
  return 0;
}

struct pusher {
  const evq_queue *q;
  int shard;
  int failures;
};

static void *push_thread(void *arg) {
  struct pusher *p = arg;
  char shard[2] = {(char)('0' + p->shard), 0};
  evq_property props[2] = {PROP("shard", shard), PROP("weapon", "bow")};
  evq_event kill = make_event("kill", props, 2);
  evq_event chat = make_event("chat", NULL, 0);
  for (int i = 0; i < PER_THREAD; i++) {
    if (evq_push(p->q, (i % 4 == 3) ? &chat : &kill, NULL) != EVQ_OK) p->failures++;
  }
  return NULL;
}

static void run_pushers(const evq_queue *q, struct pusher *ps) {
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) {
    ps[i].q = q;
    ps[i].shard = i;
    ps[i].failures = 0;
    CHECK(pthread_create(&t[i], NULL, push_thread, &ps[i]) == 0);
  }
  for (int i = 0; i < THREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
  for (int i = 0; i < THREADS; i++) CHECK(ps[i].failures == 0);
}

static void test_threads_and_handlers(void) {
  /* Room for everything: no overwrite, so every count is exact. */
  evq_queue *q = new_queue(1 << 17, 3, EVQ_OVERFLOW_OVERWRITE);
  struct counters c;
  memset(&c, 0, sizeof c);
  CHECK_STATUS(evq_on(q, "kill", 4, on_kill, &c), EVQ_OK);
  CHECK_STATUS(evq_on_any(q, on_any_count, &c), EVQ_OK);
  CHECK_STATUS(evq_start(q), EVQ_OK);
  CHECK_STATUS(evq_start(q), EVQ_ALREADY_STARTED);
  struct pusher ps[THREADS];
  run_pushers(q, ps);
  CHECK_STATUS(evq_flush(q, 30000), EVQ_OK);
  const unsigned long total = (unsigned long)THREADS * PER_THREAD;
  const unsigned long kills = total / 4 * 3;
  CHECK(atomic_load(&c.kills) == kills);
  CHECK(atomic_load(&c.any) == total);
  CHECK(atomic_load(&c.bad_props) == 0);
  for (int i = 0; i < THREADS; i++) CHECK(atomic_load(&c.per_thread[i]) == PER_THREAD / 4 * 3);
  evq_queue_stats s;
  CHECK_STATUS(evq_stats(q, &s), EVQ_OK);
  CHECK(s.pushed == total && s.handled == total && s.delivered == total);
  CHECK(s.overwritten == 0 && s.rejected == 0 && s.depth == 0 && s.popped == 0);
  CHECK(s.handler_errors == 0 && s.panics == 0);

  /* evq_off removes the named handler only. */
  size_t removed = 0;
  CHECK_STATUS(evq_off(q, "kill", 4, &removed), EVQ_OK);
  CHECK(removed == 1);
  evq_property props[2] = {PROP("shard", "0"), PROP("weapon", "bow")};
  evq_event kill = make_event("kill", props, 2);
  CHECK_STATUS(evq_push(q, &kill, NULL), EVQ_OK);
  CHECK_STATUS(evq_flush(q, 10000), EVQ_OK);
  CHECK(atomic_load(&c.kills) == kills && atomic_load(&c.any) == total + 1);
  CHECK_STATUS(evq_off_any(q, &removed), EVQ_OK);
  CHECK(removed == 1);

  evq_shutdown_report r;
  CHECK_STATUS(evq_shutdown(q, 10000, &r), EVQ_OK);
  CHECK(r.pushed == total + 1 && r.handled == total + 1 && r.left == 0 && !r.timed_out);
  CHECK(r.pushed == r.handled + r.popped + r.overwritten + r.rejected + r.left);
  evq_free(q);
}

/* Overwrite under load, pull mode, exact accounting: 4 threads push 80000
 * events into 1024 slots while nobody drains; then pop what is left. */
static void test_threads_overwrite_accounting(void) {
  evq_queue *q = new_queue(1024, 1, EVQ_OVERFLOW_OVERWRITE);
  struct pusher ps[THREADS];
  run_pushers(q, ps);
  size_t len = evq_pop_buffer_size(q);
  uint8_t *buf = malloc(len);
  CHECK(buf != NULL);
  evq_payload p;
  uint64_t popped = 0, last_seq = 0;
  evq_status st;
  while ((st = evq_try_pop(q, buf, len, &p)) == EVQ_OK) {
    CHECK(p.kind == EVQ_PAYLOAD_EVENT);
    CHECK(popped == 0 || p.event.seq > last_seq); /* push order */
    last_seq = p.event.seq;
    popped++;
  }
  CHECK(st == EVQ_EMPTY);
  CHECK(popped > 0 && popped <= 1024);
  evq_queue_stats s;
  CHECK_STATUS(evq_stats(q, &s), EVQ_OK);
  const uint64_t total = (uint64_t)THREADS * PER_THREAD;
  CHECK(s.pushed == total);
  CHECK(s.popped == popped);
  CHECK(s.overwritten + s.popped == total);
  CHECK(s.lost == s.overwritten && s.rejected == 0);
  CHECK(s.depth == 0 && s.handled == 0);
  free(buf);
  evq_free(q);
}

/* ------------------------------------------------------------------ */
/* Handler errors and the error hook. */

struct hook_state {
  atomic_int calls;
  atomic_int last_code;
  char last_name[32];
  char last_message[64];
};

static int fail_on_bad(const evq_event *e, void *user) {
  (void)user;
  return text_is(e->name, e->name_len, "ad_view") ? 503 : 0;
}

static void record_failure(const evq_event *e, const evq_failure *f, void *user) {
  struct hook_state *h = user;
  snprintf(h->last_name, sizeof h->last_name, "%.*s", (int)e->name_len, e->name);
  snprintf(h->last_message, sizeof h->last_message, "%s", f->message);
  atomic_store(&h->last_code, f->code);
  atomic_fetch_add(&h->calls, 1);
}

static int raw_fails(const evq_raw *r, void *user) {
  (void)r;
  (void)user;
  return 9;
}

static void test_errors_and_hook(void) {
  evq_queue *q = new_queue(64, 1, EVQ_OVERFLOW_OVERWRITE);
  struct hook_state h;
  memset(&h, 0, sizeof h);
  CHECK_STATUS(evq_on_any(q, fail_on_bad, NULL), EVQ_OK);
  CHECK_STATUS(evq_on_error(q, record_failure, &h), EVQ_OK);
  CHECK_STATUS(evq_on_raw(q, raw_fails, NULL), EVQ_OK);
  CHECK_STATUS(evq_start(q), EVQ_OK);
  evq_event ok = make_event("match_end", NULL, 0), bad = make_event("ad_view", NULL, 0);
  CHECK_STATUS(evq_push(q, &ok, NULL), EVQ_OK);
  CHECK_STATUS(evq_push(q, &bad, NULL), EVQ_OK);
  CHECK_STATUS(evq_flush(q, 10000), EVQ_OK);
  CHECK(atomic_load(&h.calls) == 1 && atomic_load(&h.last_code) == 503);
  CHECK(strcmp(h.last_name, "ad_view") == 0);
  CHECK(strcmp(h.last_message, "handler returned 503") == 0);
  uint32_t damage = 250;
  CHECK_STATUS(evq_push_raw(q, &damage, sizeof damage, 0, NULL), EVQ_OK);
  CHECK_STATUS(evq_flush(q, 10000), EVQ_OK);
  CHECK(atomic_load(&h.calls) == 2 && atomic_load(&h.last_code) == 9);
  CHECK(strcmp(h.last_name, "<raw>") == 0);
  evq_queue_stats s;
  CHECK_STATUS(evq_stats(q, &s), EVQ_OK);
  CHECK(s.handler_errors == 2 && s.handled == 3 && s.panics == 0);
  evq_free(q);
}

/* ------------------------------------------------------------------ */
/* Session events. */

struct sessions {
  atomic_int starts;
  atomic_int ends;
  atomic_int good_reason;
};

static int on_start(const evq_event *e, void *user) {
  struct sessions *s = user;
  if (!text_is(e->name, e->name_len, "session_start") || e->property_count != 1) return 1;
  atomic_fetch_add(&s->starts, 1);
  return 0;
}

static int on_end(const evq_event *e, void *user) {
  struct sessions *s = user;
  atomic_fetch_add(&s->ends, 1);
  if (e->property_count == 2 &&
      text_is(e->properties[0].key, e->properties[0].key_len, "reason") &&
      text_is(e->properties[0].value, e->properties[0].value_len, "logout") &&
      text_is(e->properties[1].value, e->properties[1].value_len, "ada"))
    atomic_fetch_add(&s->good_reason, 1);
  return 0;
}

static void test_sessions(void) {
  evq_queue *q = new_queue(64, 2, EVQ_OVERFLOW_OVERWRITE);
  struct sessions s;
  memset(&s, 0, sizeof s);
  CHECK_STATUS(evq_on_session_start(q, on_start, &s), EVQ_OK);
  CHECK_STATUS(evq_on_session_end(q, on_end, &s), EVQ_OK);
  CHECK_STATUS(evq_start(q), EVQ_OK);
  evq_property user = PROP("user", "ada");
  CHECK_STATUS(evq_emit_session_start(q, &user, 1), EVQ_OK);
  CHECK_STATUS(evq_emit_session_end(q, "logout", 6, &user, 1), EVQ_OK);
  CHECK_STATUS(evq_emit_session_end(q, "\xff", 1, NULL, 0), EVQ_INVALID_UTF8);
  evq_property second_reason = PROP("reason", "other");
  CHECK_STATUS(evq_emit_session_end(q, "logout", 6, &second_reason, 1), EVQ_INVALID_ARGUMENT);
  CHECK(strstr(evq_last_error(), "\"reason\"") != NULL);
  static char long_reason[70000];
  memset(long_reason, 'r', sizeof long_reason);
  CHECK_STATUS(evq_emit_session_end(q, long_reason, sizeof long_reason, NULL, 0), EVQ_VALUE_TOO_LONG);
  CHECK(strstr(evq_last_error(), "session end reason of 70000 bytes") != NULL);
  CHECK_STATUS(evq_emit_session_start(q, NULL, 1), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_flush(q, 10000), EVQ_OK);
  CHECK(atomic_load(&s.starts) == 1 && atomic_load(&s.ends) == 1 && atomic_load(&s.good_reason) == 1);
  CHECK(pushed(q) == 2);
  evq_free(q);
}

/* ------------------------------------------------------------------ */
/* Pull mode: never started; the game loop drains with evq_try_pop. */

struct hit {
  uint32_t target;
  float damage;
};

static void test_pull_mode(void) {
  evq_queue *q = new_queue(64, 1, EVQ_OVERFLOW_OVERWRITE);
  evq_property props[3] = {PROP("sku", "gem_pack"), PROP("gems", "50"), PROP("empty", "")};
  evq_event e = make_event("purchase", props, 3);
  e.timestamp = 1700000000000000000ull;
  e.external = true;
  uint64_t seq = 99;
  CHECK_STATUS(evq_push(q, &e, &seq), EVQ_OK);
  CHECK(seq == 0);
  struct hit h = {7, 12.5f};
  CHECK_STATUS(evq_push_raw(q, &h, sizeof h, 42, &seq), EVQ_OK);
  CHECK(seq == 1);
  evq_event now = make_event("tick", NULL, 0);
  /* Timestamp 0 is stamped at push, with the clock evq_now reads. */
  uint64_t before = evq_now();
  CHECK_STATUS(evq_push(q, &now, NULL), EVQ_OK);
  uint64_t after = evq_now();

  size_t len = evq_pop_buffer_size(q);
  CHECK(len > 256);
  uint8_t *buf = malloc(len);
  evq_payload p;
  /* Too small: refused, nothing taken. */
  CHECK_STATUS(evq_try_pop(q, buf, len - 1, &p), EVQ_BUFFER_TOO_SMALL);
  CHECK(strstr(evq_last_error(), "smaller than") != NULL);
  CHECK_STATUS(evq_try_pop(q, NULL, len, &p), EVQ_NULL_POINTER);

  CHECK_STATUS(evq_try_pop(q, buf, len, &p), EVQ_OK);
  CHECK(p.kind == EVQ_PAYLOAD_EVENT && p.event.seq == 0);
  CHECK(text_is(p.event.name, p.event.name_len, "purchase"));
  CHECK(p.event.timestamp == 1700000000000000000ull && p.event.external);
  CHECK(p.event.property_count == 3);
  CHECK(text_is(p.event.properties[1].key, p.event.properties[1].key_len, "gems"));
  CHECK(text_is(p.event.properties[1].value, p.event.properties[1].value_len, "50"));
  CHECK(p.event.properties[2].value_len == 0);
  /* The view lives in buf: inside it. */
  CHECK((const uint8_t *)p.event.name >= buf && (const uint8_t *)p.event.name < buf + len);
  CHECK((const uint8_t *)p.event.properties >= buf &&
        (const uint8_t *)(p.event.properties + 3) <= buf + len);

  CHECK_STATUS(evq_try_pop(q, buf, len, &p), EVQ_OK);
  CHECK(p.kind == EVQ_PAYLOAD_RAW && p.raw.seq == 1 && p.raw.timestamp == 42);
  CHECK(p.raw.len == sizeof h);
  struct hit back;
  memcpy(&back, p.raw.bytes, sizeof back);
  CHECK(back.target == 7 && back.damage == 12.5f);

  CHECK_STATUS(evq_try_pop(q, buf, len, &p), EVQ_OK);
  CHECK(p.event.timestamp > 1700000000000000000ull); /* stamped at push */
  CHECK(before <= p.event.timestamp && p.event.timestamp <= after);
  CHECK(p.event.properties == NULL && p.event.property_count == 0);
  CHECK_STATUS(evq_try_pop(q, buf, len, &p), EVQ_EMPTY);

  evq_queue_stats s;
  CHECK_STATUS(evq_stats(q, &s), EVQ_OK);
  CHECK(s.pushed == 3 && s.popped == 3 && s.handled == 0 && s.depth == 0);
  /* Never started: flush waits for pops (none come here), shutdown reports. */
  CHECK_STATUS(evq_push(q, &now, NULL), EVQ_OK);
  CHECK_STATUS(evq_flush(q, 20), EVQ_TIMEOUT);
  evq_shutdown_report r;
  CHECK_STATUS(evq_shutdown(q, 1000, &r), EVQ_OK);
  CHECK(r.pushed == 4 && r.popped == 3 && r.left == 1);
  /* After shutdown pops drain what is left, then report closed. */
  CHECK_STATUS(evq_try_pop(q, buf, len, &p), EVQ_OK);
  CHECK_STATUS(evq_try_pop(q, buf, len, &p), EVQ_CLOSED);
  free(buf);
  evq_free(q);
}

/* ------------------------------------------------------------------ */
/* Lag policies: 40 events into 16 slots (24..39 retained, headroom 2). */

static void test_lag_policies(void) {
  const uint32_t lags[3] = {EVQ_LAG_OLDEST, EVQ_LAG_HEADROOM, EVQ_LAG_NEWEST};
  const uint64_t first[3] = {24, 26, 39};
  for (int k = 0; k < 3; k++) {
    evq_config c = evq_config_default();
    c.capacity = 16;
    c.workers = 1;
    c.lanes = 1;
    c.lag = lags[k];
    evq_queue *q = NULL;
    CHECK_STATUS(evq_new(&c, &q), EVQ_OK);
    evq_subscriber *sub = NULL;
    CHECK_STATUS(evq_subscribe(q, EVQ_START_NOW, &sub), EVQ_OK);
    CHECK_STATUS(evq_subscriber_set_lag(sub, 9), EVQ_INVALID_ARGUMENT);
    CHECK_STATUS(evq_subscriber_set_lag(sub, lags[k]), EVQ_OK);
    for (int i = 0; i < 40; i++) {
      evq_event e = make_event("tick", NULL, 0);
      CHECK_STATUS(evq_push(q, &e, NULL), EVQ_OK);
    }
    /* The worker group (pull mode) continues where its policy says. */
    size_t len = evq_pop_buffer_size(q);
    uint8_t *buf = malloc(len);
    evq_payload p;
    CHECK_STATUS(evq_try_pop(q, buf, len, &p), EVQ_OK);
    CHECK(p.kind == EVQ_PAYLOAD_EVENT && p.event.seq == first[k]);
    evq_queue_stats s;
    CHECK_STATUS(evq_stats(q, &s), EVQ_OK);
    CHECK(s.overwritten == first[k]);
    /* So does the subscriber, whose missed count is exact. */
    uint64_t missed = 0;
    CHECK_STATUS(evq_subscriber_try_recv(sub, &p, &missed), EVQ_LAGGED);
    CHECK(missed == first[k]);
    CHECK_STATUS(evq_subscriber_try_recv(sub, &p, NULL), EVQ_OK);
    CHECK(p.event.seq == first[k]);
    free(buf);
    evq_subscriber_free(sub);
    evq_free(q);
  }
}

/* ------------------------------------------------------------------ */
/* A subscriber that lags. */

static void test_lagging_subscriber(void) {
  evq_queue *q = new_queue(16, 1, EVQ_OVERFLOW_OVERWRITE);
  evq_subscriber *sub = NULL;
  CHECK_STATUS(evq_subscribe(q, 7, &sub), EVQ_INVALID_ARGUMENT);
  CHECK(sub == NULL);
  CHECK_STATUS(evq_subscribe(q, EVQ_START_NOW, &sub), EVQ_OK);
  char name[16];
  for (int i = 0; i < 40; i++) {
    snprintf(name, sizeof name, "e%d", i);
    evq_event e = make_event(name, NULL, 0);
    CHECK_STATUS(evq_push(q, &e, NULL), EVQ_OK);
  }
  uint64_t lag = 0, missed = 0;
  CHECK_STATUS(evq_subscriber_lag(sub, &lag, &missed), EVQ_OK);
  CHECK(lag >= 16 && missed == 0);
  evq_payload p;
  /* 24..39 retained; the subscriber continues an eighth of the ring (2)
   * past the oldest, so that a slow reader is not lapped again at once. */
  CHECK_STATUS(evq_subscriber_try_recv(sub, &p, &missed), EVQ_LAGGED);
  CHECK(missed == 26);
  for (int i = 26; i < 40; i++) {
    CHECK_STATUS(evq_subscriber_try_recv(sub, &p, &missed), EVQ_OK);
    snprintf(name, sizeof name, "e%d", i);
    CHECK(p.kind == EVQ_PAYLOAD_EVENT && p.event.seq == (uint64_t)i);
    CHECK(text_is(p.event.name, p.event.name_len, name));
  }
  CHECK_STATUS(evq_subscriber_try_recv(sub, &p, NULL), EVQ_EMPTY);
  CHECK_STATUS(evq_subscriber_recv_timeout(sub, 20, &p, NULL), EVQ_TIMEOUT);
  CHECK_STATUS(evq_subscriber_lag(sub, &lag, &missed), EVQ_OK);
  CHECK(lag == 0 && missed == 26);
  evq_queue_stats s;
  CHECK_STATUS(evq_stats(q, &s), EVQ_OK);
  CHECK(s.subscribers == 1 && s.max_subscriber_lag == 0);

  /* Properties and raw payloads through a subscriber; a timed receive wakes. */
  evq_property props[2] = {PROP("k1", "v1"), PROP("k2", "v2")};
  evq_event e = make_event("chat", props, 2);
  CHECK_STATUS(evq_push(q, &e, NULL), EVQ_OK);
  CHECK_STATUS(evq_push_raw(q, "abc", 3, 0, NULL), EVQ_OK);
  CHECK_STATUS(evq_subscriber_recv_timeout(sub, 5000, &p, NULL), EVQ_OK);
  CHECK(p.kind == EVQ_PAYLOAD_EVENT && p.event.property_count == 2);
  CHECK(text_is(p.event.properties[1].value, p.event.properties[1].value_len, "v2"));
  CHECK_STATUS(evq_subscriber_recv_timeout(sub, 5000, &p, NULL), EVQ_OK);
  CHECK(p.kind == EVQ_PAYLOAD_RAW && p.raw.len == 3 && memcmp(p.raw.bytes, "abc", 3) == 0);

  /* A subscriber outlives its queue: it reads the rest, then is closed. */
  CHECK_STATUS(evq_push(q, &e, NULL), EVQ_OK);
  evq_free(q);
  CHECK_STATUS(evq_subscriber_try_recv(sub, &p, NULL), EVQ_OK);
  CHECK_STATUS(evq_subscriber_try_recv(sub, &p, NULL), EVQ_CLOSED);
  evq_subscriber_free(sub);
}

/* ------------------------------------------------------------------ */
/* Flush and shutdown. */

struct slow {
  const evq_queue *q;
  atomic_int handled;
  atomic_int in_handler_status;
};

static int slow_handler(const evq_event *e, void *user) {
  struct slow *s = user;
  if (text_is(e->name, e->name_len, "flush_me")) {
    atomic_store(&s->in_handler_status, (int)evq_flush(s->q, 10));
    evq_event follow = make_event("follow_up", NULL, 0);
    if (evq_push(s->q, &follow, NULL) != EVQ_OK) return 1; /* emit from a handler */
  } else {
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  atomic_fetch_add(&s->handled, 1);
  return 0;
}

static void test_flush_and_shutdown(void) {
  evq_queue *q = new_queue(64, 1, EVQ_OVERFLOW_OVERWRITE);
  struct slow s;
  memset(&s, 0, sizeof s);
  s.q = q;
  CHECK_STATUS(evq_on_any(q, slow_handler, &s), EVQ_OK);
  CHECK_STATUS(evq_start(q), EVQ_OK);
  evq_event f = make_event("flush_me", NULL, 0);
  CHECK_STATUS(evq_push(q, &f, NULL), EVQ_OK);
  CHECK_STATUS(evq_flush(q, 10000), EVQ_OK);
  CHECK(atomic_load(&s.in_handler_status) == EVQ_IN_HANDLER);
  CHECK_STATUS(evq_flush(q, 10000), EVQ_OK); /* the follow-up */
  CHECK(atomic_load(&s.handled) == 2);

  /* 20 events of 20 ms on one worker: a 30 ms flush times out. */
  evq_event e = make_event("slow", NULL, 0);
  for (int i = 0; i < 20; i++) CHECK_STATUS(evq_push(q, &e, NULL), EVQ_OK);
  CHECK_STATUS(evq_flush(q, 30), EVQ_TIMEOUT);
  CHECK(strstr(evq_last_error(), "timed out") != NULL);
  /* A 50 ms shutdown deadline passes with events left. */
  evq_shutdown_report r;
  CHECK_STATUS(evq_shutdown(q, 50, &r), EVQ_TIMEOUT);
  CHECK(r.timed_out && r.left > 0 && r.pushed == 22);
  CHECK(r.pushed == r.handled + r.popped + r.overwritten + r.rejected + r.left);
  CHECK((int)r.handled == atomic_load(&s.handled));
  /* Again: the first report. After shutdown: closed. */
  evq_shutdown_report again;
  CHECK_STATUS(evq_shutdown(q, 50, &again), EVQ_TIMEOUT);
  /* Field by field: memcmp would also compare the padding after timed_out,
   * whose bytes are unspecified (they differ between calls on Windows). */
  CHECK(again.pushed == r.pushed && again.handled == r.handled && again.popped == r.popped);
  CHECK(again.overwritten == r.overwritten && again.rejected == r.rejected);
  CHECK(again.errors == r.errors && again.panics == r.panics && again.left == r.left);
  CHECK(again.timed_out == r.timed_out && again.lost == r.lost);
  CHECK_STATUS(evq_push(q, &e, NULL), EVQ_CLOSED);
  CHECK_STATUS(evq_push_raw(q, "x", 1, 0, NULL), EVQ_CLOSED);
  CHECK_STATUS(evq_push_json(q, "{\"name\":\"x\"}", 12, false), EVQ_CLOSED);
  CHECK_STATUS(evq_emit_session_start(q, NULL, 0), EVQ_CLOSED);
  CHECK_STATUS(evq_start(q), EVQ_CLOSED);
  CHECK(pushed(q) == 22);
  evq_free(q);

  /* A queue freed without shutdown drains within its drop deadline. */
  q = new_queue(64, 2, EVQ_OVERFLOW_OVERWRITE);
  struct slow s2;
  memset(&s2, 0, sizeof s2);
  s2.q = q;
  CHECK_STATUS(evq_on_any(q, slow_handler, &s2), EVQ_OK);
  CHECK_STATUS(evq_start(q), EVQ_OK);
  for (int i = 0; i < 4; i++) CHECK_STATUS(evq_push(q, &e, NULL), EVQ_OK);
  evq_free(q);
  CHECK(atomic_load(&s2.handled) == 4);
}

/* ------------------------------------------------------------------ */
/* JSON ingestion. */

static void test_json(void) {
  evq_queue *q = new_queue(64, 1, EVQ_OVERFLOW_OVERWRITE);
  const char *body =
      "{\"name\": \"level_up\", \"properties\": {\"level\": \"7\", \"class\": \"mage\"},"
      " \"timestamp\": \"2026-11-23T05:00:00.5Z\"}";
  CHECK_STATUS(evq_push_json(q, body, strlen(body), true), EVQ_OK);
  const char *minimal = "{\"name\":\"ping\"}";
  CHECK_STATUS(evq_push_json(q, minimal, strlen(minimal), false), EVQ_OK);

  struct {
    const char *body;
    evq_status want;
  } bad[] = {
      {"{\"name\": ", EVQ_JSON_SYNTAX},
      {"not json", EVQ_JSON_SYNTAX},
      {"[1, 2]", EVQ_JSON_SHAPE},
      /* One object and nothing else: no array read field by field. */
      {"[\"level_up\"]", EVQ_JSON_SHAPE},
      {"[\"level_up\", {\"level\": \"7\"}]", EVQ_JSON_SHAPE},
      {"{\"name\": \"x\", \"name\": \"y\"}", EVQ_JSON_SHAPE},
      {"{\"properties\": {}}", EVQ_JSON_SHAPE},
      {"{\"name\": \"x\", \"properties\": {\"level\": 7}}", EVQ_JSON_SHAPE},
      {"{\"name\": \"x\", \"extra\": 1}", EVQ_JSON_SHAPE},
      {"{\"name\": \"x\", \"timestamp\": \"yesterday\"}", EVQ_JSON_TIMESTAMP},
      {"{\"name\": \"\"}", EVQ_EMPTY_NAME},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK_STATUS(evq_push_json(q, bad[i].body, strlen(bad[i].body), true), bad[i].want);
  /* A value too large for a 256-byte slot. */
  char big[400];
  int n = snprintf(big, sizeof big, "{\"name\": \"x\", \"properties\": {\"k\": \"%0300d\"}}", 0);
  CHECK_STATUS(evq_push_json(q, big, (size_t)n, true), EVQ_TOO_LARGE);
  /* Over the JSON size limit. */
  size_t huge_len = 100 * 1024;
  char *huge = malloc(huge_len);
  memset(huge, ' ', huge_len);
  CHECK_STATUS(evq_push_json(q, huge, huge_len, true), EVQ_JSON_TOO_LARGE);
  free(huge);
  CHECK_STATUS(evq_push_json(q, NULL, 0, true), EVQ_NULL_POINTER);
  CHECK(pushed(q) == 2); /* nothing refused was pushed */

  size_t len = evq_pop_buffer_size(q);
  uint8_t *buf = malloc(len);
  evq_payload p;
  CHECK_STATUS(evq_try_pop(q, buf, len, &p), EVQ_OK);
  CHECK(text_is(p.event.name, p.event.name_len, "level_up") && p.event.external);
  CHECK(p.event.timestamp == 1795410000500000000ull);
  CHECK(p.event.property_count == 2);
  CHECK(text_is(p.event.properties[0].key, p.event.properties[0].key_len, "level"));
  CHECK(text_is(p.event.properties[1].value, p.event.properties[1].value_len, "mage"));
  CHECK_STATUS(evq_try_pop(q, buf, len, &p), EVQ_OK);
  CHECK(text_is(p.event.name, p.event.name_len, "ping") && !p.event.external);
  free(buf);
  evq_free(q);
}

/* ------------------------------------------------------------------ */
/* More properties than the 16 converted on the stack: the heap paths of
 * evq_push, the handlers, evq_try_pop and subscribers. */

#define MANY 40

static int check_many(const evq_event *e, void *user) {
  atomic_int *ok = user;
  if (e->property_count != MANY) return 1;
  for (int i = 0; i < MANY; i++) {
    char key[8];
    snprintf(key, sizeof key, "k%d", i);
    if (!text_is(e->properties[i].key, e->properties[i].key_len, key)) return 2;
    if (e->properties[i].value_len != 1 || e->properties[i].value[0] != (char)('a' + i % 26)) return 3;
  }
  atomic_fetch_add(ok, 1);
  return 0;
}

static void test_many_properties(void) {
  evq_config c = evq_config_default();
  c.capacity = 64;
  c.slot_bytes = 512;
  c.workers = 1;
  evq_queue *q = NULL;
  CHECK_STATUS(evq_new(&c, &q), EVQ_OK);
  char keys[MANY][8], values[MANY][2];
  evq_property props[MANY];
  for (int i = 0; i < MANY; i++) {
    snprintf(keys[i], sizeof keys[i], "k%d", i);
    values[i][0] = (char)('a' + i % 26);
    values[i][1] = 0;
    props[i] = (evq_property){keys[i], strlen(keys[i]), values[i], 1};
  }
  evq_event e = make_event("inventory", props, MANY);
  evq_subscriber *sub = NULL;
  CHECK_STATUS(evq_subscribe(q, EVQ_START_NOW, &sub), EVQ_OK);
  CHECK_STATUS(evq_push(q, &e, NULL), EVQ_OK);

  atomic_int ok = 0;
  evq_payload p;
  CHECK_STATUS(evq_subscriber_try_recv(sub, &p, NULL), EVQ_OK);
  CHECK(check_many(&p.event, &ok) == 0);
  size_t len = evq_pop_buffer_size(q);
  uint8_t *buf = malloc(len);
  CHECK_STATUS(evq_try_pop(q, buf, len, &p), EVQ_OK);
  CHECK(check_many(&p.event, &ok) == 0);
  free(buf);

  CHECK_STATUS(evq_on(q, "inventory", 9, check_many, &ok), EVQ_OK);
  CHECK_STATUS(evq_start(q), EVQ_OK);
  CHECK_STATUS(evq_push(q, &e, NULL), EVQ_OK);
  CHECK_STATUS(evq_flush(q, 10000), EVQ_OK);
  CHECK(atomic_load(&ok) == 3);
  evq_queue_stats s;
  CHECK_STATUS(evq_stats(q, &s), EVQ_OK);
  CHECK(s.handler_errors == 0 && s.handled == 1 && s.popped == 1);
  evq_subscriber_free(sub);
  evq_free(q);
}

/* ------------------------------------------------------------------ */
/* Every bad input: a clear status, nothing changed. */

static int noop(const evq_event *e, void *u) {
  (void)e;
  (void)u;
  return 0;
}

static void test_bad_inputs(void) {
  evq_queue *q = new_queue(64, 1, EVQ_OVERFLOW_OVERWRITE);
  evq_event e = make_event("ok", NULL, 0);
  evq_queue_stats s;

  CHECK_STATUS(evq_push(NULL, &e, NULL), EVQ_NULL_POINTER);
  CHECK(strstr(evq_last_error(), "`q`") != NULL);
  CHECK_STATUS(evq_push(q, NULL, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_start(NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_flush(NULL, 0), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_shutdown(NULL, 0, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_stats(q, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_stats(NULL, &s), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_subscribe(NULL, EVQ_START_NOW, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_subscriber_try_recv(NULL, NULL, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_subscriber_recv_timeout(NULL, 0, NULL, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_on(q, "x", 1, NULL, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_on(q, NULL, 1, noop, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_on_any(q, NULL, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_on_session_start(q, NULL, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_on_session_end(q, NULL, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_on_raw(q, NULL, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_on_error(q, NULL, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_on(q, "", 0, noop, NULL), EVQ_EMPTY_NAME);
  CHECK_STATUS(evq_on(q, "\xc3\x28", 2, noop, NULL), EVQ_INVALID_UTF8);
  CHECK_STATUS(evq_off(q, NULL, 0, NULL), EVQ_NULL_POINTER);
  CHECK(evq_pop_buffer_size(NULL) == 0);

  /* Names. */
  e.name = NULL;
  CHECK_STATUS(evq_push(q, &e, NULL), EVQ_NULL_POINTER);
  e = make_event("", NULL, 0);
  CHECK_STATUS(evq_push(q, &e, NULL), EVQ_EMPTY_NAME);
  char long_name[300];
  memset(long_name, 'n', sizeof long_name);
  e.name = long_name;
  e.name_len = 256;
  CHECK_STATUS(evq_push(q, &e, NULL), EVQ_NAME_TOO_LONG);
  CHECK(strstr(evq_last_error(), "256") != NULL);
  e.name_len = (size_t)-1; /* absurd length: refused before any read */
  CHECK_STATUS(evq_push(q, &e, NULL), EVQ_NAME_TOO_LONG);
  e = make_event("caf\xe9", NULL, 0); /* Latin-1, not UTF-8 */
  CHECK_STATUS(evq_push(q, &e, NULL), EVQ_INVALID_UTF8);

  /* Properties. */
  evq_property p1[1] = {PROP("key", "\xff\xfe")};
  e = make_event("ok", p1, 1);
  CHECK_STATUS(evq_push(q, &e, NULL), EVQ_INVALID_UTF8);
  evq_property p2[1] = {PROP("\x80", "v")};
  e.properties = p2;
  CHECK_STATUS(evq_push(q, &e, NULL), EVQ_INVALID_UTF8);
  evq_property p3[1] = {PROP("", "v")};
  e.properties = p3;
  CHECK_STATUS(evq_push(q, &e, NULL), EVQ_EMPTY_KEY);
  evq_property p4[1] = {{long_name, 256, "v", 1}};
  e.properties = p4;
  CHECK_STATUS(evq_push(q, &e, NULL), EVQ_KEY_TOO_LONG);
  evq_property p5[1] = {{"k", 1, long_name, 70000}};
  e.properties = p5;
  CHECK_STATUS(evq_push(q, &e, NULL), EVQ_VALUE_TOO_LONG);
  evq_property p6[1] = {{"k", 1, NULL, 3}};
  e.properties = p6;
  CHECK_STATUS(evq_push(q, &e, NULL), EVQ_NULL_POINTER);
  evq_property p7[1] = {{"k", 1, NULL, 0}}; /* NULL with length 0: empty value */
  e.properties = p7;
  CHECK_STATUS(evq_push(q, &e, NULL), EVQ_OK);
  e.properties = NULL;
  e.property_count = 2;
  CHECK_STATUS(evq_push(q, &e, NULL), EVQ_NULL_POINTER);
  e.property_count = 70000;
  CHECK_STATUS(evq_push(q, &e, NULL), EVQ_TOO_MANY_PROPERTIES);

  /* Oversized: a 300-byte value in a 256-byte slot; the message names both. */
  evq_property big[1] = {{"k", 1, long_name, 300}};
  e = make_event("ok", big, 1);
  CHECK_STATUS(evq_push(q, &e, NULL), EVQ_TOO_LARGE);
  CHECK(strstr(evq_last_error(), "256") != NULL && strstr(evq_last_error(), "318") != NULL);
  /* Many properties beyond the inline 16: the heap path. */
  evq_property many[40];
  for (int i = 0; i < 40; i++) many[i] = (evq_property){"k", 1, "v", 1};
  e = make_event("ok", many, 40);
  CHECK_STATUS(evq_push(q, &e, NULL), EVQ_OK);
  many[39].key_len = 0;
  CHECK_STATUS(evq_push(q, &e, NULL), EVQ_EMPTY_KEY);

  /* Raw payloads: at most slot - 12 bytes. */
  uint8_t raw[256] = {0};
  CHECK_STATUS(evq_push_raw(q, raw, 245, 0, NULL), EVQ_TOO_LARGE);
  CHECK_STATUS(evq_push_raw(q, NULL, 4, 0, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_push_raw(q, raw, 244, 0, NULL), EVQ_OK);
  CHECK_STATUS(evq_push_raw(q, NULL, 0, 0, NULL), EVQ_OK);

  /* Prometheus text: ask the size, then render. */
  size_t need = 0;
  CHECK_STATUS(evq_stats_prometheus(q, NULL, 0, &need), EVQ_BUFFER_TOO_SMALL);
  CHECK(strstr(evq_last_error(), "metrics text") != NULL);
  CHECK(need > 100);
  /* A NULL buffer with a length is a NULL pointer, whatever the length,
   * and writes nothing. */
  size_t untouched = 7;
  CHECK_STATUS(evq_stats_prometheus(q, NULL, 10, &untouched), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_stats_prometheus(q, NULL, need, &untouched), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_stats_prometheus(q, NULL, SIZE_MAX, NULL), EVQ_NULL_POINTER);
  CHECK(untouched == 7);
  char *text = malloc(need);
  CHECK_STATUS(evq_stats_prometheus(q, text, need, NULL), EVQ_OK);
  CHECK(strstr(text, "evqueue_events_pushed_total 4\n") != NULL);
  CHECK(strlen(text) + 1 == need);
  free(text);

  CHECK_STATUS(evq_stats(q, &s), EVQ_OK);
  CHECK(s.pushed == 4); /* only the four good pushes */
  evq_free(q);

  /* Reject policy: full after a whole ring, counted. */
  q = new_queue(16, 1, EVQ_OVERFLOW_REJECT);
  e = make_event("ok", NULL, 0);
  for (int i = 0; i < 16; i++) CHECK_STATUS(evq_push(q, &e, NULL), EVQ_OK);
  CHECK_STATUS(evq_push(q, &e, NULL), EVQ_FULL);
  CHECK_STATUS(evq_stats(q, &s), EVQ_OK);
  CHECK(s.rejected == 1 && s.depth == 16 && s.overwritten == 0);
  /* lost = overwritten + rejected; pushed = handled + popped + lost + depth. */
  CHECK(s.lost == 1 && s.pushed == 17);
  CHECK(s.pushed == s.handled + s.popped + s.lost + s.depth);
  evq_shutdown_report r;
  CHECK_STATUS(evq_shutdown(q, 0, &r), EVQ_OK);
  CHECK(r.lost == 1 && r.pushed == r.handled + r.popped + r.lost + r.left);
  evq_free(q);
}

/* The final report counts only accepted pushes: four threads push until
 * EVQ_CLOSED while evq_shutdown races them on a 4-slot ring, where pushes
 * lap each other (the Rust twin is
 * `the_shutdown_report_counts_only_accepted_pushes`). */
struct closer {
  const evq_queue *q;
  _Atomic int *go;
  uint64_t ok;
};

static void *push_until_closed(void *arg) {
  struct closer *c = arg;
  evq_event e = make_event("e", NULL, 0);
  while (!atomic_load(c->go)) {
  }
  for (;;) {
    evq_status st = evq_push(c->q, &e, NULL);
    if (st == EVQ_CLOSED) return NULL;
    CHECK_STATUS(st, EVQ_OK);
    c->ok++;
  }
}

static void test_shutdown_report_counts_only_accepted(void) {
  int wrong = 0;
  for (int round = 0; round < 200; round++) {
    evq_queue *q = new_queue(4, 1, EVQ_OVERFLOW_OVERWRITE);
    CHECK_STATUS(evq_start(q), EVQ_OK);
    _Atomic int go = 0;
    struct closer cs[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
      cs[i].q = q;
      cs[i].go = &go;
      cs[i].ok = 0;
      CHECK(pthread_create(&t[i], NULL, push_until_closed, &cs[i]) == 0);
    }
    atomic_store(&go, 1);
    struct timespec pause = {0, 200000 + 100000 * (round % 8)};
    nanosleep(&pause, NULL);
    evq_shutdown_report r;
    CHECK_STATUS(evq_shutdown(q, 2000, &r), EVQ_OK);
    uint64_t ok = 0;
    for (int i = 0; i < 4; i++) {
      CHECK(pthread_join(t[i], NULL) == 0);
      ok += cs[i].ok;
    }
    CHECK(r.pushed == r.handled + r.popped + r.overwritten + r.rejected + r.left);
    if (r.pushed != ok) {
      if (wrong == 0)
        fprintf(stderr, "round %d: report.pushed %llu, pushes that returned EVQ_OK %llu\n", round,
                (unsigned long long)r.pushed, (unsigned long long)ok);
      wrong++;
    }
    evq_free(q);
  }
  if (wrong) fprintf(stderr, "%d of 200 rounds reported pushes that returned EVQ_CLOSED\n", wrong);
  CHECK(wrong == 0);
}

/* Ordered keys: 4 threads push keyed events over shared keys into a queue
 * with 4 workers; per key, events are handled in the order each thread
 * pushed them and never by two handlers at once. */
#define KEYS 500
#define KEYED_THREADS 4
#define KEYED_PER_THREAD 20000

struct keyed_state {
  atomic_int in_handler[KEYS];
  /* Per (key, thread): last n handled, plus one. */
  atomic_ulong last[KEYS][KEYED_THREADS];
  atomic_ulong overlaps, out_of_order, calls;
};

static unsigned long prop_number(const evq_event *e, const char *key) {
  for (size_t i = 0; i < e->property_count; i++) {
    const evq_property *p = &e->properties[i];
    if (text_is(p->key, p->key_len, key)) {
      char buf[32];
      size_t n = p->value_len < sizeof buf - 1 ? p->value_len : sizeof buf - 1;
      memcpy(buf, p->value, n);
      buf[n] = 0;
      return strtoul(buf, NULL, 10);
    }
  }
  return (unsigned long)-1;
}

static int on_keyed(const evq_event *e, void *user) {
  struct keyed_state *st = user;
  unsigned long k = prop_number(e, "k"), t = prop_number(e, "t"), n = prop_number(e, "n");
  if (k >= KEYS || t >= KEYED_THREADS) return 1;
  if (atomic_exchange(&st->in_handler[k], 1) != 0) atomic_fetch_add(&st->overlaps, 1);
  unsigned long prev = atomic_load_explicit(&st->last[k][t], memory_order_relaxed);
  /* Nothing may be lost here, so the next one must follow exactly. */
  if (n != prev) atomic_fetch_add(&st->out_of_order, 1);
  atomic_store_explicit(&st->last[k][t], n + 1, memory_order_relaxed);
  if (n % 64 == 0) {
    struct timespec ts = {0, 20000}; /* 20 us, now and then */
    nanosleep(&ts, NULL);
  }
  atomic_store(&st->in_handler[k], 0);
  atomic_fetch_add(&st->calls, 1);
  return 0;
}

struct keyed_pusher {
  const evq_queue *q;
  unsigned long thread;
  int failures;
};

static void *push_keyed_thread(void *arg) {
  struct keyed_pusher *p = arg;
  unsigned long next[KEYS] = {0};
  for (unsigned long i = 0; i < KEYED_PER_THREAD; i++) {
    unsigned long k = (i * 7919 + p->thread * 104729) % KEYS;
    char ks[16], ts[16], ns[24], key[32];
    snprintf(ks, sizeof ks, "%lu", k);
    snprintf(ts, sizeof ts, "%lu", p->thread);
    snprintf(ns, sizeof ns, "%lu", next[k]++);
    int key_len = snprintf(key, sizeof key, "player-%lu", k);
    evq_property props[3] = {PROP("k", ks), PROP("t", ts), PROP("n", ns)};
    evq_event e = make_event("hit", props, 3);
    if (evq_push_keyed(p->q, &e, key, (size_t)key_len, NULL) != EVQ_OK) p->failures++;
  }
  return NULL;
}

static void test_keyed_order_and_exclusivity(void) {
  /* Room for everything in every lane: nothing may be lost. */
  evq_queue *q = new_queue(1 << 19, 4, EVQ_OVERFLOW_OVERWRITE);
  struct keyed_state *st = calloc(1, sizeof *st);
  CHECK(st != NULL);
  CHECK_STATUS(evq_on(q, "hit", 3, on_keyed, st), EVQ_OK);
  CHECK_STATUS(evq_start(q), EVQ_OK);
  struct keyed_pusher ps[KEYED_THREADS];
  pthread_t t[KEYED_THREADS];
  for (unsigned long i = 0; i < KEYED_THREADS; i++) {
    ps[i].q = q;
    ps[i].thread = i;
    ps[i].failures = 0;
    CHECK(pthread_create(&t[i], NULL, push_keyed_thread, &ps[i]) == 0);
  }
  for (int i = 0; i < KEYED_THREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
  for (int i = 0; i < KEYED_THREADS; i++) CHECK(ps[i].failures == 0);
  CHECK_STATUS(evq_flush(q, 60000), EVQ_OK);
  const unsigned long total = (unsigned long)KEYED_THREADS * KEYED_PER_THREAD;
  CHECK(atomic_load(&st->calls) == total);
  CHECK(atomic_load(&st->overlaps) == 0);
  CHECK(atomic_load(&st->out_of_order) == 0);

  /* A client's JSON keyed by its session; bad keys change nothing. */
  const char *json = "{\"name\": \"hit\", \"properties\": {\"k\": \"1\", \"t\": \"0\", \"n\": \"999999\"}}";
  char long_key[EVQ_MAX_ORDERING_KEY_LEN + 1];
  memset(long_key, 'k', sizeof long_key);
  evq_event e = make_event("hit", NULL, 0);
  CHECK_STATUS(evq_push_keyed(q, &e, long_key, sizeof long_key, NULL), EVQ_ORDERING_KEY_TOO_LONG);
  CHECK_STATUS(evq_push_keyed(q, &e, NULL, 3, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_push_json_keyed(q, json, strlen(json), true, long_key, sizeof long_key),
               EVQ_ORDERING_KEY_TOO_LONG);
  CHECK(pushed(q) == total);
  CHECK_STATUS(evq_push_keyed(q, &e, long_key, EVQ_MAX_ORDERING_KEY_LEN, NULL), EVQ_OK);
  CHECK_STATUS(evq_push_json_keyed(q, json, strlen(json), true, "player-1", 8), EVQ_OK);

  evq_shutdown_report r;
  CHECK_STATUS(evq_shutdown(q, 30000, &r), EVQ_OK);
  CHECK(r.pushed == total + 2 && r.handled == total + 2 && r.left == 0 && !r.timed_out);
  CHECK(r.overwritten == 0 && r.rejected == 0);
  evq_free(q);
  free(st);

  evq_config c = evq_config_default();
  CHECK(c.lanes == 0);
  c.lanes = 12;
  evq_queue *bad = NULL;
  CHECK_STATUS(evq_new(&c, &bad), EVQ_INVALID_CONFIG);
  CHECK(bad == NULL);
}

#if defined(__linux__)
#include <unistd.h>

static void shared_path(char *out, size_t len, const char *what) {
  snprintf(out, len, "/tmp/evq-c-test-%s-%ld", what, (long)getpid());
}

enum { SHARED_THREADS = 4, SHARED_PER_THREAD = 5000 };

static atomic_int shared_push_failures;

/* Pushes SHARED_PER_THREAD events through one handle, from its own thread
 * (failures counted: CHECK is not thread-safe). */
static void *shared_pusher(void *arg) {
  const evq_shared *s = arg;
  evq_property prop = PROP("k", "v");
  evq_event e = make_event("mt", &prop, 1);
  for (int i = 0; i < SHARED_PER_THREAD; i++) {
    if (evq_shared_push(s, &e, NULL) != EVQ_OK) atomic_fetch_add(&shared_push_failures, 1);
  }
  return NULL;
}

/* One handle pushed into from several threads at once: every event lands
 * once, with its own sequence number. */
static void test_shared_ring_threads(void) {
  char path[128];
  shared_path(path, sizeof path, "threads");
  unlink(path);
  evq_shared *s = NULL;
  CHECK_STATUS(evq_shared_create(path, strlen(path), 1 << 15, 64, EVQ_OVERFLOW_OVERWRITE, &s), EVQ_OK);
  pthread_t t[SHARED_THREADS];
  for (int i = 0; i < SHARED_THREADS; i++) CHECK(pthread_create(&t[i], NULL, shared_pusher, s) == 0);
  for (int i = 0; i < SHARED_THREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
  CHECK(atomic_load(&shared_push_failures) == 0);
  size_t len = evq_shared_buffer_size(s);
  unsigned char *buf = malloc(len);
  CHECK(buf != NULL);
  evq_payload p;
  uint64_t next = 0, lost = 0;
  while (evq_shared_try_claim(s, buf, len, &p, &lost) == EVQ_OK) {
    CHECK(p.event.seq == next && lost == 0);
    CHECK(text_is(p.event.name, p.event.name_len, "mt") && p.event.property_count == 1);
    next++;
  }
  CHECK(next == SHARED_THREADS * SHARED_PER_THREAD);
  evq_shared_counters c;
  CHECK_STATUS(evq_shared_stats(s, &c), EVQ_OK);
  CHECK(c.pushed == next && c.delivered == next && c.lost == 0 && c.depth == 0);
  free(buf);
  evq_shared_free(s);
  CHECK_STATUS(evq_shared_remove(path, strlen(path)), EVQ_OK);
}

/* Broadcast subscribers on the shared ring: each sees every event, without
 * taking any from the worker group; lapped ones are told exactly how many
 * they missed. */
static void test_shared_subscriber(void) {
  char path[128];
  shared_path(path, sizeof path, "sub");
  unlink(path);
  evq_shared *s = NULL;
  CHECK_STATUS(evq_shared_create(path, strlen(path), 16, 128, EVQ_OVERFLOW_OVERWRITE, &s), EVQ_OK);
  evq_property prop = PROP("k", "v");
  evq_event e = make_event("tick", &prop, 1);
  for (int i = 0; i < 3; i++) CHECK_STATUS(evq_shared_push(s, &e, NULL), EVQ_OK);

  /* From the oldest: the three already pushed, then the next; two
   * subscribers (one on another handle, as another process) each see all,
   * and the worker group still claims every event. */
  evq_shared *other = NULL;
  CHECK_STATUS(evq_shared_open(path, strlen(path), &other), EVQ_OK);
  evq_shared_subscriber *a = NULL, *b = NULL, *now = NULL;
  CHECK_STATUS(evq_shared_subscribe(s, EVQ_START_OLDEST, &a), EVQ_OK);
  CHECK_STATUS(evq_shared_subscribe(other, EVQ_START_OLDEST, &b), EVQ_OK);
  CHECK_STATUS(evq_shared_subscribe(s, EVQ_START_NOW, &now), EVQ_OK);
  CHECK(a != NULL && b != NULL && now != NULL);
  CHECK_STATUS(evq_shared_push(s, &e, NULL), EVQ_OK);
  size_t len = evq_shared_buffer_size(s);
  unsigned char *buf = malloc(len);
  CHECK(buf != NULL);
  evq_payload p;
  uint64_t lagged = 7;
  evq_shared_subscriber *both[2] = {a, b};
  for (int k = 0; k < 2; k++) {
    for (uint64_t i = 0; i < 4; i++) {
      CHECK_STATUS(evq_shared_subscriber_try_recv(both[k], buf, len, &p, &lagged), EVQ_OK);
      CHECK(p.kind == EVQ_PAYLOAD_EVENT && p.event.seq == i);
      CHECK(text_is(p.event.name, p.event.name_len, "tick"));
      CHECK(p.event.property_count == 1);
      CHECK(text_is(p.event.properties[0].value, p.event.properties[0].value_len, "v"));
    }
    CHECK_STATUS(evq_shared_subscriber_try_recv(both[k], buf, len, &p, &lagged), EVQ_EMPTY);
  }
  CHECK(lagged == 7); /* untouched unless lapped */
  CHECK_STATUS(evq_shared_subscriber_try_recv(now, buf, len, &p, NULL), EVQ_OK);
  CHECK(p.event.seq == 3);
  CHECK_STATUS(evq_shared_subscriber_try_recv(now, buf, len, &p, NULL), EVQ_EMPTY);
  for (uint64_t i = 0; i < 4; i++) {
    CHECK_STATUS(evq_shared_try_claim(s, buf, len, &p, NULL), EVQ_OK);
    CHECK(p.event.seq == i);
  }

  /* Wait: times out with nothing new, returns once a push arrives. */
  CHECK_STATUS(evq_shared_subscriber_wait(a, 20), EVQ_TIMEOUT);
  CHECK_STATUS(evq_shared_push(other, &e, NULL), EVQ_OK);
  CHECK_STATUS(evq_shared_subscriber_wait(a, 10000), EVQ_OK);
  CHECK_STATUS(evq_shared_subscriber_try_recv(a, buf, len, &p, NULL), EVQ_OK);
  CHECK(p.event.seq == 4);

  /* Lapped: b is at 4; 36 more make head 41 on a 16-slot ring, oldest 25,
   * and b continues two past it (an eighth of the ring): 27 - 4 = 23
   * missed, then 27..40 received. */
  for (int i = 0; i < 36; i++) CHECK_STATUS(evq_shared_push(s, &e, NULL), EVQ_OK);
  CHECK_STATUS(evq_shared_subscriber_wait(b, 0), EVQ_OK);
  CHECK_STATUS(evq_shared_subscriber_try_recv(b, buf, len, &p, &lagged), EVQ_LAGGED);
  CHECK(lagged == 23);
  uint64_t missed = 0;
  CHECK_STATUS(evq_shared_subscriber_missed(b, &missed), EVQ_OK);
  CHECK(missed == 23);
  for (uint64_t i = 27; i < 41; i++) {
    CHECK_STATUS(evq_shared_subscriber_try_recv(b, buf, len, &p, &lagged), EVQ_OK);
    CHECK(p.event.seq == i);
  }
  CHECK_STATUS(evq_shared_subscriber_try_recv(b, buf, len, &p, &lagged), EVQ_EMPTY);
  CHECK(lagged == 23);

  /* Bad arguments: refused, nothing read. */
  evq_shared_subscriber *bad = (evq_shared_subscriber *)1;
  CHECK_STATUS(evq_shared_subscribe(s, 2, &bad), EVQ_INVALID_ARGUMENT);
  CHECK(bad == NULL);
  CHECK(strstr(evq_last_error(), "start") != NULL);
  CHECK_STATUS(evq_shared_subscribe(NULL, EVQ_START_NOW, &bad), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_shared_subscribe(s, EVQ_START_NOW, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_shared_subscriber_try_recv(NULL, buf, len, &p, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_shared_subscriber_try_recv(a, NULL, len, &p, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_shared_subscriber_try_recv(a, buf, len, NULL, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_shared_subscriber_try_recv(a, buf, len - 1, &p, NULL), EVQ_BUFFER_TOO_SMALL);
  CHECK_STATUS(evq_shared_subscriber_wait(NULL, 0), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_shared_subscriber_missed(NULL, &missed), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_shared_subscriber_missed(a, NULL), EVQ_NULL_POINTER);
  /* The buffer-too-small call took nothing: a is still at 5. */
  CHECK_STATUS(evq_shared_subscriber_try_recv(a, buf, len, &p, &lagged), EVQ_LAGGED);
  evq_shared_subscriber_free(NULL);

  /* A subscriber keeps its mapping: it outlives its handle. */
  evq_shared_free(s);
  evq_shared_free(other);
  CHECK_STATUS(evq_shared_subscriber_try_recv(now, buf, len, &p, &lagged), EVQ_LAGGED);
  CHECK_STATUS(evq_shared_subscriber_try_recv(now, buf, len, &p, NULL), EVQ_OK);
  evq_shared_subscriber_free(a);
  evq_shared_subscriber_free(b);
  evq_shared_subscriber_free(now);
  free(buf);
  CHECK_STATUS(evq_shared_remove(path, strlen(path)), EVQ_OK);
}

/* The shared ring (Linux): create, push, claim, stats, wait, and every bad
 * input refused with a status and a message, changing nothing. */
static void test_shared_ring(void) {
  char path[128];
  shared_path(path, sizeof path, "ring");
  unlink(path);
  evq_shared *s = NULL;
  CHECK_STATUS(evq_shared_create(path, strlen(path), 64, 128, EVQ_OVERFLOW_OVERWRITE, &s), EVQ_OK);
  CHECK(s != NULL);

  /* A second create of the same file fails; the first handle is intact. */
  evq_shared *again = (evq_shared *)1;
  CHECK_STATUS(evq_shared_create(path, strlen(path), 64, 128, EVQ_OVERFLOW_OVERWRITE, &again),
               EVQ_SHM_IO);
  CHECK(again == NULL);
  CHECK(strstr(evq_last_error(), "open") != NULL);

  evq_property props[2] = {PROP("sku", "gem_pack"), PROP("gems", "50")};
  evq_event e = make_event("purchase", props, 2);
  e.timestamp = 1234;
  uint64_t seq = 99;
  CHECK_STATUS(evq_shared_push(s, &e, &seq), EVQ_OK);
  CHECK(seq == 0);
  evq_event u = make_event("caf\xc3\xa9", NULL, 0); /* non-ASCII: the checked path */
  CHECK_STATUS(evq_shared_push(s, &u, &seq), EVQ_OK);
  CHECK(seq == 1);

  /* A second handle on the same file (as another process would have). */
  evq_shared *other = NULL;
  CHECK_STATUS(evq_shared_open(path, strlen(path), &other), EVQ_OK);
  size_t len = evq_shared_buffer_size(other);
  CHECK(len > 128);
  CHECK(evq_shared_buffer_size(NULL) == 0);
  unsigned char *buf = malloc(len);
  CHECK(buf != NULL);
  evq_payload p;
  uint64_t lost = 7;
  CHECK_STATUS(evq_shared_try_claim(other, buf, len - 1, &p, &lost), EVQ_BUFFER_TOO_SMALL);
  CHECK(lost == 7);
  CHECK_STATUS(evq_shared_try_claim(other, NULL, len, &p, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_shared_try_claim(other, buf, len, &p, &lost), EVQ_OK);
  CHECK(lost == 0);
  CHECK(p.kind == EVQ_PAYLOAD_EVENT);
  CHECK(p.event.seq == 0 && p.event.timestamp == 1234);
  CHECK(text_is(p.event.name, p.event.name_len, "purchase"));
  CHECK(p.event.property_count == 2);
  CHECK(text_is(p.event.properties[1].key, p.event.properties[1].key_len, "gems"));
  CHECK(text_is(p.event.properties[1].value, p.event.properties[1].value_len, "50"));
  CHECK_STATUS(evq_shared_try_claim(s, buf, len, &p, NULL), EVQ_OK);
  CHECK(p.event.seq == 1 && p.event.timestamp > 0);
  CHECK(text_is(p.event.name, p.event.name_len, "caf\xc3\xa9"));
  CHECK_STATUS(evq_shared_try_claim(s, buf, len, &p, &lost), EVQ_EMPTY);

  /* Wait: times out on an empty ring, returns at once when there is work. */
  CHECK_STATUS(evq_shared_wait(other, 20), EVQ_TIMEOUT);
  CHECK_STATUS(evq_shared_push(s, &e, NULL), EVQ_OK);
  CHECK_STATUS(evq_shared_wait(other, 10000), EVQ_OK);
  CHECK_STATUS(evq_shared_wake(other), EVQ_OK);

  /* Overwrite: 100 more into 64 slots, then the counters add up. */
  for (int i = 0; i < 100; i++) CHECK_STATUS(evq_shared_push(s, &e, NULL), EVQ_OK);
  uint64_t claimed = 0, passed = 0;
  evq_status st;
  while ((st = evq_shared_try_claim(other, buf, len, &p, &lost)) == EVQ_OK) {
    claimed++;
    passed += lost;
  }
  CHECK(st == EVQ_EMPTY);
  passed += lost;
  evq_shared_counters c;
  CHECK_STATUS(evq_shared_stats(s, &c), EVQ_OK);
  CHECK(c.pushed == 103 && c.capacity == 64 && c.slot_bytes == 128);
  CHECK(c.delivered == 2 + claimed && c.depth == 0 && c.rejected == 0);
  CHECK(c.overwritten == passed && c.overwritten == 101 - claimed);
  CHECK(c.lost == c.overwritten);
  CHECK(c.pushed == c.delivered + c.lost + c.depth);

  /* Bad inputs: a status, a message, and nothing pushed. */
  CHECK_STATUS(evq_shared_push(NULL, &e, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_shared_push(s, NULL, NULL), EVQ_NULL_POINTER);
  evq_event empty = make_event("", NULL, 0);
  CHECK_STATUS(evq_shared_push(s, &empty, NULL), EVQ_EMPTY_NAME);
  evq_event bad_utf8 = make_event("\xff", NULL, 0);
  CHECK_STATUS(evq_shared_push(s, &bad_utf8, NULL), EVQ_INVALID_UTF8);
  CHECK(strstr(evq_last_error(), "UTF-8") != NULL);
  char big[200];
  memset(big, 'v', sizeof big - 1);
  big[sizeof big - 1] = 0;
  evq_property big_prop = PROP("k", big);
  evq_event too_large = make_event("big", &big_prop, 1);
  CHECK_STATUS(evq_shared_push(s, &too_large, NULL), EVQ_TOO_LARGE);
  CHECK(strstr(evq_last_error(), "128") != NULL);
  evq_event null_props = make_event("x", NULL, 3);
  CHECK_STATUS(evq_shared_push(s, &null_props, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_shared_stats(s, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_shared_stats(NULL, &c), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_shared_wait(NULL, 0), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_shared_wake(NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_shared_try_claim(NULL, buf, len, &p, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_shared_stats(s, &c), EVQ_OK);
  CHECK(c.pushed == 103);

  evq_shared *bad = (evq_shared *)1;
  CHECK_STATUS(evq_shared_create(NULL, 4, 64, 128, EVQ_OVERFLOW_OVERWRITE, &bad), EVQ_NULL_POINTER);
  CHECK(bad == NULL);
  CHECK_STATUS(evq_shared_create(path, 0, 64, 128, EVQ_OVERFLOW_OVERWRITE, &bad), EVQ_INVALID_ARGUMENT);
  CHECK_STATUS(evq_shared_create("a\0b", 3, 64, 128, EVQ_OVERFLOW_OVERWRITE, &bad), EVQ_INVALID_ARGUMENT);
  CHECK(strstr(evq_last_error(), "NUL") != NULL);
  CHECK_STATUS(evq_shared_create(path, strlen(path), 64, 128, 7, &bad), EVQ_INVALID_ARGUMENT);
  CHECK(strstr(evq_last_error(), "overflow") != NULL);
  char fresh[128];
  shared_path(fresh, sizeof fresh, "fresh");
  unlink(fresh);
  CHECK_STATUS(evq_shared_create(fresh, strlen(fresh), 63, 128, EVQ_OVERFLOW_OVERWRITE, &bad), EVQ_INVALID_CONFIG);
  CHECK_STATUS(evq_shared_create(fresh, strlen(fresh), 64, 12, EVQ_OVERFLOW_OVERWRITE, &bad), EVQ_INVALID_CONFIG);
  CHECK(bad == NULL);
  CHECK(access(fresh, F_OK) != 0); /* nothing left behind */
  CHECK_STATUS(evq_shared_create(fresh, strlen(fresh), 64, 128, EVQ_OVERFLOW_OVERWRITE, NULL), EVQ_NULL_POINTER);
  CHECK(access(fresh, F_OK) != 0);
  CHECK_STATUS(evq_shared_open(fresh, strlen(fresh), &bad), EVQ_SHM_IO);
  CHECK(strstr(evq_last_error(), fresh) != NULL);
  CHECK_STATUS(evq_shared_open(NULL, 0, &bad), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_shared_open(path, strlen(path), NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_shared_remove(NULL, 1), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_shared_remove(fresh, strlen(fresh)), EVQ_SHM_IO);

  /* Files that are not rings: refused with the reason, never mapped. */
  char garbage[128];
  shared_path(garbage, sizeof garbage, "garbage");
  FILE *f = fopen(garbage, "wb");
  CHECK(f != NULL);
  fputs("not a ring", f);
  fclose(f);
  CHECK_STATUS(evq_shared_open(garbage, strlen(garbage), &bad), EVQ_SHM_INVALID);
  CHECK(bad == NULL);
  CHECK(strstr(evq_last_error(), "shorter than") != NULL);
  f = fopen(garbage, "wb");
  CHECK(f != NULL);
  for (int i = 0; i < 4096; i++) fputc(0x5a, f);
  fclose(f);
  CHECK_STATUS(evq_shared_open(garbage, strlen(garbage), &bad), EVQ_SHM_INVALID);
  CHECK(strstr(evq_last_error(), "magic") != NULL);
  CHECK_STATUS(evq_shared_remove(garbage, strlen(garbage)), EVQ_OK);
  CHECK_STATUS(evq_shared_open("/tmp", 4, &bad), EVQ_SHM_IO); /* a directory */

  free(buf);
  evq_shared_free(other);
  evq_shared_free(s);
  evq_shared_free(NULL);
  CHECK_STATUS(evq_shared_remove(path, strlen(path)), EVQ_OK);
  CHECK(access(path, F_OK) != 0);
}

/* Raw payloads on a shared ring: pushed as they are, claimed back byte for
 * byte; mixed with events, `evq_shared_try_claim` tells them apart; every
 * bad argument is refused and changes nothing. */
struct reading {
  uint32_t sensor;
  float celsius;
  uint64_t at;
};

static void test_shared_raw(void) {
  char path[128];
  shared_path(path, sizeof path, "raw");
  unlink(path);
  evq_shared *s = NULL;
  CHECK_STATUS(evq_shared_create(path, strlen(path), 16, 64, EVQ_OVERFLOW_REJECT, &s), EVQ_OK);
  size_t len = evq_shared_buffer_size(s);
  unsigned char *buf = malloc(len);
  CHECK(buf != NULL);

  struct reading r = {7, 21.5f, 1234567};
  uint64_t seq = 99, lost = 9;
  size_t got = 0;
  CHECK_STATUS(evq_shared_push_raw(s, (const uint8_t *)&r, sizeof r, &seq), EVQ_OK);
  CHECK(seq == 0);
  CHECK_STATUS(evq_shared_push_raw(s, NULL, 0, NULL), EVQ_OK); /* empty: allowed */
  unsigned char max[52];                                       /* slot_bytes - 12 */
  for (size_t i = 0; i < sizeof max; i++) max[i] = (unsigned char)(255 - i);
  CHECK_STATUS(evq_shared_push_raw(s, max, sizeof max, &seq), EVQ_OK);
  CHECK(seq == 2);

  /* Another handle (as another process) claims them back in order. */
  evq_shared *other = NULL;
  CHECK_STATUS(evq_shared_open(path, strlen(path), &other), EVQ_OK);
  CHECK_STATUS(evq_shared_try_claim_raw(other, buf, len, &got, &seq, &lost), EVQ_OK);
  CHECK(got == sizeof r && seq == 0 && lost == 0);
  struct reading back;
  memcpy(&back, buf, sizeof back);
  CHECK(back.sensor == 7 && back.celsius == 21.5f && back.at == 1234567);
  CHECK_STATUS(evq_shared_try_claim_raw(other, buf, len, &got, NULL, NULL), EVQ_OK);
  CHECK(got == 0);
  CHECK_STATUS(evq_shared_try_claim_raw(other, buf, len, &got, &seq, NULL), EVQ_OK);
  CHECK(got == sizeof max && seq == 2 && memcmp(buf, max, sizeof max) == 0);
  CHECK_STATUS(evq_shared_try_claim_raw(other, buf, len, &got, &seq, &lost), EVQ_EMPTY);
  CHECK(lost == 0);

  /* Bad arguments: refused, nothing pushed, nothing claimed. */
  seq = 99;
  CHECK_STATUS(evq_shared_push_raw(s, max, sizeof max + 1, &seq), EVQ_TOO_LARGE);
  CHECK(strstr(evq_last_error(), "53") != NULL && strstr(evq_last_error(), "52") != NULL);
  CHECK_STATUS(evq_shared_push_raw(s, NULL, 4, &seq), EVQ_NULL_POINTER);
  CHECK(strstr(evq_last_error(), "NULL") != NULL);
  CHECK_STATUS(evq_shared_push_raw(NULL, max, 4, &seq), EVQ_NULL_POINTER);
  CHECK(seq == 99);
  CHECK_STATUS(evq_shared_try_claim_raw(s, buf, len, NULL, NULL, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_shared_try_claim_raw(s, NULL, len, &got, NULL, NULL), EVQ_NULL_POINTER);
  CHECK_STATUS(evq_shared_try_claim_raw(NULL, buf, len, &got, NULL, NULL), EVQ_NULL_POINTER);
  evq_shared_counters c;
  CHECK_STATUS(evq_shared_stats(s, &c), EVQ_OK);
  CHECK(c.pushed == 3 && c.delivered == 3 && c.rejected == 0 && c.depth == 0);

  /* A small buffer takes nothing; the payload is there for the next call. */
  CHECK_STATUS(evq_shared_push_raw(s, (const uint8_t *)&r, sizeof r, NULL), EVQ_OK);
  CHECK_STATUS(evq_shared_try_claim_raw(s, buf, len - 1, &got, NULL, NULL), EVQ_BUFFER_TOO_SMALL);
  CHECK_STATUS(evq_shared_try_claim_raw(s, buf, len, &got, &seq, NULL), EVQ_OK);
  CHECK(seq == 3 && got == sizeof r);

  /* Mixed with events: evq_shared_try_claim says which is which; the raw
   * claim consumes an event as EVQ_MALFORMED, naming it. */
  evq_property prop = PROP("k", "v");
  evq_event e = make_event("tick", &prop, 1);
  CHECK_STATUS(evq_shared_push(s, &e, NULL), EVQ_OK);
  CHECK_STATUS(evq_shared_push_raw(s, (const uint8_t *)&r, sizeof r, NULL), EVQ_OK);
  CHECK_STATUS(evq_shared_push(s, &e, NULL), EVQ_OK);
  evq_payload p;
  CHECK_STATUS(evq_shared_try_claim(s, buf, len, &p, NULL), EVQ_OK);
  CHECK(p.kind == EVQ_PAYLOAD_EVENT && p.event.seq == 4);
  CHECK_STATUS(evq_shared_try_claim(s, buf, len, &p, NULL), EVQ_OK);
  CHECK(p.kind == EVQ_PAYLOAD_RAW && p.raw.seq == 5 && p.raw.len == sizeof r && p.raw.timestamp > 0);
  CHECK(memcmp(p.raw.bytes, &r, sizeof r) == 0);
  CHECK_STATUS(evq_shared_try_claim_raw(s, buf, len, &got, NULL, NULL), EVQ_MALFORMED);
  CHECK(strstr(evq_last_error(), "claim 6 holds an event") != NULL);
  CHECK_STATUS(evq_shared_try_claim_raw(s, buf, len, &got, NULL, NULL), EVQ_EMPTY);

  /* Reject: a full ring refuses and counts it; room again after a claim. */
  for (int i = 0; i < 16; i++) CHECK_STATUS(evq_shared_push_raw(s, max, 8, NULL), EVQ_OK);
  CHECK_STATUS(evq_shared_push_raw(s, max, 8, NULL), EVQ_FULL);
  CHECK_STATUS(evq_shared_try_claim_raw(s, buf, len, &got, NULL, NULL), EVQ_OK);
  CHECK_STATUS(evq_shared_push_raw(s, max, 8, NULL), EVQ_OK);
  while (evq_shared_try_claim_raw(s, buf, len, &got, NULL, NULL) == EVQ_OK) CHECK(got == 8);
  CHECK_STATUS(evq_shared_stats(s, &c), EVQ_OK);
  CHECK(c.pushed == c.delivered + c.rejected && c.rejected == 1 && c.depth == 0);

  free(buf);
  evq_shared_free(other);
  evq_shared_free(s);
  CHECK_STATUS(evq_shared_remove(path, strlen(path)), EVQ_OK);
}
#endif

int main(void) {
  test_version_and_status();
  test_config();
  test_threads_and_handlers();
  test_threads_overwrite_accounting();
  test_errors_and_hook();
  test_sessions();
  test_pull_mode();
  test_lagging_subscriber();
  test_lag_policies();
  test_flush_and_shutdown();
  test_json();
  test_many_properties();
  test_bad_inputs();
  test_shutdown_report_counts_only_accepted();
  test_keyed_order_and_exclusivity();
#if defined(__linux__)
  test_shared_ring();
  test_shared_ring_threads();
  test_shared_subscriber();
  test_shared_raw();
#endif
  printf("C11 tests of evqueue %s: %d checks passed\n", evq_version(), checks);
  return 0;
}
