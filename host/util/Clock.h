#pragma once

// Wall time in ms since the Unix epoch, behind an interface: the units that
// decide by time (dispatch/LaneQueue, dispatch/RetryDecision) take a time or
// a Clock, so their tests use a ManualClock that moves only when told.

#include <atomic>
#include <chrono>
#include <cstdint>

namespace clayhook {

class Clock {
  public:
    virtual ~Clock() = default;
    // Wall time, ms since the Unix epoch. It follows the system clock, which
    // may step back or forward.
    virtual int64_t now_ms() const = 0;
};

// The system's wall clock.
class SystemClock final : public Clock {
  public:
    // The one place the host turns the system clock into Unix ms.
    static int64_t unix_ms() noexcept {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
    }
    int64_t now_ms() const override { return unix_ms(); }
};

// For tests: stands still until set or advanced. Safe to read from any thread.
class ManualClock final : public Clock {
  public:
    explicit ManualClock(int64_t start_ms = 1'700'000'000'000) : ms_(start_ms) {}
    int64_t now_ms() const override { return ms_.load(); }
    void set(int64_t ms) { ms_.store(ms); }
    void advance(std::chrono::milliseconds d) { ms_.fetch_add(d.count()); }

  private:
    std::atomic<int64_t> ms_;
};

}  // namespace clayhook
