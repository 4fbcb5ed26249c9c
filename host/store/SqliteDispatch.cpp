// The SQLite store's dispatch side: deliveries, their results, the plugins'
// key-value store and paused flags, and the admin API's queries. The schema
// and the write path are in SqliteStore.cpp.
#include "store/SqliteStore.h"
#include "store/SqliteUtil.h"

#include <algorithm>
#include <stdexcept>

namespace clayhook {

using namespace sqlite;

const char* delivery_state_name(DeliveryState s) {
    switch (s) {
        case DeliveryState::pending:
            return "pending";
        case DeliveryState::done:
            return "done";
        case DeliveryState::dead:
            return "dead";
    }
    return "unknown";
}

std::optional<DeliveryState> parse_delivery_state(std::string_view s) {
    if (s == "pending") return DeliveryState::pending;
    if (s == "done") return DeliveryState::done;
    if (s == "dead") return DeliveryState::dead;
    return std::nullopt;
}

namespace {

// A statement prepared for one control-plane call.
struct Stmt {
    sqlite3_stmt* s = nullptr;
    Stmt(sqlite3* db, const char* sql) {
        if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK)
            throw std::runtime_error(std::string(sqlite3_errmsg(db)) + " in: " + sql);
    }
    ~Stmt() { sqlite3_finalize(s); }
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;
    operator sqlite3_stmt*() const { return s; }
};

// Steps one row; false at the end; throws on an error.
bool step(sqlite3* db, sqlite3_stmt* s, std::string_view what) {
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw std::runtime_error(describe(db, what));
}

constexpr const char* kRefColumns =
    "SELECT d.id, d.event_seq, d.plugin, d.due_ms, d.attempts, e.received_at_ms, d.order_key,"
    " CASE WHEN d.age_from_ms > 0 THEN d.age_from_ms ELSE e.received_at_ms END"
    " FROM deliveries d JOIN events e ON e.seq = d.event_seq";

DeliveryRef read_ref(sqlite3_stmt* s) {
    DeliveryRef r;
    r.id = sqlite3_column_int64(s, 0);
    r.event_seq = sqlite3_column_int64(s, 1);
    r.plugin = column_view(s, 2);
    r.due_ms = sqlite3_column_int64(s, 3);
    r.attempts = static_cast<uint32_t>(sqlite3_column_int64(s, 4));
    r.received_at_ms = sqlite3_column_int64(s, 5);
    r.order_key = column_view(s, 6);
    r.age_from_ms = sqlite3_column_int64(s, 7);
    return r;
}

constexpr const char* kInfoColumns =
    "SELECT d.id, e.id, e.type, d.plugin, d.state, d.attempts, d.due_ms, d.finished_ms,"
    " e.received_at_ms, d.last_error, d.order_key"
    " FROM deliveries d JOIN events e ON e.seq = d.event_seq";

DeliveryInfo read_info(sqlite3_stmt* s) {
    DeliveryInfo d;
    d.id = sqlite3_column_int64(s, 0);
    d.event_id = column_view(s, 1);
    d.event_type = column_view(s, 2);
    d.plugin = column_view(s, 3);
    d.state = static_cast<DeliveryState>(sqlite3_column_int(s, 4));
    d.attempts = static_cast<uint32_t>(sqlite3_column_int64(s, 5));
    d.due_ms = sqlite3_column_int64(s, 6);
    d.finished_ms = sqlite3_column_int64(s, 7);
    d.received_at_ms = sqlite3_column_int64(s, 8);
    d.last_error = column_view(s, 9);
    d.order_key = column_view(s, 10);
    return d;
}

int state_or(const std::optional<DeliveryState>& s) {
    return s ? static_cast<int>(*s) : -1;
}

}  // namespace

void SqliteStore::write_txn(const std::string& what, const std::function<void(sqlite3*)>& fn) {
    run_on_writer([&] {
        sqlite3* db = wdb_.get();
        std::string error;
        if (!run(db, begin_.get(), "begin transaction", error)) {
            writable_.store(false, std::memory_order_relaxed);
            throw std::runtime_error(what + " in " + path_ + ": " + error);
        }
        try {
            fn(db);
        } catch (...) {
            rollback_if_open();
            throw;
        }
        if (!run(db, commit_.get(), "commit", error)) {
            rollback_if_open();
            writable_.store(false, std::memory_order_relaxed);
            throw std::runtime_error(what + " in " + path_ + ": " + error);
        }
        writable_.store(true, std::memory_order_relaxed);
    });
}

void SqliteStore::load_pending(const std::function<void(DeliveryRef&&)>& fn,
                               std::string_view plugin) {
    static const std::string sql =
        std::string(kRefColumns) +
        " WHERE d.state = 0 AND (?1 = '' OR d.plugin = ?1) ORDER BY d.id";
    auto r = reader();
    sqlite3_stmt* s = r->stmt(sql.c_str());
    bind_text(s, 1, plugin);
    while (step(r.db(), s, "load pending deliveries from " + path_))
        fn(read_ref(s));
}

std::optional<Store::Scheduled> SqliteStore::schedule_again(std::string_view event_id,
                                                            std::string_view plugin, int64_t at_ms,
                                                            std::span<const int64_t> busy) {
    std::optional<Scheduled> out;
    write_txn("schedule a delivery", [&](sqlite3* db) {
        out.reset();
        Stmt find(db, "SELECT seq, received_at_ms FROM events WHERE id = ?1");
        bind_text(find, 1, event_id);
        if (!step(db, find, "find the event")) return;
        Scheduled sch;
        DeliveryRef& ref = sch.ref;
        ref.event_seq = sqlite3_column_int64(find, 0);
        ref.received_at_ms = sqlite3_column_int64(find, 1);
        ref.plugin = plugin;
        ref.due_ms = at_ms;
        ref.age_from_ms = at_ms;
        // One pending scheduled delivery per (event, plugin), not counting
        // the ones being handled (their result decides their own fate).
        Stmt pending(db,
                     "SELECT id FROM deliveries WHERE event_seq = ?1 AND plugin = ?2"
                     " AND scheduled = 1 AND state = 0 ORDER BY id");
        sqlite3_bind_int64(pending, 1, ref.event_seq);
        bind_text(pending, 2, plugin);
        while (step(db, pending, "find a scheduled delivery")) {
            int64_t id = sqlite3_column_int64(pending, 0);
            if (std::find(busy.begin(), busy.end(), id) != busy.end()) continue;
            ref.id = id;
            break;
        }
        if (ref.id != 0) {
            Stmt move(db,
                      "UPDATE deliveries SET due_ms = ?2, age_from_ms = ?2, attempts = 0"
                      " WHERE id = ?1");
            sqlite3_bind_int64(move, 1, ref.id);
            sqlite3_bind_int64(move, 2, at_ms);
            step(db, move, "move a scheduled delivery");
            out = std::move(sch);
            return;
        }
        Stmt ins(db,
                 "INSERT INTO deliveries(event_seq, plugin, state, due_ms, attempts, scheduled,"
                 " age_from_ms, finished_ms, order_key, last_error)"
                 " VALUES(?1, ?2, 0, ?3, 0, 1, ?3, 0, '', '')");
        sqlite3_bind_int64(ins, 1, ref.event_seq);
        bind_text(ins, 2, plugin);
        sqlite3_bind_int64(ins, 3, at_ms);
        step(db, ins, "insert a scheduled delivery");
        ref.id = sqlite3_last_insert_rowid(db);
        sch.created = true;
        out = std::move(sch);
    });
    return out;
}

std::vector<DeliveryRef> SqliteStore::replay(std::span<const int64_t> delivery_ids) {
    std::vector<DeliveryRef> out;
    const int64_t now = now_ms();
    constexpr size_t kChunk = 500;
    for (size_t from = 0; from < delivery_ids.size(); from += kChunk) {
        auto chunk = delivery_ids.subspan(from, std::min(kChunk, delivery_ids.size() - from));
        std::vector<DeliveryRef> got;
        write_txn("replay deliveries", [&](sqlite3* db) {
            got.clear();
            Stmt upd(db,
                     "UPDATE deliveries SET state = 0, attempts = 0, due_ms = ?2, age_from_ms = ?2,"
                     " finished_ms = 0 WHERE id = ?1 AND state = 2");
            static const std::string sql = std::string(kRefColumns) + " WHERE d.id = ?1";
            Stmt get(db, sql.c_str());
            for (int64_t id : chunk) {
                sqlite3_reset(upd);
                sqlite3_bind_int64(upd, 1, id);
                sqlite3_bind_int64(upd, 2, now);
                step(db, upd, "replay a delivery");
                if (sqlite3_changes(db) != 1) continue;
                sqlite3_reset(get);
                sqlite3_bind_int64(get, 1, id);
                if (step(db, get, "read a replayed delivery")) got.push_back(read_ref(get));
            }
        });
        for (auto& r : got)
            out.push_back(std::move(r));
    }
    return out;
}

std::vector<int64_t> SqliteStore::dead_ids(std::string_view plugin, size_t limit) {
    auto r = reader();
    sqlite3_stmt* s = r->stmt(
        "SELECT id FROM deliveries WHERE state = 2 AND (?1 = '' OR plugin = ?1) ORDER BY id"
        " LIMIT ?2");
    bind_text(s, 1, plugin);
    sqlite3_bind_int64(s, 2, static_cast<int64_t>(limit));
    std::vector<int64_t> out;
    while (step(r.db(), s, "list dead deliveries"))
        out.push_back(sqlite3_column_int64(s, 0));
    return out;
}

std::optional<std::string> SqliteStore::kv_get(std::string_view plugin, std::string_view key) {
    auto r = reader();
    sqlite3_stmt* s = r->stmt("SELECT value FROM kv WHERE plugin = ?1 AND key = ?2");
    bind_text(s, 1, plugin);
    bind_blob(s, 2, key);
    if (!step(r.db(), s, "read a plugin value from " + path_)) return std::nullopt;
    return std::string(column_view(s, 0));
}

void SqliteStore::kv_put(std::string_view plugin, std::string_view key, std::string_view value) {
    write_txn("store a plugin value", [&](sqlite3* db) {
        Stmt s(db, "INSERT OR REPLACE INTO kv(plugin, key, value) VALUES(?1, ?2, ?3)");
        bind_text(s, 1, plugin);
        bind_blob(s, 2, key);
        bind_blob(s, 3, value);
        step(db, s, "store a plugin value");
    });
}

bool SqliteStore::kv_delete(std::string_view plugin, std::string_view key) {
    bool found = false;
    write_txn("delete a plugin value", [&](sqlite3* db) {
        Stmt s(db, "DELETE FROM kv WHERE plugin = ?1 AND key = ?2");
        bind_text(s, 1, plugin);
        bind_blob(s, 2, key);
        step(db, s, "delete a plugin value");
        found = sqlite3_changes(db) > 0;
    });
    return found;
}

std::set<std::string> SqliteStore::paused_plugins() {
    auto r = reader();
    sqlite3_stmt* s = r->stmt("SELECT plugin FROM plugin_state WHERE paused = 1");
    std::set<std::string> out;
    while (step(r.db(), s, "read paused plugins"))
        out.emplace(column_view(s, 0));
    return out;
}

void SqliteStore::set_paused(std::string_view plugin, bool paused) {
    write_txn(paused ? "pause a plugin" : "resume a plugin", [&](sqlite3* db) {
        Stmt s(db, "INSERT OR REPLACE INTO plugin_state(plugin, paused) VALUES(?1, ?2)");
        bind_text(s, 1, plugin);
        sqlite3_bind_int(s, 2, paused ? 1 : 0);
        step(db, s, "store the paused flag");
    });
}

std::vector<EventSummary> SqliteStore::list_events(const EventFilter& f) {
    auto r = reader();
    sqlite3_stmt* s = r->stmt(
        "SELECT e.id, e.source, e.type, e.idempotency_key, e.received_at_ms,"
        " (SELECT count(*) FROM deliveries d WHERE d.event_seq = e.seq AND d.state = 0),"
        " (SELECT count(*) FROM deliveries d WHERE d.event_seq = e.seq AND d.state = 1),"
        " (SELECT count(*) FROM deliveries d WHERE d.event_seq = e.seq AND d.state = 2)"
        " FROM events e"
        " WHERE (?1 = '' OR e.type = ?1) AND (?2 = 0 OR e.received_at_ms >= ?2)"
        " AND (?3 = 0 OR e.received_at_ms < ?3)"
        " AND (?4 < 0 OR EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq"
        " AND d.state = ?4))"
        " AND (?5 = '' OR e.id < ?5)"
        " ORDER BY e.id DESC LIMIT ?6");
    bind_text(s, 1, f.type);
    sqlite3_bind_int64(s, 2, f.since_ms);
    sqlite3_bind_int64(s, 3, f.until_ms);
    sqlite3_bind_int(s, 4, state_or(f.status));
    bind_text(s, 5, f.before_id);
    sqlite3_bind_int64(s, 6, static_cast<int64_t>(f.limit));
    std::vector<EventSummary> out;
    while (step(r.db(), s, "list events")) {
        EventSummary e;
        e.id = column_view(s, 0);
        e.source = column_view(s, 1);
        e.type = column_view(s, 2);
        e.key = column_view(s, 3);
        e.received_at_ms = sqlite3_column_int64(s, 4);
        e.pending = sqlite3_column_int64(s, 5);
        e.done = sqlite3_column_int64(s, 6);
        e.dead = sqlite3_column_int64(s, 7);
        out.push_back(std::move(e));
    }
    return out;
}

std::vector<DeliveryInfo> SqliteStore::event_deliveries(std::string_view event_id) {
    static const std::string sql = std::string(kInfoColumns) + " WHERE e.id = ?1 ORDER BY d.id";
    auto r = reader();
    ReadTxn txn(r.db());  // one snapshot for the deliveries and their attempts
    sqlite3_stmt* s = r->stmt(sql.c_str());
    bind_text(s, 1, event_id);
    std::vector<DeliveryInfo> out;
    while (step(r.db(), s, "read an event's deliveries"))
        out.push_back(read_info(s));
    sqlite3_reset(s);
    sqlite3_stmt* a = r->stmt(
        "SELECT attempt, started_ms, duration_us, outcome, reason FROM attempts"
        " WHERE delivery_id = ?1 ORDER BY rowid");
    for (auto& d : out) {
        sqlite3_reset(a);
        sqlite3_bind_int64(a, 1, d.id);
        while (step(r.db(), a, "read attempts")) {
            AttemptRecord rec;
            rec.attempt = static_cast<uint32_t>(sqlite3_column_int64(a, 0));
            rec.started_ms = sqlite3_column_int64(a, 1);
            rec.duration_us = sqlite3_column_int64(a, 2);
            rec.outcome = column_view(a, 3);
            rec.reason = column_view(a, 4);
            d.history.push_back(std::move(rec));
        }
    }
    sqlite3_reset(a);
    return out;
}

std::vector<DeliveryInfo> SqliteStore::list_deliveries(const DeliveryFilter& f) {
    static const std::string sql = std::string(kInfoColumns) +
                                   " WHERE (?1 < 0 OR d.state = ?1) AND (?2 = '' OR d.plugin = ?2)"
                                   " AND (?3 = 0 OR d.id < ?3) ORDER BY d.id DESC LIMIT ?4";
    auto r = reader();
    sqlite3_stmt* s = r->stmt(sql.c_str());
    sqlite3_bind_int(s, 1, state_or(f.state));
    bind_text(s, 2, f.plugin);
    sqlite3_bind_int64(s, 3, f.before_id);
    sqlite3_bind_int64(s, 4, static_cast<int64_t>(f.limit));
    std::vector<DeliveryInfo> out;
    while (step(r.db(), s, "list deliveries"))
        out.push_back(read_info(s));
    return out;
}

std::vector<std::pair<std::string, std::array<int64_t, 3>>> SqliteStore::delivery_counts() {
    auto r = reader();
    sqlite3_stmt* s = r->stmt(
        "SELECT plugin, state, count(*) FROM deliveries GROUP BY plugin, state ORDER BY plugin");
    std::vector<std::pair<std::string, std::array<int64_t, 3>>> out;
    while (step(r.db(), s, "count deliveries")) {
        std::string plugin(column_view(s, 0));
        int state = sqlite3_column_int(s, 1);
        if (out.empty() || out.back().first != plugin) out.push_back({plugin, {0, 0, 0}});
        if (state >= 0 && state < 3)
            out.back().second[static_cast<size_t>(state)] = sqlite3_column_int64(s, 2);
    }
    return out;
}

}  // namespace clayhook
