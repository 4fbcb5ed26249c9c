#pragma once

// The dispatcher's metric series of one plugin, resolved once when its lane
// is made: the data plane updates them lock-free, without the registry's
// lock or a lookup by name.

#include <string>
#include <string_view>

namespace clayhook {

class Histogram;
class Metrics;
class MetricValue;

struct DispatchMetrics {
    // Registers every series of `plugin` (at 0 until updated).
    DispatchMetrics(Metrics& metrics, std::string_view plugin);

    // The help texts of the dispatcher's families.
    static void describe(Metrics& metrics);

    std::string labels;  // plugin="NAME", escaped

    Histogram& handler;     // clayhook_dispatch_handler_seconds: one per call
    Histogram& end_to_end;  // clayhook_dispatch_end_to_end_seconds: acknowledged → done
    // clayhook_dispatch_deliveries_total by outcome.
    MetricValue& done;
    MetricValue& retried;
    MetricValue& failed;
    MetricValue& retries;     // clayhook_dispatch_retries_total
    MetricValue& dead;        // clayhook_dispatch_dead_letters_total
    MetricValue& overruns;    // clayhook_dispatch_call_overruns_total
    MetricValue& claim_lost;  // clayhook_dispatch_claims_lost_total: taken by another host
    MetricValue& adopted;     // clayhook_dispatch_adopted_total: found by the poll
    MetricValue& pending;     // clayhook_dispatch_pending
    MetricValue& in_flight;   // clayhook_dispatch_in_flight
    MetricValue& lag;         // clayhook_dispatch_queue_lag_seconds
    MetricValue& paused;      // clayhook_dispatch_paused
};

}  // namespace clayhook
