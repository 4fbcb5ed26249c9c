#pragma once

#include "plugins/PluginLibrary.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace clayhook {

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

// One plugin instance created from its library in this process: the
// plugin's create(), its calls and its destroy(). The host runs one for each
// plugin with isolation: in-process; a plugin worker process runs one for
// its plugin. Destroying it calls destroy() and then lets go of the library.
class LoadedPlugin {
  public:
    // Calls the plugin's create() with `api` (which must outlive the
    // instance). Null with the plugin's own complaint in `error` when it
    // refuses.
    static std::unique_ptr<LoadedPlugin> create(std::shared_ptr<PluginLibrary> library,
                                                const clayhook_host_api* api,
                                                std::string_view config_json, std::string& error);
    ~LoadedPlugin();
    LoadedPlugin(const LoadedPlugin&) = delete;
    LoadedPlugin& operator=(const LoadedPlugin&) = delete;

    const PluginLibrary& library() const { return *library_; }

    // One outcome per event, in order: handle_batch() in chunks of the
    // plugin's max_batch_size when it batches, else handle() for each. Never
    // throws.
    std::vector<HandleOutcome> call(std::span<const EventView> events) noexcept;

  private:
    LoadedPlugin() = default;
    std::shared_ptr<PluginLibrary> library_;  // first: released last
    void* instance_ = nullptr;
};

}  // namespace clayhook
