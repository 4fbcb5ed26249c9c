#pragma once

// The intake's field extractor (host/intake/JsonFields) held against the
// SDK's reader (clayhook/json.hpp), which it must agree with exactly: used by
// tests/intake/json_fields_test.cpp and the fuzz target
// tests/fuzz/json_fields_fuzz.cpp.
#include "intake/JsonFields.h"

#include <clayhook/json.hpp>

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace clayhook::test {

// Paths Value::at_path reaches in `v` (each member and element, depth first,
// at most `limit`), each also with a trailing '.' (which at_path ignores), and
// with a few that lead nowhere or to the wrong kind.
inline void reachable_paths(const json::Value& v, const std::string& prefix,
                            std::vector<std::string>& out, std::size_t limit) {
    auto add = [&](const std::string& p, const json::Value& item) {
        if (out.size() >= limit) return;
        out.push_back(p);
        reachable_paths(item, p, out, limit);
    };
    const std::string lead = prefix.empty() ? "" : prefix + ".";
    if (v.is_object()) {
        for (const auto& [key, item] : v.members())
            if (key.find('.') == std::string::npos) add(lead + key, item);
        if (out.size() < limit) out.push_back(lead + "no_such_member");
    } else if (v.is_array()) {
        for (std::size_t i = 0; i < v.size(); ++i) {
            add(lead + std::to_string(i), v[i]);
            if (i == 1 && out.size() < limit) out.push_back(lead + "01");  // leading zero: 1
        }
        if (out.size() < limit) {
            out.push_back(lead + std::to_string(v.size()));  // one past the end
            out.push_back(lead + "+0");
            out.push_back(lead + "-0");
            out.push_back(lead + "0x");
            out.push_back(lead + "18446744073709551616");  // past size_t
        }
    } else if (!prefix.empty() && out.size() < limit) {
        out.push_back(lead + "0");  // into a scalar
        out.push_back(prefix + ".");
    }
}

// Member names as written in `body` (each string literal followed by ':'),
// decoded, at most `limit` distinct ones: also those of values a later
// duplicate replaced, which the SDK's tree no longer has.
inline std::vector<std::string> names_in(std::string_view body, std::size_t limit) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (out.size() < limit && (i = body.find('"', i)) != std::string_view::npos) {
        std::size_t end = i + 1;
        while (end < body.size() && body[end] != '"')
            end += body[end] == '\\' ? 2 : 1;
        if (end >= body.size()) break;
        std::size_t after = end + 1;
        while (after < body.size() && (body[after] == ' ' || body[after] == '\n' ||
                                       body[after] == '\t' || body[after] == '\r'))
            ++after;
        if (after < body.size() && body[after] == ':') {
            try {
                const json::Value name = json::parse(body.substr(i, end + 1 - i));
                if (name.as_string().find('.') == std::string::npos &&
                    std::find(out.begin(), out.end(), name.as_string()) == out.end())
                    out.push_back(name.as_string());
            } catch (const json::ParseError&) {
            }
        }
        i = end + 1;
    }
    return out;
}

// Paths to ask for in `body`: a fixed few, those Value::at_path reaches
// (reachable_paths), and member names from the text (names_in) one and two
// deep and under each reachable path: at most about `limit` in all.
inline std::vector<std::string> paths_for(std::string_view body, std::size_t limit = 200) {
    std::vector<std::string> out = {
        "",           ".",     "..",   "event", "row_id", "timestamp", "0",
        "data.email", "a.b.c", "a..b", "a",     "1",      "a.",        "data.company.domain"};
    std::vector<std::string> reached;
    try {
        const json::Value doc = json::parse(body);
        reachable_paths(doc, "", reached, limit / 2);
    } catch (const json::ParseError&) {
    }
    out.insert(out.end(), reached.begin(), reached.end());
    const std::vector<std::string> names = names_in(body, 12);
    const std::size_t cap = out.size() + limit / 2;
    for (const auto& a : names) {
        out.push_back(a);
        for (const auto& b : names)
            if (out.size() < cap) out.push_back(a + "." + b);
    }
    for (const auto& p : reached)
        for (const auto& n : names)
            if (out.size() < cap) out.push_back(p + "." + n);
    return out;
}

// Empty when the extractor agrees with the SDK on `body` for every path:
// the same accept or refuse (the same message at the same offset), and per
// path the same presence and kind, the same decoded string, the same
// json::dump text, and a raw span that is that value. Else what differs.
inline std::string json_fields_mismatch(std::string_view body,
                                        const std::vector<std::string>& paths) {
    std::optional<json::Value> doc;
    std::string sdk_error;
    std::size_t sdk_offset = 0;
    try {
        doc = json::parse(body);
    } catch (const json::ParseError& e) {
        sdk_error = e.what();
        sdk_offset = e.offset();
    }
    intake::FieldPaths compiled(paths);
    std::vector<intake::Field> fields;
    intake::JsonError error;
    const bool ok = intake::extract(body, compiled, fields, error);
    intake::JsonError alone;
    if (intake::validate(body, alone) != ok) return "validate() and extract() disagree";
    if (ok != doc.has_value()) {
        return ok ? "accepted what the SDK refuses (" + sdk_error + ")"
                  : "refused what the SDK accepts (" + error.what() + ")";
    }
    if (!ok) {
        if (error.what() != sdk_error || error.offset != sdk_offset)
            return "another error: '" + error.what() + "' at " + std::to_string(error.offset) +
                   ", the SDK's '" + sdk_error + "' at " + std::to_string(sdk_offset);
        if (alone.what() != sdk_error) return "validate() gave another error: " + alone.what();
        return "";
    }
    if (fields.size() != paths.size()) return "not one result per path";
    for (std::size_t i = 0; i < paths.size(); ++i) {
        const std::string where = "path '" + paths[i] + "': ";
        const json::Value* v = doc->at_path(paths[i]);
        const intake::Field& f = fields[i];
        if ((v != nullptr) != f.found)
            return where + (f.found ? "found, the SDK has nothing" : "not found, the SDK has it");
        if (v == nullptr) continue;
        if (static_cast<int>(v->kind()) != static_cast<int>(f.kind))
            return where + "kind " + intake::kind_name(f.kind) + ", the SDK's " +
                   json::Value::kind_name(v->kind());
        const std::string dumped = json::dump(*v);
        const std::string ours = intake::canonical(body, f);
        if (ours != dumped) return where + "canonical " + ours + ", json::dump " + dumped;
        if (v->is_string() && intake::string_value(body, f) != v->as_string())
            return where + "decoded " + intake::string_value(body, f) + ", the SDK's " +
                   v->as_string();
        if (f.end > body.size() || f.begin >= f.end) return where + "span out of the body";
        try {
            if (json::dump(json::parse(f.raw(body))) != dumped)
                return where + "the span " + std::string(f.raw(body)) + " is another value";
        } catch (const json::ParseError& e) {
            return where + "the span " + std::string(f.raw(body)) + " is not JSON: " + e.what();
        }
        if (f.kind == intake::Kind::String && !f.escaped &&
            f.raw(body).find('\\') != std::string_view::npos)
            return where + "a string with escapes not marked escaped";
    }
    return "";
}

}  // namespace clayhook::test
