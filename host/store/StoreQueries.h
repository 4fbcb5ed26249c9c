#pragma once

// The SELECT heads both engines read rows with: the same tables and columns
// in SQLite and PostgreSQL, in the order each engine's row readers
// (read_ref, read_event, read_info) take them. Each engine appends its own
// WHERE clause, in its own placeholder syntax. Internal to host/store.

#include <string>
#include <string_view>
#include <utility>

namespace clayhook::store_sql {

// What EventFilter::row_id looks for in a body: "row_id":"X" and
// "row_id": "X", with X's quotes and backslashes escaped as JSON writes
// them. Both "" when row_id is empty (no filter).
inline std::pair<std::string, std::string> row_id_patterns(std::string_view row_id) {
    if (row_id.empty()) return {};
    std::string v;
    for (char c : row_id) {
        if (c == '"' || c == '\\') v += '\\';
        v += c;
    }
    return {"\"row_id\":\"" + v + "\"", "\"row_id\": \"" + v + "\""};
}

// A DeliveryRef: max_age counts from age_from_ms, or from arrival when 0.
inline constexpr const char* kRefColumns =
    "SELECT d.id, d.event_seq, d.plugin, d.due_ms, d.attempts, e.received_at_ms, d.order_key,"
    " CASE WHEN d.age_from_ms > 0 THEN d.age_from_ms ELSE e.received_at_ms END"
    " FROM deliveries d JOIN events e ON e.seq = d.event_seq";

// A StoredEvent.
inline constexpr const char* kEventColumns =
    "SELECT seq, id, source, type, idempotency_key, received_at_ms, body FROM events";

// A DeliveryInfo (the admin API's view).
inline constexpr const char* kInfoColumns =
    "SELECT d.id, e.id, e.type, d.plugin, d.state, d.attempts, d.due_ms, d.finished_ms,"
    " e.received_at_ms, d.last_error, d.order_key, d.claimed_by, d.lease_until_ms"
    " FROM deliveries d JOIN events e ON e.seq = d.event_seq";

}  // namespace clayhook::store_sql
