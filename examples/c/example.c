/* A game server's use of evqueue from C: handlers in the worker pool for
 * analytics, a purchase validator that can fail, session events, a client's
 * JSON event, a live-ops subscriber, then flush, stats and shutdown.
 *
 *   make && ./evqueue_example      (see Makefile: pkg-config or this repo) */
#include <evqueue.h>

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

struct analytics {
  atomic_ulong events;
  atomic_ulong gems;
};

/* Runs on worker threads, several at once: `user` is shared, so atomics. */
static int count_event(const evq_event *e, void *user) {
  (void)e;
  atomic_fetch_add(&((struct analytics *)user)->events, 1);
  return 0;
}

static int on_purchase(const evq_event *e, void *user) {
  for (size_t i = 0; i < e->property_count; i++) {
    const evq_property *p = &e->properties[i];
    if (p->key_len == 4 && memcmp(p->key, "gems", 4) == 0) {
      unsigned long n = 0;
      for (size_t j = 0; j < p->value_len; j++) n = n * 10 + (unsigned long)(p->value[j] - '0');
      atomic_fetch_add(&((struct analytics *)user)->gems, n);
      return 0;
    }
  }
  return 400; /* a purchase without gems: counted as a handler error */
}

static void on_error(const evq_event *e, const evq_failure *f, void *user) {
  (void)user;
  fprintf(stderr, "handler failed on %.*s: %s\n", (int)e->name_len, e->name, f->message);
}

static int fail(const char *what, evq_status s) {
  fprintf(stderr, "%s: %s (%s)\n", what, evq_status_str((int)s), evq_last_error());
  return 1;
}

int main(void) {
  evq_config config = evq_config_default();
  config.capacity = 4096;
  config.workers = 2;
  evq_queue *q = NULL;
  evq_status s = evq_new(&config, &q);
  if (s != EVQ_OK) return fail("evq_new", s);

  struct analytics stats = {0, 0};
  evq_on_any(q, count_event, &stats);
  evq_on(q, "purchase", strlen("purchase"), on_purchase, &stats);
  evq_on_error(q, on_error, NULL);
  evq_subscriber *liveops = NULL;
  evq_subscribe(q, EVQ_START_NOW, &liveops);
  if ((s = evq_start(q)) != EVQ_OK) return fail("evq_start", s);

  evq_property user = {"user", 4, "ada", 3};
  evq_emit_session_start(q, &user, 1);
  evq_property props[2] = {{"sku", 3, "gem_pack", 8}, {"gems", 4, "50", 2}};
  evq_event purchase = {0};
  purchase.name = "purchase";
  purchase.name_len = strlen(purchase.name);
  purchase.properties = props;
  purchase.property_count = 2;
  for (int i = 0; i < 10; i++) evq_push(q, &purchase, NULL);
  purchase.property_count = 1; /* no gems: the handler refuses it */
  evq_push(q, &purchase, NULL);
  const char *body = "{\"name\": \"level_up\", \"properties\": {\"level\": \"7\"}}";
  if ((s = evq_push_json(q, body, strlen(body), true)) != EVQ_OK) return fail("evq_push_json", s);
  if ((s = evq_push_json(q, "{\"name\": 7}", 11, true)) != EVQ_OK)
    printf("refused a bad client event: %s\n", evq_last_error());
  evq_emit_session_end(q, "logout", 6, &user, 1);

  if ((s = evq_flush(q, 5000)) != EVQ_OK) return fail("evq_flush", s);
  evq_payload p;
  int seen = 0;
  while (evq_subscriber_try_recv(liveops, &p, NULL) == EVQ_OK) seen++;

  evq_queue_stats st;
  evq_stats(q, &st);
  printf("pushed %llu, handled %llu, handler errors %llu; analytics saw %lu events, %lu gems; "
         "live-ops saw %d\n",
         (unsigned long long)st.pushed, (unsigned long long)st.handled,
         (unsigned long long)st.handler_errors, atomic_load(&stats.events),
         atomic_load(&stats.gems), seen);

  evq_shutdown_report r;
  evq_shutdown(q, 5000, &r);
  printf("shutdown: pushed %llu = handled %llu + overwritten %llu + left %llu\n",
         (unsigned long long)r.pushed, (unsigned long long)r.handled,
         (unsigned long long)r.overwritten, (unsigned long long)r.left);
  evq_subscriber_free(liveops);
  evq_free(q);
  /* The books must balance: 14 pushed, all handled, 500 gems, one refusal. */
  return (r.pushed == 14 && r.handled == 14 && st.handler_errors == 1 &&
          atomic_load(&stats.gems) == 500 && seen == 14)
             ? 0
             : 1;
}
