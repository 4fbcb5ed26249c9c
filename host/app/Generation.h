#pragma once

// One generation of what the host serves: the config in force, the plugins
// loaded from it, and what the components derive from the two. Immutable
// once built. `serve` builds generation 1; each reload builds the next and
// the Host swaps it in whole (make before break): the dispatcher takes its
// targets, the intake its sources and fan-out. Components never see a
// generation half built.

#include "config/Config.h"
#include "dispatch/Dispatcher.h"
#include "plugins/PluginSet.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace clayhook {

class Logger;
class Metrics;
class PluginBackend;
class Routes;
struct IntakeRoutes;

struct Generation {
    uint64_t number = 1;
    Config config;
    std::shared_ptr<PluginSet> plugins;           // every instance (and refusal) of this generation
    std::shared_ptr<const Routes> routes;         // event type → the plugins that get a delivery
    std::vector<DispatchTarget> targets;          // the dispatcher's view of the plugins
    std::shared_ptr<const IntakeRoutes> sources;  // the intake's sources and fan-out
};

// The dispatcher's view of a plugin set: threads, batch size, retry policy
// and ordering from each instance and its config entry.
std::vector<DispatchTarget> dispatch_targets(const Config& config, const PluginSet& set);

// What `clayhook check` warns about the routes of a plugin set: a Clay event
// type no plugin handles (stored, acknowledged, nothing done with it), and a
// plugin pattern that matches no known type (a typo?). Known types: Clay's
// catalogue and the sources' fixed types.
std::vector<std::string> route_warnings(const Config& config, const PluginSet& set);

// The config file as `serve` and a reload read it: bundled plugins from the
// default folders, every secret resolved (throws ConfigError otherwise), a
// valid log level.
Config load_host_config(const std::string& file);

// Builds generations: loads and creates every enabled plugin of a config
// (each from a fresh staged copy of its library), and derives the routes,
// the dispatch targets and the intake's sources. The plugins get their
// store-backed services (`backend`) when they are created.
class GenerationBuilder {
  public:
    // `backend` may be null (no store: the services answer "unsupported").
    GenerationBuilder(std::string stage_dir, PluginBackend* backend, Logger& log, Metrics& metrics);

    // Never throws for a refused plugin: it is listed in plugins->refused
    // (serve starts without it; a reload refuses the whole generation).
    std::shared_ptr<const Generation> build(Config config, uint64_t number) const;

  private:
    std::string stage_dir_;
    PluginBackend* backend_;
    Logger& log_;
    Metrics& metrics_;
};

}  // namespace clayhook
