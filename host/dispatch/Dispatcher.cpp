#include "dispatch/Dispatcher.h"

#include "crash/FatalSignal.h"
#include "dispatch/DispatchMetrics.h"
#include "dispatch/LaneQueue.h"
#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "plugins/PluginInstance.h"

#include <algorithm>
#include <shared_mutex>
#include <unordered_map>

namespace clayhook {

namespace {

// A store error while loading the events to hand over: try again after this,
// without counting an attempt (the plugin never saw them).
constexpr int64_t kStoreRetryMs = 1000;
// The most worker threads a lane has (plugins[].concurrency is at most this).
constexpr uint32_t kMaxConcurrency = 1024;
// How often the watchdog refreshes the gauges and looks for calls past
// dispatch.call_timeout.
constexpr std::chrono::milliseconds kWatchdogTick{250};
// The most deliveries one poll of a shared store admits.
constexpr size_t kPollLimit = 1000;

int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

void normalise(DispatchTarget& t) {
    t.concurrency = std::clamp<uint32_t>(t.concurrency, 1, kMaxConcurrency);
    t.max_batch = std::max<uint32_t>(t.max_batch, 1);
}

double seconds_since(int64_t now, int64_t then_ms) {
    return static_cast<double>(std::max<int64_t>(now - then_ms, 0)) / 1000.0;
}

}  // namespace

// One worker thread of a lane, in its slot. The call it runs is watched by the
// watchdog: atomics, written by the worker without the lane's lock.
struct Dispatcher::Worker {
    std::thread thread;
    bool live = false;                   // under the lane's mu: the thread runs its loop
    std::atomic<int64_t> started_ms{0};  // 0 when no call is running
    std::atomic<bool> reported{false};   // its overrun was counted and logged
    std::atomic<int64_t> first_delivery{0};
};

struct Dispatcher::Lane {
    Lane(DispatchTarget t, Metrics& metrics)
        : name(t.instance->name()),
          m(metrics, name),
          target(std::move(t)),
          kind(target.instance->info().kind),
          version(target.instance->info().version),
          q(target.ordered) {
        normalise(target);
    }

    const std::string name;
    DispatchMetrics m;

    std::mutex mu;  // guards the members below
    std::condition_variable cv;
    DispatchTarget target;      // the plugin instance and its settings in force
    std::string kind, version;  // of the last instance, shown while none is loaded
    LaneQueue q;
    bool paused = false;
    bool stopping = false;
    size_t in_flight = 0;
    // By slot: one per thread up to target.concurrency, and past it the slots cut
    // by a reload whose thread has not left yet (it finishes its call, then
    // leaves); trim() drops those once it left.
    std::vector<std::unique_ptr<Worker>> workers;

    // Drops the slots past target.concurrency whose thread left its loop. It left
    // under mu, so the join is quick.
    void trim() {
        while (workers.size() > target.concurrency && !workers.back()->live) {
            if (workers.back()->thread.joinable()) workers.back()->thread.join();
            workers.pop_back();
        }
    }
};

Dispatcher::Dispatcher(Store& store, const DispatchConfig& config,
                       std::vector<DispatchTarget> targets, Logger& log, Metrics& metrics)
    : store_(store),
      config_(config),
      log_(log),
      metrics_(metrics),
      call_timeout_ms_(config.call_timeout.count()),
      lease_ms_(config.lease.count()),
      poll_ms_(config.poll_interval.count()),
      poison_after_(config.poison_after) {
    DispatchMetrics::describe(metrics_);
    for (auto& t : targets)
        lanes_.push_back(std::make_unique<Lane>(std::move(t), metrics_));
    // From here every commit's deliveries arrive; before start() they are
    // admitted and wait (start's read of the store admits each one once).
    store_.subscribe(this);
}

void Dispatcher::committed(size_t, std::vector<DeliveryRef>& deliveries) noexcept {
    if (!deliveries.empty()) enqueue(std::move(deliveries));
}

// Starts the threads of the slots below target.concurrency that have none running
// (a thread whose slot was cut by an earlier reconfigure has left its loop,
// or is finishing its last call and leaves then). Under l.mu.
void Dispatcher::spawn_workers(Lane& l) {
    l.trim();
    while (l.workers.size() < l.target.concurrency)
        l.workers.push_back(std::make_unique<Worker>());
    for (size_t i = 0; i < l.target.concurrency; ++i) {
        Worker& w = *l.workers[i];
        if (w.live) continue;
        if (w.thread.joinable()) w.thread.join();  // it left its loop under l.mu
        w.live = true;
        w.thread = std::thread([this, lp = &l, i, wp = &w] { worker(*lp, i, *wp); });
    }
}

Dispatcher::~Dispatcher() {
    store_.unsubscribe(this);  // waits out a commit telling us of its deliveries
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
    lease_ms_.store(config.lease.count());
    poll_ms_.store(config.poll_interval.count());
    poison_after_.store(config.poison_after);
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
        if (l->target.instance)
            log_.info("dispatch",
                      "plugin removed by the reload; its pending deliveries wait for it",
                      {{"plugin", l->name}});
        l->target.instance.reset();  // running calls keep their own copy
        l->cv.notify_all();
    }
    const int64_t now = clock_.now_ms();
    for (auto& t : targets) {
        const std::string name = t.instance->name();
        Lane* l = nullptr;
        for (auto& x : lanes_)
            if (x->name == name) l = x.get();
        if (l == nullptr) {
            lanes_.push_back(std::make_unique<Lane>(std::move(t), metrics_));
            l = lanes_.back().get();
            std::lock_guard lk(l->mu);
            size_t n = 0;
            for (auto& ref : preload[name]) {
                l->q.admit(std::move(ref), now);
                ++n;
            }
            l->paused = paused.count(name) > 0;
            l->m.paused.set(l->paused ? 1 : 0);
            if (started) spawn_workers(*l);
            log_.info("dispatch", "plugin added by the reload",
                      {{"plugin", name}, {"pending", std::to_string(n)}});
            continue;
        }
        std::lock_guard lk(l->mu);
        l->kind = t.instance->info().kind;
        l->version = t.instance->info().version;
        l->target = std::move(t);
        normalise(l->target);
        // Switching ordering on orders what is queued by its keys.
        l->q.set_ordered(l->target.ordered, now);
        if (started) spawn_workers(*l);
        l->cv.notify_all();  // slots past the new concurrency leave
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

void Dispatcher::start() {
    std::set<std::string> paused = store_.paused_plugins();
    std::map<std::string, size_t> unloaded;
    size_t loaded = 0;
    const int64_t now = clock_.now_ms();
    store_.load_pending([&](DeliveryRef&& ref) {
        Lane* l = lane(ref.plugin);
        if (l == nullptr) {
            ++unloaded[ref.plugin];
            return;
        }
        ++loaded;
        // No worker runs yet, but a plugin thread may call deliver_again_at.
        std::lock_guard lk(l->mu);
        l->q.admit(std::move(ref), now);
    });
    for (auto& l : lanes_) {
        l->paused = paused.count(l->name) > 0;
        l->m.paused.set(l->paused ? 1 : 0);
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
    heartbeat_ms_ = steady_ms();
    watchdog_ = std::thread([this] { watchdog(); });
    if (store_.shared()) poller_ = std::thread([this] { poller(); });
}

void Dispatcher::poller() {
    std::unique_lock lk(mu_);
    while (!stopping_) {
        // cv_ is also notified when calls end: wait out the whole interval.
        const auto next =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(poll_ms_.load());
        while (!stopping_ && cv_.wait_until(lk, next) != std::cv_status::timeout) {
        }
        if (stopping_) break;
        lk.unlock();
        poll_once();
        lk.lock();
    }
}

void Dispatcher::poll_once() {
    std::vector<std::string> plugins;
    std::set<std::string> paused;
    // One line when polling starts failing and one when it works again, not
    // one per poll while the database is away.
    auto failed = [&](const std::string& what, const std::exception& e) {
        if (!poll_failing_)
            log_.warn("dispatch", what + e.what() + " (logged once until it works again)");
        poll_failing_ = true;
    };
    // Under admin_mu_, as a pause or resume through this host's admin API:
    // a flag read before that change cannot be applied after it.
    std::unique_lock admin(admin_mu_);
    try {
        // Pause and resume on another host reach this one here.
        paused = store_.paused_plugins();
    } catch (const std::exception& e) {
        failed("cannot read paused flags: ", e);
        return;
    }
    for (Lane* l : lanes()) {
        const bool p = paused.count(l->name) > 0;
        bool changed;
        {
            std::lock_guard g(l->mu);
            changed = l->paused != p;
            l->paused = p;
            if (!p && l->target.instance) plugins.push_back(l->name);
        }
        if (changed) {
            l->m.paused.set(p ? 1 : 0);
            l->cv.notify_all();
        }
    }
    admin.unlock();
    if (plugins.empty()) {
        if (poll_failing_) log_.info("dispatch", "the shared store answers the poll again");
        poll_failing_ = false;
        return;
    }
    const int64_t now = clock_.now_ms();
    // Not what was stored in the last interval: its host is about to claim
    // it. Older unclaimed work is fair game (that host is busy, or gone).
    std::vector<DeliveryRef> refs;
    try {
        refs = store_.claimable(plugins, now - poll_ms_.load(), kPollLimit);
    } catch (const std::exception& e) {
        failed("cannot poll the shared store: ", e);
        return;
    }
    if (poll_failing_) log_.info("dispatch", "the shared store answers the poll again");
    poll_failing_ = false;
    for (auto& ref : refs) {
        Lane* l = lane(ref.plugin);
        if (l == nullptr) continue;
        bool admitted;
        {
            std::lock_guard g(l->mu);
            admitted = l->q.admit(std::move(ref), now);
        }
        if (admitted) {
            l->m.adopted.add(1);
            l->cv.notify_one();
        }
    }
}

void Dispatcher::forget_leases(const std::vector<DeliveryRef>& items) {
    if (!store_.shared()) return;
    std::lock_guard g(leases_mu_);
    for (const auto& r : items)
        leased_.erase(r.id);
}

// Shared stores only: a single process's leases guard against nobody (a
// SQLite store clears them at open), so renewing them would be a durable
// write for nothing.
void Dispatcher::renew_leases(int64_t now) {
    if (!store_.shared()) return;
    const int64_t lease = lease_ms_.load();
    if (now - last_renew_ms_ < lease / 3) return;
    last_renew_ms_ = now;
    std::vector<int64_t> ids;
    {
        std::lock_guard g(leases_mu_);
        ids.assign(leased_.begin(), leased_.end());
    }
    if (ids.empty()) return;
    try {
        const size_t held = store_.renew(ids, now + lease);
        if (held < ids.size())
            log_.warn("dispatch",
                      "some running deliveries' leases were taken by another host (a call ran "
                      "past dispatch.lease without a renewal); their results will be dropped",
                      {{"running", std::to_string(ids.size())}, {"held", std::to_string(held)}});
    } catch (const std::exception& e) {
        log_.warn("dispatch", std::string("cannot renew delivery leases: ") + e.what());
    }
}

void Dispatcher::enqueue(std::vector<DeliveryRef>&& refs) noexcept {
    try {
        const int64_t now = clock_.now_ms();
        for (auto& ref : refs) {
            Lane* l = lane(ref.plugin);
            if (l == nullptr) {
                std::lock_guard lk(mu_);
                ++unloaded_[ref.plugin];
                continue;
            }
            {
                std::lock_guard lk(l->mu);
                l->q.admit(std::move(ref), now);
            }
            l->cv.notify_one();
        }
    } catch (...) {
        // Out of memory at worst: the deliveries are in the store and run
        // at the next start.
    }
}

void Dispatcher::worker(Lane& l, size_t slot, Worker& w) {
    RandomJitter jitter;  // this thread's: backoffs need no lock
    std::vector<DeliveryRef> items;
    fatal::prepare_thread();  // a stack overflow in a plugin is reported too
    std::unique_lock lk(l.mu);
    for (;;) {
        if (l.stopping || slot >= l.target.concurrency) {
            w.live = false;  // under l.mu: spawn_workers or trim may join it from here on
            return;
        }
        int64_t now = clock_.now_ms();
        l.q.promote(now);
        // No instance: the plugin was removed by a reload; its deliveries wait.
        // An isolated plugin's worker restarting after a crash: they wait
        // for it, without a claim (which would count an attempt).
        const int64_t down_until =
            l.target.instance ? l.target.instance->down_until_ms() : int64_t{0};
        if (down_until > now && !l.paused && l.q.due() > 0) {
            // Polled: nothing tells the lane when the worker is back.
            l.cv.wait_for(lk, std::chrono::milliseconds(std::min<int64_t>(down_until - now, 50)));
            continue;
        }
        const bool can = !l.paused && l.target.instance != nullptr;
        if (can && l.q.due() > 0) {
            if (l.target.max_batch > 1 && l.q.due() < l.target.max_batch &&
                l.target.batch_linger.count() > 0) {
                // Let the batch fill for a moment.
                l.cv.wait_for(lk, l.target.batch_linger, [&] {
                    return l.stopping || l.paused || slot >= l.target.concurrency ||
                           l.q.due() >= l.target.max_batch;
                });
                if (l.stopping || slot >= l.target.concurrency) continue;  // leaves at the top
                now = clock_.now_ms();
                l.q.promote(now);
                if (l.paused || l.q.due() == 0 || !l.target.instance) continue;
            }
            items.clear();
            l.q.take(now, l.target.max_batch, items);
            ++l.in_flight;
            running_calls_.fetch_add(1);
            // The call runs on the generation it started with: this copy
            // keeps the instance (and its library) alive until it returns,
            // whatever a reload does meanwhile.
            DispatchTarget t = l.target;
            lk.unlock();
            handle(l, t, w, jitter, items);  // relocks l.mu to put back what is not finished
            t.instance.reset();              // a replaced instance is destroyed by its last call
            lk.lock();
            l.q.end_call(items);
            --l.in_flight;
            if (running_calls_.fetch_sub(1) == 1) {
                std::lock_guard g(mu_);
                cv_.notify_all();  // stop() may be waiting for the last call
            }
            continue;
        }
        const std::optional<int64_t> next = l.q.next_due_ms();
        if (next && can) {
            // Sleep until the next one is due (at most a second, so a wall
            // clock step is noticed).
            int64_t wait = std::clamp<int64_t>(*next - now, 1, 1000);
            l.cv.wait_for(lk, std::chrono::milliseconds(wait));
        } else {
            l.cv.wait(lk);
        }
    }
}

void Dispatcher::handle(Lane& l, const DispatchTarget& t, Worker& w, Jitter& jitter,
                        std::vector<DeliveryRef>& items) {
    struct Finished {
        DeliveryRef ref;
        bool final = false;  // done or dead: releases its ordering key
    };
    std::vector<Finished> back;
    std::vector<DeliveryUpdate> updates;
    back.reserve(items.size());
    updates.reserve(items.size());

    // Claim first: the attempt is counted in the store before the plugin
    // sees it, so a call cut short by a crash still counts, and on a shared
    // store no other host runs these while the lease lasts.
    std::vector<char> skip(items.size(), 0);
    {
        std::vector<int64_t> ids;
        ids.reserve(items.size());
        for (const auto& r : items)
            ids.push_back(r.id);
        std::vector<ClaimedDelivery> claimed;
        try {
            claimed = store_.claim(ids, clock_.now_ms() + lease_ms_.load());
        } catch (const std::exception& e) {
            log_.error("dispatch", std::string("cannot claim deliveries: ") + e.what(),
                       {{"plugin", l.name}});
            const int64_t now = clock_.now_ms();
            std::lock_guard lk(l.mu);
            for (auto& r : items) {
                r.due_ms = now + kStoreRetryMs;
                l.q.put_back(std::move(r), now);
            }
            return;
        }
        std::unordered_map<int64_t, ClaimedDelivery> got;
        for (const auto& c : claimed)
            got.emplace(c.id, c);
        if (store_.shared()) {
            std::lock_guard g(leases_mu_);
            for (const auto& c : claimed)
                leased_.insert(c.id);
        }
        const int64_t now = clock_.now_ms();
        for (size_t i = 0; i < items.size(); ++i) {
            auto it = got.find(items[i].id);
            if (it == got.end()) {
                // Finished, or another host holds it (or an earlier delivery
                // of its key): not ours. Dropped here; the store keeps it.
                skip[i] = 1;
                l.m.claim_lost.add(1);
                back.push_back({items[i], true});
                continue;
            }
            items[i].attempts = it->second.attempts - 1;  // attempts before this one
            if (it->second.lost >= static_cast<uint32_t>(std::max(poison_after_.load(), 1))) {
                // Poison: the host died in this delivery's calls again and
                // again. Dead, so the host serves on; replay it once fixed.
                skip[i] = 1;
                std::string known;
                {
                    std::lock_guard g(mu_);
                    if (auto c = crash_reasons_.find(items[i].id); c != crash_reasons_.end())
                        known = "; the last: " + c->second;
                }
                DeliveryUpdate u;
                u.delivery_id = items[i].id;
                u.state = DeliveryState::dead;
                u.attempts = it->second.attempts - 1;
                u.finished_ms = now;
                u.last_error = "poison: the host died during " + std::to_string(it->second.lost) +
                               " calls of this delivery (dispatch.poison_after " +
                               std::to_string(poison_after_.load()) + ")" + known;
                l.m.dead.add(1);
                log_.error("dispatch", "delivery is dead: " + u.last_error,
                           {{"plugin", l.name}, {"delivery", std::to_string(items[i].id)}});
                updates.push_back(std::move(u));
                back.push_back({items[i], true});
                continue;
            }
            if (static_cast<int64_t>(it->second.attempts) > t.retry.max_attempts) {
                // Earlier claims never reported (the host died during them,
                // or a plugin took it down): their attempts count.
                skip[i] = 1;
                DeliveryUpdate u;
                u.delivery_id = items[i].id;
                u.state = DeliveryState::dead;
                u.attempts = it->second.attempts - 1;
                u.finished_ms = now;
                u.last_error =
                    "attempts exhausted by " + std::to_string(it->second.attempts - 1) +
                    " attempts, some of which never reported (the host stopped during them)";
                updates.push_back(std::move(u));
                l.m.dead.add(1);
                log_.warn("dispatch",
                          "delivery is dead: its attempts ran out in calls that never reported",
                          {{"plugin", l.name}, {"delivery", std::to_string(items[i].id)}});
                back.push_back({items[i], true});
            }
        }
    }

    std::vector<int64_t> seqs;
    for (size_t i = 0; i < items.size(); ++i)
        if (!skip[i]) seqs.push_back(items[i].event_seq);
    std::vector<StoredEvent> events;
    try {
        events = store_.events_by_seq(seqs);
    } catch (const std::exception& e) {
        log_.error("dispatch", std::string("cannot load events to hand over: ") + e.what(),
                   {{"plugin", l.name}});
        // The plugin never saw them: the attempts their claim counted are
        // given back (and the leases ended), and they are tried again here
        // in a second. Otherwise a store that cannot read would use up
        // every delivery's attempts without a single call.
        const int64_t now = clock_.now_ms();
        for (size_t i = 0; i < items.size(); ++i) {
            if (skip[i]) continue;
            DeliveryUpdate u;
            u.delivery_id = items[i].id;
            u.state = DeliveryState::pending;
            u.attempts = items[i].attempts;
            u.due_ms = now + kStoreRetryMs;
            updates.push_back(std::move(u));
        }
        store_.record(std::move(updates));
        forget_leases(items);
        std::lock_guard lk(l.mu);
        for (size_t i = 0; i < items.size(); ++i) {
            if (skip[i]) continue;
            items[i].due_ms = now + kStoreRetryMs;
            l.q.put_back(std::move(items[i]), now);
        }
        for (auto& f : back)
            l.q.release(f.ref, now);
        return;
    }
    std::unordered_map<int64_t, const StoredEvent*> by_seq;
    for (const auto& e : events)
        by_seq.emplace(e.seq, &e);

    std::vector<EventView> views;
    std::vector<size_t> which;  // item index of each view
    const int64_t started = clock_.now_ms();
    for (size_t i = 0; i < items.size(); ++i) {
        if (skip[i]) continue;
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
            l.m.dead.add(1);
            back.push_back({std::move(items[i]), true});
            continue;
        }
        const StoredEvent& e = *it->second;
        if (!t.instance->subscribes(e.type)) {
            // Routed while the plugin was down and its patterns unknown
            // (every event waits for such a plugin), or before a reload
            // narrowed its events: not one of its events now.
            DeliveryUpdate u;
            u.delivery_id = items[i].id;
            u.state = DeliveryState::done;
            u.attempts = items[i].attempts;
            u.finished_ms = started;
            u.last_error = "skipped: the plugin does not subscribe to " + e.type +
                           " (routed to it while it was down, or before a reload narrowed its "
                           "events:)";
            updates.push_back(std::move(u));
            back.push_back({std::move(items[i]), true});
            continue;
        }
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
        w.reported.store(false);
        w.first_delivery.store(items[which[0]].id);
        w.started_ms.store(started);
        auto t0 = std::chrono::steady_clock::now();
        // In-process, a fatal signal inside the call names the plugin and
        // these deliveries in the host's last log line and crash record.
        std::vector<int64_t> ids;
        if (!t.instance->isolated())
            for (size_t k : which)
                ids.push_back(items[k].id);
        {
            std::optional<fatal::CallScope> scope;
            if (!t.instance->isolated()) scope.emplace(l.name, ids);
            if (t.max_batch > 1) {
                outcomes = t.instance->handle_batch(views);
            } else {
                for (const auto& v : views)
                    outcomes.push_back(t.instance->handle(v));
            }
        }
        auto elapsed = std::chrono::steady_clock::now() - t0;
        call_us = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
        w.started_ms.store(0);
        l.m.handler.observe(std::chrono::duration<double>(elapsed).count());
        if (elapsed > std::chrono::milliseconds(call_timeout_ms_.load()) &&
            !w.reported.exchange(true)) {
            l.m.overruns.add(1);
            log_.warn(
                "dispatch", "plugin call ran past dispatch.call_timeout",
                {{"plugin", l.name},
                 {"delivery", std::to_string(items[which[0]].id)},
                 {"took_ms",
                  std::to_string(
                      std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count())}});
        }
    }

    for (size_t k = 0; k < views.size(); ++k) {
        DeliveryRef& ref = items[which[k]];
        const HandleOutcome& o = k < outcomes.size()
                                     ? outcomes[k]
                                     : HandleOutcome{CLAYHOOK_RETRY, {}, "no result for this item"};
        PluginAnswer answer;
        answer.status = static_cast<int32_t>(o.status);
        answer.retry_after = o.retry_after;
        answer.reason = o.reason;
        const RetryDecision d =
            decide_retry(answer, ref.attempts + 1, t.retry, ref.age_from_ms, clock_, jitter);
        ref.attempts = d.attempts;
        updates.push_back(d.update(ref.id, started, call_us));
        switch (d.answered) {
            case RetryDecision::Answered::done:
                l.m.done.add(1);
                l.m.end_to_end.observe(seconds_since(d.decided_ms, ref.received_at_ms));
                break;
            case RetryDecision::Answered::retry:
                l.m.retried.add(1);
                l.m.retries.add(1);
                break;
            case RetryDecision::Answered::fail:
                l.m.failed.add(1);
                break;
        }
        if (d.state == DeliveryState::pending) {
            log_.info("dispatch", "delivery will be retried",
                      {{"plugin", l.name},
                       {"delivery", std::to_string(ref.id)},
                       {"event", std::string(views[k].id)},
                       {"attempt", std::to_string(d.attempts)},
                       {"in_ms", std::to_string(d.due_ms - d.decided_ms)},
                       {"reason", d.reason}});
            ref.due_ms = d.due_ms;
            back.push_back({std::move(ref), false});
            continue;
        }
        if (d.state == DeliveryState::dead) {
            l.m.dead.add(1);
            log_.warn("dispatch", "delivery is dead: " + d.last_error,
                      {{"plugin", l.name},
                       {"delivery", std::to_string(ref.id)},
                       {"event", std::string(views[k].id)},
                       {"attempts", std::to_string(d.attempts)}});
        }
        back.push_back({std::move(ref), true});
    }

    // Recorded before the deliveries go back into the lane: the store applies
    // results in the order they were recorded, so the next attempt's result
    // can never be overwritten by this one's.
    store_.record(std::move(updates));
    forget_leases(items);
    {
        std::lock_guard lk(l.mu);
        const int64_t now = clock_.now_ms();
        for (auto& f : back) {
            if (f.final) {
                l.q.release(f.ref, now);
            } else {
                l.q.put_back(std::move(f.ref), now);
            }
        }
    }
    l.cv.notify_all();
}

void Dispatcher::watchdog() {
    struct Overrun {
        int64_t delivery;
        int64_t running_ms;
    };
    std::vector<Overrun> overruns;
    std::unique_lock lk(mu_);
    while (!stopping_) {
        cv_.wait_for(lk, kWatchdogTick);
        if (stopping_) break;
        lk.unlock();
        const int64_t now = clock_.now_ms();
        renew_leases(now);
        {
            std::map<std::string, size_t> waiting;
            {
                std::lock_guard g(mu_);
                waiting = unloaded_;
            }
            for (const auto& name : waiting_gauges_)
                if (!waiting.count(name))
                    metrics_.gauge("clayhook_dispatch_waiting", "plugin=\"" + name + "\"").set(0);
            waiting_gauges_.clear();
            for (const auto& [name, n] : waiting) {
                metrics_.gauge("clayhook_dispatch_waiting", "plugin=\"" + name + "\"")
                    .set(static_cast<double>(n));
                waiting_gauges_.insert(name);
            }
        }
        const int64_t budget = call_timeout_ms_.load();
        for (Lane* l : lanes()) {
            overruns.clear();
            {
                std::lock_guard g(l->mu);
                l->m.pending.set(static_cast<double>(l->q.pending()));
                l->m.in_flight.set(static_cast<double>(l->in_flight));
                // Paused too: the deliveries wait all the same.
                const std::optional<int64_t> first = l->q.first_due_ms();
                l->m.lag.set(first ? seconds_since(now, *first) : 0.0);
                l->trim();
                // Every slot with a thread, cut ones finishing a call too.
                for (const auto& w : l->workers) {
                    const int64_t started = w->started_ms.load();
                    if (started == 0 || now - started <= budget) continue;
                    if (w->reported.exchange(true)) continue;
                    overruns.push_back({w->first_delivery.load(), now - started});
                }
            }
            for (const auto& o : overruns) {
                l->m.overruns.add(1);
                log_.warn("dispatch",
                          "plugin call is running past dispatch.call_timeout; it keeps its slot "
                          "until it returns",
                          {{"plugin", l->name},
                           {"delivery", std::to_string(o.delivery)},
                           {"running_ms", std::to_string(o.running_ms)}});
            }
        }
        heartbeat_ms_ = steady_ms();
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
    if (poller_.joinable()) poller_.join();
    // While the last calls finish, their leases are still renewed: a
    // shutdown_timeout longer than the lease must not let another host run
    // them at the same time.
    bool ended = false;
    {
        const auto deadline = std::chrono::steady_clock::now() + bound;
        std::unique_lock lk(mu_);
        for (;;) {
            const auto step = std::min(deadline, std::chrono::steady_clock::now() + kWatchdogTick);
            ended = cv_.wait_until(lk, step, [&] { return running_calls_.load() == 0; });
            if (ended || std::chrono::steady_clock::now() >= deadline) break;
            lk.unlock();
            renew_leases(clock_.now_ms());
            lk.lock();
        }
    }
    std::vector<std::thread> threads;
    for (Lane* l : lanes()) {
        std::lock_guard lk(l->mu);
        for (auto& w : l->workers)
            if (w->thread.joinable()) threads.push_back(std::move(w->thread));
    }
    if (!ended) {
        size_t n = running_calls_.load();
        log_.warn("dispatch",
                  "plugin calls still running after dispatch.shutdown_timeout; their "
                  "deliveries stay pending and run again at the next start",
                  {{"running", std::to_string(n)}});
        for (auto& t : threads)
            t.detach();
        return false;
    }
    for (auto& t : threads)
        t.join();
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
        l->m.paused.set(paused ? 1 : 0);
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
    const int64_t now = clock_.now_ms();
    for (Lane* l : lanes()) {
        LaneStatus s;
        s.plugin = l->name;
        std::lock_guard lk(l->mu);
        s.kind = l->kind;
        s.version = l->version;
        s.loaded = l->target.instance != nullptr;
        s.isolated = s.loaded && l->target.instance->isolated();
        s.ordered = l->target.ordered;
        s.concurrency = l->target.concurrency;
        s.max_batch = l->target.max_batch;
        s.paused = l->paused;
        const LaneQueue::Counts c = l->q.counts(now);
        s.due = c.due;
        s.later = c.later;
        s.held = c.held;
        s.in_flight = l->in_flight;
        if (c.first_due_ms) s.oldest_due_age_s = seconds_since(now, *c.first_due_ms);
        out.push_back(std::move(s));
    }
    return out;
}

std::map<std::string, size_t> Dispatcher::waiting_for_unloaded() const {
    std::lock_guard lk(mu_);
    return unloaded_;
}

std::vector<int64_t> Dispatcher::kill(const KillFilter& f, const std::string& reason) {
    std::vector<int64_t> ids = store_.kill_pending(f, reason);
    // The lanes still hold them: their next claim finds them dead and drops
    // them (so a paused lane counts them until it is resumed).
    // One line for the whole request (a plugin's backlog can be thousands).
    std::string first = ids.empty() ? "" : std::to_string(ids.front());
    log_.warn("dispatch", "deliveries marked dead by the operator",
              {{"count", std::to_string(ids.size())},
               {"first", first},
               {"plugin", f.plugin},
               {"event", f.event_id},
               {"reason", reason}});
    return ids;
}

void Dispatcher::set_down(std::map<std::string, std::string> down) {
    std::lock_guard lk(mu_);
    for (const auto& [name, why] : down_)
        if (!down.count(name))
            metrics_.gauge("clayhook_plugin_down", "plugin=\"" + name + "\"").set(0);
    down_ = std::move(down);
    for (const auto& [name, why] : down_)
        metrics_.gauge("clayhook_plugin_down", "plugin=\"" + name + "\"").set(1);
}

std::map<std::string, std::string> Dispatcher::down() const {
    std::lock_guard lk(mu_);
    return down_;
}

void Dispatcher::note_crash(std::span<const int64_t> ids, const std::string& reason) {
    std::lock_guard lk(mu_);
    for (int64_t id : ids)
        crash_reasons_[id] = reason;
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
            busy = l->q.running_ids();
        }
        // Not ordered: a re-delivery the plugin asked for does not wait
        // behind (or hold back) the key's other deliveries.
        auto s = store_.schedule_again(event_id, plugin, at_ms, busy);
        if (!s) return CLAYHOOK_NOT_FOUND;
        {
            std::lock_guard lk(l->mu);
            const int64_t now = clock_.now_ms();
            if (!s->created && l->q.holds(s->ref.id)) {
                // Moved in the store: move the copy held here too.
                l->q.reschedule(s->ref.id, at_ms, now);
            } else {
                l->q.admit(std::move(s->ref), now);
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
