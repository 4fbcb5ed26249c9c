#include "admin/StatsHistory.h"

#include "metrics/Metrics.h"
#include "store/Store.h"
#include "util/Clock.h"

namespace clayhook {

StatsHistory::StatsHistory(Metrics& metrics, Store& store, std::chrono::milliseconds interval,
                           size_t capacity)
    : metrics_(metrics), store_(store), interval_(interval), capacity_(capacity) {
    last_ = totals();
    thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

StatsHistory::~StatsHistory() {
    thread_.request_stop();
    thread_.join();
}

StatsHistory::Counts StatsHistory::totals() const {
    Counts c;
    const double all = metrics_.sum("clayhook_intake_requests_total");
    c.accepted = metrics_.sum("clayhook_intake_requests_total", "outcome=\"accepted\"");
    c.duplicate = metrics_.sum("clayhook_intake_requests_total", "outcome=\"duplicate\"");
    c.rejected = all - c.accepted - c.duplicate;
    c.done = metrics_.sum("clayhook_dispatch_deliveries_total", "outcome=\"done\"");
    c.dead = metrics_.sum("clayhook_dispatch_dead_letters_total");
    return c;
}

std::vector<StatsHistory::Point> StatsHistory::points() const {
    std::lock_guard lk(mu_);
    return {points_.begin(), points_.end()};
}

void StatsHistory::run(std::stop_token stop) {
    std::mutex wait_mu;
    while (!stop.stop_requested()) {
        {
            std::unique_lock lk(wait_mu);
            if (cv_.wait_for(lk, stop, interval_, [] { return false; })) break;
        }
        if (stop.stop_requested()) break;
        const Counts now = totals();
        Point p;
        p.t_ms = SystemClock::unix_ms();
        p.in_interval = {now.accepted - last_.accepted, now.duplicate - last_.duplicate,
                         now.rejected - last_.rejected, now.done - last_.done,
                         now.dead - last_.dead};
        p.store_bytes = store_.usage().bytes;
        last_ = now;
        std::lock_guard lk(mu_);
        points_.push_back(p);
        while (points_.size() > capacity_)
            points_.pop_front();
    }
}

}  // namespace clayhook
