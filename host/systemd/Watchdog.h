#pragma once

// systemd's watchdog (WatchdogSec=), fed only while the host really works.
// Every interval/4 each probe is asked whether its part made progress; only
// when all say so is the service manager told WATCHDOG=1. A wedged part
// (the intake answering nothing, the dispatcher's loop stuck on a lock or a
// hung store call) stops the feeding, and systemd kills and restarts the
// host once WatchdogSec passes without it.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace clayhook {

class Logger;

class Watchdog {
  public:
    struct Probe {
        std::string name;
        // True when the part made progress; else `why` says what is wrong.
        // Called on the watchdog's thread, one probe at a time.
        std::function<bool(std::string& why)> check;
    };

    // `feed` sends WATCHDOG=1 (systemd::Notifier in serve, a recorder in tests).
    Watchdog(std::chrono::microseconds interval, std::vector<Probe> probes,
             std::function<void()> feed, Logger& log);
    ~Watchdog();
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;

    std::chrono::milliseconds tick() const { return tick_; }

  private:
    void run();

    std::chrono::milliseconds tick_;
    std::vector<Probe> probes_;
    std::function<void()> feed_;
    Logger& log_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace clayhook
