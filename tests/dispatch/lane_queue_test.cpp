// The lane's queue on its own: ordering keys, timers, admit-once, batches and
// reordering, with a ManualClock. No threads, no store, no plugin.
#include "dispatch/LaneQueue.h"
#include "util/Clock.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

using namespace clayhook;
using namespace std::chrono_literals;

namespace {

DeliveryRef ref(int64_t id, std::string key = "", int64_t due_ms = 0) {
    DeliveryRef r;
    r.id = id;
    r.event_seq = id;
    r.due_ms = due_ms;
    r.order_key = std::move(key);
    return r;
}

std::vector<int64_t> ids(const std::vector<DeliveryRef>& v) {
    std::vector<int64_t> out;
    for (const auto& r : v)
        out.push_back(r.id);
    return out;
}

// Takes up to `max` due at `now`: their ids.
std::vector<int64_t> take(LaneQueue& q, int64_t now, size_t max = 100) {
    std::vector<DeliveryRef> out;
    q.take(now, max, out);
    return ids(out);
}

// Takes one delivery, finishes it for good and ends its call.
int64_t take_and_finish(LaneQueue& q, int64_t now) {
    std::vector<DeliveryRef> out;
    REQUIRE(q.take(now, 1, out) == 1);
    q.release(out[0], now);
    q.end_call(out);
    return out[0].id;
}

}  // namespace

TEST_CASE("lane queue: deliveries with one key go one at a time, in event order",
          "[dispatch][lane-queue]") {
    ManualClock clock;
    const int64_t now = clock.now_ms();
    LaneQueue q(true);
    for (int64_t id = 1; id <= 3; ++id)
        REQUIRE(q.admit(ref(id, "row_A", now), now));
    CHECK(q.due() == 1);
    CHECK(q.counts(now).held == 2);

    std::vector<DeliveryRef> running;
    REQUIRE(q.take(now, 10, running) == 1);
    CHECK(running[0].id == 1);
    CHECK(take(q, now).empty());  // 2 waits while 1 runs

    // A retry of 1 still holds the key: 2 does not go meanwhile.
    running[0].due_ms = now + 1000;
    q.put_back(std::move(running[0]), now);
    q.end_call(running);
    clock.advance(999ms);
    CHECK(take(q, clock.now_ms()).empty());
    clock.advance(1ms);
    running.clear();
    REQUIRE(q.take(clock.now_ms(), 10, running) == 1);
    CHECK(running[0].id == 1);

    // 1 done: 2 goes, then 3, in order.
    q.release(running[0], clock.now_ms());
    q.end_call(running);
    CHECK(take_and_finish(q, clock.now_ms()) == 2);
    CHECK(take_and_finish(q, clock.now_ms()) == 3);
    CHECK(q.pending() == 0);
    CHECK(q.counts(clock.now_ms()).held == 0);
}

TEST_CASE("lane queue: different keys, and no key, do not wait for each other",
          "[dispatch][lane-queue]") {
    const int64_t now = 1000;
    LaneQueue q(true);
    q.admit(ref(1, "A", now), now);
    q.admit(ref(2, "A", now), now);
    q.admit(ref(3, "B", now), now);
    q.admit(ref(4, "", now), now);  // no key: never held, holds nothing
    q.admit(ref(5, "", now), now);
    q.admit(ref(6, "B", now), now);
    // One per key at most, in the order they became due: a batch never
    // holds two deliveries with one key.
    CHECK(take(q, now) == std::vector<int64_t>{1, 3, 4, 5});
    CHECK(q.counts(now).held == 2);
    CHECK(q.counts(now).running == 4);
}

TEST_CASE("lane queue: unordered, one key does not hold anything back", "[dispatch][lane-queue]") {
    const int64_t now = 1000;
    LaneQueue q(false);
    for (int64_t id = 1; id <= 3; ++id)
        q.admit(ref(id, "A", now), now);
    CHECK(take(q, now) == std::vector<int64_t>{1, 2, 3});
}

TEST_CASE("lane queue: a delivery is not due before its time, and is at it",
          "[dispatch][lane-queue]") {
    ManualClock clock;
    const int64_t t0 = clock.now_ms();
    LaneQueue q;
    q.admit(ref(1, "", t0 + 500), t0);
    q.admit(ref(2, "", t0 + 100), t0);
    q.admit(ref(3, "", t0), t0);
    CHECK(q.due() == 1);
    CHECK(q.next_due_ms() == t0 + 100);
    auto c = q.counts(t0);
    CHECK(c.due == 1);
    CHECK(c.later == 2);
    CHECK(take(q, t0) == std::vector<int64_t>{3});

    clock.advance(99ms);
    CHECK(take(q, clock.now_ms()).empty());
    CHECK(q.counts(clock.now_ms()).later == 2);
    clock.advance(1ms);
    CHECK(q.counts(clock.now_ms()).due == 1);  // counted as due before promote()
    CHECK(q.due() == 0);
    CHECK(take(q, clock.now_ms()) == std::vector<int64_t>{2});
    CHECK(q.next_due_ms() == t0 + 500);

    // A retry put back for later is not due before its time.
    clock.advance(400ms);  // t0 + 500: 1 is due; a retry of 3 for t0 + 900
    std::vector<DeliveryRef> r{ref(3, "", t0 + 900)};
    q.put_back(std::move(r[0]), clock.now_ms());
    CHECK(take(q, clock.now_ms()) == std::vector<int64_t>{1});
    clock.advance(399ms);
    CHECK(take(q, clock.now_ms()).empty());
    clock.advance(1ms);
    CHECK(take(q, clock.now_ms()) == std::vector<int64_t>{3});
    CHECK_FALSE(q.next_due_ms());
}

TEST_CASE("lane queue: later deliveries come due earliest first, ties by id",
          "[dispatch][lane-queue]") {
    LaneQueue q;
    q.admit(ref(5, "", 300), 0);
    q.admit(ref(4, "", 100), 0);
    q.admit(ref(2, "", 200), 0);
    q.admit(ref(1, "", 200), 0);
    CHECK(take(q, 1000) == std::vector<int64_t>{4, 1, 2, 5});
}

TEST_CASE("lane queue: a delivery is admitted once by id, wherever it is",
          "[dispatch][lane-queue]") {
    const int64_t now = 1000;
    LaneQueue q(true);
    CHECK(q.admit(ref(1, "A", now), now));      // due
    CHECK(q.admit(ref(2, "A", now), now));      // held behind 1
    CHECK(q.admit(ref(3, "", now + 50), now));  // later
    CHECK_FALSE(q.admit(ref(1, "A", now), now));
    CHECK_FALSE(q.admit(ref(2, "A", now), now));
    CHECK_FALSE(q.admit(ref(3, "", now), now));
    CHECK(q.pending() == 3);

    std::vector<DeliveryRef> running;
    q.take(now, 1, running);
    CHECK(q.holds(1));
    CHECK_FALSE(q.admit(ref(1, "A", now), now));  // running
    CHECK(q.running_ids() == std::vector<int64_t>{1});

    // Finished for good: forgotten, so it may come again (a replay).
    q.release(running[0], now);
    q.end_call(running);
    CHECK_FALSE(q.holds(1));
    CHECK(q.running_ids().empty());
    CHECK(q.admit(ref(1, "A", now), now));
    CHECK(q.counts(now).held == 1);  // behind 2, which now holds the key
}

TEST_CASE("lane queue: a batch takes up to its max, in the order they became due",
          "[dispatch][lane-queue]") {
    const int64_t now = 1000;
    LaneQueue q;
    for (int64_t id = 1; id <= 10; ++id)
        q.admit(ref(id, "", now), now);
    std::vector<DeliveryRef> batch;
    CHECK(q.take(now, 4, batch) == 4);
    CHECK(ids(batch) == std::vector<int64_t>{1, 2, 3, 4});
    batch.clear();
    CHECK(q.take(now, 4, batch) == 4);
    CHECK(ids(batch) == std::vector<int64_t>{5, 6, 7, 8});
    batch.clear();
    CHECK(q.take(now, 4, batch) == 2);
    CHECK(ids(batch) == std::vector<int64_t>{9, 10});
    CHECK(q.counts(now).running == 10);
    batch.clear();
    CHECK(q.take(now, 4, batch) == 0);
    // What came due by `now` is part of it, the rest is not.
    q.admit(ref(11, "", now + 10), now);
    q.admit(ref(12, "", now + 20), now);
    CHECK(q.take(now + 10, 4, batch) == 1);
    CHECK(batch.back().id == 11);
}

TEST_CASE("lane queue: switching ordering on and off rebuilds what waits behind which key",
          "[dispatch][lane-queue]") {
    const int64_t now = 1000;
    LaneQueue q(false);
    // Stored out of order in the queue: a later one, then the rest.
    q.admit(ref(2, "A", now + 500), now);
    q.admit(ref(1, "A", now), now);
    q.admit(ref(3, "A", now), now);
    q.admit(ref(4, "B", now), now);
    q.admit(ref(5, "C", now), now);
    std::vector<DeliveryRef> running;
    q.take(now, 1, running);  // 1 runs, holding nothing yet
    CHECK(running[0].id == 1);

    q.set_ordered(true, now);
    CHECK(q.ordered());
    auto c = q.counts(now);
    // A's key is held by the running 1: 2 and 3 wait behind it; B and C go.
    CHECK(c.held == 2);
    CHECK(c.due == 2);
    CHECK(c.running == 1);
    CHECK(take(q, now) == std::vector<int64_t>{4, 5});

    // 1 done: the first of A in event order (2, though due later) comes next.
    q.release(running[0], now);
    q.end_call(running);
    CHECK(q.counts(now).held == 1);
    CHECK(take(q, now).empty());
    CHECK(take(q, now + 500) == std::vector<int64_t>{2});

    // Off again: what was held is due (or later) at once.
    q.set_ordered(false, now + 500);
    CHECK_FALSE(q.ordered());
    c = q.counts(now + 500);
    CHECK(c.held == 0);
    CHECK(c.due == 1);
    CHECK(take(q, now + 500) == std::vector<int64_t>{3});

    // Setting the same ordering again changes nothing.
    q.admit(ref(6, "A", now), now);
    q.admit(ref(7, "A", now), now);
    q.set_ordered(false, now);
    CHECK(q.counts(now).due == 2);
}

TEST_CASE("lane queue: a re-delivery asked for again moves to its new time",
          "[dispatch][lane-queue]") {
    const int64_t now = 1000;
    LaneQueue q;
    DeliveryRef a = ref(1, "", now + 100);
    a.attempts = 3;
    a.age_from_ms = 5;
    q.admit(std::move(a), now);
    q.admit(ref(2, "", now), now);

    CHECK(q.reschedule(1, now + 5000, now));  // later → later
    CHECK(take(q, now + 4999) == std::vector<int64_t>{2});
    CHECK(q.reschedule(1, now, now));  // still later in the heap until promoted
    std::vector<DeliveryRef> out;
    q.take(now, 10, out);
    REQUIRE(out.size() == 1);
    CHECK(out[0].due_ms == now);
    CHECK(out[0].age_from_ms == now);
    CHECK(out[0].attempts == 0);

    q.admit(ref(3, "", now), now);
    CHECK(q.reschedule(3, now + 10, now));  // due → later
    CHECK(q.due() == 0);
    CHECK(q.next_due_ms() == now + 10);
    CHECK_FALSE(q.reschedule(1, now, now));  // running: left alone
    CHECK_FALSE(q.reschedule(99, now, now));
}
