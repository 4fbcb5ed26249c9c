#pragma once

// The request-body memory all the connections of one HTTP server may hold at
// once (listener.max_body_memory). Without it, many clients each sending a
// body of the largest size allowed, slowly, could hold max_connections times
// max_body_bytes. A request's body counts as its bytes arrive, not as its
// head declares them: a client that announces a large body and sends none
// holds nothing (else a few could shut the intake with headers alone). It
// gives them back once answered, or when its connection ends first.

#include <atomic>
#include <cstdint>

namespace clayhook {

class MetricValue;

class BodyBudget {
  public:
    // `limit` 0: no limit (what is held is still counted). `held_bytes`, if
    // given, is a gauge kept at what is held.
    explicit BodyBudget(uint64_t limit, MetricValue* held_bytes = nullptr) noexcept
        : limit_(limit), gauge_(held_bytes) {}
    BodyBudget(const BodyBudget&) = delete;
    BodyBudget& operator=(const BodyBudget&) = delete;

    // Bytes taken from a budget, given back when it is released, reset or
    // destroyed. Must not outlive the budget.
    class Lease {
      public:
        Lease() = default;
        ~Lease() { release(); }
        Lease(Lease&& o) noexcept : budget_(o.budget_), bytes_(o.bytes_) {
            o.budget_ = nullptr;
            o.bytes_ = 0;
        }
        Lease& operator=(Lease&& o) noexcept;
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        void release() noexcept;
        uint64_t bytes() const noexcept { return bytes_; }

      private:
        friend class BodyBudget;
        BodyBudget* budget_ = nullptr;
        uint64_t bytes_ = 0;
    };

    // Makes `lease` hold `bytes` from this budget: gives back what it held
    // beyond them, or takes what it lacks. False, and the lease unchanged,
    // when what it lacks would take what is held past the limit.
    bool hold(Lease& lease, uint64_t bytes) noexcept;
    uint64_t held() const noexcept { return held_.load(std::memory_order_relaxed); }
    uint64_t limit() const noexcept { return limit_; }

  private:
    void give(uint64_t bytes) noexcept;

    const uint64_t limit_;
    MetricValue* const gauge_;
    std::atomic<uint64_t> held_{0};
};

}  // namespace clayhook
