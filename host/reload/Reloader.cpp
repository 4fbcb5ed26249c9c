#include "reload/Reloader.h"

#include "config/ConfigLoader.h"
#include "dispatch/Dispatcher.h"
#include "http/IntakeServer.h"
#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "routing/Routes.h"

#include <algorithm>

namespace clayhook {

namespace {

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

bool same_listener(const ListenerConfig& a, const ListenerConfig& b) {
    return a == b;  // every field, so a new key cannot be forgotten here
}

bool same_admin(const AdminConfig& a, const AdminConfig& b) {
    auto token = [](const AdminConfig& c) { return c.token ? c.token->value : std::string(); };
    return a.enabled == b.enabled && a.address == b.address && a.port == b.port &&
           token(a) == token(b);
}

bool same_store(const StoreConfig& a, const StoreConfig& b) {
    auto url = [](const StoreConfig& c) {
        return c.postgres_url ? c.postgres_url->value : std::string();
    };
    return a.engine == b.engine && a.path == b.path && a.durable == b.durable &&
           a.dedup_retention == b.dedup_retention && url(a) == url(b);
}

}  // namespace

std::vector<DispatchTarget> dispatch_targets(const Config& config, const PluginSet& set) {
    std::vector<DispatchTarget> targets;
    for (const auto& inst : set.instances) {
        const PluginConfig* pc = nullptr;
        for (const auto& c : config.plugins)
            if (c.name == inst->name()) pc = &c;
        DispatchTarget t;
        t.instance = inst;
        t.retry = pc ? pc->retry : config.dispatch.retry;
        t.ordered = pc && pc->ordered;
        // Threads: the entry's (or the plugin's own) limit, else dispatch.workers.
        t.concurrency = inst->max_concurrency() > 0
                            ? inst->max_concurrency()
                            : static_cast<uint32_t>(config.dispatch.workers);
        // In an ordered lane a key's deliveries are due one at a time, so a
        // batch holds at most one per key; the rest wait behind.
        t.max_batch = std::max<uint32_t>(inst->max_batch_size(), 1);
        t.batch_linger = pc && pc->batch_linger ? *pc->batch_linger : config.dispatch.batch_linger;
        targets.push_back(std::move(t));
    }
    return targets;
}

Reloader::Reloader(std::string config_file, Config current, PluginSet plugins,
                   std::string stage_dir, IntakeServer& intake, Dispatcher& dispatcher, Logger& log,
                   Metrics& metrics)
    : file_(std::move(config_file)),
      stage_dir_(std::move(stage_dir)),
      intake_(intake),
      dispatcher_(dispatcher),
      log_(log),
      metrics_(metrics),
      config_(std::move(current)),
      plugins_(std::move(plugins)) {
    metrics_.set_help("clayhook_reloads_total", "Reloads by result (ok, failed)");
    metrics_.set_help("clayhook_config_generation",
                      "The generation serving: 1 at start, +1 per successful reload");
    metrics_.set_help("clayhook_last_reload_success", "1 when the last reload succeeded");
    metrics_.set_help("clayhook_last_reload_timestamp_seconds", "When the last reload ended");
    metrics_.counter("clayhook_reloads_total", "result=\"ok\"");
    metrics_.counter("clayhook_reloads_total", "result=\"failed\"");
    metrics_.gauge_set("clayhook_config_generation", "", 1);
}

Reloader::~Reloader() = default;

ReloadStatus Reloader::status() const {
    std::lock_guard lk(status_mu_);
    return status_;
}

std::string Reloader::fail(ReloadStatus& st, const std::string& why) {
    st.last_result = "failed";
    st.last_error = why;
    ++st.reloads_failed;
    metrics_.counter_add("clayhook_reloads_total", "result=\"failed\"", 1);
    metrics_.gauge_set("clayhook_last_reload_success", "", 0);
    log_.error("reload", "reload failed; the running generation keeps serving",
               {{"reason", why}, {"generation", std::to_string(st.generation)}});
    return why;
}

ReloadStatus Reloader::reload(const std::string& trigger) {
    std::lock_guard one(reload_mu_);
    auto t0 = std::chrono::steady_clock::now();
    ReloadStatus st = status();
    st.last_trigger = trigger;
    st.last_warnings.clear();
    st.last_error.clear();
    auto finish = [&] {
        st.last_at_ms = now_ms();
        st.last_duration_ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count();
        metrics_.gauge_set("clayhook_last_reload_timestamp_seconds", "",
                           static_cast<double>(st.last_at_ms) / 1000.0);
        std::lock_guard lk(status_mu_);
        status_ = st;
        return st;
    };
    log_.info(
        "reload", "reload started",
        {{"trigger", trigger}, {"config", file_}, {"generation", std::to_string(st.generation)}});

    // 1. The config, whole and valid, its secrets resolved.
    Config next;
    try {
        LoadOptions opts;
        opts.bundled_plugin_dirs = default_bundled_plugin_dirs();
        next = load_config(file_, opts);
        require_secrets(next);
        parse_level(next.log.level);
    } catch (const std::exception& e) {
        fail(st, e.what());
        return finish();
    }
    // What only a restart can change keeps its running value, and says so.
    if (!same_listener(next.listener, config_.listener)) {
        st.last_warnings.push_back(
            "listener settings changed: they take a restart; the running listener keeps its "
            "address, port and limits");
        next.listener = config_.listener;
    }
    if (!same_admin(next.admin, config_.admin)) {
        st.last_warnings.push_back(
            "admin settings changed: they take a restart; the running admin API keeps its own");
        next.admin = config_.admin;
    }
    if (!same_store(next.store, config_.store)) {
        st.last_warnings.push_back(
            "store settings changed: they take a restart; the running store stays as it is");
        next.store = config_.store;
    }

    // 2. Every plugin of the new set, loaded (a fresh staged copy of each
    // library, so a rebuilt .so at the same path is really loaded anew) and
    // created. One refusal refuses the reload; the new set is destroyed here.
    for (const Secret* s : next.all_secrets())
        log_.add_secret(s->value);  // before any plugin can log one
    PluginSet set = PluginSet::load(next, stage_dir_, log_, metrics_);
    if (!set.refused.empty()) {
        std::string why;
        for (const auto& r : set.refused)
            why += (why.empty() ? "" : "; ") + r.reason;
        fail(st, why);
        return finish();
    }

    // 3. The swap. What can fail is done first: the intake's new sources are
    // built, and the dispatcher reads what new plugins have pending before it
    // changes anything (it throws, changing nothing). Then the dispatcher,
    // so that events the new fan-out routes to a new plugin find its lane,
    // then the intake, which cannot fail.
    std::shared_ptr<const IntakeRoutes> routes;
    try {
        routes = intake_.prepare(next, std::make_shared<const Routes>(Routes::from(set, next)));
        for (auto& inst : set.instances)
            inst->set_backend(&dispatcher_);
        dispatcher_.reconfigure(next.dispatch, dispatch_targets(next, set));
    } catch (const std::exception& e) {
        fail(st, e.what());
        return finish();
    }
    intake_.publish(std::move(routes));
    log_.set_level(parse_level(next.log.level));
    for (const auto& w : next.warnings)
        log_.warn("config", w);

    const size_t loaded = set.instances.size();
    config_ = std::move(next);
    // The old set's instances go when their last running call returns (the
    // dispatcher's calls hold their own references).
    plugins_ = std::move(set);

    ++st.generation;
    ++st.reloads_ok;
    st.last_result = "ok";
    metrics_.counter_add("clayhook_reloads_total", "result=\"ok\"", 1);
    metrics_.gauge_set("clayhook_config_generation", "", static_cast<double>(st.generation));
    metrics_.gauge_set("clayhook_last_reload_success", "", 1);
    for (const auto& w : st.last_warnings)
        log_.warn("reload", w);
    auto result = finish();
    log_.info("reload", "reloaded",
              {{"generation", std::to_string(st.generation)},
               {"plugins", std::to_string(loaded)},
               {"took_ms", std::to_string(static_cast<int64_t>(st.last_duration_ms))}});
    return result;
}

}  // namespace clayhook
