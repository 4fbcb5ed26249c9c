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

bool BodyBudget::hold(Lease& lease, uint64_t bytes) noexcept {
    if (lease.budget_ != this) lease.release();  // another budget's bytes go back there
    if (bytes <= lease.bytes_) {
        if (bytes < lease.bytes_) give(lease.bytes_ - bytes);
        lease.bytes_ = bytes;
        lease.budget_ = bytes > 0 ? this : nullptr;
        return true;
    }
    const uint64_t more = bytes - lease.bytes_;
    uint64_t held = held_.load(std::memory_order_relaxed);
    do {
        if (limit_ != 0 && (more > limit_ || held > limit_ - more)) return false;
    } while (!held_.compare_exchange_weak(held, held + more, std::memory_order_relaxed));
    if (gauge_) gauge_->add(static_cast<double>(more));
    lease.budget_ = this;
    lease.bytes_ = bytes;
    return true;
}

void BodyBudget::give(uint64_t bytes) noexcept {
    held_.fetch_sub(bytes, std::memory_order_relaxed);
    if (gauge_) gauge_->add(-static_cast<double>(bytes));
}

}  // namespace clayhook
