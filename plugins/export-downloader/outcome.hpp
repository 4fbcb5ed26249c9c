// How a download attempt ends when it does not succeed: thrown by the units
// and by the plugin, turned into a Result in the plugin's handle(). `final` is
// a fail (a dead letter: retrying would not change the answer), otherwise a
// retry, after `after` when it is not zero.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>

namespace clayhook::exportdl {

struct Outcome : std::runtime_error {
    Outcome(bool is_final, const std::string& why, std::chrono::milliseconds wait)
        : std::runtime_error(why), final(is_final), after(wait) {}
    bool final;
    std::chrono::milliseconds after;
};

// A fail: the attempt is refused for good.
[[noreturn]] inline void refuse(const std::string& why) {
    throw Outcome(true, why, std::chrono::milliseconds(0));
}

// A retry, after `after` (0: the host's backoff).
[[noreturn]] inline void try_later(const std::string& why,
                                   std::chrono::milliseconds after = std::chrono::milliseconds(0)) {
    throw Outcome(false, why, after);
}

}  // namespace clayhook::exportdl
