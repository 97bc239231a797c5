// C++17 tests of libevqueue through include/evqueue.h: the header compiles
// as C++ (extern "C"), and the API is usable with RAII handles, std::thread
// and lambdas (via a user_data trampoline). Built and run by tests/c/run.sh
// with -Wall -Wextra -Werror -fsanitize=address,undefined.
#include "evqueue.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

int checks = 0;

void check(bool ok, const char *what, int line) {
  ++checks;
  if (!ok) {
    std::fprintf(stderr, "test_evqueue.cpp:%d: check failed: %s (last error: %s)\n", line, what,
                 evq_last_error());
    std::exit(1);
  }
}
#define CHECK(cond) check((cond), #cond, __LINE__)
#define CHECK_STATUS(call, expected) check((call) == (expected), #call " == " #expected, __LINE__)

struct QueueDeleter {
  void operator()(evq_queue *q) const { evq_free(q); }
};
using Queue = std::unique_ptr<evq_queue, QueueDeleter>;

struct SubscriberDeleter {
  void operator()(evq_subscriber *s) const { evq_subscriber_free(s); }
};
using Subscriber = std::unique_ptr<evq_subscriber, SubscriberDeleter>;

Queue make_queue(size_t capacity, size_t workers) {
  evq_config c = evq_config_default();
  c.capacity = capacity;
  c.workers = workers;
  evq_queue *q = nullptr;
  CHECK_STATUS(evq_new(&c, &q), EVQ_OK);
  return Queue(q);
}

std::string_view name_of(const evq_event &e) { return {e.name, e.name_len}; }

evq_property prop(std::string_view k, std::string_view v) {
  return evq_property{k.data(), k.size(), v.data(), v.size()};
}

evq_event event(std::string_view name, const std::vector<evq_property> &props = {}) {
  evq_event e{};
  e.name = name.data();
  e.name_len = name.size();
  e.properties = props.empty() ? nullptr : props.data();
  e.property_count = props.size();
  return e;
}

// A std::function handler behind a C function pointer: user_data is the
// std::function, shared by every worker thread (so what it captures must be
// thread-safe: atomics here).
using Handler = std::function<int(const evq_event &)>;
extern "C" int trampoline(const evq_event *e, void *user) {
  try {
    return (*static_cast<Handler *>(user))(*e);
  } catch (...) {
    return -1;  // never let an exception unwind into evqueue
  }
}

evq_queue_stats stats(const Queue &q) {
  evq_queue_stats s{};
  CHECK_STATUS(evq_stats(q.get(), &s), EVQ_OK);
  return s;
}

void test_threads_and_handlers() {
  Queue q = make_queue(1 << 16, 2);
  std::atomic<unsigned> purchases{0}, any{0}, gems{0};
  Handler on_purchase = [&](const evq_event &e) {
    if (e.property_count != 1) return 1;
    gems += static_cast<unsigned>(std::stoi(std::string(e.properties[0].value, e.properties[0].value_len)));
    ++purchases;
    return 0;
  };
  Handler on_any = [&](const evq_event &) { ++any; return 0; };
  CHECK_STATUS(evq_on(q.get(), "purchase", 8, trampoline, &on_purchase), EVQ_OK);
  CHECK_STATUS(evq_on_any(q.get(), trampoline, &on_any), EVQ_OK);
  CHECK_STATUS(evq_start(q.get()), EVQ_OK);

  constexpr int kThreads = 4, kPerThread = 10000;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      std::vector<evq_property> props{prop("gems", "3")};
      evq_event p = event("purchase", props), tick = event("tick");
      for (int i = 0; i < kPerThread; ++i)
        if (evq_push(q.get(), i % 2 ? &p : &tick, nullptr) != EVQ_OK) ++failures;
    });
  }
  for (auto &t : threads) t.join();
  CHECK(failures == 0);
  CHECK_STATUS(evq_flush(q.get(), 30000), EVQ_OK);
  const unsigned total = kThreads * kPerThread;
  CHECK(purchases == total / 2 && gems == total / 2 * 3 && any == total);
  evq_queue_stats s = stats(q);
  CHECK(s.pushed == total && s.handled == total && s.overwritten == 0 && s.handler_errors == 0);

  evq_shutdown_report r{};
  CHECK_STATUS(evq_shutdown(q.get(), 10000, &r), EVQ_OK);
  CHECK(r.pushed == total && r.handled == total && r.left == 0 && !r.timed_out);
  CHECK_STATUS(evq_push(q.get(), nullptr, nullptr), EVQ_NULL_POINTER);
  evq_event late = event("late");
  CHECK_STATUS(evq_push(q.get(), &late, nullptr), EVQ_CLOSED);
}

void test_sessions_and_errors() {
  Queue q = make_queue(64, 1);
  std::atomic<int> ends{0}, hook_code{0};
  Handler on_end = [&](const evq_event &e) {
    bool ok = e.property_count == 1 && std::string_view(e.properties[0].value, e.properties[0].value_len) == "kick";
    ++ends;
    return ok ? 0 : 1;
  };
  Handler throws = [](const evq_event &) -> int { throw std::runtime_error("caught by the trampoline"); };
  CHECK_STATUS(evq_on_session_end(q.get(), trampoline, &on_end), EVQ_OK);
  CHECK_STATUS(evq_on_session_start(q.get(), trampoline, &throws), EVQ_OK);
  CHECK_STATUS(evq_on_error(q.get(),
                            [](const evq_event *, const evq_failure *f, void *user) {
                              static_cast<std::atomic<int> *>(user)->store(f->code);
                            },
                            &hook_code),
               EVQ_OK);
  CHECK_STATUS(evq_start(q.get()), EVQ_OK);
  CHECK_STATUS(evq_emit_session_start(q.get(), nullptr, 0), EVQ_OK);
  CHECK_STATUS(evq_emit_session_end(q.get(), "kick", 4, nullptr, 0), EVQ_OK);
  CHECK_STATUS(evq_flush(q.get(), 10000), EVQ_OK);
  CHECK(ends == 1 && hook_code == -1);
  CHECK(stats(q).handler_errors == 1);
}

void test_pull_json_and_subscriber() {
  Queue q = make_queue(16, 1);
  Subscriber sub;
  {
    evq_subscriber *s = nullptr;
    CHECK_STATUS(evq_subscribe(q.get(), EVQ_START_NOW, &s), EVQ_OK);
    sub.reset(s);
  }
  std::string body = R"({"name": "chat", "properties": {"text": "gg"}})";
  CHECK_STATUS(evq_push_json(q.get(), body.data(), body.size(), true), EVQ_OK);
  std::string broken = R"({"name": "chat", "properties": {"text": 1}})";
  CHECK_STATUS(evq_push_json(q.get(), broken.data(), broken.size(), true), EVQ_JSON_SHAPE);
  CHECK(std::strlen(evq_last_error()) > 0);

  std::vector<uint8_t> buf(evq_pop_buffer_size(q.get()));
  evq_payload p{};
  CHECK_STATUS(evq_try_pop(q.get(), buf.data(), buf.size(), &p), EVQ_OK);
  CHECK(p.kind == EVQ_PAYLOAD_EVENT && name_of(p.event) == "chat" && p.event.external);
  CHECK(std::string_view(p.event.properties[0].value, p.event.properties[0].value_len) == "gg");
  CHECK_STATUS(evq_try_pop(q.get(), buf.data(), buf.size(), &p), EVQ_EMPTY);

  // The subscriber saw it too, then falls behind by 30 events on 16 slots.
  CHECK_STATUS(evq_subscriber_try_recv(sub.get(), &p, nullptr), EVQ_OK);
  CHECK(name_of(p.event) == "chat");
  evq_event tick = event("tick");
  for (int i = 0; i < 30; ++i) CHECK_STATUS(evq_push(q.get(), &tick, nullptr), EVQ_OK);
  uint64_t missed = 0;
  CHECK_STATUS(evq_subscriber_recv_timeout(sub.get(), 1000, &p, &missed), EVQ_LAGGED);
  // 15..30 retained; readers continue an eighth of the ring (2) further on.
  CHECK(missed == 16);
  int received = 0;
  while (evq_subscriber_try_recv(sub.get(), &p, nullptr) == EVQ_OK) ++received;
  CHECK(received == 14);

  // Pull-mode accounting: 30 pushed, 16 retained, the pop continues at 17.
  int popped = 0;
  while (evq_try_pop(q.get(), buf.data(), buf.size(), &p) == EVQ_OK) ++popped;
  evq_queue_stats s = stats(q);
  CHECK(popped == 14 && s.popped == 15 && s.overwritten == 16 && s.pushed == 31);
  CHECK(s.pushed == s.popped + s.overwritten + s.handled + s.depth);
}

void test_bad_inputs() {
  Queue q = make_queue(64, 1);
  evq_event e = event("\xe2\x82");  // truncated UTF-8
  CHECK_STATUS(evq_push(q.get(), &e, nullptr), EVQ_INVALID_UTF8);
  std::string long_name(256, 'x');
  e = event(long_name);
  CHECK_STATUS(evq_push(q.get(), &e, nullptr), EVQ_NAME_TOO_LONG);
  std::string big(300, 'v');
  std::vector<evq_property> props{prop("k", big)};
  e = event("big", props);
  CHECK_STATUS(evq_push(q.get(), &e, nullptr), EVQ_TOO_LARGE);
  CHECK_STATUS(evq_push_json(q.get(), "{", 1, false), EVQ_JSON_SYNTAX);
  evq_config bad = evq_config_default();
  bad.slot_bytes = 8;
  evq_queue *none = nullptr;
  CHECK_STATUS(evq_new(&bad, &none), EVQ_INVALID_CONFIG);
  CHECK(none == nullptr);
  CHECK(stats(q).pushed == 0);
}

}  // namespace

int main() {
  test_threads_and_handlers();
  test_sessions_and_errors();
  test_pull_json_and_subscriber();
  test_bad_inputs();
  std::printf("C++17 tests of evqueue %s: %d checks passed\n", evq_version(), checks);
  return 0;
}
