#pragma once

// Small helpers over libpq shared by the PostgreSQL store's files. Internal to
// host/store: include only from Pg*.cpp.
//
// Every statement is sent with PQexecParams / PQsendQueryParams, parameters
// in text form except bytea ones (binary: raw bytes, no escaping), and every
// result in binary form, so a bytea column reads back as its raw bytes and an
// integer as its big-endian bytes (read by the type's OID).

#include <libpq-fe.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace clayhook::pg {

struct ResultClear {
    void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultClear>;

struct ConnFinish {
    void operator()(PGconn* c) const { PQfinish(c); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnFinish>;

// Parameters of one statement. The values are copied in, so temporaries may
// be passed.
class Params {
  public:
    Params& text(std::string_view v) {
        add(v, 0);
        return *this;
    }
    Params& bytes(std::string_view v) {
        add(v, 1);
        return *this;
    }
    Params& i64(int64_t v) { return text(std::to_string(v)); }
    Params& boolean(bool v) { return text(v ? "true" : "false"); }
    Params& null() {
        values_.emplace_back();
        nulls_.push_back(true);
        formats_.push_back(0);
        return *this;
    }
    // A PostgreSQL array literal of integers: {1,2,3}.
    Params& i64_array(const std::vector<int64_t>& v) {
        std::string s = "{";
        for (size_t i = 0; i < v.size(); ++i) {
            if (i) s += ',';
            s += std::to_string(v[i]);
        }
        s += '}';
        return text(s);
    }
    // A text[] literal: every element quoted, '"' and '\' escaped.
    Params& text_array(const std::vector<std::string>& v) {
        std::string s = "{";
        for (size_t i = 0; i < v.size(); ++i) {
            if (i) s += ',';
            s += '"';
            for (char c : v[i]) {
                if (c == '"' || c == '\\') s += '\\';
                s += c;
            }
            s += '"';
        }
        s += '}';
        return text(s);
    }

    int count() const { return static_cast<int>(values_.size()); }
    // Pointers valid until the next add.
    void finish(std::vector<const char*>& values, std::vector<int>& lengths,
                std::vector<int>& formats) const {
        values.clear();
        lengths.clear();
        formats.clear();
        for (size_t i = 0; i < values_.size(); ++i) {
            values.push_back(nulls_[i] ? nullptr : values_[i].data());
            lengths.push_back(static_cast<int>(values_[i].size()));
            formats.push_back(formats_[i]);
        }
    }

  private:
    void add(std::string_view v, int format) {
        values_.emplace_back(v);
        nulls_.push_back(false);
        formats_.push_back(format);
    }
    std::vector<std::string> values_;
    std::vector<bool> nulls_;
    std::vector<int> formats_;
};

// The server's message, without a trailing newline.
inline std::string error_of(PGconn* c) {
    std::string m = c ? PQerrorMessage(c) : "no connection";
    while (!m.empty() && (m.back() == '\n' || m.back() == ' '))
        m.pop_back();
    return m;
}

// A statement's error: the primary message and the SQLSTATE only. Never the
// DETAIL, which may quote a failing row (another sender's body).
inline std::string error_of(const PGresult* r, PGconn* c) {
    if (r) {
        const char* primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        const char* code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (primary && *primary)
            return std::string(primary) + (code ? std::string(" (SQLSTATE ") + code + ")" : "");
    }
    return error_of(c);
}

// The SQLSTATE of a failed result ("" when none).
inline std::string sqlstate(const PGresult* r) {
    const char* s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    return s ? s : "";
}

inline bool ok(const PGresult* r) {
    if (!r) return false;
    auto st = PQresultStatus(r);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

// Runs one statement; throws std::runtime_error("<what>: <server message>").
inline Result exec(PGconn* c, const char* sql, const Params& p, std::string_view what) {
    std::vector<const char*> values;
    std::vector<int> lengths, formats;
    p.finish(values, lengths, formats);
    Result r(
        PQexecParams(c, sql, p.count(), nullptr, values.data(), lengths.data(), formats.data(), 1));
    if (!ok(r.get())) throw std::runtime_error(std::string(what) + ": " + error_of(r.get(), c));
    return r;
}

inline Result exec(PGconn* c, const char* sql, std::string_view what) {
    return exec(c, sql, Params{}, what);
}

// Queues one statement in pipeline mode; false when it could not be sent.
inline bool send(PGconn* c, const char* sql, const Params& p) {
    std::vector<const char*> values;
    std::vector<int> lengths, formats;
    p.finish(values, lengths, formats);
    return PQsendQueryParams(c, sql, p.count(), nullptr, values.data(), lengths.data(),
                             formats.data(), 1) == 1;
}

// Queues one execution of a statement prepared on this connection.
inline bool send_prepared(PGconn* c, const char* name, const Params& p) {
    std::vector<const char*> values;
    std::vector<int> lengths, formats;
    p.finish(values, lengths, formats);
    return PQsendQueryPrepared(c, name, p.count(), values.data(), lengths.data(), formats.data(),
                               1) == 1;
}

// Column readers for binary results.
inline std::string_view bytes_at(const PGresult* r, int row, int col) {
    if (PQgetisnull(r, row, col)) return {};
    return {PQgetvalue(r, row, col), static_cast<size_t>(PQgetlength(r, row, col))};
}

inline int64_t int_at(const PGresult* r, int row, int col) {
    if (PQgetisnull(r, row, col)) return 0;
    const auto* p = reinterpret_cast<const unsigned char*>(PQgetvalue(r, row, col));
    const int n = PQgetlength(r, row, col);
    uint64_t v = 0;
    for (int i = 0; i < n; ++i)
        v = (v << 8) | p[i];
    // Sign-extend the 2- and 4-byte types.
    if (n == 4) return static_cast<int32_t>(static_cast<uint32_t>(v));
    if (n == 2) return static_cast<int16_t>(static_cast<uint16_t>(v));
    if (n == 1) return static_cast<int64_t>(v);  // bool
    return static_cast<int64_t>(v);
}

}  // namespace clayhook::pg
