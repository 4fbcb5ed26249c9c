#include "routing/Routes.h"

#include "config/Config.h"
#include "plugins/PluginSet.h"

namespace clayhook {

Routes Routes::from(const PluginSet& set, const Config& config) {
    std::vector<RouteTarget> targets;
    for (const auto& pc : config.plugins) {
        if (!pc.enabled) continue;
        RouteTarget t;
        t.plugin = pc.name;
        if (pc.ordered) t.order_path = pc.ordering_key;
        const PluginInstance* inst = nullptr;
        for (const auto& i : set.instances)
            if (i->name() == pc.name) inst = i.get();
        if (inst != nullptr) {
            t.patterns = inst->patterns();
        } else {
            // Enabled but refused (a missing file, a crash in create()): its
            // deliveries are made all the same and wait for it, so a reload
            // that brings it up finds every event that arrived meanwhile.
            // Without `events:` its own patterns are unknown: every event
            // waits, and the ones it does not subscribe to are skipped once
            // it runs.
            for (const auto& text : pc.events ? *pc.events : std::vector<std::string>{"*"})
                if (EventPattern::why_invalid(text).empty()) t.patterns.emplace_back(text);
            if (t.patterns.empty()) continue;
        }
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
