#pragma once

// A Bloom filter over 64-bit key hashes, safe to read from many threads
// while one thread adds: "certainly absent" or "maybe present". The intake
// journal asks it before looking an idempotency key up in the database, so
// that a new delivery (nearly every delivery) costs no database read.
// Keys are never removed: a pruned key only costs a lookup that finds
// nothing.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace clayhook::journal {

class KeyFilter {
  public:
    // Room for about `expected` keys at ~1% false positives (at least 1 MiB
    // of bits); more keys raise that rate, never make an answer wrong.
    explicit KeyFilter(size_t expected);

    void add(uint64_t hash) noexcept;
    bool may_contain(uint64_t hash) const noexcept;
    size_t bits() const noexcept { return mask_ + 1; }

  private:
    static constexpr int kProbes = 7;
    std::unique_ptr<std::atomic<uint64_t>[]> words_;
    uint64_t mask_ = 0;  // bits - 1 (a power of two)
};

}  // namespace clayhook::journal
