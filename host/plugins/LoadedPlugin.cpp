#include "plugins/LoadedPlugin.h"

#include <algorithm>

namespace clayhook {

namespace {

clayhook_str view(std::string_view s) {
    return clayhook_str{s.data(), s.size()};
}

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
        case CLAYHOOK_RESULT_UNSET:
            out.status = CLAYHOOK_RETRY;
            out.reason =
                "the plugin left this event's result unset (handle_batch filled "
                "no result for it)";
            return out;
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

std::unique_ptr<LoadedPlugin> LoadedPlugin::create(std::shared_ptr<PluginLibrary> library,
                                                   const clayhook_host_api* api,
                                                   std::string_view config_json,
                                                   std::string& error) {
    std::unique_ptr<LoadedPlugin> p(new LoadedPlugin());
    p->library_ = std::move(library);
    char err[CLAYHOOK_REASON_MAX] = {0};
    p->instance_ = p->library_->descriptor().create(api, view(config_json), err, sizeof err);
    if (p->instance_ == nullptr) {
        err[sizeof err - 1] = '\0';
        error = err[0] ? err : "(no reason given)";
        return nullptr;
    }
    return p;
}

LoadedPlugin::~LoadedPlugin() {
    if (instance_ != nullptr) library_->descriptor().destroy(instance_);
}

std::vector<HandleOutcome> LoadedPlugin::call(std::span<const EventView> events) noexcept {
    std::vector<HandleOutcome> out;
    out.reserve(events.size());
    const auto& d = library_->descriptor();
    if (d.max_batch_size == 0) {
        for (const auto& e : events) {
            clayhook_event ev = to_c(e);
            clayhook_result r{};
            r.status = CLAYHOOK_RESULT_UNSET;
            d.handle(instance_, &ev, &r);
            out.push_back(from_c(r));
        }
        return out;
    }
    std::vector<clayhook_event> in;
    std::vector<clayhook_result> results;
    for (size_t start = 0; start < events.size(); start += d.max_batch_size) {
        const size_t n = std::min<size_t>(d.max_batch_size, events.size() - start);
        in.clear();
        for (size_t i = 0; i < n; ++i)
            in.push_back(to_c(events[start + i]));
        clayhook_result unset{};
        unset.status = CLAYHOOK_RESULT_UNSET;  // a slot left so is a retry, not a done
        results.assign(n, unset);
        d.handle_batch(instance_, in.data(), n, results.data());
        for (auto& r : results)
            out.push_back(from_c(r));
    }
    return out;
}

}  // namespace clayhook
