#include "app/Host.h"

#include "admin/AdminServer.h"
#include "dispatch/Dispatcher.h"
#include "http/IntakeServer.h"
#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "plugins/PluginLibrary.h"
#include "plugins/StoreServices.h"
#include "store/DedupPruner.h"
#include "store/Store.h"

#include <algorithm>
#include <filesystem>

namespace clayhook {

Host::Host(std::string config_file, Config config, Logger& log, Metrics& metrics)
    : file_(std::move(config_file)),
      initial_(std::move(config)),
      log_(log),
      metrics_(metrics),
      stage_dir_(make_stage_dir()) {}

Host::~Host() {
    if (dispatcher_ || store_) stop();
}

void Host::start() {
    const Config& c = initial_;
    store_ = open_store(c.store, static_cast<size_t>(c.listener.max_queued) * 4);
    pruner_ = std::make_unique<DedupPruner>(*store_, c.store.dedup_retention,
                                            DedupPruner::interval_for(c.store.dedup_retention),
                                            log_, metrics_);
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
    intake_ = std::make_unique<IntakeServer>(gen->config.listener, gen->sources, *store_, log_,
                                             metrics_, [this] { return ready_.load(); });
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
    intake_->publish(next->sources);
    log_.set_level(parse_level(next->config.log.level));
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

uint16_t Host::admin_port() const {
    return admin_ ? admin_->port() : 0;
}

}  // namespace clayhook
