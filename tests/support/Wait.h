#pragma once

// The one way tests wait for something to happen: poll a condition, bounded,
// never a bare sleep. Every test that waits (a delivery done, a metric
// counted, a log line written) goes through wait_until.
#include <chrono>
#include <functional>
#include <thread>

namespace clayhook::test {

// Polls `done` (every 5 ms) until it is true or `timeout` passes; returns
// its last answer.
inline bool wait_until(const std::function<bool()>& done,
                       std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= until) return done();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

}  // namespace clayhook::test
