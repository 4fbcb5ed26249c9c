#include "routing/Routes.h"

#include "config/Config.h"
#include "plugins/PluginSet.h"

namespace clayhook {

Routes Routes::from(const PluginSet& set, const Config& config) {
    std::vector<RouteTarget> targets;
    for (const auto& inst : set.instances) {
        RouteTarget t;
        t.plugin = inst->name();
        t.patterns = inst->patterns();
        for (const auto& pc : config.plugins)
            if (pc.name == inst->name() && pc.ordered) t.order_path = pc.ordering_key;
        targets.push_back(std::move(t));
    }
    return Routes(std::move(targets));
}

void Routes::deliveries_for(std::string_view type, const json::Value& doc,
                            std::vector<NewDelivery>& out) const {
    for (const auto& t : targets_) {
        bool match = false;
        for (const auto& p : t.patterns)
            if (p.matches(type)) {
                match = true;
                break;
            }
        if (!match) continue;
        NewDelivery d;
        d.plugin = t.plugin;
        if (!t.order_path.empty()) {
            if (const json::Value* v = doc.at_path(t.order_path); v && !v->is_null())
                d.order_key = v->is_string() ? v->as_string() : json::dump(*v);
        }
        out.push_back(std::move(d));
    }
}

}  // namespace clayhook
