#pragma once

// The event store as the intake and the admin API see it, independent of the
// engine behind it (SQLite now, PostgreSQL later). Nothing here names an
// engine: dedup is "the same (source, idempotency key) was stored before",
// which SQLite answers with a primary key and PostgreSQL with a unique index.

#include "config/Config.h"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace clayhook {

// One plugin subscribed to a new event: the store writes one delivery row per
// NewDelivery in the event's own transaction, so there is never an event
// without its deliveries.
struct NewDelivery {
    std::string_view plugin;  // the plugin entry's name (must outlive insert())
    std::string order_key;    // "" unless the plugin asked for ordered delivery
};

// One delivery as the intake hands it over. The views point into the request
// and need only stay valid for the duration of insert(): the store copies what
// it keeps before insert() returns.
struct NewEvent {
    std::string_view source;           // the source's config name
    std::string_view type;             // the event type, e.g. "enrichment.completed"
    std::string_view idempotency_key;  // never empty: the intake falls back to sha256(body)
    std::string_view body;             // the raw bytes as received
    int64_t received_at_ms = 0;        // Unix ms; also when the dedup record was first seen
    std::span<const NewDelivery> deliveries = {};  // one row each, same transaction
    // "" = the store draws a new id; else the id the event gets (the intake
    // journal draws it when it acknowledges the delivery, before indexing).
    std::string_view id = {};
};

enum class InsertStatus {
    stored,       // committed (and fsynced when durable): the sender may be answered 200
    duplicate,    // (source, key) was stored before: 200 {"duplicate":true} with its id
    overloaded,   // the insert queue is full: answer 503 and let the sender retry
    unavailable,  // the store could not commit: answer 503; `error` says why
};

// "stored", "duplicate", ...: stable, used as a metric label and in logs.
inline const char* insert_status_name(InsertStatus s) {
    switch (s) {
        case InsertStatus::stored:
            return "stored";
        case InsertStatus::duplicate:
            return "duplicate";
        case InsertStatus::overloaded:
            return "overloaded";
        case InsertStatus::unavailable:
            return "unavailable";
    }
    return "unknown";
}

struct InsertResult {
    InsertStatus status = InsertStatus::unavailable;
    std::string id;     // the new event's id when stored, the existing one's when duplicate
    std::string error;  // why, when overloaded or unavailable; safe to log (no body bytes)
};

struct StoredEvent {
    int64_t seq = 0;  // the store's own order of arrival
    std::string id;
    std::string source;
    std::string type;
    std::string key;  // the idempotency key
    std::string body;
    int64_t received_at_ms = 0;
};

// ---- Deliveries: one per (event, subscribed plugin) ----

enum class DeliveryState { pending = 0, done = 1, dead = 2 };
const char* delivery_state_name(DeliveryState s);  // "pending", "done", "dead"
std::optional<DeliveryState> parse_delivery_state(std::string_view s);

// A pending delivery as the dispatcher schedules it (no body: the worker
// loads the event when it hands it over).
struct DeliveryRef {
    int64_t id = 0;
    int64_t event_seq = 0;
    std::string plugin;
    int64_t due_ms = 0;
    uint32_t attempts = 0;       // finished attempts so far
    int64_t received_at_ms = 0;  // the event's (end-to-end lag counts from it)
    int64_t age_from_ms = 0;     // max_age counts from it: arrival, replay or scheduled time
    std::string order_key;
};

// One finished attempt that did not succeed (done attempts are recorded in
// the delivery row alone, to keep the common case to one write).
struct AttemptRecord {
    uint32_t attempt = 0;
    int64_t started_ms = 0;
    int64_t duration_us = 0;
    std::string outcome;  // "retry", "fail", "timeout" ...
    std::string reason;
};

// The result of one attempt, recorded asynchronously (group-committed with
// the intake's inserts).
struct DeliveryUpdate {
    int64_t delivery_id = 0;
    DeliveryState state = DeliveryState::pending;
    uint32_t attempts = 0;
    int64_t due_ms = 0;       // pending: when it is due again
    int64_t finished_ms = 0;  // done / dead: when
    std::string last_error;
    std::optional<AttemptRecord> attempt;
};

// For the admin API.
struct DeliveryInfo {
    int64_t id = 0;
    std::string event_id;
    std::string event_type;
    std::string plugin;
    DeliveryState state = DeliveryState::pending;
    uint32_t attempts = 0;
    int64_t due_ms = 0;
    int64_t finished_ms = 0;
    int64_t received_at_ms = 0;
    std::string last_error;
    std::string order_key;
    std::string claimed_by;              // the host_id that claimed it last ("" = never claimed)
    int64_t lease_until_ms = 0;          // its claim's lease (0 once a result ended it)
    std::vector<AttemptRecord> history;  // filled by event_deliveries() only
};

struct EventSummary {
    std::string id;
    std::string source;
    std::string type;
    std::string key;
    int64_t received_at_ms = 0;
    int64_t pending = 0, done = 0, dead = 0;  // its deliveries by state
};

struct EventFilter {
    std::string type;                     // "" = any
    int64_t since_ms = 0;                 // received at or after; 0 = any
    int64_t until_ms = 0;                 // received before; 0 = any
    std::optional<DeliveryState> status;  // has a delivery in this state
    std::string before_id;                // paging: ids older than this ("" = newest first)
    size_t limit = 100;
    // "" = any; else the body holds "row_id":"<row_id>" (compact or with one
    // space after the colon): a scan of the bodies, for the admin API only.
    std::string row_id{};
};

struct DeliveryFilter {
    std::optional<DeliveryState> state;
    std::string plugin;     // "" = any
    int64_t before_id = 0;  // paging: ids below this (0 = from the newest)
    size_t limit = 100;
    std::optional<std::string> last_error{};  // exactly this last error (one dead-letter group)
};

// Dead deliveries of one plugin that ended with the same last error.
struct DeadLetterGroup {
    std::string plugin;
    std::string reason;  // the last error
    int64_t count = 0;
    int64_t first_ms = 0, last_ms = 0;  // finished, oldest and newest
};

// Who hears of each committed batch of inserts: the dispatcher (the
// deliveries to queue) and the intake (the batch-size histogram). A listener
// subscribes for as long as it lives (subscribe in its constructor,
// unsubscribe in its destructor), so no caller has to know in which order to
// wire things.
class CommitListener {
  public:
    virtual ~CommitListener() = default;
    // On the committing thread after each committed batch, before the
    // batch's inserts return: its size (stored + duplicate items) and the
    // deliveries it created. A listener may take (move) the deliveries; the
    // ones after it then see none. Must not block.
    virtual void committed(size_t batch_size, std::vector<DeliveryRef>& deliveries) noexcept = 0;
};

// A delivery this host claimed: its attempt is counted in the store before
// the plugin is called, so a call that never reports (the host was killed, a
// plugin crashed it) still counts.
struct ClaimedDelivery {
    int64_t id = 0;
    uint32_t attempts = 0;  // counting this claim's attempt
    // Earlier claims of it that never reported: the process holding them
    // died during the call (a crash, SIGKILL, power loss). Counted by the
    // claim that finds such a claim's lease left behind; a crash record can
    // forgive the bystanders (settle_crash).
    uint32_t lost = 0;
};

// Which pending deliveries an operator marks dead (any that match all the
// given fields; at least one must be given).
struct KillFilter {
    std::vector<int64_t> ids;
    std::string plugin;    // "" = any
    std::string event_id;  // "" = any
    bool any() const { return !ids.empty() || !plugin.empty() || !event_id.empty(); }
};

// The store by role. A collaborator that needs one role takes that role (the
// dedup pruner, the plugins' services); one that needs several, or the
// commit subscriptions, takes the Store. An engine
// implements them all (class Store below). Thread safety: every member may be
// called from any thread at the same time.

// What the intake writes: events, their dedup records and their deliveries.
class IntakeWriter {
  public:
    virtual ~IntakeWriter() = default;

    // Data plane: never throws. Blocks until the event's transaction committed
    // (stored / duplicate) or was refused (overloaded at once when the queue is
    // full, unavailable when the commit failed). Nothing is reported stored
    // unless its transaction committed. Two concurrent inserts of the same
    // (source, key) give exactly one `stored`; the other gets `duplicate` and
    // the first one's id (on every host sharing the store).
    virtual InsertResult insert(const NewEvent& e) noexcept = 0;

    // The result of an insert started by insert_async(). Called exactly once:
    // on a store thread, or inside insert_async() itself when the insert is
    // refused at once (overloaded, closing). It must not block or call back
    // into the store; it hands the result on (the event-loop intake posts it
    // to its loop).
    using InsertDone = std::function<void(InsertResult)>;
    // As insert(), without waiting: the same checks, the same results, the
    // same guarantees (`stored` only once the event's transaction committed
    // and is durable, exactly one `stored` for concurrent copies), delivered
    // to `done`. `e` and everything it points to (NewDelivery::plugin too)
    // must stay valid until `done` is called. Never throws.
    // The default (Store.cpp) is `done(insert(e))`: it blocks the caller for
    // the whole insert, so an engine an event loop writes to overrides it
    // (SqliteStore, PgStore do).
    virtual void insert_async(const NewEvent& e, InsertDone done) noexcept;

    // For /readyz: false after a failed commit (or a lost database
    // connection), true again after the next successful one.
    virtual bool writable() const noexcept = 0;

    // Inserts waiting for the writer (not counting the batch being committed),
    // for /metrics.
    virtual size_t queue_depth() const noexcept = 0;

    // Forgets the dedup records first seen before `older_than` (the events
    // themselves stay), so a key seen again after the retention window is
    // stored anew. Returns how many records were forgotten. Works in small
    // transactions so intake keeps flowing while it runs.
    virtual size_t prune_dedup(std::chrono::system_clock::time_point older_than) = 0;
};

// The delivery ledger: which plugin still has to handle which event, who is
// handling it now (claims and leases), and the results.
class DeliveryLedger {
  public:
    virtual ~DeliveryLedger() = default;

    // Records attempt results. Asynchronous: they are committed with the next
    // group commit, and a crash before that leaves the deliveries pending (so
    // they run again: at-least-once). Each result ends this host's lease on
    // its delivery; a result for a delivery another host has claimed since
    // (this host's lease ran out) is dropped. Blocks only while too many
    // results wait for the writer (backpressure). Never throws.
    virtual void record(std::vector<DeliveryUpdate> updates) noexcept = 0;
    // Waits until every result recorded before the call is committed, and
    // every insert answered before it is in the tables and reported to the
    // listeners (with SQLite's intake journal that happens after insert()
    // returns; otherwise it already has).
    virtual void flush() = 0;

    // Claims deliveries for this host until `lease_until_ms` and counts an
    // attempt on each, durably, before it returns. Returns the ones claimed:
    // those pending, not under another host's unexpired lease, and, for an
    // ordered one (non-empty order_key), with no earlier pending delivery of
    // the same plugin and key. The rest belong to someone else (or are
    // finished): the caller drops them. Throws on a store error.
    virtual std::vector<ClaimedDelivery> claim(std::span<const int64_t> ids,
                                               int64_t lease_until_ms) = 0;
    // Extends this host's leases on `ids` (calls still running). Returns how
    // many it still held. Throws on a store error.
    virtual size_t renew(std::span<const int64_t> ids, int64_t lease_until_ms) = 0;
    // Pending deliveries of `plugins` due before `due_before_ms`, under no
    // live lease and claimable (ordered ones first in their key), oldest due
    // first, at most `limit`: how a host learns of work another host stored
    // and has not claimed, gave up, or left behind when it died.
    virtual std::vector<DeliveryRef> claimable(std::span<const std::string> plugins,
                                               int64_t due_before_ms, size_t limit) = 0;
    // True when several hosts may share this store: the dispatcher then polls
    // claimable(). False for an engine one host holds exclusively.
    virtual bool shared() const noexcept = 0;
    // Who this host is in claims ("claimed_by"): host name, pid and a random
    // suffix unless configured.
    virtual const std::string& owner() const noexcept = 0;

    // Every pending delivery (of `plugin` only, when given), in id order:
    // start-up, crash recovery, a plugin added by a reload.
    virtual void load_pending(const std::function<void(DeliveryRef&&)>& fn,
                              std::string_view plugin = {}) = 0;
    // The events with these seqs (missing ones are left out), any order.
    virtual std::vector<StoredEvent> events_by_seq(std::span<const int64_t> seqs) = 0;

    // Delivers event `event_id` to `plugin` again at `at_ms`: a delivery
    // scheduled this way that is still pending, under no live lease and not
    // in `busy` (the ones being handled here now) is moved to `at_ms`; else a
    // new one is made. So a plugin that asks again after a crash re-ran its
    // call does not end up with two. Durable when it returns. nullopt when
    // there is no such event.
    struct Scheduled {
        DeliveryRef ref;
        bool created = false;  // false: an existing pending one was moved
    };
    virtual std::optional<Scheduled> schedule_again(std::string_view event_id,
                                                    std::string_view plugin, int64_t at_ms,
                                                    std::span<const int64_t> busy) = 0;
    // Dead deliveries back to pending, due now, attempts counted from 0
    // again and max_age from now (their history stays). Deliveries not dead
    // are left alone. Works in transactions of at most 500, so the intake
    // keeps committing in between. Returns the ones replayed.
    virtual std::vector<DeliveryRef> replay(std::span<const int64_t> delivery_ids) = 0;
    virtual std::vector<int64_t> dead_ids(std::string_view plugin, size_t limit) = 0;
    // The operator gives up on dead deliveries: they are deleted with their
    // attempts (ones not dead are left alone). Transactions of at most 500.
    // Returns how many went.
    virtual size_t discard_dead(std::span<const int64_t> delivery_ids) = 0;

    // The operator's way out: the pending deliveries matching `f` become
    // dead now with `reason` as their last error, and their leases end (a
    // result a running call reports later is dropped: results apply to
    // pending deliveries only). Returns the ids marked, in id order.
    virtual std::vector<int64_t> kill_pending(const KillFilter& f, const std::string& reason) = 0;

    // A process that held the claims of `owner` died, and its crash record
    // names the calls it died in (`guilty`): the leases it left end now (so
    // no one waits for them to run out); the guilty keep counting as lost
    // attempts and get `reason` as their last error; the others were only
    // running beside them and are forgiven (their next claim does not count
    // a lost attempt). Their counted attempts stay.
    virtual void settle_crash(const std::string& owner, std::span<const int64_t> guilty,
                              const std::string& reason) = 0;
};

// What one retention pass deleted.
struct PurgeCounts {
    size_t events = 0, deliveries = 0, attempts = 0;
    PurgeCounts& operator+=(const PurgeCounts& o) {
        events += o.events;
        deliveries += o.deliveries;
        attempts += o.attempts;
        return *this;
    }
};

// Retention: the history that may go.
class HistoryPurger {
  public:
    virtual ~HistoryPurger() = default;
    // Deletes the events received before `before_ms` none of whose
    // deliveries is pending, and none dead unless the event was received
    // before `dead_before_ms` too (dead ones are kept longer: an operator may
    // still replay them), with their deliveries and attempts. Walks the
    // events oldest first in small transactions of their own (the intake
    // commits between them) and stops at the first chunk of newer ones.
    // Dedup records are left to prune_dedup (the config keeps the events at
    // least as long as their dedup records). Returns early, between two
    // transactions, once `stop` is requested. Throws on a store error.
    virtual PurgeCounts purge_history(int64_t before_ms, int64_t dead_before_ms,
                                      std::stop_token stop = {}) = 0;
};

// The plugins' own durable state: their key-value entries, and the paused
// flags (shared by every host).
class PluginStateStore {
  public:
    virtual ~PluginStateStore() = default;
    virtual std::optional<std::string> kv_get(std::string_view plugin, std::string_view key) = 0;
    virtual void kv_put(std::string_view plugin, std::string_view key, std::string_view value) = 0;
    virtual bool kv_delete(std::string_view plugin, std::string_view key) = 0;
    virtual std::set<std::string> paused_plugins() = 0;
    virtual void set_paused(std::string_view plugin, bool paused) = 0;
};

// What the admin API and the tests read. May throw std::runtime_error.
class AdminQueries {
  public:
    virtual ~AdminQueries() = default;
    virtual uint64_t event_count() = 0;
    virtual std::optional<StoredEvent> get(std::string_view id) = 0;
    virtual std::vector<EventSummary> list_events(const EventFilter& f) = 0;
    virtual std::vector<DeliveryInfo> event_deliveries(std::string_view event_id) = 0;
    virtual std::vector<DeliveryInfo> list_deliveries(const DeliveryFilter& f) = 0;
    // Deliveries per plugin name: {pending, done, dead} (a full scan: admin only).
    virtual std::vector<std::pair<std::string, std::array<int64_t, 3>>> delivery_counts() = 0;
    // Dead deliveries grouped by (plugin, last error), largest first, at most `limit`.
    virtual std::vector<DeadLetterGroup> dead_letter_groups(size_t limit) = 0;
};

// One engine: every role, and the listeners of committed batches.
class Store : public IntakeWriter,
              public DeliveryLedger,
              public HistoryPurger,
              public PluginStateStore,
              public AdminQueries {
  public:
    ~Store() override = default;

    // What the logs call this store: "sqlite:/abs/path.db" or
    // "postgresql://USER@HOST:PORT/DB" (never a password).
    virtual std::string location() const = 0;

    // For /metrics: the store's size on disk and the space left on its
    // filesystem, in bytes (-1 where the engine cannot say: a PostgreSQL
    // server's disk), and the oldest pending delivery. Never throws.
    struct Usage {
        int64_t bytes = -1;
        int64_t free_bytes = -1;
        // When the event of the oldest pending delivery (by id) arrived, Unix
        // ms; 0 when nothing is pending, -1 when it could not be read.
        int64_t oldest_pending_ms = -1;
        // SQLite with store.journal: deliveries acknowledged and not yet
        // indexed, and the journal's syncs since start; -1 without a journal.
        int64_t journal_backlog = -1;
        int64_t journal_syncs = -1;
        int64_t journal_synced_records = -1;
        int64_t journal_sync_us = -1;  // the time those syncs took, in µs
        // Syncs that took over 1, 5 and 20 ms (Journal::Stats::slow_syncs).
        std::array<int64_t, 3> journal_slow_syncs{-1, -1, -1};
        // SQLite: WAL checkpoints since start, passive passes on the
        // checkpoint thread and RESTARTs on the writer at the WAL's bound,
        // and failed ones; -1 for PostgreSQL.
        int64_t checkpoints = -1;
        int64_t checkpoint_restarts = -1;
        int64_t checkpoint_failures = -1;
    };
    virtual Usage usage() noexcept = 0;

    // Listeners of committed batches, called in subscription order.
    // unsubscribe() waits out a call in progress, so once it returns the
    // listener is never called again and may go.
    void subscribe(CommitListener* listener);
    void unsubscribe(CommitListener* listener);

  protected:
    // For the engines: tells every listener of a committed batch.
    void notify_committed(size_t batch_size, std::vector<DeliveryRef>& deliveries) noexcept;

  private:
    std::mutex listeners_mu_;
    std::vector<CommitListener*> listeners_;
};

// Opens the engine named by config.engine ("sqlite" or "postgres") with an
// insert queue of at most `max_queue` waiting requests. Control plane: throws
// std::runtime_error naming the store (the SQLite path; for PostgreSQL the
// host and database, never the password) and the reason (folder not
// creatable, not a database, WAL unavailable, held by another process,
// server unreachable, unknown engine, max_queue of 0). Defined in
// OpenStore.cpp.
std::unique_ptr<Store> open_store(const StoreConfig& config, size_t max_queue);

// The default owner() of a store: "<hostname>:<pid>:<4 random hex bytes>".
std::string default_store_owner();

// Event ids: "evt_" + 13 lower-case hex digits of Unix ms + 10 hex digits of a
// sequence, 27 characters, URL-safe. Fixed width and lower case make byte
// order equal (ms, sequence) order, so ids sort by time as plain strings (and
// in SQL text indexes). Within one generator ids strictly increase, even when
// the wall clock steps back (the last ms is kept until the clock passes it).
// The sequence starts at a random value below 2^39 in every new ms and counts
// up by one, so two processes (several hosts on one PostgreSQL) collide only
// if they draw the same 39-bit start in the same ms; the store's unique
// constraint on id is the backstop.
//
// Not thread-safe: one owner (the store's writer thread) calls next().
class EventIdGenerator {
  public:
    EventIdGenerator() {
        std::random_device rd;
        std::seed_seq seed{rd(), rd(), rd(), rd()};
        rng_.seed(seed);
    }
    explicit EventIdGenerator(uint64_t seed) : rng_(seed) {}

    std::string next(int64_t now_ms) {
        if (now_ms > last_ms_) {
            last_ms_ = now_ms;
            seq_ = rng_() & kStartMask;
        } else if (++seq_ > kSeqMax) {
            // 2^39 ids in one ms: borrow the next ms rather than wrap, which
            // would break the ordering.
            ++last_ms_;
            seq_ = rng_() & kStartMask;
        }
        std::string id = "evt_";
        id.resize(kLength);
        put_hex(id.data() + 4, static_cast<uint64_t>(last_ms_), 13);
        put_hex(id.data() + 17, seq_, 10);
        return id;
    }

    static constexpr size_t kLength = 27;

  private:
    static void put_hex(char* out, uint64_t v, int digits) {
        static constexpr char kHex[] = "0123456789abcdef";
        for (int i = digits - 1; i >= 0; --i) {
            out[i] = kHex[v & 0xf];
            v >>= 4;
        }
    }
    static constexpr uint64_t kSeqMax = (uint64_t{1} << 40) - 1;
    static constexpr uint64_t kStartMask = (uint64_t{1} << 39) - 1;
    std::mt19937_64 rng_;
    int64_t last_ms_ = 0;  // 0, not -1: ms before the epoch are clamped to it
    uint64_t seq_ = 0;
};

// True when `id` has the shape EventIdGenerator produces: lets the admin API
// refuse garbage before it reaches the store.
inline bool is_event_id(std::string_view id) {
    if (id.size() != EventIdGenerator::kLength || id.substr(0, 4) != "evt_") return false;
    for (char c : id.substr(4)) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

}  // namespace clayhook
