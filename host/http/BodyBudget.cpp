#include "http/BodyBudget.h"

#include "metrics/Metrics.h"

#include <utility>

namespace clayhook {

BodyBudget::Lease& BodyBudget::Lease::operator=(Lease&& o) noexcept {
    if (this != &o) {
        release();
        budget_ = std::exchange(o.budget_, nullptr);
        bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
}

void BodyBudget::Lease::release() noexcept {
    if (budget_ && bytes_ > 0) budget_->give(bytes_);
    budget_ = nullptr;
    bytes_ = 0;
}

bool BodyBudget::take(uint64_t bytes, Lease& lease) noexcept {
    lease.release();
    if (bytes == 0) return true;
    uint64_t held = held_.load(std::memory_order_relaxed);
    do {
        if (limit_ != 0 && (bytes > limit_ || held > limit_ - bytes)) return false;
    } while (!held_.compare_exchange_weak(held, held + bytes, std::memory_order_relaxed));
    if (gauge_) gauge_->add(static_cast<double>(bytes));
    lease.budget_ = this;
    lease.bytes_ = bytes;
    return true;
}

void BodyBudget::give(uint64_t bytes) noexcept {
    held_.fetch_sub(bytes, std::memory_order_relaxed);
    if (gauge_) gauge_->add(-static_cast<double>(bytes));
}

}  // namespace clayhook
