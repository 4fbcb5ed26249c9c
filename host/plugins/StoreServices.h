#pragma once

// The plugins' store-based services (host/plugins/HostServices.h): the
// key-value store over the host's store (its PluginStateStore role), and deliver_again_at, which
// the dispatcher carries out (it owns the pending deliveries). Created with the store, before any
// plugin, so a plugin can use them from its create() on; outlives every plugin instance.

#include "plugins/HostServices.h"

#include <cstddef>
#include <shared_mutex>

namespace clayhook {

class Logger;
class PluginStateStore;

// What carries out deliver_again_at: the dispatcher.
class Rescheduler {
  public:
    virtual ~Rescheduler() = default;
    virtual int32_t deliver_again_at(const std::string& plugin, std::string_view event_id,
                                     int64_t at_ms) noexcept = 0;
};

class StoreServices final : public PluginBackend {
  public:
    static constexpr size_t kMaxKey = 1024;
    static constexpr size_t kMaxValue = 1024 * 1024;

    StoreServices(PluginStateStore& store, Logger& log) : store_(store), log_(log) {}

    // The dispatcher, for deliver_again_at, from when it exists until it
    // stops (before and after, that call answers CLAYHOOK_ERR_UNSUPPORTED).
    // The Host attaches it right after creating it and detaches it before
    // destroying it.
    // detach() waits out a deliver_again_at in progress.
    void attach(Rescheduler* dispatcher);
    void detach();

    int32_t kv_get(const std::string& plugin, std::string_view key,
                   std::string& value) noexcept override;
    int32_t kv_put(const std::string& plugin, std::string_view key,
                   std::string_view value) noexcept override;
    int32_t kv_delete(const std::string& plugin, std::string_view key) noexcept override;
    int32_t deliver_again_at(const std::string& plugin, std::string_view event_id,
                             int64_t at_ms) noexcept override;

  private:
    PluginStateStore& store_;
    Logger& log_;
    std::shared_mutex rescheduler_mu_;
    Rescheduler* rescheduler_ = nullptr;  // under rescheduler_mu_
};

}  // namespace clayhook
