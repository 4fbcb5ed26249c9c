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
#include "systemd/HealthProbe.h"
#include "systemd/Systemd.h"
#include "systemd/Watchdog.h"

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
    // What systemd hands over (notify socket, watchdog, a listening socket),
    // taken before any thread starts and removed from the environment.
    const systemd::Environment sd = systemd::take_environment();
    const systemd::Notifier notifier(sd.notify_socket);

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
    if (!sd.error.empty()) {
        log.error("systemd", sd.error);
        notifier.notify("STATUS=" + sd.error);
        return kExitFailed;
    }

    Metrics metrics;
    std::unique_ptr<Host> host;
    std::string why;
    try {
        host = std::make_unique<Host>(file, config, log, metrics, sd.listen_fd);
        host->start();
    } catch (const Poco::Exception& e) {
        why = e.displayText();  // what() is only the class name
    } catch (const std::exception& e) {
        why = e.what();
    }
    if (!why.empty()) {
        log.error("host", "cannot start: " + why);
        notifier.notify("STATUS=cannot start: " + why);
        // Plugin code still running: skip the destructors (see Host::stop).
        if (host && !host->stop()) std::_Exit(kExitFailed);
        return kExitFailed;
    }

    if (sd.listen_fd >= 0)
        log.info("host",
                 "listening on the socket systemd passed (socket activation); listener.address "
                 "and listener.port are not used");
    auto gen = host->generation();
    log.info("host", "ready",
             {{"config", file},
              {"listen", (sd.listen_fd >= 0 ? host->intake_host() : config.listener.address) + ":" +
                             std::to_string(host->intake_port())},
              {"admin", config.admin.enabled
                            ? config.admin.address + ":" + std::to_string(host->admin_port())
                            : std::string("off")},
              {"store", host->store_name()},
              {"host_id", host->host_id()},
              {"sources", std::to_string(config.sources.size())},
              {"plugins", std::to_string(gen->plugins->instances.size())},
              {"refused", std::to_string(gen->plugins->refused.size())}});
    gen.reset();
    notifier.notify("READY=1\nSTATUS=serving on " + host->intake_host() + ":" +
                    std::to_string(host->intake_port()));

    // The watchdog (WatchdogSec=) is fed while the intake answers its own
    // GET /healthz and the dispatcher's loop turns.
    std::unique_ptr<Watchdog> watchdog;
    if (sd.watchdog_usec.count() > 0) {
        const auto stall =
            std::max(std::chrono::milliseconds(1000),
                     std::chrono::duration_cast<std::chrono::milliseconds>(sd.watchdog_usec / 2));
        const bool tls = config.listener.tls.enabled();
        Host* h = host.get();
        std::vector<Watchdog::Probe> probes;
        probes.push_back({"intake", [h, tls, stall](std::string& reason) {
                              return probe_healthz(h->intake_host(), h->intake_port(), tls,
                                                   stall / 2, reason);
                          }});
        probes.push_back({"dispatcher", [h, stall](std::string& reason) {
                              const auto now =
                                  std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::steady_clock::now().time_since_epoch())
                                      .count();
                              const int64_t age = now - h->dispatcher_heartbeat_ms();
                              if (age <= stall.count()) return true;
                              reason = "its loop has not turned for " + std::to_string(age) + " ms";
                              return false;
                          }});
        watchdog = std::make_unique<Watchdog>(
            sd.watchdog_usec, std::move(probes), [&notifier] { notifier.notify("WATCHDOG=1"); },
            log);
        log.info("host", "systemd watchdog on",
                 {{"interval_ms", std::to_string(sd.watchdog_usec.count() / 1000)},
                  {"probe_every_ms", std::to_string(watchdog->tick().count())}});
    }

    for (;;) {
        int sig = 0;
        if (sigwait(&signals, &sig) != 0) continue;
        if (sig == SIGHUP) {
            // Another SIGHUP during the reload stays pending (blocked), so
            // sigwait returns it next: one more reload follows.
            notifier.reloading();
            const bool ok = host->reloader().reload("SIGHUP").last_result == "ok";
            // READY=1 either way: a refused reload leaves the running
            // generation serving (the log and STATUS say why).
            notifier.notify(ok ? "READY=1\nSTATUS=serving (reloaded)"
                               : "READY=1\nSTATUS=serving (the last reload was refused; see "
                                 "the log)");
            continue;
        }
        log.info("host", "shutting down", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
        break;
    }
    notifier.notify("STOPPING=1");
    watchdog.reset();  // its probes use the host
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
