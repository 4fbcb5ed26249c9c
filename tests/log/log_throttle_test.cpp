// LogThrottle: one line per interval for a flood, saying how many it stands for.
#include "log/LogThrottle.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

using namespace clayhook;
using namespace std::chrono_literals;

TEST_CASE("log throttle: one line per interval, counting the events held back", "[log]") {
    LogThrottle t(1s);
    const int64_t s = 1'000'000'000;
    CHECK(t.admit(5 * s) == 1);  // the first event is written at once
    CHECK(t.admit(5 * s + 1) == 0);
    CHECK(t.admit(5 * s + s / 2) == 0);
    CHECK(t.admit(6 * s - 1) == 0);
    CHECK(t.admit(6 * s) == 4);  // itself and the three held back
    CHECK(t.admit(6 * s + 1) == 0);
    CHECK(t.admit(60 * s) == 2);  // a quiet minute: the next one goes at once
}

TEST_CASE("log throttle: threads at once get one line, and no event goes uncounted", "[log]") {
    LogThrottle t(1h);
    std::atomic<uint64_t> lines{0}, counted{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i)
        threads.emplace_back([&] {
            for (int j = 0; j < 10000; ++j)
                if (const uint64_t n = t.admit(1); n > 0) {
                    ++lines;
                    counted += n;
                }
        });
    for (auto& th : threads)
        th.join();
    CHECK(lines.load() == 1);
    // The next line, an hour on, stands for everything held back.
    counted += t.admit(int64_t{3601} * 1'000'000'000);
    CHECK(counted.load() == 40001);
}
