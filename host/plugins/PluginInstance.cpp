#include "plugins/PluginInstance.h"

#include "plugins/ConfigSchema.h"

#include <clayhook/json.hpp>

#include "config/Config.h"
#include "plugins/PluginWorker.h"

namespace clayhook {

namespace {

// In this process: the plugin's own calls.
class LocalCalls final : public PluginCalls {
  public:
    explicit LocalCalls(std::unique_ptr<LoadedPlugin> plugin) : plugin_(std::move(plugin)) {}
    std::vector<HandleOutcome> call(std::span<const EventView> events) noexcept override {
        return plugin_->call(events);
    }

  private:
    std::unique_ptr<LoadedPlugin> plugin_;
};

}  // namespace

void PluginInstance::settle(const PluginConfig& config) {
    auto refuse = [&](const std::string& why) {
        throw PluginError("plugin '" + config.name + "' (" + info_.path + ", " + info_.kind + " " +
                          info_.version + ") refused: " + why);
    };
    for (const auto& text : config.events ? *config.events : info_.patterns) {
        if (auto why = EventPattern::why_invalid(text); !why.empty()) refuse("events: " + why);
        patterns_.emplace_back(text);
    }
    // The operator may lower the plugin's own limit, never raise it.
    concurrency_ = info_.max_concurrency;
    if (config.concurrency > 0 &&
        (info_.max_concurrency == 0 ||
         static_cast<uint32_t>(config.concurrency) < info_.max_concurrency))
        concurrency_ = static_cast<uint32_t>(config.concurrency);
}

std::unique_ptr<PluginInstance> PluginInstance::create(std::shared_ptr<PluginLibrary> library,
                                                       const PluginConfig& config, Logger& log,
                                                       Metrics& metrics, PluginBackend* backend) {
    std::unique_ptr<PluginInstance> p(new PluginInstance());
    p->name_ = config.name;
    const auto& d = library->descriptor();
    p->info_.kind = d.name;
    p->info_.version = d.version;
    p->info_.abi = library->abi().str();
    p->info_.path = library->path();
    p->info_.patterns = library->event_patterns();
    p->info_.max_batch_size = d.max_batch_size;
    p->info_.max_concurrency = d.max_concurrency;
    p->settle(config);

    p->services_ = std::make_unique<HostServices>(config.name, log, metrics, backend);
    std::string error;
    std::string config_json;
    try {
        config_json = apply_config_schema(library->config_keys(), config,
                                          "plugins." + config.name + ".config");
    } catch (const std::exception& e) {
        throw PluginError("plugin '" + config.name + "' (" + p->info_.path + ", " + p->info_.kind +
                          " " + p->info_.version + ") refused: config: " + e.what());
    }
    if (!library->config_keys().empty()) {
        // What `check` shows. Never a resolved secret: values are already
        // resolved here, so a key written as a reference, a declared secret
        // and anything nested (a mapping may hold references) are not shown.
        const json::Value effective = json::parse(config_json);
        for (const auto& k : library->config_keys()) {
            const json::Value* v = effective.find(k.name);
            const auto given = config.config_keys.find(k.name);
            const bool reference = given != config.config_keys.end() && given->second.reference;
            std::string shown;
            if (v == nullptr)
                shown = "(not set)";
            else if (k.secret || reference)
                shown = "(secret)";
            else if (v->is_object())
                shown = "{...}";
            else if (v->is_array())
                shown = "[" + std::to_string(v->size()) + " items]";
            else if (v->is_string())
                shown = v->as_string();
            else
                shown = json::dump(*v);
            if (v != nullptr && k.type == CLAYHOOK_CONFIG_DURATION) shown += "ms";
            if (v != nullptr && k.type == CLAYHOOK_CONFIG_SIZE) shown += " bytes";
            p->info_.declared_config.push_back(k.name + "=" + shown);
        }
    }
    auto loaded = LoadedPlugin::create(std::move(library), p->services_->api(), config_json, error);
    if (!loaded)
        throw PluginError("plugin '" + config.name + "' (" + p->info_.path + ", " + p->info_.kind +
                          " " + p->info_.version + ") refused: its create() failed: " + error);
    p->calls_ = std::make_unique<LocalCalls>(std::move(loaded));
    return p;
}

std::unique_ptr<PluginInstance> PluginInstance::create_isolated(const PluginConfig& config,
                                                                const WorkerSettings& settings,
                                                                Logger& log, Metrics& metrics,
                                                                PluginBackend* backend) {
    std::unique_ptr<PluginInstance> p(new PluginInstance());
    p->name_ = config.name;
    p->isolated_ = true;
    p->services_ = std::make_unique<HostServices>(config.name, log, metrics, backend);
    auto worker = PluginWorker::start(config, settings, *p->services_, log, metrics);
    p->info_ = worker->info();
    p->settle(config);
    p->calls_ = std::move(worker);
    return p;
}

PluginInstance::~PluginInstance() {
    calls_.reset();  // the plugin (or its worker) first, then the services it used
}

bool PluginInstance::subscribes(std::string_view type) const {
    for (const auto& p : patterns_)
        if (p.matches(type)) return true;
    return false;
}

HandleOutcome PluginInstance::handle(const EventView& e) noexcept {
    auto out = calls_->call(std::span<const EventView>(&e, 1));
    if (out.empty()) return HandleOutcome{CLAYHOOK_RETRY, {}, "no result for this item"};
    return std::move(out.front());
}

std::vector<HandleOutcome> PluginInstance::handle_batch(
    const std::vector<EventView>& events) noexcept {
    return calls_->call(events);
}

}  // namespace clayhook
