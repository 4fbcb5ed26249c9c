#include "store/journal/KeyFilter.h"

#include <algorithm>

namespace clayhook::journal {

namespace {
// splitmix64's finaliser: the second hash of the double-hashing scheme.
uint64_t mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}
}  // namespace

KeyFilter::KeyFilter(size_t expected) {
    uint64_t want = std::max<uint64_t>(uint64_t{1} << 23, uint64_t{10} * expected);
    uint64_t bits = uint64_t{1} << 23;
    while (bits < want && bits < (uint64_t{1} << 36))
        bits <<= 1;
    mask_ = bits - 1;
    words_ = std::make_unique<std::atomic<uint64_t>[]>(bits / 64);
    for (uint64_t i = 0; i < bits / 64; ++i)
        words_[i].store(0, std::memory_order_relaxed);
}

void KeyFilter::add(uint64_t hash) noexcept {
    const uint64_t step = mix(hash) | 1;
    uint64_t h = hash;
    for (int i = 0; i < kProbes; ++i, h += step) {
        const uint64_t bit = h & mask_;
        words_[bit >> 6].fetch_or(uint64_t{1} << (bit & 63), std::memory_order_release);
    }
}

bool KeyFilter::may_contain(uint64_t hash) const noexcept {
    const uint64_t step = mix(hash) | 1;
    uint64_t h = hash;
    for (int i = 0; i < kProbes; ++i, h += step) {
        const uint64_t bit = h & mask_;
        if ((words_[bit >> 6].load(std::memory_order_acquire) & (uint64_t{1} << (bit & 63))) == 0)
            return false;
    }
    return true;
}

}  // namespace clayhook::journal
