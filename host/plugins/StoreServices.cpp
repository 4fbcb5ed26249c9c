#include "plugins/StoreServices.h"

#include "log/Logger.h"
#include "store/Store.h"

namespace clayhook {

int32_t StoreServices::kv_get(const std::string& plugin, std::string_view key,
                              std::string& value) noexcept {
    if (key.empty() || key.size() > kMaxKey) return CLAYHOOK_ERR_INVALID;
    try {
        auto v = store_.kv_get(plugin, key);
        if (!v) return CLAYHOOK_NOT_FOUND;
        value = std::move(*v);
        return CLAYHOOK_OK;
    } catch (const std::exception& e) {
        log_.error("plugins", std::string("kv_get: ") + e.what(), {{"plugin", plugin}});
        return CLAYHOOK_ERR_STORE;
    }
}

int32_t StoreServices::kv_put(const std::string& plugin, std::string_view key,
                              std::string_view value) noexcept {
    if (key.empty() || key.size() > kMaxKey || value.size() > kMaxValue)
        return CLAYHOOK_ERR_INVALID;
    try {
        store_.kv_put(plugin, key, value);
        return CLAYHOOK_OK;
    } catch (const std::exception& e) {
        log_.error("plugins", std::string("kv_put: ") + e.what(), {{"plugin", plugin}});
        return CLAYHOOK_ERR_STORE;
    }
}

int32_t StoreServices::kv_delete(const std::string& plugin, std::string_view key) noexcept {
    if (key.empty() || key.size() > kMaxKey) return CLAYHOOK_ERR_INVALID;
    try {
        return store_.kv_delete(plugin, key) ? CLAYHOOK_OK : CLAYHOOK_NOT_FOUND;
    } catch (const std::exception& e) {
        log_.error("plugins", std::string("kv_delete: ") + e.what(), {{"plugin", plugin}});
        return CLAYHOOK_ERR_STORE;
    }
}

int32_t StoreServices::deliver_again_at(const std::string& plugin, std::string_view event_id,
                                        int64_t at_ms) noexcept {
    std::shared_lock lk(rescheduler_mu_);
    return rescheduler_ != nullptr ? rescheduler_->deliver_again_at(plugin, event_id, at_ms)
                                   : CLAYHOOK_ERR_UNSUPPORTED;
}

void StoreServices::attach(Rescheduler* dispatcher) {
    std::unique_lock lk(rescheduler_mu_);
    rescheduler_ = dispatcher;
}

void StoreServices::detach() {
    std::unique_lock lk(rescheduler_mu_);
    rescheduler_ = nullptr;
}

}  // namespace clayhook
