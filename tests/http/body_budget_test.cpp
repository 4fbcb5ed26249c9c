// BodyBudget: the request-body memory one server's connections hold at once.
#include "http/BodyBudget.h"
#include "metrics/Metrics.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

using namespace clayhook;

TEST_CASE("body budget: takes up to its limit, refuses past it, and a lease gives back",
          "[http][body-budget]") {
    Metrics metrics;
    MetricValue& gauge = metrics.gauge("held");
    BodyBudget budget(100, &gauge);
    BodyBudget::Lease a, b, c;
    CHECK(budget.take(60, a));
    CHECK(budget.take(40, b));  // exactly the limit
    CHECK_FALSE(budget.take(1, c));
    CHECK(c.bytes() == 0);  // nothing taken
    CHECK(budget.held() == 100);
    CHECK(gauge.get() == 100);
    CHECK_FALSE(budget.take(101, c));  // never fits

    a.release();
    CHECK(budget.held() == 40);
    CHECK(budget.take(60, c));
    {
        BodyBudget::Lease moved = std::move(c);  // the bytes move, not twice given back
        CHECK(moved.bytes() == 60);
        CHECK(c.bytes() == 0);
    }
    CHECK(budget.held() == 40);
    // Taking again into a lease gives its earlier bytes back first.
    CHECK(budget.take(90, b));
    CHECK(budget.held() == 90);
    b = BodyBudget::Lease();
    CHECK(budget.held() == 0);
    CHECK(gauge.get() == 0);
    CHECK(budget.take(0, a));  // an empty body takes nothing
    CHECK(budget.held() == 0);
}

TEST_CASE("body budget: a limit of 0 counts without refusing", "[http][body-budget]") {
    BodyBudget budget(0);
    BodyBudget::Lease a, b;
    CHECK(budget.take(1ull << 40, a));
    CHECK(budget.take(1ull << 40, b));
    CHECK(budget.held() == 2ull << 40);
}

TEST_CASE("body budget: threads taking at once never hold more than the limit",
          "[http][body-budget]") {
    BodyBudget budget(1000);
    std::atomic<uint64_t> peak{0};
    std::atomic<int> refused{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 20000; ++i) {
                BodyBudget::Lease l;
                if (!budget.take(300, l)) {
                    ++refused;
                    continue;
                }
                uint64_t held = budget.held();
                uint64_t p = peak.load();
                while (held > p && !peak.compare_exchange_weak(p, held)) {
                }
            }
        });
    for (auto& t : threads)
        t.join();
    CHECK(peak.load() <= 900);  // three leases of 300 at most
    CHECK(budget.held() == 0);
}
