#pragma once

#include "routing/EventPattern.h"
#include "store/Store.h"

#include <clayhook/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace clayhook {

class PluginSet;
struct Config;

// Which plugins an event goes to, as the intake decides it: one delivery per
// subscribed plugin, written in the event's own transaction. Immutable.
struct RouteTarget {
    std::string plugin;  // the plugin entry's name
    std::vector<EventPattern> patterns;
    std::string order_path;  // "" unless ordered: the body path of the ordering key
};

class Routes {
  public:
    explicit Routes(std::vector<RouteTarget> targets) : targets_(std::move(targets)) {}
    // The loaded plugins of `set`, with the ordering settings of their entries.
    static Routes from(const PluginSet& set, const Config& config);

    // Appends one NewDelivery per subscribed plugin. The ordering key is the
    // body's value at order_path (a string as is, anything else as JSON
    // text); an event without one is not held back by others.
    void deliveries_for(std::string_view type, const json::Value& doc,
                        std::vector<NewDelivery>& out) const;
    const std::vector<RouteTarget>& targets() const { return targets_; }

  private:
    std::vector<RouteTarget> targets_;
};

}  // namespace clayhook
