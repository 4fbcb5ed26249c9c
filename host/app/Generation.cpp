#include "app/Generation.h"

#include "config/ConfigLoader.h"
#include "http/IntakeServer.h"
#include "log/Logger.h"
#include "routing/EventCatalogue.h"
#include "routing/Routes.h"

#include <algorithm>

namespace clayhook {

std::vector<std::string> route_warnings(const Config& config, const PluginSet& set) {
    std::vector<std::string> known = clay_event_catalogue();
    for (const auto& s : config.sources)
        if (s.event_type.from == EventTypeFrom::fixed &&
            std::find(known.begin(), known.end(), s.event_type.value) == known.end())
            known.push_back(s.event_type.value);
    std::vector<std::string> out;
    for (const auto& type : known)
        if (set.route(type).empty() && is_clay_event_type(type))
            out.push_back("no plugin handles " + type +
                          ": such events are stored and acknowledged, and nothing is done with "
                          "them");
    for (const auto& i : set.instances)
        for (const auto& p : i->patterns()) {
            bool any = false;
            for (const auto& type : known)
                any = any || p.matches(type);
            if (!any)
                out.push_back("plugin '" + i->name() + "': pattern '" + p.text() +
                              "' matches no known event type (a typo?)");
        }
    return out;
}

std::vector<DispatchTarget> dispatch_targets(const Config& config, const PluginSet& set) {
    std::vector<DispatchTarget> targets;
    for (const auto& inst : set.instances) {
        const PluginConfig* pc = nullptr;
        for (const auto& c : config.plugins)
            if (c.name == inst->name()) pc = &c;
        DispatchTarget t;
        t.instance = inst;
        t.retry = pc ? pc->retry : config.dispatch.retry;
        t.ordered = pc && pc->ordered;
        // Threads: the entry's (or the plugin's own) limit, else dispatch.workers.
        t.concurrency = inst->max_concurrency() > 0
                            ? inst->max_concurrency()
                            : static_cast<uint32_t>(config.dispatch.workers);
        // In an ordered lane a key's deliveries are due one at a time, so a
        // batch holds at most one per key; the rest wait behind.
        t.max_batch = std::max<uint32_t>(inst->max_batch_size(), 1);
        t.batch_linger = pc && pc->batch_linger ? *pc->batch_linger : config.dispatch.batch_linger;
        targets.push_back(std::move(t));
    }
    return targets;
}

Config load_host_config(const std::string& file) {
    Config config = load_config(file, LoadOptions::with_bundled());
    require_secrets(config);
    parse_level(config.log.level);        // throws on a bad level
    parse_log_format(config.log.format);  // and on a bad format
    return config;
}

GenerationBuilder::GenerationBuilder(std::string stage_dir, PluginBackend* backend, Logger& log,
                                     Metrics& metrics)
    : stage_dir_(std::move(stage_dir)), backend_(backend), log_(log), metrics_(metrics) {}

std::shared_ptr<const Generation> GenerationBuilder::build(Config config, uint64_t number) const {
    for (const Secret* s : config.all_secrets())
        log_.add_secret(s->value);  // before any plugin can log one
    auto g = std::make_shared<Generation>();
    g->number = number;
    g->plugins =
        std::make_shared<PluginSet>(PluginSet::load(config, stage_dir_, log_, metrics_, backend_));
    g->routes = std::make_shared<const Routes>(Routes::from(*g->plugins, config));
    g->targets = dispatch_targets(config, *g->plugins);
    g->sources = build_intake_routes(config, g->routes, metrics_);
    config.route_warnings = route_warnings(config, *g->plugins);
    g->config = std::move(config);
    return g;
}

}  // namespace clayhook
