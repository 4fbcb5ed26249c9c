#include "app/Host.h"

#include "admin/AdminServer.h"
#include "crash/CrashRecord.h"
#include "crash/FatalSignal.h"
#include "dispatch/Dispatcher.h"
#include "http/IntakeServer.h"
#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "plugins/PluginLibrary.h"
#include "plugins/StoreServices.h"
#include "store/DedupPruner.h"
#include "store/RetentionPurger.h"
#include "store/Store.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>

namespace clayhook {

namespace {

std::map<std::string, std::string> down_of(const Generation& g) {
    std::map<std::string, std::string> out;
    for (const auto& r : g.plugins->refused)
        out[r.name] = r.reason;
    return out;
}

// Where a fatal signal leaves its crash record: dispatch.crash_record, else
// beside a SQLite store (<path>.crash); "" for PostgreSQL without one.
std::string crash_record_path(const Config& c) {
    if (!c.dispatch.crash_record.empty()) return c.dispatch.crash_record;
    if (c.store.engine == "sqlite") return c.store.path + ".crash";
    return "";
}

}  // namespace

Host::Host(std::string config_file, Config config, Logger& log, Metrics& metrics,
           int inherited_listener)
    : file_(std::move(config_file)),
      initial_(std::move(config)),
      log_(log),
      metrics_(metrics),
      stage_dir_(make_stage_dir()),
      inherited_listener_(inherited_listener) {}

Host::~Host() {
    if (dispatcher_ || store_) stop();
}

void Host::start() {
    const Config& c = initial_;
    store_ = open_store(c.store, static_cast<size_t>(c.listener.max_queued) * 4);
    pruner_ = std::make_unique<DedupPruner>(*store_, c.store.dedup_retention,
                                            DedupPruner::interval_for(c.store.dedup_retention),
                                            log_, metrics_);
    if (c.store.retention.count() > 0)
        purger_ = std::make_unique<RetentionPurger>(
            *store_, c.store.retention, c.store.dead_retention,
            RetentionPurger::interval_for(c.store.retention), log_, metrics_);
    // The last run's crash record: the call it died in keeps its lost
    // attempt, the calls beside it are forgiven (crash/CrashRecord.h).
    const std::string record = crash_record_path(c);
    std::optional<CrashRecord> crash;
    if (!record.empty()) {
        try {
            crash = read_crash_record(record);
            if (crash) {
                store_->settle_crash(crash->owner, crash->deliveries, crash->reason());
                std::string ids;
                for (int64_t id : crash->deliveries)
                    ids += (ids.empty() ? "" : ",") + std::to_string(id);
                log_.error("host",
                           "the last run died of " + crash->signal +
                               (crash->plugin.empty() ? std::string(" outside any plugin call")
                                                      : " in a call of plugin '" + crash->plugin +
                                                            "' (running in-process)"),
                           {{"plugin", crash->plugin}, {"deliveries", ids}, {"record", record}});
            }
        } catch (const std::exception& e) {
            log_.warn("host", e.what());
        }
        std::error_code ec;
        std::filesystem::remove(record, ec);
        std::filesystem::remove(record + ".tmp", ec);  // a record cut short
    }
    fatal::install(record, store_->owner());
    services_ = std::make_unique<StoreServices>(*store_, log_);
    builder_ = std::make_unique<GenerationBuilder>(stage_dir_, services_.get(), log_, metrics_);
    auto gen = builder_->build(initial_, 1);
    {
        std::lock_guard lk(generation_mu_);
        generation_ = gen;
    }
    dispatcher_ =
        std::make_unique<Dispatcher>(*store_, gen->config.dispatch, gen->targets, log_, metrics_);
    services_->attach(dispatcher_.get());
    dispatcher_->set_down(down_of(*gen));
    for (const auto& r : gen->plugins->refused)
        log_.error("plugins",
                   "plugin is DOWN: its deliveries are kept and wait for it; fix the cause and "
                   "reload (clayhook reload, or SIGHUP), or set enabled: false",
                   {{"plugin", r.name}, {"reason", r.reason}});
    if (crash) dispatcher_->note_crash(crash->deliveries, crash->reason());
    intake_ = std::make_unique<IntakeServer>(
        gen->config.listener, gen->sources, *store_, log_, metrics_,
        [this] { return ready_.load(); }, inherited_listener_);
    reloader_ = std::make_unique<Reloader>(file_, gen->config, *builder_, *this, log_, metrics_);
    // The webhook port opens before any plugin is handed a delivery, so a
    // plugin that misbehaves on its first calls cannot keep it closed.
    // Deliveries committed meanwhile reach the dispatcher both through
    // its commit subscription and through its start's read of what is
    // pending; it
    // admits each once.
    intake_->start();
    dispatcher_->start();
    if (gen->config.admin.enabled) {
        admin_ = std::make_unique<AdminServer>(gen->config.admin, *store_, *dispatcher_, log_,
                                               metrics_, reloader_.get());
        admin_->start();
    }
    ready_ = true;
}

bool Host::stop() {
    ready_ = false;
    // The admin API first: a reload it is running finishes (its thread is
    // joined) before the intake it updates goes away.
    if (admin_) admin_->stop();
    admin_.reset();
    // dispatch.shutdown_timeout as the generation in force has it.
    auto gen = generation();
    const auto bound =
        gen ? gen->config.dispatch.shutdown_timeout : initial_.dispatch.shutdown_timeout;
    if (intake_) intake_->stop(std::max(bound, std::chrono::milliseconds(1000)));
    intake_.reset();
    bool calls_ended = dispatcher_ ? dispatcher_->stop(bound) : true;
    if (!calls_ended) {
        // Threads are still inside plugin code: neither the plugins nor the
        // dispatcher and services they call back into may be destroyed.
        // Commit what finished and leave; what runs stays pending.
        try {
            if (store_) store_->flush();
        } catch (const std::exception& e) {
            log_.error("store", e.what());
        }
        std::error_code ec;
        std::filesystem::remove_all(stage_dir_, ec);  // the mappings stay
        return false;
    }
    purger_.reset();
    pruner_.reset();
    if (store_) {
        try {
            store_->flush();  // the results of the calls that just ended
        } catch (const std::exception& e) {
            log_.error("store", e.what());
        }
    }
    if (services_) services_->detach();
    reloader_.reset();
    dispatcher_.reset();  // its lanes let go of the instances
    {
        std::lock_guard lk(generation_mu_);
        generation_.reset();  // the plugins: unloaded here, after every call
    }
    builder_.reset();
    services_.reset();
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(stage_dir_, ec);
    return true;
}

void Host::swap(std::shared_ptr<const Generation> next) {
    // What can fail first: the dispatcher reads what new plugins have
    // pending before it changes anything (it throws, changing nothing).
    // Then the intake, which cannot fail, so that events the new fan-out
    // routes to a new plugin find its lane.
    dispatcher_->reconfigure(next->config.dispatch, next->targets);
    dispatcher_->set_down(down_of(*next));
    intake_->publish(next->sources);
    log_.set_level(parse_level(next->config.log.level));
    log_.set_format(parse_log_format(next->config.log.format));
    std::lock_guard lk(generation_mu_);
    // The old generation's instances go when their last running call
    // returns (the dispatcher's calls hold their own references).
    generation_ = std::move(next);
}

std::shared_ptr<const Generation> Host::generation() const {
    std::lock_guard lk(generation_mu_);
    return generation_;
}

uint16_t Host::intake_port() const {
    return intake_ ? intake_->port() : 0;
}

std::string Host::intake_host() const {
    return intake_ ? intake_->local_host() : "";
}

int64_t Host::dispatcher_heartbeat_ms() const {
    return dispatcher_ ? dispatcher_->heartbeat_ms() : 0;
}

uint16_t Host::admin_port() const {
    return admin_ ? admin_->port() : 0;
}

}  // namespace clayhook
