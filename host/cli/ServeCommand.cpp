// `clayhook serve`: loads the config and the plugins, opens the store, starts
// the intake listener, reports ready, and runs until SIGTERM or SIGINT. The
// dispatcher hangs off this command when it arrives.
#include "cli/Commands.h"

#include "config/ConfigError.h"
#include "config/ConfigLoader.h"
#include "http/IntakeServer.h"
#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "plugins/PluginSet.h"
#include "store/DedupPruner.h"
#include "store/Store.h"

#include <Poco/Exception.h>

#include <signal.h>

#include <atomic>
#include <filesystem>
#include <iostream>

namespace clayhook {

int serve_command(const std::string& file, std::ostream& err) {
    // Signals are taken synchronously by this thread with sigwait, so they
    // must be blocked before any other thread starts (threads inherit it).
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    Logger log(err);
    Config config;
    try {
        LoadOptions opts;
        opts.bundled_plugin_dirs = default_bundled_plugin_dirs();
        config = load_config(file, opts);
        require_secrets(config);
        log.set_level(parse_level(config.log.level));
    } catch (const std::exception& e) {
        log.error("config", e.what());
        return kExitFailed;
    }
    for (const Secret* s : config.all_secrets())
        log.add_secret(s->value);
    for (const auto& w : config.warnings)
        log.warn("config", w);

    Metrics metrics;
    std::string stage_dir;
    try {
        stage_dir = make_stage_dir();
    } catch (const std::exception& e) {
        log.error("plugins", e.what());
        return kExitFailed;
    }
    auto plugins = std::make_unique<PluginSet>(PluginSet::load(config, stage_dir, log, metrics));

    // /readyz: true once everything is up (plugins loaded, listener
    // started), false again from the moment shutdown begins.
    std::atomic<bool> ready{false};
    std::unique_ptr<Store> store;
    std::unique_ptr<IntakeServer> intake;
    std::unique_ptr<DedupPruner> pruner;
    // In dependency order: nothing reaches the store once intake is gone, and
    // plugin code is unloaded last.
    auto shutdown = [&] {
        if (intake) intake->stop();  // stop accepting; in-flight requests finish and commit
        intake.reset();
        pruner.reset();
        store.reset();
        plugins.reset();
        std::error_code ec;
        std::filesystem::remove_all(stage_dir, ec);
    };
    try {
        store = open_store(config.store, static_cast<size_t>(config.listener.max_queued) * 4);
        pruner = std::make_unique<DedupPruner>(
            *store, config.store.dedup_retention,
            DedupPruner::interval_for(config.store.dedup_retention), log, metrics);
        intake = std::make_unique<IntakeServer>(config, *store, log, metrics,
                                                [&ready] { return ready.load(); });
        intake->start();
    } catch (const Poco::Exception& e) {
        log.error("host", "cannot start: " + e.displayText());  // what() is only the class name
        shutdown();
        return kExitFailed;
    } catch (const std::exception& e) {
        log.error("host", std::string("cannot start: ") + e.what());
        shutdown();
        return kExitFailed;
    }

    ready = true;
    log.info("host", "ready",
             {{"config", file},
              {"listen", config.listener.address + ":" + std::to_string(intake->port())},
              {"store", config.store.path},
              {"sources", std::to_string(config.sources.size())},
              {"plugins", std::to_string(plugins->instances.size())},
              {"refused", std::to_string(plugins->refused.size())}});

    for (;;) {
        int sig = 0;
        if (sigwait(&signals, &sig) != 0) continue;
        if (sig == SIGHUP) {
            log.warn("host",
                     "SIGHUP received: this version does not reload yet; restart to apply "
                     "config changes");
            continue;
        }
        ready = false;
        log.info("host", "shutting down", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
        break;
    }
    shutdown();
    log.info("host", "stopped");
    return kExitOk;
}

}  // namespace clayhook
