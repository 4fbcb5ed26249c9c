#pragma once

#include <clayhook/plugin_abi.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace clayhook {

class Logger;
class Metrics;

// What backs the store-based services (key-value store, delivery again at T):
// the host's StoreServices over its store and dispatcher. Every member is
// noexcept and returns a CLAYHOOK_* code.
class PluginBackend {
  public:
    virtual ~PluginBackend() = default;
    virtual int32_t kv_get(const std::string& plugin, std::string_view key,
                           std::string& value) noexcept = 0;
    virtual int32_t kv_put(const std::string& plugin, std::string_view key,
                           std::string_view value) noexcept = 0;
    virtual int32_t kv_delete(const std::string& plugin, std::string_view key) noexcept = 0;
    virtual int32_t deliver_again_at(const std::string& plugin, std::string_view event_id,
                                     int64_t at_ms) noexcept = 0;
};

// The host services table handed to one plugin instance, and the context its
// C callbacks find through host_ctx. Lives as long as the instance. Every
// callback is noexcept: nothing thrown on the host side may cross into the
// plugin.
class HostServices {
  public:
    // `backend` null: the store-based services answer
    // CLAYHOOK_ERR_UNSUPPORTED (no store, as in `clayhook check`).
    HostServices(std::string instance_name, Logger& log, Metrics& metrics,
                 PluginBackend* backend = nullptr);
    HostServices(const HostServices&) = delete;
    HostServices& operator=(const HostServices&) = delete;

    const clayhook_host_api* api() const { return &api_; }
    const std::string& instance_name() const { return instance_; }
    Logger& logger() const { return log_; }
    Metrics& metrics() const { return metrics_; }
    PluginBackend* backend() const { return backend_; }

  private:
    PluginBackend* const backend_;
    std::string instance_;
    Logger& log_;
    Metrics& metrics_;
    clayhook_host_api api_{};
};

}  // namespace clayhook
