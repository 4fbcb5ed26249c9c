#include "store/RetentionPurger.h"

#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "store/Store.h"
#include "util/Clock.h"

#include <algorithm>

namespace clayhook {

RetentionPurger::RetentionPurger(HistoryPurger& store, std::chrono::milliseconds retention,
                                 std::chrono::milliseconds dead_retention,
                                 std::chrono::milliseconds interval, Logger& log, Metrics& metrics)
    : store_(store),
      retention_(retention),
      dead_retention_(dead_retention),
      interval_(interval),
      log_(log),
      metrics_(metrics) {
    metrics_.set_help("clayhook_store_retention_deleted_total",
                      "Rows deleted by store.retention, by table (events, deliveries, attempts)");
    for (const char* t : {"events", "deliveries", "attempts"})
        metrics_.counter_add("clayhook_store_retention_deleted_total",
                             std::string("table=\"") + t + "\"", 0);
    thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

RetentionPurger::~RetentionPurger() {
    thread_.request_stop();  // wakes the wait (condition_variable_any with the token)
    thread_.join();
}

std::chrono::milliseconds RetentionPurger::interval_for(std::chrono::milliseconds retention) {
    return std::clamp<std::chrono::milliseconds>(retention / 10, std::chrono::seconds(1),
                                                 std::chrono::minutes(1));
}

void RetentionPurger::pass(std::stop_token stop) {
    const int64_t now = SystemClock::unix_ms();
    // dead_retention 0: dead ones are kept for ever (before 0 = nothing).
    const int64_t dead_before = dead_retention_.count() == 0 ? 0 : now - dead_retention_.count();
    try {
        const PurgeCounts n = store_.purge_history(now - retention_.count(), dead_before, stop);
        for (auto [table, count] :
             {std::pair{"events", n.events}, std::pair{"deliveries", n.deliveries},
              std::pair{"attempts", n.attempts}})
            metrics_.counter_add("clayhook_store_retention_deleted_total",
                                 std::string("table=\"") + table + "\"",
                                 static_cast<double>(count));
        if (n.events > 0)
            log_.info("store", "old events deleted (store.retention)",
                      {{"events", std::to_string(n.events)},
                       {"deliveries", std::to_string(n.deliveries)},
                       {"attempts", std::to_string(n.attempts)}});
        failing_ = false;
    } catch (const std::exception& e) {
        if (!failing_)
            log_.warn("store", "deleting old events failed; will try again", {{"error", e.what()}});
        failing_ = true;
    }
}

void RetentionPurger::run(std::stop_token stop) {
    while (!stop.stop_requested()) {
        pass(stop);
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, stop, interval_, [] { return false; });
    }
}

}  // namespace clayhook
