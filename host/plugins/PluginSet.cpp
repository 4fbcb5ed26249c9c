#include "plugins/PluginSet.h"

#include "config/Config.h"
#include "log/Logger.h"
#include "plugins/PluginWorker.h"

#include <map>
#include <optional>

namespace clayhook {

PluginSet PluginSet::load(const Config& config, const std::string& stage_dir, Logger& log,
                          Metrics& metrics, PluginBackend* backend) {
    PluginSet set;
    // Two entries naming the same file share one loaded library.
    std::map<std::string, std::shared_ptr<PluginLibrary>> libraries;
    std::optional<std::string> worker, no_worker;
    for (const auto& pc : config.plugins) {
        if (!pc.enabled) {
            set.disabled.push_back(pc.name);
            continue;
        }
        try {
            if (pc.library_path.empty())
                throw PluginError("plugin '" + pc.name + "' (" + pc.library +
                                  ") refused: " + pc.library_error);
            std::unique_ptr<PluginInstance> inst;
            if (pc.isolation == Isolation::process) {
                if (!worker) {
                    std::string why;
                    worker = find_worker_executable(why);
                    no_worker = why;
                }
                if (worker->empty())
                    throw PluginError("plugin '" + pc.name + "' (" + pc.library_path +
                                      ", isolation: process) refused: " + *no_worker);
                WorkerSettings ws;
                ws.executable = *worker;
                ws.call_timeout = config.dispatch.call_timeout;
                ws.grace = config.dispatch.call_grace;
                ws.backoff_min = config.dispatch.restart_backoff;
                ws.backoff_max = config.dispatch.restart_backoff_cap;
                ws.threads = static_cast<uint32_t>(std::max(pc.concurrency, 0));
                ws.workers = static_cast<uint32_t>(config.dispatch.workers);
                inst = PluginInstance::create_isolated(pc, ws, log, metrics, backend);
            } else {
                auto& lib = libraries[pc.library_path];
                if (!lib) lib = PluginLibrary::load(pc.name, pc.library_path, stage_dir);
                inst = PluginInstance::create(lib, pc, log, metrics, backend);
            }
            const PluginInfo& info = inst->info();
            log.info("plugins", "plugin loaded",
                     {{"plugin", pc.name},
                      {"kind", info.kind},
                      {"version", info.version},
                      {"abi", info.abi},
                      {"isolation", isolation_name(pc.isolation)},
                      {"path", info.path}});
            set.instances.push_back(std::move(inst));
        } catch (const std::exception& e) {
            log.error("plugins", e.what(), {{"plugin", pc.name}});
            set.refused.push_back(
                {pc.name, pc.library_path.empty() ? pc.library : pc.library_path, e.what()});
        }
    }
    return set;
}

std::vector<PluginInstance*> PluginSet::route(std::string_view type) const {
    std::vector<PluginInstance*> out;
    for (const auto& i : instances)
        if (i->subscribes(type)) out.push_back(i.get());
    return out;
}

}  // namespace clayhook
