#pragma once

// What becomes of a delivery after an attempt, as a plain function: the
// plugin's answer, the attempts made, the retry policy, the delivery's age
// base, a clock and a source of jitter in; done, due again at a time, or
// dead with the reason it gave up, out. No threads, no store, no plugin.
//
//   done                          → done
//   fail                          → dead: "failed: REASON"
//   retry (an exception thrown in the plugin's handler is one, the SDK
//   turns it into one; so is a status the host does not know)
//                                 → due again after retry_after when the
//                                   plugin asked for a wait, else after a
//                                   full-jitter backoff; dead instead when
//                                   the attempts reach max_attempts, or when
//                                   that time is more than max_age past the
//                                   delivery's age base.

#include "config/Config.h"
#include "store/Store.h"
#include "util/Clock.h"

#include <clayhook/plugin_abi.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>

namespace clayhook {

// Where the backoff's jitter comes from.
class Jitter {
  public:
    virtual ~Jitter() = default;
    // A uniform value in [0, ceiling] (ceiling >= 0).
    virtual int64_t pick(int64_t ceiling) = 0;
};

// std::mt19937_64, seeded from std::random_device unless given a seed. Not
// thread-safe: one per thread.
class RandomJitter final : public Jitter {
  public:
    RandomJitter() : rng_(std::random_device{}()) {}
    explicit RandomJitter(uint64_t seed) : rng_(seed) {}
    int64_t pick(int64_t ceiling) override;

  private:
    std::mt19937_64 rng_;
};

// The longest backoff after `attempts` attempts (>= 1): min(cap, base *
// 2^(attempts-1)), without overflow; base is at least 1 ms, and cap at least
// base.
std::chrono::milliseconds backoff_ceiling(const RetryPolicy& p, uint32_t attempts);

// Full-jitter exponential backoff: a uniform wait in [0, backoff_ceiling(p,
// attempts)], `attempts` being the attempts made so far (>= 1).
std::chrono::milliseconds backoff_delay(const RetryPolicy& p, uint32_t attempts, Jitter& jitter);
std::chrono::milliseconds backoff_delay(const RetryPolicy& p, uint32_t attempts,
                                        std::mt19937_64& rng);

// What the plugin answered for one delivery (PluginInstance's HandleOutcome,
// without the plugin headers).
struct PluginAnswer {
    int32_t status = CLAYHOOK_DONE;            // a clayhook_status; any other value is a retry
    std::chrono::milliseconds retry_after{0};  // retry: the wait asked for; 0: the backoff
    std::string_view reason;
};

struct RetryDecision {
    enum class Answered { done, retry, fail };
    Answered answered = Answered::done;  // what the plugin's answer counts as

    // done, pending (due again at due_ms) or dead.
    DeliveryState state = DeliveryState::done;
    uint32_t attempts = 0;   // made, this one included
    int64_t decided_ms = 0;  // the clock's time: when a done or dead delivery finished
    int64_t due_ms = 0;      // pending: when it is due again
    std::string reason;      // the plugin's
    std::string last_error;  // pending: the plugin's reason; dead: why it gave up

    // "retry" or "fail": the attempt's outcome in the attempts table.
    const char* outcome() const { return answered == Answered::fail ? "fail" : "retry"; }

    // The update to record for this delivery. The attempt (its start and the
    // call's duration) is kept in the attempts table unless it is done.
    DeliveryUpdate update(int64_t delivery_id, int64_t started_ms, int64_t duration_us) const;
};

// `attempts`: made so far, this one included (>= 1). `age_from_ms`: when
// max_age starts for this delivery (the event's arrival, a replay, or the
// time a deliver_again_at asked for). Reads `clock` once.
RetryDecision decide_retry(const PluginAnswer& answer, uint32_t attempts, const RetryPolicy& policy,
                           int64_t age_from_ms, const Clock& clock, Jitter& jitter);

}  // namespace clayhook
