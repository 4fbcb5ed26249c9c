#pragma once

// Whether the store's filesystem still has store.min_free_space left, for
// new deliveries: statvfs at most every 100 ms, sooner once the bytes
// counted since the last look could have used an eighth of the reserve.
// Thread-safe: the writer (direct path), the intake's threads (the journal
// path, before a record is appended) and the pruner all ask.

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

namespace clayhook {

class FreeSpace {
  public:
    // `floor` 0: never short.
    FreeSpace(std::string path, uint64_t floor);

    // Counts `bytes` about to be written and looks when a look is due. The
    // refusal (naming the room left and the floor) while short, "" while
    // there is room. A failed statvfs keeps the last answer.
    std::string check(uint64_t bytes = 0);
    // What the last look said (no look of its own).
    bool low() const noexcept { return low_.load(std::memory_order_relaxed); }
    // Looks now: whether `bytes` more fit above the floor (true when
    // statvfs fails: the write itself will say).
    bool room_for(uint64_t bytes) const;
    // The bytes free for this process now (statvfs); nullopt when unknown.
    std::optional<uint64_t> free_bytes() const;

  private:
    std::string path_;
    uint64_t floor_;
    std::atomic<uint64_t> counted_{0};      // bytes since the last look
    std::atomic<int64_t> next_look_ns_{0};  // steady clock
    std::atomic<bool> low_{false};
    std::mutex mu_;
    std::string error_;  // under mu_
};

}  // namespace clayhook
