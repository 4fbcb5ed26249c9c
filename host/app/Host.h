#pragma once

// The running host: owns every component of `clayhook serve` and starts and
// stops them in one order, written here and nowhere else.
//
// start():  store → plugin services → generation 1 (plugins created) →
//           dispatcher (built, not started) → intake (listening) →
//           dispatcher started (only now do plugins get deliveries) →
//           admin API → ready.
// stop():   not ready → admin API → intake (requests in flight are answered)
//           → dispatcher (running calls end within shutdown_timeout) →
//           store flushed → plugins unloaded → store closed.
// swap():   a reload's generation, taken whole or not at all.

#include "app/Generation.h"
#include "config/Config.h"
#include "reload/Reloader.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

namespace clayhook {

class AdminServer;
class DedupPruner;
class RetentionPurger;
class Dispatcher;
class IntakeServer;
class Logger;
class Metrics;
class Store;
class StoreServices;

class Host final : public GenerationSwap {
  public:
    // `config` as load_host_config() gave it; `config_file` is what a reload
    // reads again.
    // `inherited_listener`: a listening socket from systemd's socket
    // activation, which the intake uses instead of binding its address.
    Host(std::string config_file, Config config, Logger& log, Metrics& metrics,
         int inherited_listener = -1);
    ~Host() override;
    Host(const Host&) = delete;
    Host& operator=(const Host&) = delete;

    // Throws when something cannot start (the store, a port in use); call
    // stop() then.
    void start();
    // False when plugin calls were still running after shutdown_timeout:
    // then nothing was unloaded, and the process must end without running
    // destructors (std::_Exit).
    bool stop();

    // GenerationSwap (the reloader's): throws, having changed nothing, when
    // the dispatcher cannot take the new plugins (a store error).
    void swap(std::shared_ptr<const Generation> next) override;

    Reloader& reloader() { return *reloader_; }
    std::shared_ptr<const Generation> generation() const;
    uint16_t intake_port() const;
    uint16_t admin_port() const;  // 0 when the admin API is off
    // Where a local client reaches the intake (its bound address, loopback
    // for a wildcard one); empty before start().
    std::string intake_host() const;
    // Dispatcher::heartbeat_ms (0 before start).
    int64_t dispatcher_heartbeat_ms() const;
    // The store's name for logs (no password) and this host's claim name.
    std::string store_name() const { return store_ ? store_->location() : ""; }
    std::string host_id() const { return store_ ? store_->owner() : ""; }

  private:
    std::string file_;
    Config initial_;
    Logger& log_;
    Metrics& metrics_;
    std::string stage_dir_;
    int inherited_listener_ = -1;
    std::atomic<bool> ready_{false};

    std::unique_ptr<Store> store_;
    std::unique_ptr<DedupPruner> pruner_;
    std::unique_ptr<RetentionPurger> purger_;  // none when store.retention is forever
    std::unique_ptr<StoreServices> services_;  // outlives every plugin instance
    std::unique_ptr<GenerationBuilder> builder_;
    std::unique_ptr<Dispatcher> dispatcher_;
    std::unique_ptr<IntakeServer> intake_;
    std::unique_ptr<Reloader> reloader_;
    std::unique_ptr<AdminServer> admin_;
    mutable std::mutex generation_mu_;
    std::shared_ptr<const Generation> generation_;  // the one in force
};

}  // namespace clayhook
