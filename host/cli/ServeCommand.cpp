// `clayhook serve`: loads the config, starts the Host (host/app/Host.h, where
// the start and stop order lives), reports ready, and runs until SIGTERM or
// SIGINT, then stops it. SIGHUP reloads the config and the plugins
// (reload/Reloader.h).
#include "cli/Commands.h"

#include "app/Generation.h"
#include "app/Host.h"
#include "log/Journal.h"
#include "log/Logger.h"
#include "metrics/Metrics.h"

#include <Poco/Exception.h>

#include <signal.h>

#include <cstdlib>
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
    // A file-size limit (ulimit -f, systemd's LimitFSIZE=) reached by the
    // store is an error its commit reports (503, nothing acknowledged), not
    // a signal that kills the host.
    ::signal(SIGXFSZ, SIG_IGN);

    // Lines written to the journal carry their priority (`<N>` prefix).
    LogOptions log_options;
    log_options.journal_priority = stream_is_journal(2);
    Logger log(err, Level::info, log_options);
    Config config;
    try {
        config = load_host_config(file);
        log.set_level(parse_level(config.log.level));
        log.set_format(parse_log_format(config.log.format));
    } catch (const std::exception& e) {
        log.error("config", e.what());
        return kExitFailed;
    }
    for (const Secret* s : config.all_secrets())
        log.add_secret(s->value);
    for (const auto& w : config.warnings)
        log.warn("config", w);

    Metrics metrics;
    std::unique_ptr<Host> host;
    std::string why;
    try {
        host = std::make_unique<Host>(file, config, log, metrics);
        host->start();
    } catch (const Poco::Exception& e) {
        why = e.displayText();  // what() is only the class name
    } catch (const std::exception& e) {
        why = e.what();
    }
    if (!why.empty()) {
        log.error("host", "cannot start: " + why);
        // Plugin code still running: skip the destructors (see Host::stop).
        if (host && !host->stop()) std::_Exit(kExitFailed);
        return kExitFailed;
    }

    auto gen = host->generation();
    log.info("host", "ready",
             {{"config", file},
              {"listen", config.listener.address + ":" + std::to_string(host->intake_port())},
              {"admin", config.admin.enabled
                            ? config.admin.address + ":" + std::to_string(host->admin_port())
                            : std::string("off")},
              {"store", host->store_name()},
              {"host_id", host->host_id()},
              {"sources", std::to_string(config.sources.size())},
              {"plugins", std::to_string(gen->plugins->instances.size())},
              {"refused", std::to_string(gen->plugins->refused.size())}});
    gen.reset();

    for (;;) {
        int sig = 0;
        if (sigwait(&signals, &sig) != 0) continue;
        if (sig == SIGHUP) {
            // Another SIGHUP during the reload stays pending (blocked), so
            // sigwait returns it next: one more reload follows.
            host->reloader().reload("SIGHUP");
            continue;
        }
        log.info("host", "shutting down", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
        break;
    }
    if (!host->stop()) {
        log.info("host", "stopped (plugin calls abandoned)");
        std::cerr.flush();
        // Plugin code still runs on other threads: skip the destructors
        // (static ones included) that would pull it out from under them.
        std::_Exit(kExitOk);
    }
    host.reset();
    log.info("host", "stopped");
    return kExitOk;
}

}  // namespace clayhook
