// Retention on the SQLite store: old finished history deleted in small
// transactions, each one job on the writer thread, so the intake's group
// commits run between them.
//
// The freed pages go to the file's free list and the next inserts reuse them
// (auto_vacuum stays off: incremental vacuum would add pointer-map writes to
// every insert), so under a steady load the file grows to its high-water mark
// and then stays there; `clayhook backup` writes a compacted copy.
#include "store/SqliteStore.h"
#include "store/SqliteUtil.h"

namespace clayhook {

using namespace sqlite;

PurgeCounts SqliteStore::purge_history(int64_t before_ms, int64_t dead_before_ms,
                                       std::stop_token stop) {
    PurgeCounts total;
    int64_t from = 0;
    for (bool finished = false; !finished && !stop.stop_requested();) {
        write_txn(
            "delete old events",
            [&](sqlite3* db) {
                // The oldest events after `from`, with how many of their
                // deliveries must keep them: pending ones, and dead ones until
                // the event is past the dead bound too.
                Stmt scan(db,
                          "SELECT e.seq, e.received_at_ms, (SELECT count(*) FROM deliveries d"
                          " WHERE d.event_seq = e.seq AND (d.state = 0 OR (d.state = 2 AND"
                          " e.received_at_ms >= ?3))) FROM events e WHERE e.seq > ?1"
                          " ORDER BY e.seq LIMIT ?2");
                sqlite3_bind_int64(scan, 1, from);
                sqlite3_bind_int64(scan, 2, static_cast<int64_t>(tuning_.purge_chunk));
                sqlite3_bind_int64(scan, 3, dead_before_ms);
                std::vector<int64_t> victims;
                size_t rows = 0;
                int64_t last_received = 0;
                while (step(db, scan, "scan old events")) {
                    ++rows;
                    from = sqlite3_column_int64(scan, 0);
                    last_received = sqlite3_column_int64(scan, 1);
                    if (last_received < before_ms && sqlite3_column_int64(scan, 2) == 0)
                        victims.push_back(from);
                }
                finished = rows < tuning_.purge_chunk || last_received >= before_ms;
                Stmt attempts(db,
                              "DELETE FROM attempts WHERE delivery_id IN"
                              " (SELECT id FROM deliveries WHERE event_seq = ?1)");
                Stmt deliveries(db, "DELETE FROM deliveries WHERE event_seq = ?1");
                Stmt events(db, "DELETE FROM events WHERE seq = ?1");
                for (int64_t seq : victims) {
                    std::string error;
                    for (auto [s, count] : {std::pair{attempts.s, &total.attempts},
                                            std::pair{deliveries.s, &total.deliveries},
                                            std::pair{events.s, &total.events}}) {
                        sqlite3_bind_int64(s, 1, seq);
                        if (!run(db, s, "delete an old event", error))
                            throw std::runtime_error(error);
                        *count += static_cast<size_t>(sqlite3_changes(db));
                    }
                }
            },
            /*deletion_only=*/true);
    }
    return total;
}

}  // namespace clayhook
