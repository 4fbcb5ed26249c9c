#include "store/DedupPruner.h"

#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "store/Store.h"

#include <algorithm>

namespace clayhook {

DedupPruner::DedupPruner(IntakeWriter& store, std::chrono::milliseconds retention,
                         std::chrono::milliseconds interval, Logger& log, Metrics& metrics)
    : store_(store), retention_(retention), interval_(interval), log_(log), metrics_(metrics) {
    thread_ = std::thread(&DedupPruner::run, this);
}

DedupPruner::~DedupPruner() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

std::chrono::milliseconds DedupPruner::interval_for(std::chrono::milliseconds retention) {
    return std::clamp<std::chrono::milliseconds>(retention / 10, std::chrono::seconds(1),
                                                 std::chrono::minutes(10));
}

void DedupPruner::run() {
    auto& pruned = metrics_.counter("clayhook_store_dedup_pruned_total");
    auto next = std::chrono::steady_clock::now();  // a first pass at start
    bool failing = false;                          // log an outage once, not every second
    std::unique_lock lock(mu_);
    while (!stop_) {
        // A store that failed a commit stays "not writable" (and /readyz
        // 503) until a write succeeds; a host out of rotation gets no
        // deliveries to prove it, so the pruner's own small write
        // transaction does, checking every second until it succeeds.
        if (std::chrono::steady_clock::now() >= next || !store_.writable()) {
            lock.unlock();
            try {
                size_t n = store_.prune_dedup(std::chrono::system_clock::now() - retention_);
                pruned.add(static_cast<double>(n));
                if (n > 0) log_.info("store", "dedup keys pruned", {{"count", std::to_string(n)}});
                if (failing) log_.info("store", "store writable again");
                failing = false;
            } catch (const std::exception& e) {
                if (!failing)
                    log_.warn("store", "dedup pruning failed; will try again",
                              {{"error", e.what()}});
                failing = true;
            }
            next = std::chrono::steady_clock::now() + interval_;
            lock.lock();
        }
        cv_.wait_for(lock, std::min(interval_, kUnwritableRetry), [this] { return stop_; });
    }
}

}  // namespace clayhook
