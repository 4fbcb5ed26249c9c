#include "dispatch/RetryDecision.h"

#include <algorithm>

namespace clayhook {

int64_t RandomJitter::pick(int64_t ceiling) {
    std::uniform_int_distribution<int64_t> pick(0, ceiling);
    return pick(rng_);
}

std::chrono::milliseconds backoff_ceiling(const RetryPolicy& p, uint32_t attempts) {
    const int64_t base = std::max<int64_t>(p.backoff_base.count(), 1);
    const int64_t cap = std::max<int64_t>(p.backoff_cap.count(), base);
    int64_t ceiling = base;
    for (uint32_t i = 1; i < attempts && ceiling < cap; ++i)
        ceiling = ceiling > cap / 2 ? cap : ceiling * 2;
    return std::chrono::milliseconds(std::min(ceiling, cap));
}

std::chrono::milliseconds backoff_delay(const RetryPolicy& p, uint32_t attempts, Jitter& jitter) {
    return std::chrono::milliseconds(jitter.pick(backoff_ceiling(p, attempts).count()));
}

std::chrono::milliseconds backoff_delay(const RetryPolicy& p, uint32_t attempts,
                                        std::mt19937_64& rng) {
    std::uniform_int_distribution<int64_t> pick(0, backoff_ceiling(p, attempts).count());
    return std::chrono::milliseconds(pick(rng));
}

RetryDecision decide_retry(const PluginAnswer& answer, uint32_t attempts, const RetryPolicy& policy,
                           int64_t age_from_ms, const Clock& clock, Jitter& jitter) {
    RetryDecision d;
    d.attempts = attempts;
    d.decided_ms = clock.now_ms();
    d.reason = std::string(answer.reason);
    if (answer.status == CLAYHOOK_DONE) {
        d.answered = RetryDecision::Answered::done;
        d.state = DeliveryState::done;
        return d;
    }
    std::string give_up;
    if (answer.status == CLAYHOOK_FAIL) {
        d.answered = RetryDecision::Answered::fail;
        give_up = "failed: " + d.reason;
    } else {
        d.answered = RetryDecision::Answered::retry;
        const std::chrono::milliseconds delay = answer.retry_after.count() > 0
                                                    ? answer.retry_after
                                                    : backoff_delay(policy, attempts, jitter);
        d.due_ms = d.decided_ms + delay.count();
        if (attempts >= static_cast<uint32_t>(policy.max_attempts)) {
            give_up = "gave up after " + std::to_string(attempts) + " attempts: " + d.reason;
        } else if (d.due_ms - age_from_ms > policy.max_age.count()) {
            give_up = "gave up: the next attempt would be past max_age (" +
                      std::to_string(policy.max_age.count() / 1000) + "s): " + d.reason;
        }
    }
    if (give_up.empty()) {
        d.state = DeliveryState::pending;
        d.last_error = d.reason;
    } else {
        d.state = DeliveryState::dead;
        d.due_ms = 0;
        d.last_error = std::move(give_up);
    }
    return d;
}

DeliveryUpdate RetryDecision::update(int64_t delivery_id, int64_t started_ms,
                                     int64_t duration_us) const {
    DeliveryUpdate u;
    u.delivery_id = delivery_id;
    u.state = state;
    u.attempts = attempts;
    if (state == DeliveryState::pending) {
        u.due_ms = due_ms;
    } else {
        u.finished_ms = decided_ms;
    }
    if (answered == Answered::done) return u;
    AttemptRecord a;
    a.attempt = attempts;
    a.started_ms = started_ms;
    a.duration_us = duration_us;
    a.outcome = outcome();
    a.reason = reason;
    u.attempt = std::move(a);
    u.last_error = last_error;
    return u;
}

}  // namespace clayhook
