#pragma once

// A plugin in a supervised worker process (plugins[].isolation: process).
//
// The worker is the clayhook-plugin-worker executable: it loads the same
// .so through the same loader, creates the instance with the same ABI, and
// runs its calls on as many threads as the lane has; the host services (log,
// metrics, key-value store, deliver-again) are served back by the host over
// the same socket (worker/WorkerProtocol.h). One supervisor thread per
// worker reads its frames, enforces the call deadlines (call_timeout plus a
// grace) and the memory limit (the worker's RSS), and restarts it with a
// backoff when it dies. A worker that dies costs only the calls in flight:
// each answers a retry whose reason says what happened ("plugin process
// killed by SIGSEGV"), and the retry policy decides the rest. While the
// worker is down (restarting) down_until_ms() says until when, so the
// dispatcher does not claim deliveries it cannot run.

#include "plugins/PluginInstance.h"

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace clayhook {

class HostServices;
class Logger;
class Metrics;
class MetricValue;
struct PluginConfig;

struct WorkerSettings {
    std::string executable;  // clayhook-plugin-worker
    std::chrono::milliseconds call_timeout{30'000};
    std::chrono::milliseconds grace{5'000};           // past call_timeout, before the kill
    std::chrono::milliseconds start_timeout{30'000};  // loading and create()
    std::chrono::milliseconds backoff_min{200};
    std::chrono::milliseconds backoff_max{30'000};
    // Calls the worker runs at once, as the lane has them: the entry's
    // concurrency (0: none given) capped by the plugin's max_concurrency, else
    // the plugin's max_concurrency, else dispatch.workers (`workers`).
    uint32_t threads = 0;
    uint32_t workers = 4;
};

// Where clayhook-plugin-worker is: $CLAYHOOK_PLUGIN_WORKER, else beside the
// running executable, else in <prefix>/<libdir>/clayhook/ for an installed
// host. "" when none exists (`why` says where it looked).
std::string find_worker_executable(std::string& why);

class PluginWorker final : public PluginCalls {
  public:
    // Starts the worker and waits until it is ready (or refused). Throws
    // PluginError naming the plugin and the reason.
    static std::unique_ptr<PluginWorker> start(const PluginConfig& config,
                                               const WorkerSettings& settings,
                                               HostServices& services, Logger& log,
                                               Metrics& metrics);
    // Stops the worker: closes its socket (it destroys the instance once
    // its calls returned, and exits), and kills it after the grace.
    ~PluginWorker() override;
    PluginWorker(const PluginWorker&) = delete;
    PluginWorker& operator=(const PluginWorker&) = delete;

    const PluginInfo& info() const { return info_; }
    std::vector<HandleOutcome> call(std::span<const EventView> events) noexcept override;
    int64_t down_until_ms() const noexcept override { return down_until_ms_.load(); }
    pid_t pid() const;  // 0 while none runs

  private:
    struct Pending;
    PluginWorker(const PluginConfig& config, const WorkerSettings& settings, HostServices& services,
                 Logger& log, Metrics& metrics);
    void supervise();
    // Spawns a worker and waits for its ready frame; the reason on failure.
    std::optional<std::string> launch(bool first);
    // Reads and serves its frames until it dies or is killed; returns why.
    std::string serve();
    void handle_frame(uint8_t type, std::string_view payload);
    void send(const std::string& frame) noexcept;
    std::string reap();  // waits for the worker's exit; describes it
    void fail_pending(const std::string& reason);

    const std::string name_;
    const std::string library_;
    const std::string config_context_;  // ConfigSchema's encode_config_context
    const uint64_t memory_limit_;
    const WorkerSettings settings_;
    HostServices& services_;
    Logger& log_;
    MetricValue& restarts_;
    MetricValue& kills_;
    PluginInfo info_;

    mutable std::mutex mu_;  // guards the members below
    std::condition_variable cv_;
    pid_t pid_ = 0;
    int fd_ = -1;
    bool up_ = false;
    bool stopping_ = false;
    std::optional<std::string> first_result_;  // set once the first launch ended ("" = ready)
    uint64_t next_call_ = 1;
    std::map<uint64_t, Pending*> calls_;
    std::string last_death_;
    uint64_t answered_ = 0;  // results since the last launch

    std::mutex write_mu_;  // one frame at a time on fd_
    std::atomic<int64_t> down_until_ms_{0};
    std::string kill_reason_;         // supervisor thread only
    std::optional<int> exit_status_;  // supervisor thread only: reaped in serve()
    std::thread supervisor_;
};

}  // namespace clayhook
