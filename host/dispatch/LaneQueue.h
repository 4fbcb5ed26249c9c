#pragma once

// The queue of one lane (one plugin), as plain data: no threads, no store, no
// plugin. It knows which deliveries are due, which wait for their time (a
// timer heap), and, when the lane is ordered, which wait behind an earlier
// delivery with the same ordering key. Times are given to it, never read.
//
// A delivery goes through it as: admit() → (held behind its key →) due or
// later → take() (running) → put_back() when it will be tried again, or
// release() when it is done or dead → end_call() once its call returned.
//
// Ordering: deliveries with the same non-empty key are handed over one at a
// time, in the order they were admitted (event order). The first of a key
// holds the key from admit() until release(), through its retries; the
// others wait behind it. Deliveries without a key never wait and hold back
// nothing. So a batch never holds two deliveries with one key.
//
// Not thread-safe: the Dispatcher's Lane calls it under its mutex.

#include "store/Store.h"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace clayhook {

class LaneQueue {
  public:
    explicit LaneQueue(bool ordered = false) : ordered_(ordered) {}

    bool ordered() const { return ordered_; }

    // Switches ordering on or off. A change rebuilds what waits behind which
    // key from what is due, later and held, in event order (ids grow with
    // arrival), the keys of running deliveries staying held. Deliveries
    // admitted while unordered carry no key, so they do not wait.
    void set_ordered(bool ordered, int64_t now);

    // A delivery reaching the lane. Admitted once by id: false, and nothing
    // changes, when the lane already holds it (due, later, held or running).
    bool admit(DeliveryRef&& ref, int64_t now);

    // Moves the later deliveries whose time has come (due_ms <= now) to the
    // due queue, earliest first.
    void promote(int64_t now);

    // What is due at `now` (after promote(now)), up to `max`, in the order
    // they became due, appended to `out`. They are running until end_call().
    // Returns how many were taken.
    size_t take(int64_t now, size_t max, std::vector<DeliveryRef>& out);

    // A running delivery that will be tried again at ref.due_ms: due now or
    // later. It keeps its ordering key.
    void put_back(DeliveryRef&& ref, int64_t now);

    // A delivery finished for good (done or dead): forgotten, and the next
    // delivery waiting behind its ordering key, if any, is due or later.
    void release(const DeliveryRef& ref, int64_t now);

    // The call that took these returned: they are no longer running.
    void end_call(const std::vector<DeliveryRef>& items);

    // A delivery held here, due or later, moves to `at_ms`, counted as new
    // (attempts 0, max_age from at_ms). Held-back and running ones are left
    // as they are. False when it is neither due nor later here.
    bool reschedule(int64_t id, int64_t at_ms, int64_t now);

    // The lane holds this id (due, later, held back or running).
    bool holds(int64_t id) const { return known_.count(id) > 0; }
    std::vector<int64_t> running_ids() const;

    // Due now (promoted): ready to be handed over.
    size_t due() const { return ready_.size(); }
    // When the earliest later delivery is due, if any.
    std::optional<int64_t> next_due_ms() const;

    // Due, later and held: what the lane still has to hand over.
    size_t pending() const { return ready_.size() + later_.size() + held_; }
    // The due_ms of the next promoted delivery to be handed over, if any.
    std::optional<int64_t> first_due_ms() const;

    // Due and later as of `now` (walks the timer heap).
    struct Counts {
        size_t due = 0;      // due at `now`, promoted or not
        size_t later = 0;    // waiting for their time
        size_t held = 0;     // waiting behind an earlier delivery with their key
        size_t running = 0;  // taken, their call not returned
        // The due_ms of the next promoted delivery to be handed over.
        std::optional<int64_t> first_due_ms;
        size_t pending() const { return due + later + held; }
    };
    Counts counts(int64_t now) const;

  private:
    // Due or later, by due_ms (no ordering check).
    void place(DeliveryRef&& ref, int64_t now);
    // Ordered: holds ref back behind its key when the key is in progress
    // (taking the key otherwise). True when held back.
    bool hold_back(DeliveryRef& ref);

    bool ordered_;
    std::deque<DeliveryRef> ready_;   // due, in the order they became due
    std::vector<DeliveryRef> later_;  // a min-heap on (due_ms, id)
    // Ordered: the keys with a delivery in progress (due, later or running),
    // each with the deliveries waiting behind it, in event order.
    std::unordered_map<std::string, std::deque<DeliveryRef>> keys_;
    size_t held_ = 0;
    // Every id held (due, later, held back or running): a delivery reaching
    // the lane twice (recovery racing a plugin's deliver_again_at, say) is
    // admitted once.
    std::unordered_set<int64_t> known_;
    std::unordered_map<int64_t, std::string> running_;  // id → ordering key
};

}  // namespace clayhook
