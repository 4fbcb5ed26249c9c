#include "dispatch/Dispatcher.h"

#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "plugins/PluginInstance.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>

namespace clayhook {

namespace {

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

constexpr size_t kMaxKvKey = 1024;
constexpr size_t kMaxKvValue = 1024 * 1024;
// A store error while loading the events to hand over: try again after this,
// without counting an attempt (the plugin never saw them).
constexpr int64_t kStoreRetryMs = 1000;

const std::vector<double> kHandlerBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                            0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
const std::vector<double> kLagBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                        1,     2.5,    5,     10,   30,    60,   300, 3600, 86400};

// Worker threads a lane may ever have (plugins[].concurrency is at most 1024).
constexpr size_t kMaxSlots = 1024;

// Later-due first out of a std::*_heap (a min-heap on due_ms, then id).
bool due_after(const DeliveryRef& a, const DeliveryRef& b) {
    return a.due_ms != b.due_ms ? a.due_ms > b.due_ms : a.id > b.id;
}

std::string label_value(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out;
}

}  // namespace

std::chrono::milliseconds backoff_delay(const RetryPolicy& p, uint32_t attempts,
                                        std::mt19937_64& rng) {
    const int64_t base = std::max<int64_t>(p.backoff_base.count(), 1);
    const int64_t cap = std::max<int64_t>(p.backoff_cap.count(), base);
    int64_t ceiling = base;
    for (uint32_t i = 1; i < attempts && ceiling < cap; ++i)
        ceiling = ceiling > cap / 2 ? cap : ceiling * 2;
    ceiling = std::min(ceiling, cap);
    std::uniform_int_distribution<int64_t> pick(0, ceiling);
    return std::chrono::milliseconds(pick(rng));
}

struct Dispatcher::Lane {
    DispatchTarget t;
    std::string name;
    std::string labels;  // plugin="name"

    std::mutex mu;
    std::condition_variable cv;
    std::deque<DeliveryRef> ready;   // due, in the order they became due
    std::vector<DeliveryRef> later;  // a heap: due_after
    // Ordered lanes: the ordering keys with a delivery in progress (due,
    // waiting for a retry, or running), each with the deliveries waiting
    // behind it, in event order.
    std::unordered_map<std::string, std::deque<DeliveryRef>> keys;
    size_t held = 0;
    // Every delivery id this lane holds (due, later, held back or running):
    // a delivery reaching it twice (recovery racing a plugin's
    // deliver_again_at, say) is admitted once.
    std::unordered_set<int64_t> known;
    std::unordered_map<int64_t, std::string> running;  // being handled now: id → ordering key
    bool paused = false;
    bool stopping = false;
    size_t in_flight = 0;
    std::string kind, version;  // of the last instance, shown while none is loaded
    // Worker threads by slot. A slot at or past t.concurrency ends its thread
    // (after its call); live[] says which threads still run their loop.
    std::vector<std::thread> threads = std::vector<std::thread>(kMaxSlots);
    std::vector<bool> live = std::vector<bool>(kMaxSlots, false);
    std::mt19937_64 rng{std::random_device{}()};

    struct Slot {
        std::atomic<int64_t> started_ms{0};  // 0 when no call is running
        std::atomic<bool> reported{false};   // its overrun was logged
        std::atomic<int64_t> first_delivery{0};
    };
    std::unique_ptr<Slot[]> slots;

    Histogram* handler = nullptr;
    Histogram* end_to_end = nullptr;
    MetricValue* done = nullptr;
    MetricValue* retried = nullptr;
    MetricValue* failed = nullptr;
    MetricValue* dead = nullptr;
    MetricValue* overruns = nullptr;
    MetricValue* pending_gauge = nullptr;
    MetricValue* in_flight_gauge = nullptr;
    MetricValue* lag_gauge = nullptr;
    MetricValue* paused_gauge = nullptr;

    // Under mu.
    void place(DeliveryRef&& ref, int64_t now) {
        if (ref.due_ms <= now) {
            ready.push_back(std::move(ref));
        } else {
            later.push_back(std::move(ref));
            std::push_heap(later.begin(), later.end(), due_after);
        }
    }
    void promote(int64_t now) {
        while (!later.empty() && later.front().due_ms <= now) {
            std::pop_heap(later.begin(), later.end(), due_after);
            ready.push_back(std::move(later.back()));
            later.pop_back();
        }
    }
    // A delivery finished for good (done or dead): the next one with its
    // ordering key, if any, may go.
    void release(const DeliveryRef& ref, int64_t now) {
        known.erase(ref.id);
        if (!t.ordered || ref.order_key.empty()) return;
        auto it = keys.find(ref.order_key);
        if (it == keys.end()) return;
        if (it->second.empty()) {
            keys.erase(it);
            return;
        }
        DeliveryRef next = std::move(it->second.front());
        it->second.pop_front();
        --held;
        place(std::move(next), now);
    }
};

Dispatcher::Dispatcher(Store& store, const DispatchConfig& config,
                       std::vector<DispatchTarget> targets, Logger& log, Metrics& metrics)
    : store_(store),
      config_(config),
      log_(log),
      metrics_(metrics),
      call_timeout_ms_(config.call_timeout.count()) {
    metrics_.set_help("clayhook_dispatch_handler_seconds",
                      "Duration of plugin calls (one per batch)");
    metrics_.set_help("clayhook_dispatch_end_to_end_seconds",
                      "From acknowledged to handled (done), per delivery");
    metrics_.set_help("clayhook_dispatch_deliveries_total",
                      "Attempt results by outcome: done, retry, fail");
    metrics_.set_help("clayhook_dispatch_retries_total", "Attempts answered with retry");
    metrics_.set_help("clayhook_dispatch_dead_letters_total",
                      "Deliveries that gave up (fail, attempts or age exhausted)");
    metrics_.set_help("clayhook_dispatch_call_overruns_total",
                      "Calls that ran past dispatch.call_timeout");
    metrics_.set_help("clayhook_dispatch_queue_lag_seconds",
                      "Age of the oldest due delivery not yet handed over");
    metrics_.set_help("clayhook_dispatch_pending", "Pending deliveries held by the dispatcher");
    metrics_.set_help("clayhook_dispatch_in_flight", "Plugin calls running");
    metrics_.set_help("clayhook_dispatch_paused", "1 while the plugin is paused");
    for (auto& t : targets)
        lanes_.push_back(make_lane(std::move(t)));
}

std::unique_ptr<Dispatcher::Lane> Dispatcher::make_lane(DispatchTarget t) {
    auto l = std::make_unique<Lane>();
    l->name = t.instance->name();
    l->kind = t.instance->library().name();
    l->version = t.instance->library().version();
    l->t = std::move(t);
    l->t.concurrency = std::clamp<uint32_t>(l->t.concurrency, 1, kMaxSlots);
    l->t.max_batch = std::max<uint32_t>(l->t.max_batch, 1);
    l->labels = "plugin=\"" + label_value(l->name) + "\"";
    l->slots = std::make_unique<Lane::Slot[]>(kMaxSlots);
    l->handler =
        &metrics_.histogram("clayhook_dispatch_handler_seconds", l->labels, kHandlerBounds);
    l->end_to_end =
        &metrics_.histogram("clayhook_dispatch_end_to_end_seconds", l->labels, kLagBounds);
    l->done =
        &metrics_.counter("clayhook_dispatch_deliveries_total", l->labels + ",outcome=\"done\"");
    l->retried =
        &metrics_.counter("clayhook_dispatch_deliveries_total", l->labels + ",outcome=\"retry\"");
    l->failed =
        &metrics_.counter("clayhook_dispatch_deliveries_total", l->labels + ",outcome=\"fail\"");
    metrics_.counter("clayhook_dispatch_retries_total", l->labels);
    l->dead = &metrics_.counter("clayhook_dispatch_dead_letters_total", l->labels);
    l->overruns = &metrics_.counter("clayhook_dispatch_call_overruns_total", l->labels);
    l->pending_gauge = &metrics_.gauge("clayhook_dispatch_pending", l->labels);
    l->in_flight_gauge = &metrics_.gauge("clayhook_dispatch_in_flight", l->labels);
    l->lag_gauge = &metrics_.gauge("clayhook_dispatch_queue_lag_seconds", l->labels);
    l->paused_gauge = &metrics_.gauge("clayhook_dispatch_paused", l->labels);
    return l;
}

// Starts the threads of the slots below t.concurrency that have none running
// (a thread whose slot was cut by an earlier reconfigure has left its loop,
// or is finishing its last call and leaves then). Under l.mu.
void Dispatcher::spawn_workers(Lane& l) {
    for (size_t i = 0; i < l.t.concurrency; ++i) {
        if (l.live[i]) continue;
        if (l.threads[i].joinable()) l.threads[i].join();  // it left its loop under l.mu
        l.live[i] = true;
        l.threads[i] = std::thread([this, lp = &l, i] { worker(*lp, i); });
    }
}

Dispatcher::~Dispatcher() {
    bool running;
    {
        std::lock_guard lk(mu_);
        running = started_ && !stopping_;
    }
    // Not stopped by the owner: wait for the calls (a destructor cannot
    // leave threads behind that point into it).
    if (running) stop(std::chrono::hours(24 * 365));
}

Dispatcher::Lane* Dispatcher::lane(std::string_view plugin) const {
    std::shared_lock g(lanes_mu_);
    for (const auto& l : lanes_)
        if (l->name == plugin) return l.get();
    return nullptr;
}

void Dispatcher::reconfigure(const DispatchConfig& config, std::vector<DispatchTarget> targets) {
    // Everything that can fail first, before anything changes: the pending
    // deliveries and paused flags of the plugins this generation adds.
    std::map<std::string, std::vector<DeliveryRef>> preload;
    for (const auto& t : targets)
        if (lane(t.instance->name()) == nullptr) preload[t.instance->name()];
    std::set<std::string> paused;
    if (!preload.empty()) {
        paused = store_.paused_plugins();
        for (auto& [name, refs] : preload)
            store_.load_pending([&refs](DeliveryRef&& ref) { refs.push_back(std::move(ref)); },
                                name);
    }

    call_timeout_ms_.store(config.call_timeout.count());
    bool started;
    {
        std::lock_guard g(mu_);
        started = started_ && !stopping_;
        for (const auto& [name, refs] : preload)
            unloaded_.erase(name);
    }
    std::unique_lock g(lanes_mu_);
    for (auto& l : lanes_) {
        bool kept = false;
        for (const auto& t : targets)
            kept = kept || t.instance->name() == l->name;
        if (kept) continue;
        std::lock_guard lk(l->mu);
        if (l->t.instance)
            log_.info("dispatch",
                      "plugin removed by the reload; its pending deliveries wait for it",
                      {{"plugin", l->name}});
        l->t.instance.reset();  // running calls keep their own copy
        l->cv.notify_all();
    }
    const int64_t now = now_ms();
    for (auto& t : targets) {
        const std::string name = t.instance->name();
        Lane* l = nullptr;
        for (auto& x : lanes_)
            if (x->name == name) l = x.get();
        if (l == nullptr) {
            lanes_.push_back(make_lane(std::move(t)));
            l = lanes_.back().get();
            std::lock_guard lk(l->mu);
            size_t n = 0;
            for (auto& ref : preload[name]) {
                admit(*l, std::move(ref), now);
                ++n;
            }
            l->paused = paused.count(name) > 0;
            l->paused_gauge->set(l->paused ? 1 : 0);
            if (started) spawn_workers(*l);
            log_.info("dispatch", "plugin added by the reload",
                      {{"plugin", name}, {"pending", std::to_string(n)}});
            continue;
        }
        std::lock_guard lk(l->mu);
        const bool was_ordered = l->t.ordered;
        l->kind = t.instance->library().name();
        l->version = t.instance->library().version();
        l->t = std::move(t);
        l->t.concurrency = std::clamp<uint32_t>(l->t.concurrency, 1, kMaxSlots);
        l->t.max_batch = std::max<uint32_t>(l->t.max_batch, 1);
        if (was_ordered != l->t.ordered) reorder(*l, now);
        if (started) spawn_workers(*l);
        l->cv.notify_all();  // slots past the new concurrency leave
    }
}

// The lane's ordering was switched on or off: rebuild what waits behind
// which key from what is running, due and later. Under l.mu.
void Dispatcher::reorder(Lane& l, int64_t now) {
    std::vector<DeliveryRef> all;
    for (auto& [key, waiting] : l.keys)
        for (auto& r : waiting)
            all.push_back(std::move(r));
    l.keys.clear();
    l.held = 0;
    for (auto& r : l.ready)
        all.push_back(std::move(r));
    l.ready.clear();
    for (auto& r : l.later)
        all.push_back(std::move(r));
    l.later.clear();
    // Event order (ids grow with arrival), so the first of each key goes first.
    std::sort(all.begin(), all.end(),
              [](const DeliveryRef& a, const DeliveryRef& b) { return a.id < b.id; });
    if (l.t.ordered)
        for (const auto& [id, key] : l.running)
            if (!key.empty()) l.keys.try_emplace(key);  // a running one holds its key
    for (auto& r : all) {
        if (l.t.ordered && !r.order_key.empty()) {
            auto [it, fresh] = l.keys.try_emplace(r.order_key);
            if (!fresh) {
                it->second.push_back(std::move(r));
                ++l.held;
                continue;
            }
        }
        l.place(std::move(r), now);
    }
}

std::vector<Dispatcher::Lane*> Dispatcher::lanes() const {
    std::shared_lock g(lanes_mu_);
    std::vector<Lane*> out;
    for (const auto& l : lanes_)
        out.push_back(l.get());
    return out;
}

bool Dispatcher::has_plugin(std::string_view plugin) const {
    return lane(plugin) != nullptr;
}

void Dispatcher::admit(Lane& l, DeliveryRef&& ref, int64_t now) {
    if (!l.known.insert(ref.id).second) return;  // already here
    if (l.t.ordered && !ref.order_key.empty()) {
        auto [it, fresh] = l.keys.try_emplace(ref.order_key);
        if (!fresh) {
            it->second.push_back(std::move(ref));
            ++l.held;
            return;
        }
    }
    l.place(std::move(ref), now);
}

void Dispatcher::start() {
    std::set<std::string> paused = store_.paused_plugins();
    std::map<std::string, size_t> unloaded;
    size_t loaded = 0;
    const int64_t now = now_ms();
    store_.load_pending([&](DeliveryRef&& ref) {
        Lane* l = lane(ref.plugin);
        if (l == nullptr) {
            ++unloaded[ref.plugin];
            return;
        }
        ++loaded;
        // No worker runs yet, but a plugin thread may call deliver_again_at.
        std::lock_guard lk(l->mu);
        admit(*l, std::move(ref), now);
    });
    for (auto& l : lanes_) {
        l->paused = paused.count(l->name) > 0;
        l->paused_gauge->set(l->paused ? 1 : 0);
    }
    {
        std::lock_guard lk(mu_);
        unloaded_ = unloaded;
        started_ = true;
    }
    for (const auto& [plugin, n] : unloaded)
        log_.warn("dispatch", "pending deliveries wait for a plugin that is not loaded",
                  {{"plugin", plugin}, {"pending", std::to_string(n)}});
    log_.info("dispatch", "dispatcher started",
              {{"plugins", std::to_string(lanes_.size())}, {"pending", std::to_string(loaded)}});
    for (auto& l : lanes_) {
        std::lock_guard lk(l->mu);
        spawn_workers(*l);
    }
    watchdog_ = std::thread([this] { watchdog(); });
}

void Dispatcher::enqueue(std::vector<DeliveryRef>&& refs) noexcept {
    try {
        const int64_t now = now_ms();
        for (auto& ref : refs) {
            Lane* l = lane(ref.plugin);
            if (l == nullptr) {
                std::lock_guard lk(mu_);
                ++unloaded_[ref.plugin];
                continue;
            }
            {
                std::lock_guard lk(l->mu);
                admit(*l, std::move(ref), now);
            }
            l->cv.notify_one();
        }
    } catch (...) {
        // Out of memory at worst: the deliveries are in the store and run
        // at the next start.
    }
}

void Dispatcher::worker(Lane& l, size_t slot) {
    std::vector<DeliveryRef> items;
    std::unique_lock lk(l.mu);
    for (;;) {
        if (l.stopping || slot >= l.t.concurrency) {
            l.live[slot] = false;  // under l.mu: spawn_workers may join it from here on
            return;
        }
        int64_t now = now_ms();
        l.promote(now);
        // No instance: the plugin was removed by a reload; its deliveries wait.
        const bool can = !l.paused && l.t.instance != nullptr;
        if (can && !l.ready.empty()) {
            if (l.t.max_batch > 1 && l.ready.size() < l.t.max_batch &&
                l.t.batch_linger.count() > 0) {
                // Let the batch fill for a moment.
                l.cv.wait_for(lk, l.t.batch_linger, [&] {
                    return l.stopping || l.paused || slot >= l.t.concurrency ||
                           l.ready.size() >= l.t.max_batch;
                });
                if (l.stopping || slot >= l.t.concurrency) continue;  // leaves at the top
                l.promote(now_ms());
                if (l.paused || l.ready.empty() || !l.t.instance) continue;
            }
            const size_t n = std::min<size_t>(l.t.max_batch, l.ready.size());
            items.clear();
            for (size_t i = 0; i < n; ++i) {
                l.running.emplace(l.ready.front().id, l.ready.front().order_key);
                items.push_back(std::move(l.ready.front()));
                l.ready.pop_front();
            }
            ++l.in_flight;
            running_calls_.fetch_add(1);
            // The call runs on the generation it started with: this copy
            // keeps the instance (and its library) alive until it returns,
            // whatever a reload does meanwhile.
            DispatchTarget t = l.t;
            lk.unlock();
            handle(l, t, slot, items);  // relocks l.mu to put back what is not finished
            t.instance.reset();         // a replaced instance is destroyed by its last call
            lk.lock();
            for (const auto& r : items)
                l.running.erase(r.id);
            --l.in_flight;
            if (running_calls_.fetch_sub(1) == 1) {
                std::lock_guard g(mu_);
                cv_.notify_all();  // stop() may be waiting for the last call
            }
            continue;
        }
        if (!l.later.empty() && can) {
            // Sleep until the next one is due (at most a second, so a wall
            // clock step is noticed).
            int64_t wait = std::clamp<int64_t>(l.later.front().due_ms - now, 1, 1000);
            l.cv.wait_for(lk, std::chrono::milliseconds(wait));
        } else {
            l.cv.wait(lk);
        }
    }
}

void Dispatcher::handle(Lane& l, const DispatchTarget& t, size_t slot,
                        std::vector<DeliveryRef>& items) {
    struct Finished {
        DeliveryRef ref;
        bool final = false;  // done or dead: releases its ordering key
    };
    std::vector<Finished> back;
    std::vector<DeliveryUpdate> updates;
    back.reserve(items.size());
    updates.reserve(items.size());

    std::vector<int64_t> seqs;
    for (const auto& r : items)
        seqs.push_back(r.event_seq);
    std::vector<StoredEvent> events;
    try {
        events = store_.events_by_seq(seqs);
    } catch (const std::exception& e) {
        log_.error("dispatch", std::string("cannot load events to hand over: ") + e.what(),
                   {{"plugin", l.name}});
        const int64_t due = now_ms() + kStoreRetryMs;
        std::lock_guard lk(l.mu);
        for (auto& r : items) {
            r.due_ms = due;
            l.place(std::move(r), 0);
        }
        return;
    }
    std::unordered_map<int64_t, const StoredEvent*> by_seq;
    for (const auto& e : events)
        by_seq.emplace(e.seq, &e);

    std::vector<EventView> views;
    std::vector<size_t> which;  // item index of each view
    const int64_t started = now_ms();
    for (size_t i = 0; i < items.size(); ++i) {
        auto it = by_seq.find(items[i].event_seq);
        if (it == by_seq.end()) {
            // Deleted under us (nothing deletes events today): nothing to hand over.
            DeliveryUpdate u;
            u.delivery_id = items[i].id;
            u.state = DeliveryState::dead;
            u.attempts = items[i].attempts;
            u.finished_ms = started;
            u.last_error = "the event is no longer in the store";
            updates.push_back(std::move(u));
            l.dead->add(1);
            back.push_back({std::move(items[i]), true});
            continue;
        }
        const StoredEvent& e = *it->second;
        EventView v;
        v.id = e.id;
        v.source = e.source;
        v.type = e.type;
        v.idempotency_key = e.key;
        v.body = e.body;
        v.received_at_ms = e.received_at_ms;
        v.attempt = items[i].attempts + 1;
        views.push_back(v);
        which.push_back(i);
    }

    std::vector<HandleOutcome> outcomes;
    int64_t call_us = 0;  // the whole call's (a batch's items share it)
    if (!views.empty()) {
        auto& s = l.slots[slot];
        s.reported.store(false);
        s.first_delivery.store(items[which[0]].id);
        s.started_ms.store(started);
        auto t0 = std::chrono::steady_clock::now();
        if (t.max_batch > 1) {
            outcomes = t.instance->handle_batch(views);
        } else {
            for (const auto& v : views)
                outcomes.push_back(t.instance->handle(v));
        }
        auto elapsed = std::chrono::steady_clock::now() - t0;
        call_us = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
        s.started_ms.store(0);
        l.handler->observe(std::chrono::duration<double>(elapsed).count());
        if (elapsed > std::chrono::milliseconds(call_timeout_ms_.load()) &&
            !s.reported.exchange(true)) {
            l.overruns->add(1);
            log_.warn(
                "dispatch", "plugin call ran past dispatch.call_timeout",
                {{"plugin", l.name},
                 {"delivery", std::to_string(items[which[0]].id)},
                 {"took_ms",
                  std::to_string(
                      std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count())}});
        }
    }

    const int64_t finished = now_ms();
    for (size_t k = 0; k < views.size(); ++k) {
        DeliveryRef& ref = items[which[k]];
        const HandleOutcome& o = k < outcomes.size()
                                     ? outcomes[k]
                                     : HandleOutcome{CLAYHOOK_RETRY, {}, "no result for this item"};
        const uint32_t attempts = ref.attempts + 1;
        DeliveryUpdate u;
        u.delivery_id = ref.id;
        u.attempts = attempts;
        if (o.status == CLAYHOOK_DONE) {
            u.state = DeliveryState::done;
            u.finished_ms = finished;
            l.done->add(1);
            l.end_to_end->observe(
                static_cast<double>(std::max<int64_t>(finished - ref.received_at_ms, 0)) / 1000.0);
            ref.attempts = attempts;
            updates.push_back(std::move(u));
            back.push_back({std::move(ref), true});
            continue;
        }
        AttemptRecord a;
        a.attempt = attempts;
        a.started_ms = started;
        a.duration_us = call_us;
        a.reason = o.reason;
        std::string give_up;
        int64_t due = 0;
        if (o.status == CLAYHOOK_FAIL) {
            a.outcome = "fail";
            l.failed->add(1);
            give_up = "failed: " + o.reason;
        } else {
            a.outcome = "retry";
            l.retried->add(1);
            metrics_.counter_add("clayhook_dispatch_retries_total", l.labels, 1);
            std::chrono::milliseconds delay;
            {
                std::lock_guard lk(l.mu);  // the lane's rng
                delay = o.retry_after.count() > 0 ? o.retry_after
                                                  : backoff_delay(t.retry, attempts, l.rng);
            }
            due = finished + delay.count();
            if (attempts >= static_cast<uint32_t>(t.retry.max_attempts)) {
                give_up = "gave up after " + std::to_string(attempts) + " attempts: " + o.reason;
            } else if (due - ref.age_from_ms > t.retry.max_age.count()) {
                give_up = "gave up: the next attempt would be past max_age (" +
                          std::to_string(t.retry.max_age.count() / 1000) + "s): " + o.reason;
            }
        }
        u.attempt = std::move(a);
        u.last_error = give_up.empty() ? o.reason : give_up;
        ref.attempts = attempts;
        if (!give_up.empty()) {
            u.state = DeliveryState::dead;
            u.finished_ms = finished;
            l.dead->add(1);
            log_.warn("dispatch", "delivery is dead: " + give_up,
                      {{"plugin", l.name},
                       {"delivery", std::to_string(ref.id)},
                       {"event", std::string(views[k].id)},
                       {"attempts", std::to_string(attempts)}});
            updates.push_back(std::move(u));
            back.push_back({std::move(ref), true});
        } else {
            u.state = DeliveryState::pending;
            u.due_ms = due;
            log_.info("dispatch", "delivery will be retried",
                      {{"plugin", l.name},
                       {"delivery", std::to_string(ref.id)},
                       {"event", std::string(views[k].id)},
                       {"attempt", std::to_string(attempts)},
                       {"in_ms", std::to_string(due - finished)},
                       {"reason", o.reason}});
            ref.due_ms = due;
            updates.push_back(std::move(u));
            back.push_back({std::move(ref), false});
        }
    }

    // Recorded before the deliveries go back into the lane: the store applies
    // results in the order they were recorded, so the next attempt's result
    // can never be overwritten by this one's.
    store_.record(std::move(updates));
    {
        std::lock_guard lk(l.mu);
        const int64_t now = now_ms();
        for (auto& f : back) {
            if (f.final) {
                l.release(f.ref, now);
            } else {
                l.place(std::move(f.ref), now);
            }
        }
    }
    l.cv.notify_all();
}

void Dispatcher::watchdog() {
    std::unique_lock lk(mu_);
    while (!stopping_) {
        cv_.wait_for(lk, std::chrono::milliseconds(250));
        if (stopping_) break;
        lk.unlock();
        const int64_t now = now_ms();
        for (Lane* l : lanes()) {
            {
                std::lock_guard g(l->mu);
                l->pending_gauge->set(
                    static_cast<double>(l->ready.size() + l->later.size() + l->held));
                l->in_flight_gauge->set(static_cast<double>(l->in_flight));
                double lag = 0;
                if (!l->ready.empty())  // paused too: the deliveries wait all the same
                    lag = static_cast<double>(std::max<int64_t>(now - l->ready.front().due_ms, 0)) /
                          1000.0;
                l->lag_gauge->set(lag);
            }
            for (size_t i = 0; i < kMaxSlots;
                 ++i) {  // atomics: no lock, and cut slots finishing a call too
                auto& s = l->slots[i];
                int64_t started = s.started_ms.load();
                if (started == 0 || now - started <= call_timeout_ms_.load()) continue;
                if (s.reported.exchange(true)) continue;
                l->overruns->add(1);
                log_.warn("dispatch",
                          "plugin call is running past dispatch.call_timeout; it keeps its slot "
                          "until it returns",
                          {{"plugin", l->name},
                           {"delivery", std::to_string(s.first_delivery.load())},
                           {"running_ms", std::to_string(now - started)}});
            }
        }
        lk.lock();
    }
}

bool Dispatcher::stop(std::chrono::milliseconds bound) {
    {
        std::lock_guard lk(mu_);
        if (stopping_ || !started_) {
            stopping_ = true;
            return running_calls_.load() == 0;
        }
        stopping_ = true;
    }
    cv_.notify_all();
    for (Lane* l : lanes()) {
        {
            std::lock_guard lk(l->mu);
            l->stopping = true;
        }
        l->cv.notify_all();
    }
    if (watchdog_.joinable()) watchdog_.join();
    bool ended;
    {
        std::unique_lock lk(mu_);
        ended = cv_.wait_for(lk, bound, [&] { return running_calls_.load() == 0; });
    }
    if (!ended) {
        size_t n = running_calls_.load();
        log_.warn("dispatch",
                  "plugin calls still running after dispatch.shutdown_timeout; their "
                  "deliveries stay pending and run again at the next start",
                  {{"running", std::to_string(n)}});
        for (Lane* l : lanes())
            for (auto& t : l->threads)
                if (t.joinable()) t.detach();
        return false;
    }
    for (Lane* l : lanes())
        for (auto& t : l->threads)
            if (t.joinable()) t.join();
    return true;
}

void Dispatcher::set_paused(const std::string& plugin, bool paused) {
    // Store and memory change together: two admin calls cannot leave them
    // disagreeing.
    std::lock_guard admin(admin_mu_);
    store_.set_paused(plugin, paused);
    if (Lane* l = lane(plugin)) {
        {
            std::lock_guard lk(l->mu);
            l->paused = paused;
        }
        l->paused_gauge->set(paused ? 1 : 0);
        l->cv.notify_all();
    }
    log_.info("dispatch", paused ? "plugin paused" : "plugin resumed", {{"plugin", plugin}});
}

size_t Dispatcher::replay(std::span<const int64_t> ids) {
    std::vector<DeliveryRef> refs = store_.replay(ids);
    size_t n = refs.size();
    for (const auto& r : refs)
        log_.info("dispatch", "dead delivery replayed",
                  {{"plugin", r.plugin}, {"delivery", std::to_string(r.id)}});
    enqueue(std::move(refs));
    return n;
}

std::vector<LaneStatus> Dispatcher::status() const {
    std::vector<LaneStatus> out;
    const int64_t now = now_ms();
    for (Lane* l : lanes()) {
        LaneStatus s;
        s.plugin = l->name;
        std::lock_guard lk(l->mu);
        s.kind = l->kind;
        s.version = l->version;
        s.loaded = l->t.instance != nullptr;
        s.ordered = l->t.ordered;
        s.concurrency = l->t.concurrency;
        s.max_batch = l->t.max_batch;
        s.paused = l->paused;
        s.due = l->ready.size();
        for (const auto& r : l->later)
            if (r.due_ms <= now) ++s.due;
        s.later = l->later.size() - (s.due - l->ready.size());
        s.held = l->held;
        s.in_flight = l->in_flight;
        if (!l->ready.empty())
            s.oldest_due_age_s =
                static_cast<double>(std::max<int64_t>(now - l->ready.front().due_ms, 0)) / 1000.0;
        out.push_back(std::move(s));
    }
    return out;
}

std::map<std::string, size_t> Dispatcher::waiting_for_unloaded() const {
    std::lock_guard lk(mu_);
    return unloaded_;
}

int32_t Dispatcher::kv_get(const std::string& plugin, std::string_view key,
                           std::string& value) noexcept {
    if (key.empty() || key.size() > kMaxKvKey) return CLAYHOOK_ERR_INVALID;
    try {
        auto v = store_.kv_get(plugin, key);
        if (!v) return CLAYHOOK_NOT_FOUND;
        value = std::move(*v);
        return CLAYHOOK_OK;
    } catch (const std::exception& e) {
        log_.error("dispatch", std::string("kv_get: ") + e.what(), {{"plugin", plugin}});
        return CLAYHOOK_ERR_STORE;
    }
}

int32_t Dispatcher::kv_put(const std::string& plugin, std::string_view key,
                           std::string_view value) noexcept {
    if (key.empty() || key.size() > kMaxKvKey || value.size() > kMaxKvValue)
        return CLAYHOOK_ERR_INVALID;
    try {
        store_.kv_put(plugin, key, value);
        return CLAYHOOK_OK;
    } catch (const std::exception& e) {
        log_.error("dispatch", std::string("kv_put: ") + e.what(), {{"plugin", plugin}});
        return CLAYHOOK_ERR_STORE;
    }
}

int32_t Dispatcher::kv_delete(const std::string& plugin, std::string_view key) noexcept {
    if (key.empty() || key.size() > kMaxKvKey) return CLAYHOOK_ERR_INVALID;
    try {
        return store_.kv_delete(plugin, key) ? CLAYHOOK_OK : CLAYHOOK_NOT_FOUND;
    } catch (const std::exception& e) {
        log_.error("dispatch", std::string("kv_delete: ") + e.what(), {{"plugin", plugin}});
        return CLAYHOOK_ERR_STORE;
    }
}

int32_t Dispatcher::deliver_again_at(const std::string& plugin, std::string_view event_id,
                                     int64_t at_ms) noexcept {
    if (!is_event_id(event_id) || at_ms < 0) return CLAYHOOK_ERR_INVALID;
    Lane* l = lane(plugin);
    if (l == nullptr) return CLAYHOOK_ERR_INVALID;
    try {
        std::vector<int64_t> busy;
        {
            std::lock_guard lk(l->mu);
            for (const auto& [id, key] : l->running)
                busy.push_back(id);
        }
        // Not ordered: a re-delivery the plugin asked for does not wait
        // behind (or hold back) the key's other deliveries.
        auto s = store_.schedule_again(event_id, plugin, at_ms, busy);
        if (!s) return CLAYHOOK_NOT_FOUND;
        {
            std::lock_guard lk(l->mu);
            const int64_t now = now_ms();
            if (!s->created && l->known.count(s->ref.id) > 0) {
                // Moved in the store: move the copy held here too.
                for (auto& r : l->later)
                    if (r.id == s->ref.id) r.due_ms = at_ms, r.age_from_ms = at_ms, r.attempts = 0;
                std::make_heap(l->later.begin(), l->later.end(), due_after);
                for (auto it = l->ready.begin(); it != l->ready.end(); ++it) {
                    if (it->id != s->ref.id) continue;
                    DeliveryRef r = std::move(*it);
                    l->ready.erase(it);
                    r.due_ms = at_ms;
                    r.age_from_ms = at_ms;
                    r.attempts = 0;
                    l->place(std::move(r), now);
                    break;
                }
            } else {
                admit(*l, std::move(s->ref), now);
            }
        }
        l->cv.notify_all();
        return CLAYHOOK_OK;
    } catch (const std::exception& e) {
        log_.error("dispatch", std::string("deliver_again_at: ") + e.what(), {{"plugin", plugin}});
        return CLAYHOOK_ERR_STORE;
    }
}

}  // namespace clayhook
