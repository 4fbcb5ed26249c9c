#include "plugins/PluginInstance.h"

#include "config/Config.h"

#include <algorithm>
#include <cstring>

namespace clayhook {

namespace {
clayhook_str view(std::string_view s) {
    return clayhook_str{s.data(), s.size()};
}
}  // namespace

std::unique_ptr<PluginInstance> PluginInstance::create(std::shared_ptr<PluginLibrary> library,
                                                       const PluginConfig& config, Logger& log,
                                                       Metrics& metrics, PluginBackend* backend) {
    std::unique_ptr<PluginInstance> p(new PluginInstance());
    p->library_ = std::move(library);
    p->name_ = config.name;
    const auto& d = p->library_->descriptor();
    auto refuse = [&](const std::string& why) {
        throw PluginError("plugin '" + config.name + "' (" + p->library_->path() + ", " + d.name +
                          " " + d.version + ") refused: " + why);
    };
    for (const auto& text : config.events ? *config.events : p->library_->event_patterns()) {
        if (auto why = EventPattern::why_invalid(text); !why.empty()) refuse("events: " + why);
        p->patterns_.emplace_back(text);
    }
    // The operator may lower the plugin's own limit, never raise it.
    p->concurrency_ = d.max_concurrency;
    if (config.concurrency > 0 &&
        (d.max_concurrency == 0 || static_cast<uint32_t>(config.concurrency) < d.max_concurrency))
        p->concurrency_ = static_cast<uint32_t>(config.concurrency);

    p->services_ = std::make_unique<HostServices>(config.name, log, metrics, backend);
    char err[CLAYHOOK_REASON_MAX] = {0};
    p->instance_ = d.create(p->services_->api(), view(config.config_json), err, sizeof err);
    if (p->instance_ == nullptr) {
        err[sizeof err - 1] = '\0';
        refuse(std::string("its create() failed: ") + (err[0] ? err : "(no reason given)"));
    }
    return p;
}

PluginInstance::~PluginInstance() {
    if (instance_ != nullptr) library_->descriptor().destroy(instance_);
}

bool PluginInstance::subscribes(std::string_view type) const {
    for (const auto& p : patterns_)
        if (p.matches(type)) return true;
    return false;
}

namespace {
clayhook_event to_c(const EventView& e) {
    clayhook_event ev{};
    ev.id = view(e.id);
    ev.source = view(e.source);
    ev.type = view(e.type);
    ev.idempotency_key = view(e.idempotency_key);
    ev.body = view(e.body);
    ev.received_at_ms = e.received_at_ms;
    ev.attempt = e.attempt;
    return ev;
}

HandleOutcome from_c(clayhook_result& r) {
    HandleOutcome out;
    r.reason[sizeof r.reason - 1] = '\0';  // a plugin that forgot the NUL cannot make us overread
    switch (r.status) {
        case CLAYHOOK_DONE:
            out.status = CLAYHOOK_DONE;
            break;
        case CLAYHOOK_RETRY:
            out.status = CLAYHOOK_RETRY;
            break;
        case CLAYHOOK_FAIL:
            out.status = CLAYHOOK_FAIL;
            break;
        default:
            out.status = CLAYHOOK_RETRY;
            out.reason = "plugin answered an unknown status " + std::to_string(r.status);
            return out;
    }
    out.retry_after = std::chrono::milliseconds(r.retry_after_ms);
    out.reason = r.reason;
    return out;
}
}  // namespace

HandleOutcome PluginInstance::handle(const EventView& e) noexcept {
    clayhook_event ev = to_c(e);
    clayhook_result r{};
    library_->descriptor().handle(instance_, &ev, &r);
    return from_c(r);
}

std::vector<HandleOutcome> PluginInstance::handle_batch(
    const std::vector<EventView>& events) noexcept {
    std::vector<HandleOutcome> out;
    out.reserve(events.size());
    const auto& d = library_->descriptor();
    if (d.max_batch_size == 0) {
        for (const auto& e : events)
            out.push_back(handle(e));
        return out;
    }
    for (size_t start = 0; start < events.size(); start += d.max_batch_size) {
        size_t n = std::min<size_t>(d.max_batch_size, events.size() - start);
        std::vector<clayhook_event> in;
        in.reserve(n);
        for (size_t i = 0; i < n; ++i)
            in.push_back(to_c(events[start + i]));
        std::vector<clayhook_result> results(n);  // value-initialised: DONE, empty reasons
        d.handle_batch(instance_, in.data(), n, results.data());
        for (auto& r : results)
            out.push_back(from_c(r));
    }
    return out;
}

}  // namespace clayhook
