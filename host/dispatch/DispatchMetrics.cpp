#include "dispatch/DispatchMetrics.h"

#include "metrics/Metrics.h"

#include <vector>

namespace clayhook {

namespace {

const std::vector<double> kHandlerBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                            0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
const std::vector<double> kLagBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                        1,     2.5,    5,     10,   30,    60,   300, 3600, 86400};

std::string plugin_label(std::string_view name) {
    std::string out = "plugin=\"";
    for (char c : name) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    out += '"';
    return out;
}

}  // namespace

DispatchMetrics::DispatchMetrics(Metrics& m, std::string_view plugin)
    : labels(plugin_label(plugin)),
      handler(m.histogram("clayhook_dispatch_handler_seconds", labels, kHandlerBounds)),
      end_to_end(m.histogram("clayhook_dispatch_end_to_end_seconds", labels, kLagBounds)),
      done(m.counter("clayhook_dispatch_deliveries_total", labels + ",outcome=\"done\"")),
      retried(m.counter("clayhook_dispatch_deliveries_total", labels + ",outcome=\"retry\"")),
      failed(m.counter("clayhook_dispatch_deliveries_total", labels + ",outcome=\"fail\"")),
      retries(m.counter("clayhook_dispatch_retries_total", labels)),
      dead(m.counter("clayhook_dispatch_dead_letters_total", labels)),
      overruns(m.counter("clayhook_dispatch_call_overruns_total", labels)),
      claim_lost(m.counter("clayhook_dispatch_claims_lost_total", labels)),
      adopted(m.counter("clayhook_dispatch_adopted_total", labels)),
      pending(m.gauge("clayhook_dispatch_pending", labels)),
      in_flight(m.gauge("clayhook_dispatch_in_flight", labels)),
      lag(m.gauge("clayhook_dispatch_queue_lag_seconds", labels)),
      paused(m.gauge("clayhook_dispatch_paused", labels)) {}

void DispatchMetrics::describe(Metrics& m) {
    m.set_help("clayhook_dispatch_handler_seconds", "Duration of plugin calls (one per batch)");
    m.set_help("clayhook_dispatch_end_to_end_seconds",
               "From acknowledged to handled (done), per delivery");
    m.set_help("clayhook_dispatch_deliveries_total",
               "Attempt results by outcome: done, retry, fail");
    m.set_help("clayhook_dispatch_retries_total", "Attempts answered with retry");
    m.set_help("clayhook_dispatch_dead_letters_total",
               "Deliveries that gave up (fail, attempts or age exhausted)");
    m.set_help("clayhook_dispatch_call_overruns_total",
               "Calls that ran past dispatch.call_timeout");
    m.set_help("clayhook_dispatch_claims_lost_total",
               "Deliveries this host did not get at the claim: finished, held by another host, "
               "or behind an earlier delivery of their key");
    m.set_help("clayhook_dispatch_adopted_total",
               "Deliveries this host took over from the shared store's poll (stored, given up "
               "or left behind by another host)");
    m.set_help("clayhook_dispatch_queue_lag_seconds",
               "Age of the oldest due delivery not yet handed over");
    m.set_help("clayhook_dispatch_pending", "Pending deliveries held by the dispatcher");
    m.set_help("clayhook_dispatch_in_flight", "Plugin calls running");
    m.set_help("clayhook_dispatch_paused", "1 while the plugin is paused");
    m.set_help("clayhook_dispatch_waiting",
               "Pending deliveries of a plugin that is not loaded (down, or removed by a "
               "reload): they wait for it");
    m.set_help("clayhook_plugin_down",
               "1 while an enabled plugin could not be loaded (see clayhook plugins)");
}

}  // namespace clayhook
