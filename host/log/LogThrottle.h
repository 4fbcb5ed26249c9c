#pragma once

// One log line per interval for an event that can come in floods (a refusal
// per request while the intake is under attack), counting the events held
// back so that the next line says how many it stands for (the last ones of
// a flood are said only by the next line, whenever it comes: a metric beside
// it is the count to trust). Thread-safe and
// lock-free; the caller passes the time (a steady clock), so tests need no
// clock.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>

namespace clayhook {

class LogThrottle {
  public:
    explicit LogThrottle(std::chrono::nanoseconds interval) noexcept
        : interval_(interval.count()) {}

    // Once per event, at `now_ns`: how many events a line written now
    // stands for (this one and those held back since the last line), or 0
    // when no line is due yet.
    uint64_t admit(int64_t now_ns) noexcept {
        int64_t due = next_.load(std::memory_order_relaxed);
        if (now_ns < due ||
            !next_.compare_exchange_strong(due, now_ns + interval_, std::memory_order_relaxed)) {
            held_.fetch_add(1, std::memory_order_relaxed);
            return 0;
        }
        return held_.exchange(0, std::memory_order_relaxed) + 1;
    }

  private:
    const int64_t interval_;
    std::atomic<int64_t> next_{std::numeric_limits<int64_t>::min()};
    std::atomic<uint64_t> held_{0};
};

}  // namespace clayhook
