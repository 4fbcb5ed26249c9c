// The shared test tools themselves: waiting is bounded and says whether the
// condition came true, and a missing tool fails the test (require_tool FAILs
// with missing_tool's message) instead of passing.
#include "support/TestPki.h"
#include "support/Wait.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

using namespace clayhook::test;
using namespace std::chrono_literals;

TEST_CASE("wait_until: true as soon as the condition holds, false after the timeout", "[support]") {
    CHECK(wait_until([] { return true; }, 0ms));
    auto start = std::chrono::steady_clock::now();
    CHECK_FALSE(wait_until([] { return false; }, 50ms));
    CHECK(std::chrono::steady_clock::now() - start >= 50ms);

    std::atomic<bool> set{false};
    std::thread t([&] {
        std::this_thread::sleep_for(20ms);
        set = true;
    });
    CHECK(wait_until([&] { return set.load(); }, 10s));
    t.join();
}

TEST_CASE("require_tool: a missing tool is a failure that says what to install", "[support]") {
    CHECK(missing_tool("/bin/sh", "dash") == "");
    CHECK(missing_tool("/nonexistent/clayhook-test-tool", "clayhook-test-tool") ==
          "/nonexistent/clayhook-test-tool missing: install the clayhook-test-tool package "
          "(apt-get install clayhook-test-tool)");
    // A file that is there but cannot be run (mode 0600) is missing too.
    TempDir dir;
    CHECK_FALSE(missing_tool(dir.write("not-a-tool", "#!/bin/sh\n"), "x").empty());
}
