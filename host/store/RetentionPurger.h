#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace clayhook {

class Logger;
class Metrics;
class HistoryPurger;

// store.retention in the background: every `interval`, deletes the finished
// events received more than `retention` ago (with a dead delivery: more than
// `dead_retention` ago) with their deliveries and attempts, and counts the
// rows in clayhook_store_retention_deleted_total{table=...}. The store does
// the work in small transactions (HistoryPurger::purge_history), so the
// intake keeps committing while a pass runs.
class RetentionPurger {
  public:
    RetentionPurger(HistoryPurger& store, std::chrono::milliseconds retention,
                    std::chrono::milliseconds dead_retention, std::chrono::milliseconds interval,
                    Logger& log, Metrics& metrics);
    ~RetentionPurger();  // stops (after the transaction in progress) and joins
    RetentionPurger(const RetentionPurger&) = delete;
    RetentionPurger& operator=(const RetentionPurger&) = delete;

    // The interval for a retention: a tenth of it, between 1 s and 1 min.
    static std::chrono::milliseconds interval_for(std::chrono::milliseconds retention);

  private:
    void run(std::stop_token stop);
    void pass(std::stop_token stop);
    HistoryPurger& store_;
    std::chrono::milliseconds retention_, dead_retention_, interval_;
    Logger& log_;
    Metrics& metrics_;
    bool failing_ = false;  // log an outage once, not every pass
    std::mutex mu_;
    std::condition_variable_any cv_;
    std::jthread thread_;  // last: started when the rest is ready
};

}  // namespace clayhook
