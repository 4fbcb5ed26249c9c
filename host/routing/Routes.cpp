#include "routing/Routes.h"

#include "config/Config.h"
#include "plugins/PluginSet.h"

#include <algorithm>

namespace clayhook {

Routes::Routes(std::vector<RouteTarget> targets) : targets_(std::move(targets)) {
    for (const auto& t : targets_) {
        if (t.order_path.empty()) {
            order_slot_.push_back(kUnordered);
            continue;
        }
        auto it = std::find(order_paths_.begin(), order_paths_.end(), t.order_path);
        order_slot_.push_back(static_cast<std::size_t>(it - order_paths_.begin()));
        if (it == order_paths_.end()) order_paths_.push_back(t.order_path);
    }
}

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

void Routes::deliveries_for(std::string_view type, std::string_view body,
                            std::span<const intake::Field> order_fields,
                            std::vector<NewDelivery>& out) const {
    for (std::size_t i = 0; i < targets_.size(); ++i) {
        const RouteTarget& t = targets_[i];
        bool match = false;
        for (const auto& p : t.patterns)
            if (p.matches(type)) {
                match = true;
                break;
            }
        if (!match) continue;
        NewDelivery d;
        d.plugin = t.plugin;
        if (const std::size_t slot = order_slot_[i]; slot < order_fields.size()) {
            const intake::Field& f = order_fields[slot];
            if (f.found && f.kind != intake::Kind::Null)
                d.order_key = f.kind == intake::Kind::String ? intake::string_value(body, f)
                                                             : intake::canonical(body, f);
        }
        out.push_back(std::move(d));
    }
}

}  // namespace clayhook
