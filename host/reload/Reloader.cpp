#include "reload/Reloader.h"

#include "app/Generation.h"
#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "util/Clock.h"

namespace clayhook {

namespace {

int64_t now_ms() {
    return SystemClock::unix_ms();
}

}  // namespace

Reloader::Reloader(std::string config_file, Config current, const GenerationBuilder& builder,
                   GenerationSwap& target, Logger& log, Metrics& metrics)
    : file_(std::move(config_file)),
      builder_(builder),
      target_(target),
      log_(log),
      metrics_(metrics),
      config_(std::move(current)) {
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

Config Reloader::config() {
    std::lock_guard lk(reload_mu_);
    return config_;
}

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
        next = load_host_config(file_);
    } catch (const std::exception& e) {
        fail(st, e.what());
        return finish();
    }
    // What only a restart can change keeps its running value, and says so.
    if (next.listener != config_.listener) {
        st.last_warnings.push_back(
            "listener settings changed: they take a restart; the running listener keeps its "
            "address, port and limits");
        next.listener = config_.listener;
    }
    // The load checked the sources against the file's listener; the one
    // that runs is what counts: a body past its whole budget could never be
    // taken, and its sender would be told to retry for ever.
    for (const SourceConfig& s : next.sources)
        if (std::string problem = body_memory_problem(s, next.listener, "the running ");
            !problem.empty()) {
            fail(st, problem + ": a change to it takes a restart");
            return finish();
        }
    if (next.admin != config_.admin) {
        st.last_warnings.push_back(
            "admin settings changed: they take a restart; the running admin API keeps its own");
        next.admin = config_.admin;
    }
    if (next.store != config_.store) {
        st.last_warnings.push_back(
            "store settings changed: they take a restart; the running store stays as it is");
        next.store = config_.store;
    }

    // 2. The next generation: every plugin loaded (a fresh staged copy of
    // each library, so a rebuilt .so at the same path is really loaded
    // anew) and created, and what the components derive. One refusal
    // refuses the reload; the new generation is destroyed here.
    std::shared_ptr<const Generation> gen;
    try {
        gen = builder_.build(std::move(next), st.generation + 1);
    } catch (const std::exception& e) {  // a source's verifier refusing its secrets
        fail(st, e.what());
        return finish();
    }
    if (!gen->plugins->refused.empty()) {
        std::string why;
        for (const auto& r : gen->plugins->refused)
            why += (why.empty() ? "" : "; ") + r.reason;
        fail(st, why);
        return finish();
    }

    // 3. The swap, whole or not at all.
    try {
        target_.swap(gen);
    } catch (const std::exception& e) {
        fail(st, e.what());
        return finish();
    }
    for (const auto& w : gen->config.warnings)
        log_.warn("config", w);
    const size_t loaded = gen->plugins->instances.size();
    config_ = gen->config;

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
