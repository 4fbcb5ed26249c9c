#pragma once

#include "plugins/HostServices.h"
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

// The host's view of one event for one delivery attempt.
struct EventView {
    std::string_view id;
    std::string_view source;
    std::string_view type;
    std::string_view idempotency_key;
    std::string_view body;
    int64_t received_at_ms = 0;
    uint32_t attempt = 1;
};

struct HandleOutcome {
    clayhook_status status = CLAYHOOK_DONE;
    std::chrono::milliseconds retry_after{0};
    std::string reason;
};

// One created plugin instance: the configured entry, its library, and the
// plugin's own object. Destroying it calls the plugin's destroy() and then
// lets go of the library, in that order (the members are declared so).
class PluginInstance {
  public:
    // Creates the instance from its config entry, its store-based services
    // backed by `backend` (null: none, as in `clayhook check`), already
    // usable inside the plugin's create(). Throws PluginError with the
    // plugin's own complaint when its create() refuses.
    static std::unique_ptr<PluginInstance> create(std::shared_ptr<PluginLibrary> library,
                                                  const PluginConfig& config, Logger& log,
                                                  Metrics& metrics,
                                                  PluginBackend* backend = nullptr);
    ~PluginInstance();
    PluginInstance(const PluginInstance&) = delete;
    PluginInstance& operator=(const PluginInstance&) = delete;

    const std::string& name() const { return name_; }
    const PluginLibrary& library() const { return *library_; }
    // The patterns in force: the config's `events:` when given, else the plugin's.
    const std::vector<EventPattern>& patterns() const { return patterns_; }
    bool subscribes(std::string_view type) const;
    uint32_t max_batch_size() const { return library_->descriptor().max_batch_size; }
    uint32_t max_concurrency() const { return concurrency_; }

    // Data plane: never throws.
    HandleOutcome handle(const EventView& event) noexcept;
    // Up to max_batch_size() events at once, one outcome each, in order.
    // Plugins without batches are called one event at a time.
    std::vector<HandleOutcome> handle_batch(const std::vector<EventView>& events) noexcept;

  private:
    PluginInstance() = default;
    std::shared_ptr<PluginLibrary> library_;  // first: released last
    std::unique_ptr<HostServices> services_;
    void* instance_ = nullptr;
    std::string name_;
    std::vector<EventPattern> patterns_;
    uint32_t concurrency_ = 0;
};

}  // namespace clayhook
