#pragma once

// The dispatcher: hands stored events to the plugins that subscribed to them,
// asynchronously, and records each result in the store.
//
// The store is the truth: a delivery is pending there until its done (or
// dead) result is committed. The dispatcher keeps the pending deliveries of
// the loaded plugins in memory (ids and times, no bodies: ~100 bytes each),
// fed at start by Store::load_pending and then by each commit
// (the dispatcher is the store's CommitListener). A delivery being handled is owned by the worker
// that took it and not marked in the store, so a crash leaves it pending and
// it runs again at the next start (at-least-once).
//
// Each plugin has its own lane: its own worker threads (its concurrency), its
// queue of due deliveries, a timer heap for later ones, and, when ordered,
// the keys in progress. A slow or hung plugin holds only its own threads.
//
// Before a call, its deliveries are claimed in the store (Store::claim): the
// attempt is counted there first, and the claim carries a lease of
// dispatch.lease, renewed by the watchdog while the call runs. A delivery the
// claim does not return is dropped from the lane: it is finished, or another
// host sharing the store holds it. On a shared store (PostgreSQL) a poller
// admits, every dispatch.poll_interval, what no host holds: deliveries stored
// by another host and not claimed within the interval, given up, or left
// behind by a host that died once its lease ran out.
//
// The parts without threads are units of their own: the lane's queue
// (dispatch/LaneQueue.h), what an answer makes of a delivery
// (dispatch/RetryDecision.h, with backoff_delay), and the metric series of a
// plugin (dispatch/DispatchMetrics.h). This class adds the threads, the
// store, the plugins, the watchdog and the host services.

#include "config/Config.h"
#include "dispatch/RetryDecision.h"
#include "plugins/StoreServices.h"
#include "store/Store.h"
#include "util/Clock.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

namespace clayhook {

class Logger;
class Metrics;
class PluginInstance;

// One loaded plugin as the dispatcher drives it.
struct DispatchTarget {
    std::shared_ptr<PluginInstance> instance;  // null: removed by a reload, deliveries wait
    RetryPolicy retry;
    uint32_t concurrency = 1;  // worker threads, and so calls at once
    uint32_t max_batch = 1;    // deliveries per call (1: handle(), else handle_batch())
    std::chrono::milliseconds batch_linger{0};  // how long a call waits for its batch to fill
    bool ordered = false;
};

struct LaneStatus {
    std::string plugin;
    std::string kind;       // the library's plugin name
    std::string version;    // the library's version
    bool loaded = true;     // false: a reload removed it; its deliveries wait for it
    bool isolated = false;  // its calls run in a worker process (isolation: process)
    bool paused = false;
    bool ordered = false;
    uint32_t concurrency = 0;
    uint32_t max_batch = 0;
    size_t due = 0;    // ready to be handed over now
    size_t later = 0;  // waiting for their time (retries, scheduled)
    size_t held = 0;   // waiting behind an earlier delivery with the same ordering key
    size_t in_flight = 0;
    double oldest_due_age_s = 0;  // queue lag
};

class Dispatcher final : public Rescheduler, public CommitListener {
  public:
    Dispatcher(Store& store, const DispatchConfig& config, std::vector<DispatchTarget> targets,
               Logger& log, Metrics& metrics);
    ~Dispatcher() override;  // stop(0) if still running; joins what has returned
    Dispatcher(const Dispatcher&) = delete;
    Dispatcher& operator=(const Dispatcher&) = delete;

    // Loads the paused flags and every pending delivery, then starts the
    // workers. Call before the intake accepts anything. Throws on a store
    // error.
    void start();

    // New deliveries. Never blocks on a plugin.
    void enqueue(std::vector<DeliveryRef>&& refs) noexcept;
    // CommitListener: the deliveries of each committed batch are enqueued
    // (subscribed from construction to destruction).
    void committed(size_t batch_size, std::vector<DeliveryRef>& deliveries) noexcept override;

    // Graceful stop: no new call starts; waits up to `bound` for running
    // calls to end and records their results. True when every call ended;
    // false when some are still running in plugin code (their threads are
    // left alone: the caller must not unload the plugins, and should exit).
    bool stop(std::chrono::milliseconds bound);

    // A reload: the plugins of the new generation. A lane (by plugin name)
    // keeps its queued deliveries and takes the new instance and settings;
    // calls already running finish on the instance they started with. A
    // plugin that is new gets a lane and its pending deliveries from the
    // store; one that is gone keeps its lane, idle, until it comes back.
    // Throws on a store error (reading a new plugin's pending deliveries),
    // and then has changed nothing. Switching ordering on orders what is
    // queued by its keys (deliveries stored while unordered have none).
    void reconfigure(const DispatchConfig& config, std::vector<DispatchTarget> targets);

    // Admin.
    bool has_plugin(std::string_view plugin) const;
    void set_paused(const std::string& plugin, bool paused);  // throws on a store error
    // Dead deliveries back to pending, due now. Returns how many were replayed.
    size_t replay(std::span<const int64_t> ids);
    std::vector<LaneStatus> status() const;
    // Pending deliveries in the store for plugins that are not loaded.
    std::map<std::string, size_t> waiting_for_unloaded() const;
    // The operator's way out: the pending deliveries matching `f` become
    // dead now, with `reason` (a running call's result is then dropped).
    // Returns their ids. Throws on a store error.
    std::vector<int64_t> kill(const KillFilter& f, const std::string& reason);
    // The plugins of the generation in force that could not be loaded, and
    // why: their deliveries wait for them (the Host and the reloader say).
    void set_down(std::map<std::string, std::string> down);
    std::map<std::string, std::string> down() const;
    // What a crash record says about these deliveries (their call was the
    // one the host died in): the poison reason names it.
    void note_crash(std::span<const int64_t> ids, const std::string& reason);

    // Rescheduler (a plugin's deliver_again_at, through StoreServices): the
    // pending delivery of `event_id` to `plugin` is due at `at_ms` instead.
    int32_t deliver_again_at(const std::string& plugin, std::string_view event_id,
                             int64_t at_ms) noexcept override;

    // steady_clock milliseconds when the dispatcher's supervising loop last
    // finished a turn (lease renewal, gauges, overrun checks: every 250 ms);
    // 0 before start(). A loop stuck on a lock or a store call stops it
    // (the systemd watchdog's probe, systemd/Watchdog.h).
    int64_t heartbeat_ms() const { return heartbeat_ms_.load(); }

    struct Lane;  // defined in the .cpp

  private:
    struct Worker;  // one worker thread of a lane, and the call it runs

    void spawn_workers(Lane& lane);
    std::vector<Lane*> lanes() const;
    void worker(Lane& lane, size_t slot, Worker& w);
    void handle(Lane& lane, const DispatchTarget& t, Worker& w, Jitter& jitter,
                std::vector<DeliveryRef>& items);
    void watchdog();
    // Shared stores: every poll_interval, admits the claimable deliveries
    // this host does not hold, and refreshes the paused flags.
    void poller();
    void poll_once();
    void renew_leases(int64_t now);
    void forget_leases(const std::vector<DeliveryRef>& items);  // their calls returned
    Lane* lane(std::string_view plugin) const;

    SystemClock clock_;
    Store& store_;
    DispatchConfig config_;
    Logger& log_;
    Metrics& metrics_;
    mutable std::shared_mutex lanes_mu_;  // lanes are added by reconfigure, never removed
    std::vector<std::unique_ptr<Lane>> lanes_;

    std::mutex admin_mu_;         // serialises pause and resume
    mutable std::mutex mu_;       // guards the members below
    std::condition_variable cv_;  // watchdog ticks, stop waits
    bool started_ = false;
    bool stopping_ = false;
    std::map<std::string, size_t> unloaded_;
    std::map<std::string, std::string> down_;
    std::map<int64_t, std::string> crash_reasons_;
    std::thread watchdog_;
    std::thread poller_;
    int64_t last_renew_ms_ = 0;             // watchdog thread only
    std::set<std::string> waiting_gauges_;  // watchdog thread only
    bool poll_failing_ = false;             // poller thread only
    std::mutex leases_mu_;
    std::unordered_set<int64_t> leased_;  // shared stores: claimed here, call not returned
    std::atomic<size_t> running_calls_{0};
    std::atomic<int64_t> heartbeat_ms_{0};
    std::atomic<int64_t> call_timeout_ms_;
    std::atomic<int64_t> lease_ms_;
    std::atomic<int64_t> poll_ms_;
    std::atomic<int> poison_after_;
};

}  // namespace clayhook
