// The SQLite store's dispatch side: deliveries, their results, the plugins'
// key-value store and paused flags, and the admin API's queries. The schema
// and the write path are in SqliteStore.cpp.
#include "store/SqliteStore.h"
#include "store/SqliteUtil.h"
#include "store/StoreQueries.h"

#include <algorithm>
#include <stdexcept>

namespace clayhook {

using namespace store_sql;
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

}  // namespace

SqliteStore::LazySync::LazySync(SqliteStore& s) : s_(s) {
    if (s_.durable_)
        sqlite3_exec(s_.wdb_.get(), "PRAGMA synchronous=NORMAL", nullptr, nullptr, nullptr);
}

SqliteStore::LazySync::~LazySync() {
    if (!s_.durable_) return;
    // SQLite refuses to change the level inside a transaction: one left open
    // by an exception would keep the writer at NORMAL for the commits after.
    s_.rollback_if_open();
    sqlite3_exec(s_.wdb_.get(), "PRAGMA synchronous=FULL", nullptr, nullptr, nullptr);
}

void SqliteStore::write_txn(const std::string& what, const std::function<void(sqlite3*)>& fn,
                            bool deletion_only) {
    run_on_writer([&] {
        std::optional<LazySync> lazy;
        if (deletion_only) lazy.emplace(*this);
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

std::vector<ClaimedDelivery> SqliteStore::claim(std::span<const int64_t> ids,
                                                int64_t lease_until_ms) {
    if (ids.empty()) return {};
    GroupCommit::Claim c;
    c.ids = ids;
    c.now_ms = now_ms();
    c.lease_until_ms = lease_until_ms;
    gc_->claim(c);  // rides in the next group commit, with the intake's inserts
    if (c.failed) throw std::runtime_error("claim deliveries in " + path_ + ": " + c.error);
    return std::move(c.claimed);
}

size_t SqliteStore::renew(std::span<const int64_t> ids, int64_t lease_until_ms) {
    size_t held = 0;
    if (ids.empty()) return 0;
    write_txn("renew delivery leases", [&](sqlite3* db) {
        held = 0;
        Stmt s(db,
               "UPDATE deliveries SET lease_until_ms = ?2"
               " WHERE id = ?1 AND state = 0 AND claimed_by = ?3");
        for (int64_t id : ids) {
            sqlite3_reset(s);
            sqlite3_bind_int64(s, 1, id);
            sqlite3_bind_int64(s, 2, lease_until_ms);
            bind_text(s, 3, owner_);
            step(db, s, "renew a lease");
            held += static_cast<size_t>(sqlite3_changes(db));
        }
    });
    return held;
}

std::vector<DeliveryRef> SqliteStore::claimable(std::span<const std::string> plugins,
                                                int64_t due_before_ms, size_t limit) {
    static const std::string sql =
        std::string(kRefColumns) +
        " WHERE d.state = 0 AND d.plugin = ?1 AND d.due_ms <= ?2 AND d.lease_until_ms <= ?4"
        " AND (d.order_key = '' OR NOT EXISTS (SELECT 1 FROM deliveries o"
        " WHERE o.plugin = d.plugin AND o.order_key = d.order_key AND o.state = 0"
        " AND o.id <> d.id AND (o.id < d.id OR o.lease_until_ms > ?4)))"
        " ORDER BY d.due_ms, d.id LIMIT ?3";
    std::vector<DeliveryRef> out;
    const int64_t now = now_ms();
    auto r = reader();
    sqlite3_stmt* s = r->stmt(sql.c_str());
    ReadTxn txn(r.db());
    for (const std::string& plugin : plugins) {
        sqlite3_reset(s);
        bind_text(s, 1, plugin);
        sqlite3_bind_int64(s, 2, due_before_ms);
        sqlite3_bind_int64(s, 3, static_cast<int64_t>(limit));
        sqlite3_bind_int64(s, 4, now);
        while (step(r.db(), s, "list claimable deliveries in " + path_))
            out.push_back(read_ref(s));
    }
    sqlite3_reset(s);
    std::sort(out.begin(), out.end(), [](const DeliveryRef& a, const DeliveryRef& b) {
        return a.due_ms != b.due_ms ? a.due_ms < b.due_ms : a.id < b.id;
    });
    if (out.size() > limit) out.resize(limit);
    return out;
}

std::optional<Store::Scheduled> SqliteStore::schedule_again(std::string_view event_id,
                                                            std::string_view plugin, int64_t at_ms,
                                                            std::span<const int64_t> busy) {
    // Tried against the tables first; an event the intake journal still
    // holds is indexed, and tried again.
    auto out = schedule_again_indexed(event_id, plugin, at_ms, busy);
    if (!out && index_journal_first(event_id))
        out = schedule_again_indexed(event_id, plugin, at_ms, busy);
    return out;
}

std::optional<Store::Scheduled> SqliteStore::schedule_again_indexed(std::string_view event_id,
                                                                    std::string_view plugin,
                                                                    int64_t at_ms,
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
                     " AND scheduled = 1 AND state = 0 AND lease_until_ms <= ?3 ORDER BY id");
        sqlite3_bind_int64(pending, 1, ref.event_seq);
        bind_text(pending, 2, plugin);
        sqlite3_bind_int64(pending, 3, now_ms());
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
                     "UPDATE deliveries SET state = 0, attempts = 0, lost_attempts = 0,"
                     " due_ms = ?2, age_from_ms = ?2, finished_ms = 0, lease_until_ms = 0"
                     " WHERE id = ?1 AND state = 2");
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

size_t SqliteStore::discard_dead(std::span<const int64_t> delivery_ids) {
    size_t total = 0;
    constexpr size_t kChunk = 500;
    for (size_t from = 0; from < delivery_ids.size(); from += kChunk) {
        auto chunk = delivery_ids.subspan(from, std::min(kChunk, delivery_ids.size() - from));
        write_txn("discard dead deliveries", [&](sqlite3* db) {
            Stmt del(db, "DELETE FROM deliveries WHERE id = ?1 AND state = 2");
            Stmt att(db, "DELETE FROM attempts WHERE delivery_id = ?1");
            for (int64_t id : chunk) {
                sqlite3_reset(del);
                sqlite3_bind_int64(del, 1, id);
                step(db, del, "discard a dead delivery");
                if (sqlite3_changes(db) != 1) continue;
                ++total;
                sqlite3_reset(att);
                sqlite3_bind_int64(att, 1, id);
                step(db, att, "discard its attempts");
            }
        });
    }
    return total;
}

std::vector<int64_t> SqliteStore::kill_pending(const KillFilter& f, const std::string& reason) {
    if (!f.any()) throw std::invalid_argument("kill_pending: no filter given");
    // A delivery the intake journal still holds is killed too: indexed
    // first. An indexer that cannot catch up fails the kill (the caller
    // answers 503) rather than leave those deliveries alive unsaid.
    if (journal_ && !journal_->drain())
        throw std::runtime_error("kill: the intake journal's records could not be indexed (" +
                                 path_ +
                                 ": the indexer failed, see the log, or 30 s passed); nothing "
                                 "was marked dead, try again");
    // Chunks of 500 in transactions of their own, like replay, so the intake
    // commits in between. With ids, each is looked up by its key; else the
    // pending ones of the plugin or the event are walked in id order.
    constexpr size_t kChunk = 500;
    static const char* kUpdate =
        "UPDATE deliveries SET state = 2, finished_ms = ?2, last_error = ?3, lease_until_ms = 0"
        " WHERE id = ?1 AND state = 0 AND (?4 = '' OR plugin = ?4)"
        " AND (?5 = '' OR event_seq = (SELECT seq FROM events WHERE id = ?5))";
    std::vector<int64_t> out;
    auto mark = [&](sqlite3* db, Stmt& upd, int64_t id, int64_t now, std::vector<int64_t>& got) {
        sqlite3_reset(upd);
        sqlite3_bind_int64(upd, 1, id);
        sqlite3_bind_int64(upd, 2, now);
        bind_text(upd, 3, reason);
        bind_text(upd, 4, f.plugin);
        bind_text(upd, 5, f.event_id);
        step(db, upd, "mark a delivery dead");
        if (sqlite3_changes(db) == 1) got.push_back(id);
    };
    if (!f.ids.empty()) {
        std::vector<int64_t> ids = f.ids;
        std::sort(ids.begin(), ids.end());
        ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
        for (size_t from = 0; from < ids.size(); from += kChunk) {
            std::vector<int64_t> got;
            write_txn("mark deliveries dead", [&](sqlite3* db) {
                got.clear();
                Stmt upd(db, kUpdate);
                const int64_t now = now_ms();
                for (size_t k = from; k < std::min(ids.size(), from + kChunk); ++k)
                    mark(db, upd, ids[k], now, got);
            });
            out.insert(out.end(), got.begin(), got.end());
        }
        return out;
    }
    int64_t after = 0;
    for (;;) {
        std::vector<int64_t> got;
        size_t seen = 0;
        write_txn("mark deliveries dead", [&](sqlite3* db) {
            got.clear();
            seen = 0;
            std::vector<int64_t> batch;
            {
                Stmt find(db,
                          "SELECT d.id FROM deliveries d JOIN events e ON e.seq = d.event_seq"
                          " WHERE d.state = 0 AND d.id > ?1 AND (?2 = '' OR d.plugin = ?2)"
                          " AND (?3 = '' OR e.id = ?3) ORDER BY d.id LIMIT ?4");
                sqlite3_bind_int64(find, 1, after);
                bind_text(find, 2, f.plugin);
                bind_text(find, 3, f.event_id);
                sqlite3_bind_int64(find, 4, static_cast<int64_t>(kChunk));
                while (step(db, find, "find deliveries to mark dead"))
                    batch.push_back(sqlite3_column_int64(find, 0));
            }
            seen = batch.size();
            Stmt upd(db, kUpdate);
            const int64_t now = now_ms();
            for (int64_t id : batch)
                mark(db, upd, id, now, got);
            if (!batch.empty()) after = batch.back();
        });
        out.insert(out.end(), got.begin(), got.end());
        if (seen < kChunk) break;
    }
    return out;
}

void SqliteStore::settle_crash(const std::string& owner, std::span<const int64_t> guilty,
                               const std::string& reason) {
    write_txn("settle a crash", [&](sqlite3* db) {
        // The guilty first: their marker stays (their next claim counts
        // the lost attempt), with the crash as their last error.
        Stmt mark(db,
                  "UPDATE deliveries SET last_error = ?2, lease_until_ms = 1"
                  " WHERE id = ?1 AND state = 0 AND claimed_by = ?3 AND lease_until_ms <> 0");
        for (int64_t id : guilty) {
            sqlite3_reset(mark);
            sqlite3_bind_int64(mark, 1, id);
            bind_text(mark, 2, reason);
            bind_text(mark, 3, owner);
            step(db, mark, "mark a crashed call");
        }
        // The bystanders: forgiven.
        std::vector<int64_t> left;
        {
            Stmt find(db,
                      "SELECT id FROM deliveries"
                      " WHERE state = 0 AND claimed_by = ?1 AND lease_until_ms <> 0");
            bind_text(find, 1, owner);
            while (step(db, find, "find the calls beside a crash"))
                left.push_back(sqlite3_column_int64(find, 0));
        }
        Stmt forgive(db, "UPDATE deliveries SET lease_until_ms = 0 WHERE id = ?1");
        for (int64_t id : left) {
            if (std::find(guilty.begin(), guilty.end(), id) != guilty.end()) continue;
            sqlite3_reset(forgive);
            sqlite3_bind_int64(forgive, 1, id);
            step(db, forgive, "forgive a call beside a crash");
        }
    });
}

}  // namespace clayhook
