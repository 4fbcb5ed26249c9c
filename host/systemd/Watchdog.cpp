#include "systemd/Watchdog.h"

#include "log/Logger.h"

#include <algorithm>

namespace clayhook {

Watchdog::Watchdog(std::chrono::microseconds interval, std::vector<Probe> probes,
                   std::function<void()> feed, Logger& log)
    : tick_(std::max(std::chrono::milliseconds(10),
                     std::chrono::duration_cast<std::chrono::milliseconds>(interval / 4))),
      probes_(std::move(probes)),
      feed_(std::move(feed)),
      log_(log),
      thread_([this] { run(); }) {}

Watchdog::~Watchdog() {
    {
        std::lock_guard lk(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

void Watchdog::run() {
    std::string failing;  // the probe that failed last tick, to log changes only
    std::unique_lock lk(mu_);
    while (!stop_) {
        lk.unlock();
        std::string name, why;
        for (const auto& p : probes_) {
            std::string reason;
            bool ok = false;
            try {
                ok = p.check(reason);
            } catch (const std::exception& e) {
                reason = e.what();
            }
            if (!ok) {
                name = p.name;
                why = reason;
                break;
            }
        }
        if (name.empty()) {
            feed_();
            if (!failing.empty())
                log_.info("watchdog", "making progress again; feeding the systemd watchdog",
                          {{"probe", failing}});
            failing.clear();
        } else if (name != failing) {
            log_.error("watchdog",
                       "no progress: the systemd watchdog is not fed, and systemd restarts the "
                       "host if this lasts WatchdogSec",
                       {{"probe", name}, {"reason", why}});
            failing = name;
        }
        lk.lock();
        cv_.wait_for(lk, tick_, [this] { return stop_; });
    }
}

}  // namespace clayhook
