// The plugins' own state in the SQLite store: their key-value entries and
// whether each is paused.
#include "store/SqliteStore.h"
#include "store/SqliteUtil.h"

namespace clayhook {

using namespace sqlite;

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

}  // namespace clayhook
