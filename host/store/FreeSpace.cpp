#include "store/FreeSpace.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <chrono>

namespace clayhook {

namespace {

constexpr int64_t kLookEveryNs = 100'000'000;  // 100 ms
constexpr uint64_t kMinLookBytes = 64 * 1024;  // a tiny floor: not a statvfs per delivery

int64_t steady_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace

FreeSpace::FreeSpace(std::string path, uint64_t floor) : path_(std::move(path)), floor_(floor) {}

std::string FreeSpace::check(uint64_t bytes) {
    if (floor_ == 0) return {};
    const uint64_t counted = counted_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    const int64_t now = steady_ns();
    auto due = [&](uint64_t n) {
        return now >= next_look_ns_.load(std::memory_order_relaxed) ||
               n >= std::max(floor_ / 8, kMinLookBytes);
    };
    // The intake's threads call this per delivery: no lock while there is room.
    if (!due(counted) && !low()) return {};
    std::lock_guard lk(mu_);
    if (!due(counted_.load(std::memory_order_relaxed))) return error_;  // another thread looked
    next_look_ns_.store(now + kLookEveryNs, std::memory_order_relaxed);
    counted_.store(0, std::memory_order_relaxed);
    const auto free = free_bytes();
    if (!free) return error_;  // keep the last answer
    const uint64_t room = *free;
    error_.clear();
    if (room < floor_)
        error_ = "the store's filesystem has " + std::to_string(room) +
                 " bytes free, below store.min_free_space (" + std::to_string(floor_) +
                 "): new deliveries are refused until there is room; results still commit";
    low_.store(!error_.empty(), std::memory_order_relaxed);
    return error_;
}

bool FreeSpace::room_for(uint64_t bytes) const {
    const auto room = free_bytes();
    return !room || (*room >= floor_ && *room - floor_ >= bytes);
}

std::optional<uint64_t> FreeSpace::free_bytes() const {
    struct statvfs vfs {};
    if (::statvfs(path_.c_str(), &vfs) != 0) return std::nullopt;
    return static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
}

}  // namespace clayhook
