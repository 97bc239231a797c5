/* A C producer process for the cross-language test
 * (python/tests/test_shared.py): opens the shared ring PATH that the test
 * created and pushes COUNT events, then prints one line,
 * "pushed COUNT rejected REJECTED", and exits 0.
 *
 *   shared_producer PATH COUNT
 *   shared_producer --create PATH COUNT   (tests/c/run.sh's smoke run)
 *
 * With --create it makes the ring itself (1024 slots of 128 bytes,
 * overwrite) and removes the file at the end.
 *
 * Event i is named "tick" with properties i = "<i>" and pad = the decimal
 * digits of i repeated to 48 bytes, so a reader can tell a torn or mixed-up
 * event from a whole one. Under EVQ_OVERFLOW_REJECT a refused push
 * (EVQ_FULL) is counted and retried after a yield. Any other failure exits 1
 * with evq_last_error() on stderr. Linux only (the shared ring is). */
#define _POSIX_C_SOURCE 200809L
#include "evqueue.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void pad_for(unsigned long long i, char *out, size_t len) {
  char digits[32];
  int n = snprintf(digits, sizeof digits, "%llu", i);
  for (size_t k = 0; k < len; k++) out[k] = digits[k % (size_t)n];
}

int main(int argc, char **argv) {
  int create = argc == 4 && strcmp(argv[1], "--create") == 0;
  if (argc != 3 && !create) {
    fprintf(stderr, "usage: %s [--create] PATH COUNT\n", argv[0]);
    return 2;
  }
  const char *path = argv[1 + create];
  unsigned long long count = strtoull(argv[2 + create], NULL, 10);
  evq_shared *ring = NULL;
  evq_status s = create ? evq_shared_create(path, strlen(path), 1024, 128, EVQ_OVERFLOW_OVERWRITE, &ring)
                        : evq_shared_open(path, strlen(path), &ring);
  if (s != EVQ_OK) {
    fprintf(stderr, "evq_shared_%s: %s (%s)\n", create ? "create" : "open", evq_status_str((int)s),
            evq_last_error());
    return 1;
  }
  unsigned long long rejected = 0;
  for (unsigned long long i = 0; i < count; i++) {
    char num[32], pad[48];
    int num_len = snprintf(num, sizeof num, "%llu", i);
    pad_for(i, pad, sizeof pad);
    evq_property props[2] = {{"i", 1, num, (size_t)num_len}, {"pad", 3, pad, sizeof pad}};
    evq_event e;
    memset(&e, 0, sizeof e);
    e.name = "tick";
    e.name_len = 4;
    e.properties = props;
    e.property_count = 2;
    uint64_t seq = 0;
    while ((s = evq_shared_push(ring, &e, &seq)) == EVQ_FULL) {
      rejected++;
      sched_yield();
    }
    if (s != EVQ_OK) {
      fprintf(stderr, "evq_shared_push %llu: %s (%s)\n", i, evq_status_str((int)s), evq_last_error());
      evq_shared_free(ring);
      return 1;
    }
  }
  evq_shared_free(ring);
  if (create && evq_shared_remove(path, strlen(path)) != EVQ_OK) {
    fprintf(stderr, "evq_shared_remove: %s\n", evq_last_error());
    return 1;
  }
  printf("pushed %llu rejected %llu\n", count, rejected);
  return 0;
}
