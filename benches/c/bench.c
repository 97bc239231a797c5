/* evq_push from C against ck_ring (Concurrency Kit) SPMC, same payload, same
 * run. Run by benches/c/run.sh, which also runs the Rust push of the same
 * event (ffi/examples/push_bench.rs) and prints the ratios. By hand, not in
 * CI: timings on a shared 2-core machine are noisy.
 *
 * Measures (best of ROUNDS, each round timing the pushes into an empty ring
 * and draining it untimed, so neither side ever finds its ring full):
 *   push_event       evq_push of the Nakama event (name + 2 properties)
 *   push_raw         evq_push_raw of a 48-byte payload (overwrite policy)
 *   push_raw_reject  the same under the reject policy (one RMW fewer per push:
 *                    no ticket can be lapped, so the slot needs no claim)
 *   ck_push          ck_ring_enqueue_spmc of the same 48-byte payload (typed
 *                    ring; single producer, plain stores)
 *   ck_push_mpmc     ck_ring_enqueue_mpmc of it: ck's multi-producer push,
 *                    the kind evq_push is (any thread may push)
 * and one producer thread to one consumer thread (pinned to two CPUs), N
 * payloads of 48 bytes:
 *   evq_1p1c    evq_push_raw (reject policy, retry on EVQ_FULL) / evq_try_pop
 *   ck_1p1c     ck_ring_enqueue_spmc (retry on full) / ck_ring_dequeue_spmc
 * Output: one "name value unit" line per measure. */
#define _GNU_SOURCE /* sched_setaffinity, CPU_SET */
#include "evqueue.h"

#include <ck_ring.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CAPACITY 65536
#define ROUNDS 30
#define PAYLOAD 48

struct payload {
  unsigned char bytes[PAYLOAD];
};
CK_RING_PROTOTYPE(payload, payload)

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *what, evq_status s) {
  fprintf(stderr, "%s: %s (%s)\n", what, evq_status_str((int)s), evq_last_error());
  exit(1);
}

/* Pins the calling thread to the nth CPU it may run on, if it may run on two
 * or more: left to the scheduler, the producer and the consumer sometimes
 * share one CPU for a whole run (taking turns by time slice), which made
 * the one-to-one figures bimodal. */
static void pin_to_allowed_cpu(int nth) {
  cpu_set_t allowed, one;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || CPU_COUNT(&allowed) < 2) return;
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
    if (CPU_ISSET(cpu, &allowed) && nth-- == 0) {
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      sched_setaffinity(0, sizeof one, &one); /* best effort */
      return;
    }
  }
}

static evq_queue *new_queue(uint32_t overflow) {
  evq_config c = evq_config_default();
  c.capacity = CAPACITY;
  c.overflow = overflow;
  evq_queue *q = NULL;
  evq_status s = evq_new(&c, &q);
  if (s != EVQ_OK) die("evq_new", s);
  return q; /* never started: pull mode */
}

static void drain(evq_queue *q, uint8_t *buf, size_t len) {
  evq_payload p;
  while (evq_try_pop(q, buf, len, &p) == EVQ_OK) {
  }
}

/* The event the Rust bench pushes too (keep them in step). */
static const evq_property PROPS[2] = {{"winner", 6, "blue", 4}, {"map", 3, "dust2", 5}};

static double bench_push_event(int per_round) {
  evq_queue *q = new_queue(EVQ_OVERFLOW_OVERWRITE);
  size_t len = evq_pop_buffer_size(q);
  uint8_t *buf = malloc(len);
  evq_event e;
  memset(&e, 0, sizeof e);
  e.name = "match_end";
  e.name_len = 9;
  e.properties = PROPS;
  e.property_count = 2;
  e.timestamp = 1700000000000000000ull;
  double best = 1e30;
  for (int r = 0; r < ROUNDS; r++) {
    double t0 = now_ns();
    for (int i = 0; i < per_round; i++) {
      evq_status s = evq_push(q, &e, NULL);
      if (s != EVQ_OK) die("evq_push", s);
    }
    double ns = (now_ns() - t0) / per_round;
    if (ns < best) best = ns;
    drain(q, buf, len);
  }
  free(buf);
  evq_free(q);
  return best;
}

static double bench_push_raw(int per_round, uint32_t overflow) {
  evq_queue *q = new_queue(overflow);
  size_t len = evq_pop_buffer_size(q);
  uint8_t *buf = malloc(len);
  struct payload pl;
  memset(&pl, 7, sizeof pl);
  double best = 1e30;
  for (int r = 0; r < ROUNDS; r++) {
    double t0 = now_ns();
    for (int i = 0; i < per_round; i++) {
      evq_status s = evq_push_raw(q, &pl, sizeof pl, 1, NULL);
      if (s != EVQ_OK) die("evq_push_raw", s);
    }
    double ns = (now_ns() - t0) / per_round;
    if (ns < best) best = ns;
    drain(q, buf, len);
  }
  free(buf);
  evq_free(q);
  return best;
}

static double bench_ck_push(int per_round, int mpmc) {
  ck_ring_t ring;
  struct payload *slots = calloc(CAPACITY, sizeof *slots);
  ck_ring_init(&ring, CAPACITY);
  struct payload pl, out;
  memset(&pl, 7, sizeof pl);
  double best = 1e30;
  for (int r = 0; r < ROUNDS; r++) {
    double t0 = now_ns();
    for (int i = 0; i < per_round; i++) {
      bool ok = mpmc ? ck_ring_enqueue_mpmc_payload(&ring, slots, &pl)
                     : ck_ring_enqueue_spmc_payload(&ring, slots, &pl);
      if (!ok) {
        fprintf(stderr, "ck ring full\n");
        exit(1);
      }
    }
    double ns = (now_ns() - t0) / per_round;
    if (ns < best) best = ns;
    while (ck_ring_dequeue_mpmc_payload(&ring, slots, &out)) {
    }
  }
  free(slots);
  return best;
}

/* ---- one producer, one consumer ---- */

struct pc {
  pthread_barrier_t start;
  long n;
  evq_queue *q;
  ck_ring_t ring;
  struct payload *slots;
  double t_start, t_end;
  long received;
  unsigned long checksum;
};

static void *evq_producer(void *arg) {
  struct pc *pc = arg;
  pin_to_allowed_cpu(0);
  struct payload pl;
  memset(&pl, 0, sizeof pl);
  pthread_barrier_wait(&pc->start);
  pc->t_start = now_ns();
  for (long i = 0; i < pc->n; i++) {
    memcpy(pl.bytes, &i, sizeof i);
    evq_status s;
    while ((s = evq_push_raw(pc->q, &pl, sizeof pl, 1, NULL)) == EVQ_FULL) {
    }
    if (s != EVQ_OK) die("evq_push_raw", s);
  }
  return NULL;
}

static void *evq_consumer(void *arg) {
  struct pc *pc = arg;
  pin_to_allowed_cpu(1);
  size_t len = evq_pop_buffer_size(pc->q);
  uint8_t *buf = malloc(len);
  evq_payload p;
  pthread_barrier_wait(&pc->start);
  while (pc->received < pc->n) {
    if (evq_try_pop(pc->q, buf, len, &p) == EVQ_OK) {
      long v;
      memcpy(&v, p.raw.bytes, sizeof v);
      pc->checksum += (unsigned long)v;
      pc->received++;
    }
  }
  pc->t_end = now_ns();
  free(buf);
  return NULL;
}

static void *ck_producer(void *arg) {
  struct pc *pc = arg;
  pin_to_allowed_cpu(0);
  struct payload pl;
  memset(&pl, 0, sizeof pl);
  pthread_barrier_wait(&pc->start);
  pc->t_start = now_ns();
  for (long i = 0; i < pc->n; i++) {
    memcpy(pl.bytes, &i, sizeof i);
    while (!ck_ring_enqueue_spmc_payload(&pc->ring, pc->slots, &pl)) {
    }
  }
  return NULL;
}

static void *ck_consumer(void *arg) {
  struct pc *pc = arg;
  pin_to_allowed_cpu(1);
  struct payload out;
  pthread_barrier_wait(&pc->start);
  while (pc->received < pc->n) {
    if (ck_ring_dequeue_spmc_payload(&pc->ring, pc->slots, &out)) {
      long v;
      memcpy(&v, out.bytes, sizeof v);
      pc->checksum += (unsigned long)v;
      pc->received++;
    }
  }
  pc->t_end = now_ns();
  return NULL;
}

static double run_pc(int use_ck, long n) {
  struct pc pc;
  memset(&pc, 0, sizeof pc);
  pc.n = n;
  pthread_barrier_init(&pc.start, NULL, 2);
  if (use_ck) {
    pc.slots = calloc(CAPACITY, sizeof *pc.slots);
    ck_ring_init(&pc.ring, CAPACITY);
  } else {
    pc.q = new_queue(EVQ_OVERFLOW_REJECT);
  }
  pthread_t p, c;
  pthread_create(&c, NULL, use_ck ? ck_consumer : evq_consumer, &pc);
  pthread_create(&p, NULL, use_ck ? ck_producer : evq_producer, &pc);
  pthread_join(p, NULL);
  pthread_join(c, NULL);
  unsigned long want = (unsigned long)n * (unsigned long)(n - 1) / 2;
  if (pc.received != n || pc.checksum != want) {
    fprintf(stderr, "%s: lost or duplicated payloads\n", use_ck ? "ck" : "evq");
    exit(1);
  }
  if (pc.q) evq_free(pc.q);
  free(pc.slots);
  pthread_barrier_destroy(&pc.start);
  return (double)n / ((pc.t_end - pc.t_start) / 1e9) / 1e6;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 4000000;
  int per_round = CAPACITY - 1; /* a ck ring of CAPACITY holds CAPACITY - 1 */
  printf("c_push_event %.2f ns\n", bench_push_event(per_round));
  printf("c_push_raw %.2f ns\n", bench_push_raw(per_round, EVQ_OVERFLOW_OVERWRITE));
  printf("c_push_raw_reject %.2f ns\n", bench_push_raw(per_round, EVQ_OVERFLOW_REJECT));
  printf("ck_push %.2f ns\n", bench_ck_push(per_round, 0));
  printf("ck_push_mpmc %.2f ns\n", bench_ck_push(per_round, 1));
  double best_evq = 0, best_ck = 0;
  for (int i = 0; i < 3; i++) { /* interleaved, best of 3 each */
    double e = run_pc(0, n), c = run_pc(1, n);
    if (e > best_evq) best_evq = e;
    if (c > best_ck) best_ck = c;
  }
  printf("evq_1p1c %.2f Mevents/s\n", best_evq);
  printf("ck_1p1c %.2f Mevents/s\n", best_ck);
  return 0;
}
