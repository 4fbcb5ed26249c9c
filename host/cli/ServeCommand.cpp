// `clayhook serve`: loads the config and the plugins, opens the store, starts
// the dispatcher, the admin API and the intake listener, reports ready, and
// runs until SIGTERM or SIGINT, then shuts down in order (see below). SIGHUP
// reloads the config and the plugins (reload/Reloader.h).
#include "cli/Commands.h"

#include "admin/AdminServer.h"
#include "config/ConfigError.h"
#include "config/ConfigLoader.h"
#include "dispatch/Dispatcher.h"
#include "http/IntakeServer.h"
#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "plugins/PluginSet.h"
#include "reload/Reloader.h"
#include "routing/Routes.h"
#include "store/DedupPruner.h"
#include "store/Store.h"

#include <Poco/Exception.h>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
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
    std::unique_ptr<Dispatcher> dispatcher;
    std::unique_ptr<AdminServer> admin;
    std::unique_ptr<IntakeServer> intake;
    std::unique_ptr<DedupPruner> pruner;
    std::unique_ptr<Reloader> reloader;
    // The plugins in force: the reloader's once it exists.
    auto current_plugins = [&]() -> PluginSet& {
        return reloader ? reloader->plugins() : *plugins;
    };
    // In dependency order: the listener first (in-flight requests finish and
    // commit), then the plugin calls (within dispatch.shutdown_timeout), then
    // the store (it commits the results recorded so far), and plugin code is
    // unloaded last. Returns false when plugin calls were still running.
    auto shutdown = [&]() -> bool {
        // The admin API first: a reload it is running finishes (its thread
        // is joined) before the intake it updates goes away.
        if (admin) admin->stop();
        admin.reset();
        // dispatch.shutdown_timeout as the last successful reload left it.
        const auto bound = reloader ? reloader->config().dispatch.shutdown_timeout
                                    : config.dispatch.shutdown_timeout;
        if (intake) intake->stop(std::max(bound, std::chrono::milliseconds(1000)));
        intake.reset();
        bool calls_ended = dispatcher ? dispatcher->stop(bound) : true;
        if (!calls_ended) {
            // Threads are still inside plugin code: neither the plugins nor
            // the dispatcher they call back into may be destroyed. Commit
            // what finished and leave; what runs stays pending in the store.
            try {
                if (store) store->flush();
            } catch (const std::exception& e) {
                log.error("store", e.what());
            }
            // The staged copies were unlinked once loaded; their mappings stay.
            std::error_code ec;
            std::filesystem::remove_all(stage_dir, ec);
            return false;
        }
        pruner.reset();
        if (store) {
            try {
                store->flush();  // the results of the calls that just ended
            } catch (const std::exception& e) {
                log.error("store", e.what());
            }
            store->on_deliveries = nullptr;  // after flush: the writer is idle
        }
        for (auto& inst : current_plugins().instances)
            inst->set_backend(nullptr);
        dispatcher.reset();  // its lanes let go of the instances
        store.reset();
        reloader.reset();  // the plugins in force, unloaded last
        plugins.reset();
        std::error_code ec;
        std::filesystem::remove_all(stage_dir, ec);
        return true;
    };
    try {
        store = open_store(config.store, static_cast<size_t>(config.listener.max_queued) * 4);
        pruner = std::make_unique<DedupPruner>(
            *store, config.store.dedup_retention,
            DedupPruner::interval_for(config.store.dedup_retention), log, metrics);

        dispatcher = std::make_unique<Dispatcher>(*store, config.dispatch,
                                                  dispatch_targets(config, *plugins), log, metrics);
        store->on_deliveries = [d = dispatcher.get()](std::vector<DeliveryRef>&& refs) {
            d->enqueue(std::move(refs));
        };
        for (auto& inst : plugins->instances)
            inst->set_backend(dispatcher.get());
        dispatcher->start();  // before the intake: recovery sees everything pending

        auto fanout = std::make_shared<const Routes>(Routes::from(*plugins, config));
        intake = std::make_unique<IntakeServer>(
            config, *store, log, metrics, [&ready] { return ready.load(); }, fanout);
        // From here the reloader owns the plugin set in force.
        reloader = std::make_unique<Reloader>(file, config, std::move(*plugins), stage_dir, *intake,
                                              *dispatcher, log, metrics);
        if (config.admin.enabled) {
            admin = std::make_unique<AdminServer>(config.admin, *store, *dispatcher, log, metrics,
                                                  reloader.get());
            admin->start();
        }
        intake->start();
    } catch (const Poco::Exception& e) {
        log.error("host", "cannot start: " + e.displayText());  // what() is only the class name
        if (!shutdown()) std::_Exit(kExitFailed);               // plugin code still runs: see below
        return kExitFailed;
    } catch (const std::exception& e) {
        log.error("host", std::string("cannot start: ") + e.what());
        if (!shutdown()) std::_Exit(kExitFailed);  // plugin code still runs: see below
        return kExitFailed;
    }

    ready = true;
    log.info("host", "ready",
             {{"config", file},
              {"listen", config.listener.address + ":" + std::to_string(intake->port())},
              {"admin", admin ? config.admin.address + ":" + std::to_string(admin->port())
                              : std::string("off")},
              {"store", config.store.path},
              {"sources", std::to_string(config.sources.size())},
              {"plugins", std::to_string(current_plugins().instances.size())},
              {"refused", std::to_string(current_plugins().refused.size())}});

    for (;;) {
        int sig = 0;
        if (sigwait(&signals, &sig) != 0) continue;
        if (sig == SIGHUP) {
            // Another SIGHUP during the reload stays pending (blocked), so
            // sigwait returns it next: one more reload follows.
            reloader->reload("SIGHUP");
            continue;
        }
        ready = false;
        log.info("host", "shutting down", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
        break;
    }
    if (!shutdown()) {
        log.info("host", "stopped (plugin calls abandoned)");
        std::cerr.flush();
        // Plugin code still runs on other threads: skip the destructors
        // (static ones included) that would pull it out from under them.
        std::_Exit(kExitOk);
    }
    log.info("host", "stopped");
    return kExitOk;
}

}  // namespace clayhook
