#pragma once

// The last hour of the host's activity for the console's charts: every
// `interval` (10 s) a point with what happened since the one before (webhooks
// accepted, duplicates, rejected; deliveries done, dead) and the store's size,
// read from the metrics and the store. Kept in memory, `capacity` points
// (360: an hour), oldest dropped.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace clayhook {

class Metrics;
class Store;

class StatsHistory {
  public:
    struct Counts {
        double accepted = 0, duplicate = 0, rejected = 0, done = 0, dead = 0;
    };
    struct Point {
        int64_t t_ms = 0;
        Counts in_interval;
        int64_t store_bytes = -1;
    };

    StatsHistory(Metrics& metrics, Store& store,
                 std::chrono::milliseconds interval = std::chrono::seconds(10),
                 size_t capacity = 360);
    ~StatsHistory();  // stops and joins
    StatsHistory(const StatsHistory&) = delete;
    StatsHistory& operator=(const StatsHistory&) = delete;

    std::vector<Point> points() const;
    // The totals since the host started, read now.
    Counts totals() const;

  private:
    void run(std::stop_token stop);
    Metrics& metrics_;
    Store& store_;
    std::chrono::milliseconds interval_;
    size_t capacity_;
    mutable std::mutex mu_;
    std::deque<Point> points_;
    Counts last_;
    std::condition_variable_any cv_;
    std::jthread thread_;  // last
};

}  // namespace clayhook
