#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace clayhook {

class Logger;
class Metrics;
class IntakeWriter;

// Forgets dedup records older than the retention window, in the background:
// once at start, then every `interval` (every second while the store is not
// writable, which lets it notice the store has recovered). The events
// themselves stay.
class DedupPruner {
  public:
    static constexpr std::chrono::milliseconds kUnwritableRetry{1000};

    DedupPruner(IntakeWriter& store, std::chrono::milliseconds retention,
                std::chrono::milliseconds interval, Logger& log, Metrics& metrics);
    ~DedupPruner();  // stops and joins
    DedupPruner(const DedupPruner&) = delete;
    DedupPruner& operator=(const DedupPruner&) = delete;

    // The interval for a retention window: a tenth of it, between 1 s and 10 min.
    static std::chrono::milliseconds interval_for(std::chrono::milliseconds retention);

  private:
    void run();
    IntakeWriter& store_;
    std::chrono::milliseconds retention_, interval_;
    Logger& log_;
    Metrics& metrics_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace clayhook
