#pragma once

#include "plugins/HostServices.h"
#include "plugins/LoadedPlugin.h"
#include "plugins/PluginLibrary.h"
#include "routing/EventPattern.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace clayhook {

class Logger;
class Metrics;
struct PluginConfig;
struct WorkerSettings;

// What a plugin's library says about itself, wherever it runs.
struct PluginInfo {
    std::string kind;                   // the descriptor's name
    std::string version;                // the descriptor's version
    std::string abi;                    // "1.0"
    std::string path;                   // the library file
    std::vector<std::string> patterns;  // its own event patterns
    uint32_t max_batch_size = 0;
    uint32_t max_concurrency = 0;
    // In-process plugins that declare their config (ABI 1.1): one line per
    // key as `clayhook check` shows it, "key=value" (a secret as "(secret)");
    // empty otherwise.
    std::vector<std::string> declared_config{};
};

// What runs a plugin's calls: in the host's process (LoadedPlugin), or in a
// supervised worker process (PluginWorker).
class PluginCalls {
  public:
    virtual ~PluginCalls() = default;
    // One outcome per event, in order. Never throws: a worker that dies
    // answers a retry whose reason says how it died.
    virtual std::vector<HandleOutcome> call(std::span<const EventView> events) noexcept = 0;
    // Unix ms before which no call can run (a worker restarting after a
    // crash, with its backoff); 0: calls can run now.
    virtual int64_t down_until_ms() const noexcept { return 0; }
};

// One created plugin instance: the configured entry and what runs its calls.
// In-process, it owns the plugin's object (destroying it calls the plugin's
// destroy(), then lets go of the library); isolated, a worker process does.
class PluginInstance {
  public:
    // In this process: creates the instance from its config entry, its
    // store-based services backed by `backend` (null: none, as in `clayhook
    // check`), already usable inside the plugin's create(). Throws
    // PluginError with the plugin's own complaint when its create() refuses.
    static std::unique_ptr<PluginInstance> create(std::shared_ptr<PluginLibrary> library,
                                                  const PluginConfig& config, Logger& log,
                                                  Metrics& metrics,
                                                  PluginBackend* backend = nullptr);
    // In a worker process of its own (isolation: process): starts it, which
    // loads the library and calls create() there. Throws PluginError when
    // the library is refused, create() refuses, or the worker dies first.
    static std::unique_ptr<PluginInstance> create_isolated(const PluginConfig& config,
                                                           const WorkerSettings& settings,
                                                           Logger& log, Metrics& metrics,
                                                           PluginBackend* backend = nullptr);
    ~PluginInstance();
    PluginInstance(const PluginInstance&) = delete;
    PluginInstance& operator=(const PluginInstance&) = delete;

    const std::string& name() const { return name_; }
    const PluginInfo& info() const { return info_; }
    bool isolated() const { return isolated_; }
    // The patterns in force: the config's `events:` when given, else the plugin's.
    const std::vector<EventPattern>& patterns() const { return patterns_; }
    bool subscribes(std::string_view type) const;
    uint32_t max_batch_size() const { return info_.max_batch_size; }
    uint32_t max_concurrency() const { return concurrency_; }
    int64_t down_until_ms() const noexcept { return calls_->down_until_ms(); }

    // Data plane: never throws.
    HandleOutcome handle(const EventView& event) noexcept;
    // Up to max_batch_size() events at once, one outcome each, in order.
    // Plugins without batches are called one event at a time.
    std::vector<HandleOutcome> handle_batch(const std::vector<EventView>& events) noexcept;

  private:
    PluginInstance() = default;
    void settle(const PluginConfig& config);  // patterns and concurrency, from info_
    std::unique_ptr<HostServices> services_;  // outlives calls_
    std::unique_ptr<PluginCalls> calls_;
    PluginInfo info_;
    bool isolated_ = false;
    std::string name_;
    std::vector<EventPattern> patterns_;
    uint32_t concurrency_ = 0;
};

}  // namespace clayhook
