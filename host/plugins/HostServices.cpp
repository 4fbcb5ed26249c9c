#include "plugins/HostServices.h"

#include "log/Logger.h"
#include "metrics/Metrics.h"

#include <string_view>

namespace clayhook {

namespace {

HostServices& self(void* ctx) {
    return *static_cast<HostServices*>(ctx);
}
std::string_view sv(clayhook_str s) {
    return {s.data ? s.data : "", s.len};
}

void cb_log(void* ctx, int32_t level, clayhook_str message) {
    try {
        auto& h = self(ctx);
        Level l = level <= CLAYHOOK_LOG_DEBUG  ? Level::debug
                  : level == CLAYHOOK_LOG_INFO ? Level::info
                  : level == CLAYHOOK_LOG_WARN ? Level::warn
                                               : Level::error;
        h.logger().log(l, "plugin", sv(message), {{"plugin", h.instance_name()}});
    } catch (...) {
    }
}

int32_t metric(void* ctx, clayhook_str name, clayhook_str labels, double v, bool counter) {
    try {
        auto& h = self(ctx);
        std::string full = "clayhook_plugin_" + std::string(sv(name));
        if (!Metrics::valid_name(sv(name)) || sv(name).find(':') != std::string_view::npos)
            return CLAYHOOK_ERR_INVALID;
        // The plugin label is the host's: a plugin cannot pass for another.
        std::string own = Metrics::canonical_labels(std::string(sv(labels)));
        if (own.rfind("plugin=", 0) == 0 || own.find(",plugin=") != std::string::npos)
            return CLAYHOOK_ERR_INVALID;
        std::string list = "plugin=" + h.instance_name();
        if (labels.len > 0) list += "," + std::string(sv(labels));
        std::string canonical = Metrics::canonical_labels(list);
        if (counter) {
            if (v < 0) return CLAYHOOK_ERR_INVALID;
            h.metrics().counter_add(full, canonical, v);
        } else {
            h.metrics().gauge_set(full, canonical, v);
        }
        return CLAYHOOK_OK;
    } catch (...) {
        return CLAYHOOK_ERR_INVALID;
    }
}

int32_t cb_counter_add(void* ctx, clayhook_str name, clayhook_str labels, double delta) {
    return metric(ctx, name, labels, delta, true);
}
int32_t cb_gauge_set(void* ctx, clayhook_str name, clayhook_str labels, double value) {
    return metric(ctx, name, labels, value, false);
}

// The store-based services go to the backend (the dispatcher) once the
// store is open; before that (`clayhook check`) there is none.
int32_t cb_kv_get(void* ctx, clayhook_str key, clayhook_value_sink sink, void* user) {
    try {
        auto& h = self(ctx);
        PluginBackend* b = h.backend();
        if (b == nullptr) return CLAYHOOK_ERR_UNSUPPORTED;
        if (sink == nullptr) return CLAYHOOK_ERR_INVALID;
        std::string value;
        int32_t rc = b->kv_get(h.instance_name(), sv(key), value);
        if (rc == CLAYHOOK_OK) sink(user, value.data(), value.size());
        return rc;
    } catch (...) {
        return CLAYHOOK_ERR_STORE;
    }
}
int32_t cb_kv_put(void* ctx, clayhook_str key, clayhook_str value) {
    auto& h = self(ctx);
    PluginBackend* b = h.backend();
    return b == nullptr ? CLAYHOOK_ERR_UNSUPPORTED
                        : b->kv_put(h.instance_name(), sv(key), sv(value));
}
int32_t cb_kv_delete(void* ctx, clayhook_str key) {
    auto& h = self(ctx);
    PluginBackend* b = h.backend();
    return b == nullptr ? CLAYHOOK_ERR_UNSUPPORTED : b->kv_delete(h.instance_name(), sv(key));
}
int32_t cb_deliver_again_at(void* ctx, clayhook_str event_id, int64_t at_ms) {
    auto& h = self(ctx);
    PluginBackend* b = h.backend();
    return b == nullptr ? CLAYHOOK_ERR_UNSUPPORTED
                        : b->deliver_again_at(h.instance_name(), sv(event_id), at_ms);
}

}  // namespace

HostServices::HostServices(std::string instance_name, Logger& log, Metrics& metrics,
                           PluginBackend* backend)
    : backend_(backend), instance_(std::move(instance_name)), log_(log), metrics_(metrics) {
    api_.struct_size = sizeof(clayhook_host_api);
    api_.host_ctx = this;
    api_.log = &cb_log;
    api_.counter_add = &cb_counter_add;
    api_.gauge_set = &cb_gauge_set;
    api_.kv_get = &cb_kv_get;
    api_.kv_put = &cb_kv_put;
    api_.kv_delete = &cb_kv_delete;
    api_.deliver_again_at = &cb_deliver_again_at;
}

}  // namespace clayhook
