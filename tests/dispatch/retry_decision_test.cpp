// What an answer makes of a delivery, on its own: backoff bounds, the wait a
// plugin asks for, the give-up rules, with a ManualClock and a chosen jitter.
// No threads, no store, no plugin.
#include "dispatch/RetryDecision.h"
#include "util/Clock.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>

using namespace clayhook;
using namespace std::chrono_literals;

namespace {

// Always the top of the range (or its bottom).
class EdgeJitter final : public Jitter {
  public:
    explicit EdgeJitter(bool top) : top_(top) {}
    int64_t pick(int64_t ceiling) override {
        ++calls;
        last_ceiling = ceiling;
        return top_ ? ceiling : 0;
    }
    int calls = 0;
    int64_t last_ceiling = -1;

  private:
    bool top_;
};

RetryPolicy policy() {
    RetryPolicy p;
    p.max_attempts = 5;
    p.backoff_base = 100ms;
    p.backoff_cap = 1000ms;
    p.max_age = 3600s;
    return p;
}

PluginAnswer answer(int32_t status, std::string_view reason = "",
                    std::chrono::milliseconds after = 0ms) {
    PluginAnswer a;
    a.status = status;
    a.reason = reason;
    a.retry_after = after;
    return a;
}

}  // namespace

TEST_CASE("retry decision: the backoff ceiling doubles from base up to cap",
          "[dispatch][retry-decision]") {
    RetryPolicy p = policy();
    CHECK(backoff_ceiling(p, 1) == 100ms);
    CHECK(backoff_ceiling(p, 2) == 200ms);
    CHECK(backoff_ceiling(p, 3) == 400ms);
    CHECK(backoff_ceiling(p, 4) == 800ms);
    CHECK(backoff_ceiling(p, 5) == 1000ms);
    CHECK(backoff_ceiling(p, 4000000000u) == 1000ms);  // no overflow
    p.backoff_base = 0ms;                              // at least 1 ms
    p.backoff_cap = 0ms;                               // at least base
    CHECK(backoff_ceiling(p, 1) == 1ms);
    CHECK(backoff_ceiling(p, 30) == 1ms);
    p.backoff_base = 3ms;
    p.backoff_cap = 20ms;  // not a power of two times base
    CHECK(backoff_ceiling(p, 3) == 12ms);
    CHECK(backoff_ceiling(p, 4) == 20ms);
    p.backoff_base = std::chrono::milliseconds(INT64_MAX / 2 + 1);
    p.backoff_cap = std::chrono::milliseconds(INT64_MAX);
    CHECK(backoff_ceiling(p, 2) == std::chrono::milliseconds(INT64_MAX));
}

TEST_CASE("retry decision: full jitter stays within [0, min(cap, base*2^(n-1))] and spans it",
          "[dispatch][retry-decision]") {
    const RetryPolicy p = policy();
    RandomJitter jitter(42);
    for (uint32_t n = 1; n <= 8; ++n) {
        const int64_t ceiling = std::min<int64_t>(1000, 100LL << (n - 1));
        int64_t lo = INT64_MAX, hi = -1;
        for (int i = 0; i < 2000; ++i) {
            const int64_t d = backoff_delay(p, n, jitter).count();
            REQUIRE(d >= 0);
            REQUIRE(d <= ceiling);
            lo = std::min(lo, d);
            hi = std::max(hi, d);
        }
        CHECK(lo <= ceiling / 10);
        CHECK(hi >= ceiling * 9 / 10);
    }
    EdgeJitter top(true), bottom(false);
    CHECK(backoff_delay(p, 3, top) == 400ms);
    CHECK(backoff_delay(p, 3, bottom) == 0ms);
}

TEST_CASE("retry decision: done is done, at the clock's time", "[dispatch][retry-decision]") {
    ManualClock clock(50'000);
    EdgeJitter jitter(true);
    RetryDecision d = decide_retry(answer(CLAYHOOK_DONE), 1, policy(), 0, clock, jitter);
    CHECK(d.state == DeliveryState::done);
    CHECK(d.answered == RetryDecision::Answered::done);
    CHECK(d.attempts == 1);
    CHECK(d.decided_ms == 50'000);
    CHECK(jitter.calls == 0);

    DeliveryUpdate u = d.update(7, 49'000, 1234);
    CHECK(u.delivery_id == 7);
    CHECK(u.state == DeliveryState::done);
    CHECK(u.attempts == 1);
    CHECK(u.finished_ms == 50'000);
    CHECK_FALSE(u.attempt);  // a done attempt is kept in the delivery's row alone
    CHECK(u.last_error.empty());
}

TEST_CASE("retry decision: a retry is due again after the backoff", "[dispatch][retry-decision]") {
    ManualClock clock(50'000);
    EdgeJitter jitter(true);
    RetryDecision d =
        decide_retry(answer(CLAYHOOK_RETRY, "busy"), 3, policy(), 50'000, clock, jitter);
    CHECK(d.state == DeliveryState::pending);
    CHECK(d.answered == RetryDecision::Answered::retry);
    CHECK(jitter.last_ceiling == 400);  // min(cap, base * 2^(3-1))
    CHECK(d.due_ms == 50'400);
    CHECK(d.last_error == "busy");

    DeliveryUpdate u = d.update(7, 49'990, 1234);
    CHECK(u.state == DeliveryState::pending);
    CHECK(u.attempts == 3);
    CHECK(u.due_ms == 50'400);
    CHECK(u.finished_ms == 0);
    CHECK(u.last_error == "busy");
    REQUIRE(u.attempt);
    CHECK(u.attempt->attempt == 3);
    CHECK(u.attempt->started_ms == 49'990);
    CHECK(u.attempt->duration_us == 1234);
    CHECK(u.attempt->outcome == "retry");
    CHECK(u.attempt->reason == "busy");
}

TEST_CASE("retry decision: the wait the plugin asks for wins over the backoff",
          "[dispatch][retry-decision]") {
    ManualClock clock(50'000);
    EdgeJitter jitter(true);
    RetryDecision d = decide_retry(answer(CLAYHOOK_RETRY, "rate limited", 30s), 1, policy(), 50'000,
                                   clock, jitter);
    CHECK(d.state == DeliveryState::pending);
    CHECK(d.due_ms == 80'000);  // past the cap: what was asked for, not the backoff
    CHECK(jitter.calls == 0);
}

TEST_CASE("retry decision: an exception in the handler, or an unknown status, is a retry",
          "[dispatch][retry-decision]") {
    ManualClock clock(50'000);
    EdgeJitter jitter(false);
    // What the SDK answers for a handler that threw.
    RetryDecision d = decide_retry(answer(CLAYHOOK_RETRY, "exception in handler: boom"), 1,
                                   policy(), 50'000, clock, jitter);
    CHECK(d.state == DeliveryState::pending);
    CHECK(d.answered == RetryDecision::Answered::retry);
    CHECK(d.due_ms == 50'000);  // bottom of the jitter
    CHECK(d.last_error == "exception in handler: boom");
    CHECK(jitter.calls == 1);

    d = decide_retry(answer(7, "plugin answered an unknown status 7"), 1, policy(), 50'000, clock,
                     jitter);
    CHECK(d.state == DeliveryState::pending);
    CHECK(std::string(d.outcome()) == "retry");
}

TEST_CASE("retry decision: fail is dead at once", "[dispatch][retry-decision]") {
    ManualClock clock(50'000);
    EdgeJitter jitter(true);
    RetryDecision d =
        decide_retry(answer(CLAYHOOK_FAIL, "bad row"), 1, policy(), 50'000, clock, jitter);
    CHECK(d.state == DeliveryState::dead);
    CHECK(d.answered == RetryDecision::Answered::fail);
    CHECK(d.last_error == "failed: bad row");
    CHECK(jitter.calls == 0);
    DeliveryUpdate u = d.update(7, 49'990, 10);
    CHECK(u.state == DeliveryState::dead);
    CHECK(u.finished_ms == 50'000);
    CHECK(u.due_ms == 0);
    CHECK(u.last_error == "failed: bad row");
    REQUIRE(u.attempt);
    CHECK(u.attempt->outcome == "fail");
    CHECK(u.attempt->reason == "bad row");
}

TEST_CASE("retry decision: a retry gives up when the attempts reach max_attempts",
          "[dispatch][retry-decision]") {
    ManualClock clock(50'000);
    EdgeJitter jitter(false);
    const RetryPolicy p = policy();  // max_attempts 5
    RetryDecision d = decide_retry(answer(CLAYHOOK_RETRY, "busy"), 4, p, 50'000, clock, jitter);
    CHECK(d.state == DeliveryState::pending);
    d = decide_retry(answer(CLAYHOOK_RETRY, "busy"), 5, p, 50'000, clock, jitter);
    CHECK(d.state == DeliveryState::dead);
    CHECK(d.answered == RetryDecision::Answered::retry);  // counted as a retry all the same
    CHECK(d.last_error == "gave up after 5 attempts: busy");
    CHECK(d.update(7, 0, 0).attempt->outcome == "retry");
    // A wait asked for does not get past it either.
    d = decide_retry(answer(CLAYHOOK_RETRY, "busy", 1ms), 5, p, 50'000, clock, jitter);
    CHECK(d.state == DeliveryState::dead);
}

TEST_CASE("retry decision: a retry gives up when its time would be past max_age",
          "[dispatch][retry-decision]") {
    ManualClock clock(1'000'000);
    EdgeJitter top(true);
    RetryPolicy p = policy();
    p.max_age = 10s;
    const int64_t age_from = clock.now_ms();

    // The wait asked for counts: exactly max_age is still fine, past it is not.
    RetryDecision d =
        decide_retry(answer(CLAYHOOK_RETRY, "later", 10s), 1, p, age_from, clock, top);
    CHECK(d.state == DeliveryState::pending);
    d = decide_retry(answer(CLAYHOOK_RETRY, "later", 10001ms), 1, p, age_from, clock, top);
    CHECK(d.state == DeliveryState::dead);
    CHECK(d.last_error == "gave up: the next attempt would be past max_age (10s): later");

    // The backoff counts too, from the delivery's age base and the clock.
    clock.advance(9'500ms);
    d = decide_retry(answer(CLAYHOOK_RETRY, "busy"), 1, p, age_from, clock, top);  // +100 ms
    CHECK(d.state == DeliveryState::pending);
    d = decide_retry(answer(CLAYHOOK_RETRY, "busy"), 4, p, age_from, clock, top);  // +800 ms
    CHECK(d.state == DeliveryState::dead);
    // A later age base (a replay, a deliver_again_at) gives it its time again.
    d = decide_retry(answer(CLAYHOOK_RETRY, "busy"), 4, p, age_from + 9'000, clock, top);
    CHECK(d.state == DeliveryState::pending);
    CHECK(d.due_ms == clock.now_ms() + 800);
}
