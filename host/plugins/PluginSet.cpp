#include "plugins/PluginSet.h"

#include "config/Config.h"
#include "log/Logger.h"

#include <map>

namespace clayhook {

PluginSet PluginSet::load(const Config& config, const std::string& stage_dir, Logger& log,
                          Metrics& metrics, PluginBackend* backend) {
    PluginSet set;
    // Two entries naming the same file share one loaded library.
    std::map<std::string, std::shared_ptr<PluginLibrary>> libraries;
    for (const auto& pc : config.plugins) {
        if (!pc.enabled) {
            set.disabled.push_back(pc.name);
            continue;
        }
        try {
            if (pc.library_path.empty())
                throw PluginError("plugin '" + pc.name + "' (" + pc.library +
                                  ") refused: " + pc.library_error);
            auto& lib = libraries[pc.library_path];
            if (!lib) lib = PluginLibrary::load(pc.name, pc.library_path, stage_dir);
            auto inst = PluginInstance::create(lib, pc, log, metrics, backend);
            log.info("plugins", "plugin loaded",
                     {{"plugin", pc.name},
                      {"kind", lib->name()},
                      {"version", lib->version()},
                      {"abi", lib->abi().str()},
                      {"path", lib->path()}});
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
