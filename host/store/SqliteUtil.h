#pragma once

// Small helpers over the sqlite3 C API shared by the SQLite store's files.
// Internal to host/store: include only from SqliteStore*.cpp.

#include "util/Clock.h"

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace clayhook::sqlite {

// SQLITE_STATIC without the C-style cast of its macro. The views we bind
// outlive the step that reads them, and every parameter is bound again before
// a statement's next step, so a stale pointer is never read.
inline const sqlite3_destructor_type kStatic = nullptr;

inline int64_t now_ms() {
    return SystemClock::unix_ms();
}

inline std::string describe(sqlite3* db, std::string_view what) {
    std::string s(what);
    s += ": ";
    s += sqlite3_errmsg(db);
    s += " (sqlite code ";
    s += std::to_string(sqlite3_extended_errcode(db));
    s += ")";
    return s;
}

inline bool bind_text(sqlite3_stmt* s, int i, std::string_view v) {
    // A null data pointer would bind SQL NULL; an empty view must stay "".
    return sqlite3_bind_text64(s, i, v.empty() ? "" : v.data(), v.size(), kStatic, SQLITE_UTF8) ==
           SQLITE_OK;
}

inline bool bind_blob(sqlite3_stmt* s, int i, std::string_view v) {
    return sqlite3_bind_blob64(s, i, v.empty() ? "" : v.data(), v.size(), kStatic) == SQLITE_OK;
}

inline std::string_view column_view(sqlite3_stmt* s, int i) {
    const void* p = sqlite3_column_blob(s, i);
    int n = sqlite3_column_bytes(s, i);
    if (p == nullptr || n <= 0) return {};
    return {static_cast<const char*>(p), static_cast<size_t>(n)};
}

// Steps a statement that returns no rows, then resets it. On failure the
// message is taken before the reset can touch it.
inline bool run(sqlite3* db, sqlite3_stmt* s, std::string_view what, std::string& error) {
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        error = describe(db, what);
        sqlite3_reset(s);
        return false;
    }
    sqlite3_reset(s);
    return true;
}

struct ResetGuard {
    sqlite3_stmt* s;
    ~ResetGuard() {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    }
};

inline void exec(sqlite3* db, const char* sql) {
    char* msg = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
        std::string m = msg ? msg : sqlite3_errmsg(db);
        sqlite3_free(msg);
        throw std::runtime_error(m);
    }
}

inline std::string query_text(sqlite3* db, const char* sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) {
        throw std::runtime_error(sqlite3_errmsg(db));
    }
    std::string out;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) out = std::string(column_view(s, 0));
    std::string err = rc == SQLITE_ROW || rc == SQLITE_DONE ? "" : sqlite3_errmsg(db);
    sqlite3_finalize(s);
    if (!err.empty()) throw std::runtime_error(err);
    return out;
}

inline uint64_t load_le64(const unsigned char* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i)
        v = (v << 8) | p[i];
    return v;
}

inline void store_le64(unsigned char* p, uint64_t v) {
    for (int i = 0; i < 8; ++i)
        p[i] = static_cast<unsigned char>(v >> (8 * i));
}

// A read transaction on a read connection: one snapshot for several
// statements, ended (COMMIT, which cannot fail for a reader) on scope exit.
struct ReadTxn {
    sqlite3* db;
    explicit ReadTxn(sqlite3* d) : db(d) { exec(db, "BEGIN"); }
    ~ReadTxn() { sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr); }
    ReadTxn(const ReadTxn&) = delete;
    ReadTxn& operator=(const ReadTxn&) = delete;
};

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
inline bool step(sqlite3* db, sqlite3_stmt* s, std::string_view what) {
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw std::runtime_error(describe(db, what));
}

}  // namespace clayhook::sqlite
