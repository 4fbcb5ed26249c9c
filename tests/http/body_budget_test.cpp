// BodyBudget: the request-body memory one server's connections hold at once.
#include "http/BodyBudget.h"
#include "metrics/Metrics.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

using namespace clayhook;

TEST_CASE("body budget: leases grow up to the limit, a refusal changes nothing, release gives back",
          "[http][body-budget]") {
    Metrics metrics;
    MetricValue& gauge = metrics.gauge("held");
    BodyBudget budget(100, &gauge);
    BodyBudget::Lease a, b, c;
    CHECK(budget.hold(a, 30));
    CHECK(budget.hold(a, 60));  // grows by 30
    CHECK(budget.hold(b, 40));  // exactly the limit
    CHECK_FALSE(budget.hold(c, 1));
    CHECK(c.bytes() == 0);
    CHECK_FALSE(budget.hold(a, 61));  // refused: a keeps its 60
    CHECK(a.bytes() == 60);
    CHECK(budget.held() == 100);
    CHECK(gauge.get() == 100);
    CHECK_FALSE(budget.hold(c, 101));  // never fits

    CHECK(budget.hold(a, 20));  // shrinking always succeeds
    CHECK(budget.held() == 60);
    a.release();
    CHECK(budget.held() == 40);
    CHECK(budget.hold(c, 60));
    {
        BodyBudget::Lease moved = std::move(c);  // the bytes move, given back once
        CHECK(moved.bytes() == 60);
        CHECK(c.bytes() == 0);
    }
    CHECK(budget.held() == 40);
    b = BodyBudget::Lease();
    CHECK(budget.held() == 0);
    CHECK(gauge.get() == 0);
    CHECK(budget.hold(a, 0));  // an empty body holds nothing
    CHECK(budget.held() == 0);
}

TEST_CASE("body budget: a limit of 0 counts without refusing", "[http][body-budget]") {
    BodyBudget budget(0);
    BodyBudget::Lease a, b;
    CHECK(budget.hold(a, 1ull << 40));
    CHECK(budget.hold(b, 1ull << 40));
    CHECK(budget.held() == 2ull << 40);
}

TEST_CASE("body budget: threads growing leases at once never hold more than the limit",
          "[http][body-budget]") {
    BodyBudget budget(1000);
    std::atomic<uint64_t> peak{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 20000; ++i) {
                BodyBudget::Lease l;
                for (uint64_t bytes = 100; bytes <= 300 && budget.hold(l, bytes); bytes += 100) {
                    const uint64_t held = budget.held();
                    uint64_t p = peak.load();
                    while (held > p && !peak.compare_exchange_weak(p, held)) {
                    }
                }
            }
        });
    for (auto& t : threads)
        t.join();
    CHECK(peak.load() <= 1000);
    CHECK(budget.held() == 0);
}
