#pragma once

#include "intake/JsonFields.h"
#include "routing/EventPattern.h"
#include "store/Store.h"

#include <span>
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
    explicit Routes(std::vector<RouteTarget> targets);
    // The loaded plugins of `set`, with the ordering settings of their entries.
    static Routes from(const PluginSet& set, const Config& config);

    // The body paths of the ordering keys, each once: what the intake looks
    // up in a body (intake::extract) for deliveries_for().
    const std::vector<std::string>& order_paths() const { return order_paths_; }

    // Appends one NewDelivery per subscribed plugin. The ordering key is the
    // body's value at order_path (a string as is, anything else as JSON
    // text); an event without one is not held back by others.
    // `order_fields[i]`: where `body` has order_paths()[i].
    void deliveries_for(std::string_view type, std::string_view body,
                        std::span<const intake::Field> order_fields,
                        std::vector<NewDelivery>& out) const;
    const std::vector<RouteTarget>& targets() const { return targets_; }

  private:
    static constexpr std::size_t kUnordered = static_cast<std::size_t>(-1);
    std::vector<RouteTarget> targets_;
    std::vector<std::string> order_paths_;
    std::vector<std::size_t> order_slot_;  // per target: its index in order_paths_, or kUnordered
};

}  // namespace clayhook
