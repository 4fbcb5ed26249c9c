#pragma once

#include "plugins/PluginInstance.h"

#include <memory>
#include <string>
#include <vector>

namespace clayhook {

struct Config;
class Logger;
class Metrics;

// The plugins of one config, loaded and created. A plugin that is refused
// (missing file, no entry symbol, ABI mismatch, create() failing) is listed
// in `refused` with its reason and the others go on: one broken plugin never
// takes the host down.
struct PluginSet {
    struct Refusal {
        std::string name;
        std::string library;
        std::string reason;
    };
    std::vector<std::shared_ptr<PluginInstance>>
        instances;  // shared: a call in flight keeps its own
    std::vector<Refusal> refused;
    std::vector<std::string> disabled;  // names of entries with enabled: false

    // `backend`: the instances' store-based services (null: none).
    static PluginSet load(const Config& config, const std::string& stage_dir, Logger& log,
                          Metrics& metrics, PluginBackend* backend = nullptr);

    // The instances subscribed to `type`, in config order.
    std::vector<PluginInstance*> route(std::string_view type) const;
};

}  // namespace clayhook
