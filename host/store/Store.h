#pragma once

// The event store as the intake and the admin API see it, independent of the
// engine behind it (SQLite now, PostgreSQL later). Nothing here names an
// engine: dedup is "the same (source, idempotency key) was stored before",
// which SQLite answers with a primary key and PostgreSQL with a unique index.

#include "config/Config.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>

namespace clayhook {

// One delivery as the intake hands it over. The views point into the request
// and need only stay valid for the duration of insert(): the store copies what
// it keeps before insert() returns.
struct NewEvent {
    std::string_view source;           // the source's config name
    std::string_view type;             // the event type, e.g. "enrichment.completed"
    std::string_view idempotency_key;  // never empty: the intake falls back to sha256(body)
    std::string_view body;             // the raw bytes as received
    int64_t received_at_ms = 0;        // Unix ms; also when the dedup record was first seen
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
    std::string id;
    std::string source;
    std::string type;
    std::string key;  // the idempotency key
    std::string body;
    int64_t received_at_ms = 0;
};

// Thread safety: every member may be called from any thread at the same time,
// except that on_commit must be set before the first insert.
class Store {
  public:
    virtual ~Store() = default;

    // Data plane: never throws. Blocks until the event's transaction committed
    // (stored / duplicate) or was refused (overloaded at once when the queue is
    // full, unavailable when the commit failed). Nothing is reported stored
    // unless its transaction committed. Two concurrent inserts of the same
    // (source, key) give exactly one `stored`; the other gets `duplicate` and
    // the first one's id.
    virtual InsertResult insert(const NewEvent& e) noexcept = 0;

    // For /readyz: false after a failed commit, true again after the next
    // successful one.
    virtual bool writable() const noexcept = 0;

    // Inserts waiting for the writer (not counting the batch being committed),
    // for /metrics.
    virtual size_t queue_depth() const noexcept = 0;

    // Control plane (tests, admin): these may throw std::runtime_error.
    virtual uint64_t event_count() = 0;
    virtual std::optional<StoredEvent> get(std::string_view id) = 0;

    // Forgets the dedup records first seen before `older_than` (the events
    // themselves stay), so a key seen again after the retention window is
    // stored anew. Returns how many records were forgotten. Works in small
    // transactions so intake keeps flowing while it runs.
    virtual size_t prune_dedup(std::chrono::system_clock::time_point older_than) = 0;

    // Called on the committing thread after each batch with its size (stored +
    // duplicate items), before the batch's inserts return: feeds the
    // commit-batch-size histogram. Must not block; exceptions are swallowed.
    std::function<void(size_t)> on_commit;
};

// Opens the engine named by config.engine ("sqlite" only for now) with an
// insert queue of at most `max_queue` waiting requests. Control plane: throws
// std::runtime_error naming the path and the reason (folder not creatable,
// not a database, WAL unavailable, unknown engine, max_queue of 0).
//
// Defined in SqliteStore.cpp while SQLite is the only engine.
std::unique_ptr<Store> open_store(const StoreConfig& config, size_t max_queue);

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
