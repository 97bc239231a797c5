/* A C producer process for the cross-language tests
 * (python/tests/test_shared.py): opens the shared ring PATH that the test
 * created and pushes COUNT events, then prints one line,
 * "pushed COUNT rejected REJECTED", and exits 0.
 *
 *   shared_producer PATH COUNT
 *   shared_producer --create PATH COUNT   (tests/c/run.sh's smoke run)
 *   shared_producer --producer ID PATH COUNT [PAD]
 *
 * With --create it makes the ring itself (1024 slots of 128 bytes,
 * overwrite) and removes the file at the end.
 *
 * Event i is named "tick" with properties i = "<i>" and pad = the decimal
 * digits of i repeated to 48 bytes, so a reader can tell a torn or mixed-up
 * event from a whole one. With --producer ID (the kill -9 test: several
 * producers one after another) event i also has p = "<ID>", and pad repeats
 * "<ID>.<i>" to PAD bytes (default 48) instead; COUNT 0 means push until
 * killed. Under EVQ_OVERFLOW_REJECT a refused push (EVQ_FULL) is counted
 * and retried after a yield (with --producer, after 50 us asleep). Any
 * other failure exits 1 with evq_last_error() on stderr. Linux only (the
 * shared ring is). */
#define _POSIX_C_SOURCE 200809L
#include "evqueue.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* `text` (n bytes) repeated to fill `len` bytes of `out`. */
static void repeat_to(const char *text, int n, char *out, size_t len) {
  for (size_t k = 0; k < len; k++) out[k] = text[k % (size_t)n];
}

static void usage(const char *argv0) {
  fprintf(stderr, "usage: %s [--create | --producer ID] PATH COUNT [PAD]\n", argv0);
}

int main(int argc, char **argv) {
  int create = argc == 4 && strcmp(argv[1], "--create") == 0;
  int tagged = (argc == 5 || argc == 6) && strcmp(argv[1], "--producer") == 0;
  if (argc != 3 && !create && !tagged) {
    usage(argv[0]);
    return 2;
  }
  int first = create ? 2 : tagged ? 3 : 1;
  const char *id = tagged ? argv[2] : NULL;
  size_t id_len = id ? strlen(id) : 0;
  if (tagged && (id_len == 0 || id_len > 20)) {
    usage(argv[0]);
    return 2;
  }
  const char *path = argv[first];
  unsigned long long count = strtoull(argv[first + 1], NULL, 10);
  /* COUNT 0 with --producer: until killed (the test sends SIGKILL). */
  int forever = tagged && count == 0;
  /* A long pad makes each push's write, the window a kill must land in
   * to leave a ticket half-written, a large part of the producer's time. */
  size_t pad_len = argc == 6 ? (size_t)strtoull(argv[5], NULL, 10) : 48;
  if (pad_len < 48 || pad_len > 65535) {
    usage(argv[0]);
    return 2;
  }
  char *pad = malloc(pad_len);
  if (pad == NULL) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  evq_shared *ring = NULL;
  evq_status s = create ? evq_shared_create(path, strlen(path), 1024, 128, EVQ_OVERFLOW_OVERWRITE, &ring)
                        : evq_shared_open(path, strlen(path), &ring);
  if (s != EVQ_OK) {
    fprintf(stderr, "evq_shared_%s: %s (%s)\n", create ? "create" : "open", evq_status_str((int)s),
            evq_last_error());
    free(pad);
    return 1;
  }
  unsigned long long rejected = 0;
  for (unsigned long long i = 0; forever || i < count; i++) {
    char num[32], tag[64];
    int num_len = snprintf(num, sizeof num, "%llu", i);
    int tag_len = tagged ? snprintf(tag, sizeof tag, "%s.%llu", id, i) : num_len;
    repeat_to(tagged ? tag : num, tag_len, pad, pad_len);
    evq_property props[3] = {
        {"i", 1, num, (size_t)num_len}, {"pad", 3, pad, pad_len}, {"p", 1, id, id_len}};
    evq_event e;
    memset(&e, 0, sizeof e);
    e.name = "tick";
    e.name_len = 4;
    e.properties = props;
    e.property_count = tagged ? 3 : 2;
    uint64_t seq = 0;
    while ((s = evq_shared_push(ring, &e, &seq)) == EVQ_FULL) {
      rejected++;
      if (tagged) {
        /* Sleep rather than spin: the consumer gets the CPU, the ring
         * drains faster, and more of this process's time is spent in
         * pushes, where a kill leaves a ticket half-written. */
        struct timespec pause = {0, 50 * 1000};
        nanosleep(&pause, NULL);
      } else {
        sched_yield();
      }
    }
    if (s != EVQ_OK) {
      fprintf(stderr, "evq_shared_push %llu: %s (%s)\n", i, evq_status_str((int)s), evq_last_error());
      evq_shared_free(ring);
      free(pad);
      return 1;
    }
  }
  evq_shared_free(ring);
  free(pad);
  if (create && evq_shared_remove(path, strlen(path)) != EVQ_OK) {
    fprintf(stderr, "evq_shared_remove: %s\n", evq_last_error());
    return 1;
  }
  printf("pushed %llu rejected %llu\n", count, rejected);
  return 0;
}
