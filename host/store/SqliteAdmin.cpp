// The admin API's queries on the SQLite store: events, deliveries with their
// attempts, counts per plugin.
#include "store/SqliteStore.h"
#include "store/SqliteUtil.h"
#include "store/StoreQueries.h"

#include <algorithm>

namespace clayhook {

using namespace store_sql;
using namespace sqlite;

namespace {

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
    d.claimed_by = column_view(s, 11);
    d.lease_until_ms = sqlite3_column_int64(s, 12);
    return d;
}

int state_or(const std::optional<DeliveryState>& s) {
    return s ? static_cast<int>(*s) : -1;
}

}  // namespace

std::vector<EventSummary> SqliteStore::list_events(const EventFilter& f) {
    // Records still in the intake journal are listed too. Taken before the
    // tables are read: one that is indexed in between shows in both, once.
    std::vector<EventSummary> unindexed;
    if (journal_) {
        const auto [compact, spaced] = row_id_patterns(f.row_id);
        journal_->visit_newest([&](const journal::Record& rec) {
            const bool pending = !rec.deliveries.empty();
            if ((!f.type.empty() && rec.type != f.type) ||
                (f.since_ms != 0 && rec.received_at_ms < f.since_ms) ||
                (f.until_ms != 0 && rec.received_at_ms >= f.until_ms) ||
                (f.status && !(*f.status == DeliveryState::pending && pending)) ||
                (!f.before_id.empty() && rec.id >= f.before_id) ||
                (!f.row_id.empty() && rec.body.find(compact) == std::string::npos &&
                 rec.body.find(spaced) == std::string::npos))
                return true;
            EventSummary e;
            e.id = rec.id;
            e.source = rec.source;
            e.type = rec.type;
            e.key = rec.key;
            e.received_at_ms = rec.received_at_ms;
            e.pending = static_cast<int64_t>(rec.deliveries.size());
            unindexed.push_back(std::move(e));
            return unindexed.size() < f.limit;
        });
    }
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
        " AND (?7 = '' OR instr(e.body, ?7) > 0 OR instr(e.body, ?8) > 0)"
        " ORDER BY e.id DESC LIMIT ?6");
    bind_text(s, 1, f.type);
    sqlite3_bind_int64(s, 2, f.since_ms);
    sqlite3_bind_int64(s, 3, f.until_ms);
    sqlite3_bind_int(s, 4, state_or(f.status));
    bind_text(s, 5, f.before_id);
    sqlite3_bind_int64(s, 6, static_cast<int64_t>(f.limit));
    const auto [compact, spaced] = row_id_patterns(f.row_id);
    bind_blob(s, 7, compact);
    bind_blob(s, 8, spaced);
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
    if (unindexed.empty()) return out;
    for (auto& e : out)
        if (std::none_of(unindexed.begin(), unindexed.end(),
                         [&](const EventSummary& u) { return u.id == e.id; }))
            unindexed.push_back(std::move(e));
    std::sort(unindexed.begin(), unindexed.end(),
              [](const EventSummary& a, const EventSummary& b) { return a.id > b.id; });
    if (unindexed.size() > f.limit) unindexed.resize(f.limit);
    return unindexed;
}

std::vector<DeliveryInfo> SqliteStore::event_deliveries(std::string_view event_id) {
    std::vector<DeliveryInfo> out = event_deliveries_indexed(event_id);
    // None in the tables: an event the intake journal still holds is indexed,
    // and read again.
    if (out.empty() && index_journal_first(event_id)) out = event_deliveries_indexed(event_id);
    return out;
}

std::vector<DeliveryInfo> SqliteStore::event_deliveries_indexed(std::string_view event_id) {
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
                                   " AND (?3 = 0 OR d.id < ?3) AND (?5 = 0 OR d.last_error = ?6)"
                                   " ORDER BY d.id DESC LIMIT ?4";
    auto r = reader();
    sqlite3_stmt* s = r->stmt(sql.c_str());
    sqlite3_bind_int(s, 1, state_or(f.state));
    bind_text(s, 2, f.plugin);
    sqlite3_bind_int64(s, 3, f.before_id);
    sqlite3_bind_int64(s, 4, static_cast<int64_t>(f.limit));
    sqlite3_bind_int(s, 5, f.last_error ? 1 : 0);
    const std::string last_error = f.last_error.value_or("");  // bound without a copy
    bind_text(s, 6, last_error);
    std::vector<DeliveryInfo> out;
    while (step(r.db(), s, "list deliveries"))
        out.push_back(read_info(s));
    return out;
}

std::vector<std::pair<std::string, std::array<int64_t, 3>>> SqliteStore::delivery_counts() {
    // What the intake journal holds counts too: indexed first, waiting a
    // second at most (an indexer that cannot write must not hold up the
    // admin API; the counts then leave those records out).
    if (journal_) journal_->drain(std::chrono::seconds(1));
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

std::vector<DeadLetterGroup> SqliteStore::dead_letter_groups(size_t limit) {
    auto r = reader();
    sqlite3_stmt* s = r->stmt(
        "SELECT plugin, last_error, count(*), min(finished_ms), max(finished_ms) FROM deliveries"
        " WHERE state = 2 GROUP BY plugin, last_error ORDER BY 3 DESC, 1 LIMIT ?1");
    sqlite3_bind_int64(s, 1, static_cast<int64_t>(limit));
    std::vector<DeadLetterGroup> out;
    while (step(r.db(), s, "group dead deliveries"))
        out.push_back({std::string(column_view(s, 0)), std::string(column_view(s, 1)),
                       sqlite3_column_int64(s, 2), sqlite3_column_int64(s, 3),
                       sqlite3_column_int64(s, 4)});
    return out;
}

}  // namespace clayhook
